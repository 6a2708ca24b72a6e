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


def test_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    quick_start = python_blocks()[0]
    exec(compile(quick_start, "README quick start", "exec"), {})
    assert (tmp_path / "data").is_dir()
