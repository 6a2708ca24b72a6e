"""``setdefault`` of a present key returns the stored value without checking the default
(SPEC 4.3: it is only validated when it is written), on every store, mutable or append-only."""

from __future__ import annotations

from typing import Any

import pytest


def test_setdefault_of_a_present_key_ignores_the_default(make_store: Any,
                                                         append_only: bool) -> None:
    d = make_store(append_only=append_only, base_class_for_values=int)
    d["a"] = 1
    assert d.setdefault("a", "not an int") == 1
    assert d.setdefault("a", None) == 1
    assert d["a"] == 1
    with pytest.raises(TypeError, match="int"):
        d.setdefault("b", "not an int")  # absent: the default is written, so it is checked
    assert "b" not in d
