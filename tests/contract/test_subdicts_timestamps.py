"""Sub-stores, timestamps and the timestamp-ordered views, random_key (SPEC 4.4)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from persidict import PersiDict, SafeStrTuple

from .helpers import mutable_store, snapshot, tick, whole_second_clock


# ------------------------------------------------------------------------------- sub-stores
def test_subdict_shares_data_both_ways(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["p", "x"] = 1
    d["p", "q", "y"] = 2
    d["top"] = 3
    d["pp", "x"] = 4  # a sibling whose name merely starts with the prefix
    sub = d.get_subdict("p")
    assert isinstance(sub, PersiDict)
    assert sub.serialization_format == d.serialization_format
    assert sub.append_only == d.append_only
    assert snapshot(sub) == {("x",): 1, ("q", "y"): 2}
    assert len(sub) == 2
    assert sub["x"] == 1
    assert sub["q", "y"] == 2
    assert "top" not in sub
    sub["z"] = 5  # a write through the sub-store is visible in the parent
    assert d["p", "z"] == 5
    d["p", "w"] = 6  # and the other way round
    assert sub["w"] == 6
    del sub["x"]
    assert ("p", "x") not in d
    d.discard(("p", "q", "y"))
    assert ("q", "y") not in sub
    assert snapshot(sub) == {("z",): 5, ("w",): 6}
    assert snapshot(d) == {("top",): 3, ("pp", "x"): 4, ("p", "z"): 5, ("p", "w"): 6}
    assert sub.etag("z") == d.etag(("p", "z"))
    assert sub.timestamp("z") == d.timestamp(("p", "z"))


def test_subdict_prefix_forms(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a", "b", "c", "d"] = 1
    d["a", "b", "e"] = 2
    d["a", "x"] = 3
    for prefix in [("a", "b"), ["a", "b"], SafeStrTuple("a", "b"), ("a", ("b",))]:
        sub = d.get_subdict(prefix)
        assert snapshot(sub) == {("c", "d"): 1, ("e",): 2}
    nested = d.get_subdict("a").get_subdict("b")
    assert snapshot(nested) == {("c", "d"): 1, ("e",): 2}
    deeper = d.get_subdict(("a", "b", "c"))
    assert snapshot(deeper) == {("d",): 1}
    nested["new"] = 4
    assert d["a", "b", "new"] == 4
    assert d.get_subdict("a")["b", "new"] == 4


def test_subdict_of_empty_prefix_is_the_whole_store(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b", "c"] = 2
    for prefix in [(), [], SafeStrTuple()]:
        whole = d.get_subdict(prefix)
        assert snapshot(whole) == snapshot(d)
        assert len(whole) == 2
    whole["n"] = 3
    assert d["n"] == 3


def test_subdict_of_missing_prefix_is_empty(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    sub = d.get_subdict(("nothing", "here"))
    assert len(sub) == 0
    assert list(sub.keys()) == []
    assert not sub
    assert sub.random_key() is None
    assert len(d) == 1
    assert [tuple(k) for k in d] == [("a",)]
    leaf = d.get_subdict("a")  # a leaf key is not a prefix of anything
    assert len(leaf) == 0
    with pytest.raises(ValueError):
        d.get_subdict("a b")
    with pytest.raises(TypeError):
        d.get_subdict(5)


def test_subdict_keeps_params(make_store: Any) -> None:
    d = make_store(serialization_format="json", base_class_for_values=dict)
    d["p", "x"] = {"v": 1}
    sub = d.get_subdict("p")
    assert sub.serialization_format == "json"
    assert sub.base_class_for_values is dict
    assert sub.append_only == d.append_only
    with pytest.raises(TypeError):
        sub["y"] = 5
    assert sub["x"] == {"v": 1}


def test_subdicts(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert d.subdicts() == {}
    d["a", "x"] = 1
    d["a", "y", "z"] = 2
    d["b", "x"] = 3
    d["c"] = 4  # a top-level leaf gives an (empty) sub-store too
    subs = d.subdicts()
    assert sorted(subs) == ["a", "b", "c"]
    assert all(isinstance(s, PersiDict) for s in subs.values())
    assert snapshot(subs["a"]) == {("x",): 1, ("y", "z"): 2}
    assert snapshot(subs["b"]) == {("x",): 3}
    assert len(subs["c"]) == 0
    subs["b"]["new"] = 5
    assert d["b", "new"] == 5


# ------------------------------------------------------------------------------- timestamps
def test_timestamp_close_to_write_time(make_store: Any) -> None:
    d = mutable_store(make_store)
    before = time.time()
    d["a", "b"] = 1
    after = time.time()
    ts = d.timestamp(("a", "b"))
    assert isinstance(ts, float)
    slack = 1.5 if whole_second_clock(d, ("a", "b")) else 0.5
    assert before - slack <= ts <= after + slack, (before, ts, after)
    assert d.timestamp(["a", "b"]) == ts  # reading does not change it
    _ = d["a", "b"]
    assert d.timestamp(("a", "b")) == ts


def _three_in_order(d: PersiDict[Any]) -> list[tuple[str, ...]]:
    """Write three items with strictly increasing timestamps; returns keys oldest first."""
    keys = [("k", "old"), ("mid",), ("k", "new", "est")]
    for i, k in enumerate(keys):
        d[k] = i
        if i < len(keys) - 1:
            tick(d, k)
    ts = [d.timestamp(k) for k in keys]
    assert ts == sorted(ts)
    assert len(set(ts)) == 3
    return keys


def test_oldest_newest_keys_and_values(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert d.oldest_keys() == []
    assert d.newest_keys(max_n=3) == []
    assert d.oldest_values() == []
    keys = _three_in_order(d)
    values = [0, 1, 2]
    assert [tuple(k) for k in d.oldest_keys()] == keys
    assert [tuple(k) for k in d.newest_keys()] == keys[::-1]
    assert all(isinstance(k, SafeStrTuple) for k in d.oldest_keys())
    assert d.oldest_values() == values
    assert d.newest_values() == values[::-1]
    for n in (0, -1, -5):
        assert d.oldest_keys(max_n=n) == []
        assert d.newest_keys(max_n=n) == []
        assert d.oldest_values(max_n=n) == []
        assert d.newest_values(max_n=n) == []
    for n in (1, 2, 3, 10):
        assert [tuple(k) for k in d.oldest_keys(max_n=n)] == keys[:n]
        assert [tuple(k) for k in d.newest_keys(max_n=n)] == keys[::-1][:n]
        assert d.oldest_values(max_n=n) == values[:n]
        assert d.newest_values(max_n=n) == values[::-1][:n]
    with pytest.raises(TypeError):
        d.oldest_keys(2)  # type: ignore[misc]
    # a rewrite makes the oldest item the newest, and leaves the others' timestamps alone
    stamps = [d.timestamp(k) for k in keys]
    tick(d, keys[-1])
    d[keys[0]] = 10
    assert d.timestamp(keys[0]) > stamps[-1]
    assert [d.timestamp(k) for k in keys[1:]] == stamps[1:]
    assert [tuple(k) for k in d.newest_keys(max_n=1)] == [keys[0]]
    assert [tuple(k) for k in d.oldest_keys(max_n=1)] == [keys[1]]
    assert d.newest_values(max_n=1) == [10]


def test_keys_values_items_and_timestamps(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert list(d.keys_and_timestamps()) == []
    d["a"] = "x"
    d["b", "c"] = [1]
    stamps = {("a",): d.timestamp("a"), ("b", "c"): d.timestamp(("b", "c"))}
    kt = list(d.keys_and_timestamps())
    assert all(isinstance(k, SafeStrTuple) for k, _ in kt)
    assert {tuple(k): t for k, t in kt} == stamps
    vt = list(d.values_and_timestamps())
    assert sorted(vt, key=repr) == sorted(
        [("x", stamps[("a",)]), ([1], stamps[("b", "c")])], key=repr)
    it = list(d.items_and_timestamps())
    assert all(isinstance(k, SafeStrTuple) for k, _, _ in it)
    assert {tuple(k): (v, t) for k, v, t in it} == {
        ("a",): ("x", stamps[("a",)]), ("b", "c"): ([1], stamps[("b", "c")])}
    for t in stamps.values():
        assert isinstance(t, float)


# ------------------------------------------------------------------------------- random_key
def test_random_key(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert d.random_key() is None
    keys = {("a",), ("b", "c"), ("b", "d", "e")}
    for i, k in enumerate(keys):
        d[k] = i
    seen = set()
    for _ in range(60):  # P(missing one of 3 keys) = 3 * (2/3)**60 < 1e-10
        k = d.random_key()
        assert isinstance(k, SafeStrTuple)
        assert tuple(k) in keys
        seen.add(tuple(k))
        if seen == keys:
            break
    assert seen == keys
    d.clear()
    assert d.random_key() is None
