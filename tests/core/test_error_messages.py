"""Errors that teach: each names what was wrong and what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from persidict import AppendOnlyDictCached, FileDirDict, LocalDict, MutableDictCached


@pytest.mark.parametrize("mutable", ["main_dict", "data_cache"])
def test_append_only_cached_names_the_mutable_store(mutable: str) -> None:
    stores = {"main_dict": LocalDict(append_only=True), "data_cache": LocalDict(append_only=True)}
    stores[mutable] = LocalDict()
    with pytest.raises(ValueError, match="append_only must be set to True") as info:
        AppendOnlyDictCached(**stores)
    message = str(info.value)
    assert f"{mutable} is a mutable LocalDict" in message
    assert f"{mutable}=LocalDict(..., append_only=True)" in message


@pytest.mark.parametrize("key", [1, ("users", 1), None])
def test_non_str_key_says_what_keys_are(key: object) -> None:
    with pytest.raises(TypeError, match="Invalid argument type") as info:
        LocalDict()[key] = 1  # type: ignore[index]
    message = str(info.value)
    assert "Keys are str or sequences of str" in message
    bad = key[1] if isinstance(key, tuple) else key
    assert f"got {type(bad).__name__} {bad!r}" in message


def test_key_with_a_slash_suggests_a_tuple() -> None:
    with pytest.raises(ValueError, match="disallowed characters") as info:
        LocalDict()["users/alice"] = 1
    assert "use ('users', 'alice') instead of 'users/alice'" in str(info.value)


@pytest.mark.parametrize(("fmt", "suggestion"),
                         [("JSON", "'json'"), ("pickle", "'pkl'"), ("yaml", None)])
def test_wrong_serialization_format_lists_the_formats(tmp_path: Path, fmt: str,
                                                      suggestion: str | None) -> None:
    with pytest.raises(ValueError) as info:
        FileDirDict(base_dir=tmp_path, serialization_format=fmt)
    message = str(info.value)
    assert f"serialization_format={fmt!r}" in message
    assert "'pkl'" in message and "'json'" in message and "base_class_for_values=str" in message
    if suggestion:
        assert f"Did you mean {suggestion}?" in message
    else:
        assert "Did you mean" not in message
    assert not any(tmp_path.iterdir())


def test_missing_key_in_mutable_cached_is_a_plain_key_error() -> None:
    store = MutableDictCached(main_dict=LocalDict(), data_cache=LocalDict(),
                              etag_cache=LocalDict())
    with pytest.raises(KeyError) as info:
        store["absent"]
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert info.value.args == (("absent",),)


def _plain(width: float, height: float = 1.0, *, unit: str = "m") -> float:
    return width * height


@pytest.mark.parametrize(("args", "kwargs"), [
    ((), {}), ((1, 2, 3), {}), ((1,), {"depth": 2}), ((1,), {"width": 2}),
])
def test_wrong_call_of_a_cached_function_is_pythons_own_error(
        tmp_path: Path, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    from persidict_memo import persistent_cache

    cached = persistent_cache(store=str(tmp_path))(_plain)
    with pytest.raises(TypeError) as expected:
        _plain(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError) as got:
        cached(*args, **kwargs)  # type: ignore[arg-type]
    assert str(got.value) == str(expected.value)
    assert str(got.value).startswith("_plain() ")
    assert got.value.__context__ is None
    with pytest.raises(TypeError) as inspected:
        cached.is_cached(*args, **kwargs)  # type: ignore[arg-type]
    assert str(inspected.value) == str(expected.value)
