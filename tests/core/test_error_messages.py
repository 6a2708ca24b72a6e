"""Errors that teach: each names what was wrong and what to do instead."""

from __future__ import annotations

import pytest

from persidict import AppendOnlyDictCached, LocalDict


@pytest.mark.parametrize("mutable", ["main_dict", "data_cache"])
def test_append_only_cached_names_the_mutable_store(mutable: str) -> None:
    stores = {"main_dict": LocalDict(append_only=True), "data_cache": LocalDict(append_only=True)}
    stores[mutable] = LocalDict()
    with pytest.raises(ValueError, match="append_only must be set to True") as info:
        AppendOnlyDictCached(**stores)
    message = str(info.value)
    assert f"{mutable} is a mutable LocalDict" in message
    assert f"{mutable}=LocalDict(..., append_only=True)" in message
