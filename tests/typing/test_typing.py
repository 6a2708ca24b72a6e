"""mypy --strict on a user's module: the annotations catch the mistakes they should.

``user_code.py`` holds ``assert_type`` checks and lines marked ``# type: ignore[code]``; with
``warn_unused_ignores`` an ignore that is no longer needed (the mistake went unnoticed) fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

USER_CODE = Path(__file__).parent / "user_code.py"


def test_user_code_type_checks_strictly() -> None:
    api = pytest.importorskip("mypy.api")
    stdout, stderr, status = api.run(
        ["--strict", "--warn-unused-ignores", "--no-error-summary", "--hide-error-context",
         str(USER_CODE)])
    assert status == 0, stdout + stderr


def test_user_code_has_the_mistakes_it_checks() -> None:
    text = USER_CODE.read_text(encoding="utf-8")
    assert text.count("# type: ignore[") >= 6 and text.count("assert_type(") >= 20
