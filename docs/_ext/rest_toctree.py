"""``toctree-rest``: a toctree of every top-level page not listed elsewhere.

Pages other people add to docs/ (``reliability.md``, ``writing-a-backend.md``...) appear in the
site without anyone editing the index. A plain ``:glob:`` toctree cannot leave out the pages
another toctree of the same index already lists; this one can (``:exclude:``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.directives.other import TocTree


class RestTocTree(TocTree):
    """A toctree of the top-level documents that are neither excluded nor the current one."""

    option_spec: ClassVar[dict[str, Any]] = {**TocTree.option_spec, "exclude": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        excluded = set(self.options.pop("exclude", "").split())
        listed = {line.strip() for line in self.content if line.strip()}
        rest = sorted(d for d in self.env.found_docs
                      if "/" not in d and d != self.env.docname and d not in excluded | listed)
        self.content = StringList([*self.content, *rest], source=self.content.source(0)
                                  if self.content else self.get_source_info()[0])
        return super().run()


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("toctree-rest", RestTocTree)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
