"""The code on the documentation pages runs as written.

Every ```python block of the pages below runs, top to bottom, in one namespace per page, in a
temporary working directory (the pages use relative folders such as ``./data``). S3 examples
run against moto's in-process mock, so the page can show real bucket names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
# Pages whose examples are complete programs; other pages may show fragments.
EXECUTED_PAGES = ["getting-started.md", "stores.md", "concurrency.md", "examples.md",
                  "writing-a-backend.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"),
                      flags=re.S | re.M)


PAGES = [DOCS / name for name in EXECUTED_PAGES if (DOCS / name).exists()]


def test_executed_pages_exist() -> None:
    assert PAGES and all(python_blocks(p) for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           request: pytest.FixtureRequest) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERSIDICT_MEMO_DIR", str(tmp_path / "memo-home"))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    blocks = python_blocks(page)
    if any("S3" in b for b in blocks):
        moto = pytest.importorskip("moto")
        request.getfixturevalue("aws_env")
        with moto.mock_aws():
            for i, block in enumerate(blocks):
                exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)
    else:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)
