"""``.. public-api:: package``: document every name in a package's ``__all__``.

The API reference is generated from ``__all__`` at build time, so a public name someone adds
later shows up without editing any page. Names are grouped by what they are (stores, other
classes, exceptions, functions, constants and type aliases) and each gets the matching autodoc
directive; a name another package defines (a re-export) is documented under its public path.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

_GROUPS = ("Stores", "Classes", "Exceptions", "Functions and decorators", "Constants and types")


def _group(obj: Any) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return "Exceptions"
        mro = {f"{c.__module__}.{c.__qualname__}" for c in obj.__mro__}
        if "persidict.persi_dict.PersiDict" in mro:
            return "Stores"
        return "Classes"
    if inspect.isroutine(obj) or (callable(obj) and hasattr(obj, "__wrapped__")):
        return "Functions and decorators"
    return "Constants and types"


def _directive(group: str, obj: Any) -> tuple[str, list[str]]:
    if group == "Stores":
        return "autoclass", [":members:", ":show-inheritance:"]
    if group in ("Classes", "Exceptions"):
        kind = "autoexception" if group == "Exceptions" else "autoclass"
        return kind, [":members:", ":show-inheritance:"]
    if group == "Functions and decorators":
        return ("autofunction" if inspect.isroutine(obj) else "autodata"), []
    return "autodata", [":annotation:"]


def public_names(package: str) -> list[str]:
    """The names of ``package.__all__`` in their declared order, dunders left out."""
    module = importlib.import_module(package)
    return [n for n in module.__all__ if not (n.startswith("__") and n.endswith("__"))]


class PublicApi(SphinxDirective):
    """Expand into one autodoc directive per public name, grouped under headings."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        module = importlib.import_module(package)
        grouped: dict[str, list[tuple[str, Any]]] = {g: [] for g in _GROUPS}
        for name in public_names(package):
            obj = getattr(module, name)
            grouped[_group(obj)].append((name, obj))
        lines: list[str] = [f".. currentmodule:: {package}", ""]
        for group in _GROUPS:
            if not grouped[group]:
                continue
            lines += [group, "-" * len(group), ""]
            for name, obj in grouped[group]:
                kind, options = _directive(group, obj)
                lines.append(f".. {kind}:: {name}")
                lines += [f"   {o}" for o in options]
                lines.append("")
        content = StringList(lines, source=f"<public-api {package}>")
        container = nodes.container()
        nested_parse_with_titles(self.state, content, container)
        return container.children


def _skip_field_aliases(app: Sphinx, what: str, name: str, obj: Any, skip: bool,
                        options: Any) -> bool | None:
    """NamedTuple fields are documented by their class's ``Attributes:`` section already."""
    doc = getattr(obj, "__doc__", None) or ""
    return True if doc.startswith("Alias for field number") else None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("public-api", PublicApi)
    app.connect("autodoc-skip-member", _skip_field_aliases)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
