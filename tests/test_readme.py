"""The README's quick-start block runs as written (in a temporary working directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_opens_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    bash = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert "python -m persidict" in bash[0]
    assert "pytest" in bash[1] and ".[dev]" in bash[1]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = bash[1].split("&& ")[-1]
    assert test_command.startswith(".venv/bin/python -m pytest")
    assert test_command in ci.splitlines()


@pytest.mark.parametrize("index", [0, 1], ids=["first-example", "quick-start"])
def test_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERSIDICT_MEMO_DIR", str(tmp_path / "memo-home"))
    quick_start = python_blocks()[index]
    exec(compile(quick_start, f"README python block {index + 1}", "exec"), {})
    assert (tmp_path / "data").is_dir()


def test_links_are_absolute() -> None:
    """The README is also the package index page, where relative links do not resolve."""
    links = re.findall(r"\]\(([^)]+)\)", README.read_text(encoding="utf-8"))
    assert links and all(link.startswith("https://") for link in links), links


def test_user_install_comes_right_after_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_section = text.split("\n## ")[1]
    assert "pip install persidict" in first_section
    assert 'pip install "persidict[aws]"' in first_section
    assert "Python 3.11 or newer" in first_section
