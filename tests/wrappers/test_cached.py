"""AppendOnlyDictCached and MutableDictCached: policies, cache coherence, cost of a warm hit."""

from __future__ import annotations

import copy
import itertools
import pickle
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    AppendOnlyDictCached,
    FileDirDict,
    LocalDict,
    MutableDictCached,
    MutationPolicyError,
    PersiDict,
)

# ------------------------------------------------------------------------------ test doubles


_IN_MAIN = [False]  # True while a SpyFileDirDict is serving a read


class Tracked:
    """A value that counts how often the main store deserialises it."""

    loads = 0

    def __init__(self, x: Any) -> None:
        self.x = x

    def __setstate__(self, state: dict[str, Any]) -> None:
        if _IN_MAIN[0]:
            Tracked.loads += 1
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict[int, Any]) -> Tracked:
        return Tracked(copy.deepcopy(self.x, memo))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tracked) and other.x == self.x

    __hash__ = None  # type: ignore[assignment]


class SpyFileDirDict(FileDirDict[Any]):
    """A FileDirDict that records every read-side call made on it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[Any, ...]] = []

    def __getitem__(self, key: Any) -> Any:
        self.calls.append(("getitem", key))
        _IN_MAIN[0] = True
        try:
            return super().__getitem__(key)
        finally:
            _IN_MAIN[0] = False

    def __contains__(self, key: object) -> bool:
        self.calls.append(("contains", key))
        return super().__contains__(key)

    def etag(self, key: Any) -> Any:
        self.calls.append(("etag", key))
        return super().etag(key)

    def get_item_if(self, key: Any, **kwargs: Any) -> Any:
        _IN_MAIN[0] = True
        try:
            r = super().get_item_if(key, **kwargs)
        finally:
            _IN_MAIN[0] = False
        self.calls.append(("get_item_if", kwargs["retrieve_value"], r.new_value))
        return r


def etag_store(**kwargs: Any) -> LocalDict[str]:
    return LocalDict(serialization_format="txt", base_class_for_values=str, **kwargs)


def keys_of(store: PersiDict[Any]) -> list[tuple[str, ...]]:
    return sorted(tuple(k) for k in store)


# ======================================================================= AppendOnlyDictCached
@pytest.fixture
def main_ao(tmp_path: Path) -> SpyFileDirDict:
    return SpyFileDirDict(base_dir=tmp_path / "main", append_only=True)


@pytest.fixture
def ao(main_ao: SpyFileDirDict) -> AppendOnlyDictCached[Any]:
    return AppendOnlyDictCached(main_dict=main_ao, data_cache=LocalDict(append_only=True))


def test_append_cached_constructor_checks(tmp_path: Path) -> None:
    good = LocalDict(append_only=True)
    with pytest.raises(TypeError, match="main_dict must be a PersiDict"):
        AppendOnlyDictCached(main_dict={}, data_cache=good)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data_cache must be a PersiDict"):
        AppendOnlyDictCached(main_dict=good, data_cache={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="append_only must be set to True"):
        AppendOnlyDictCached(main_dict=LocalDict(), data_cache=good)
    with pytest.raises(ValueError, match="append_only must be set to True"):
        AppendOnlyDictCached(main_dict=good, data_cache=LocalDict())
    with pytest.raises(ValueError, match="same base_class_for_values"):
        AppendOnlyDictCached(main_dict=LocalDict(append_only=True, base_class_for_values=str),
                             data_cache=good)
    # Formats are not compared; the wrapper takes the main store's.
    main = FileDirDict(base_dir=tmp_path, append_only=True, serialization_format="json")
    a = AppendOnlyDictCached(main_dict=main, data_cache=good)
    assert (a.append_only, a.serialization_format, a.base_class_for_values) == (
        True, "json", None)


def test_append_cached_write_fills_the_cache_and_warm_hits_never_touch_main(
        ao: AppendOnlyDictCached[Any], main_ao: SpyFileDirDict) -> None:
    ao["k"] = {"v": 1}
    assert ao.data_cache["k"] == {"v": 1}
    assert main_ao["k"] == {"v": 1}
    main_ao.calls.clear()
    for _ in range(5):
        assert ao["k"] == {"v": 1}
        assert ao[("k",)] == {"v": 1}
        assert "k" in ao
        assert ao.get("k") == {"v": 1}
    assert main_ao.calls == []
    # Even with the file gone behind its back, the cache answers (append-only: trusted).
    for path in Path(main_ao.base_dir).rglob("*.pkl"):
        path.unlink()
    assert ao["k"] == {"v": 1}
    assert "k" in ao


def test_append_cached_miss_reads_main_once_then_caches(
        ao: AppendOnlyDictCached[Any], main_ao: SpyFileDirDict) -> None:
    main_ao["x", "y"] = [1, 2]  # written behind the wrapper's back
    assert "x" not in ao.data_cache
    assert ("x", "y") in ao
    main_ao.calls.clear()
    assert ao["x", "y"] == [1, 2]
    assert ao["x", "y"] == [1, 2]
    assert [c[0] for c in main_ao.calls] == ["getitem"]
    assert ao.data_cache["x", "y"] == [1, 2]
    with pytest.raises(KeyError):
        ao["absent"]
    assert "absent" not in ao
    assert ao.get("absent", 5) == 5


def test_append_cached_refusals(ao: AppendOnlyDictCached[Any]) -> None:
    ao["k"] = 1
    ao["k"] = KEEP_CURRENT
    refused = [
        lambda: ao.__setitem__("k", 2),
        lambda: ao.__setitem__("k", DELETE_CURRENT),
        lambda: ao.__setitem__("absent", DELETE_CURRENT),
        lambda: ao.__delitem__("k"),
        lambda: ao.__delitem__("absent"),
        lambda: ao.discard("k"),
        lambda: ao.pop("k"),
        lambda: ao.pop("absent", None),
        lambda: ao.popitem(),
        lambda: ao.clear(),
        lambda: ao.discard_if("k", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE),
        lambda: ao.set_item_if("k", value=2, condition=ANY_ETAG,
                               expected_etag=ITEM_NOT_AVAILABLE),
        lambda: ao.transform_item("k", transformer=lambda v: v + 1),
    ]
    for op in refused:
        with pytest.raises(MutationPolicyError) as exc:
            op()
        assert exc.value.policy == "append-only"
    assert ao["k"] == 1 and ao.main_dict["k"] == 1 and ao.data_cache["k"] == 1
    assert len(ao) == 1
    with pytest.raises(ValueError):
        del ao["bad key"]  # the key is checked before the policy


def test_append_cached_conditional_ops_and_etags(
        ao: AppendOnlyDictCached[Any], main_ao: SpyFileDirDict) -> None:
    r = ao.setdefault_if("k", default_value="v", condition=ANY_ETAG,
                         expected_etag=ITEM_NOT_AVAILABLE)
    assert r.value_was_mutated
    assert ao.data_cache["k"] == "v"
    assert ao.etag("k") == main_ao.etag("k") == r.resulting_etag
    assert ao.timestamp("k") == main_ao.timestamp("k")
    # A cached key: main is asked for the ETag only; the value comes from the cache.
    main_ao.calls.clear()
    r = ao.get_item_if("k", condition=ETAG_IS_THE_SAME, expected_etag=r.resulting_etag,
                       retrieve_value=ALWAYS_RETRIEVE)
    assert (r.condition_was_satisfied, r.actual_etag, r.new_value) == (
        True, main_ao.etag("k"), "v")
    assert main_ao.calls[0] == ("get_item_if", NEVER_RETRIEVE, VALUE_NOT_RETRIEVED)
    r = ao.get_item_if("k", condition=ETAG_HAS_CHANGED, expected_etag=r.actual_etag)
    assert (r.condition_was_satisfied, r.new_value) == (False, VALUE_NOT_RETRIEVED)
    r = ao.get_item_if("absent", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    assert r.new_value is ITEM_NOT_AVAILABLE
    # An uncached key read conditionally fills the cache.
    main_ao["m"] = "w"
    r = ao.get_item_if("m", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    assert r.new_value == "w" and ao.data_cache["m"] == "w"
    # Insert through set_item_if works for absent keys.
    r = ao.set_item_if("n", value=3, condition=ETAG_IS_THE_SAME,
                       expected_etag=ITEM_NOT_AVAILABLE)
    assert r.value_was_mutated and ao.data_cache["n"] == 3 and main_ao["n"] == 3
    r = ao.discard_if("absent", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    assert r.new_value is ITEM_NOT_AVAILABLE
    assert ao.setdefault("k", "other") == "v"
    assert ao.setdefault("new", "d") == "d"


def test_append_cached_iteration_uses_main_keys_and_cached_values(
        ao: AppendOnlyDictCached[Any], main_ao: SpyFileDirDict) -> None:
    ao["a"] = 1
    main_ao["b", "c"] = 2
    assert keys_of(ao) == [("a",), ("b", "c")]
    assert len(ao) == 2
    assert sorted(ao.values()) == [1, 2]
    assert ao.data_cache["b", "c"] == 2  # values() filled the cache
    assert {tuple(k): v for k, v, _ in ao.items_and_timestamps()} == {("a",): 1, ("b", "c"): 2}
    assert ao.random_key() in {("a",), ("b", "c")}


def test_append_cached_does_not_cache_written_values_main_reads_back_differently(
        tmp_path: Path) -> None:
    text = {"serialization_format": "txt", "base_class_for_values": str, "append_only": True}
    main = FileDirDict(base_dir=tmp_path, **text)
    a = AppendOnlyDictCached(main_dict=main, data_cache=LocalDict(**text))
    a["k"] = "a\r\nb"  # text files read back with normalised line endings
    assert "k" not in a.data_cache
    assert a["k"] == main["k"] == "a\nb"
    assert a.data_cache["k"] == "a\nb"
    same = AppendOnlyDictCached(main_dict=main.clone(),
                                data_cache=FileDirDict(base_dir=tmp_path / "cache", **text))
    same["j"] = "c\r\nd"
    assert "j" in same.data_cache  # a txt cache reads back what a txt main does
    assert same["j"] == main["j"] == "c\nd"


def test_append_cached_subdict_params_clone(
        ao: AppendOnlyDictCached[Any], main_ao: SpyFileDirDict) -> None:
    sub = ao.get_subdict("p")
    assert isinstance(sub, AppendOnlyDictCached)
    sub["q"] = 1
    assert main_ao["p", "q"] == 1
    assert ao.data_cache["p", "q"] == 1
    assert ao["p", "q"] == 1
    params = ao.get_params()
    assert list(params) == ["data_cache", "main_dict"]
    assert params["main_dict"] is main_ao and params["data_cache"] is ao.data_cache
    twin = ao.clone()
    assert isinstance(twin, AppendOnlyDictCached)
    assert twin.main_dict is main_ao and twin.data_cache is ao.data_cache
    assert twin == ao and twin["p", "q"] == 1
    assert copy.copy(ao).get_params() == params
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ao)
    assert repr(ao).startswith("AppendOnlyDictCached(data_cache=LocalDict(")
    assert not hasattr(ao, "base_dir")  # no attribute forwarding


# ========================================================================== MutableDictCached
@pytest.fixture
def main_mu(tmp_path: Path) -> SpyFileDirDict:
    return SpyFileDirDict(base_dir=tmp_path / "main")


@pytest.fixture
def mc(main_mu: SpyFileDirDict) -> MutableDictCached[Any]:
    return MutableDictCached(main_dict=main_mu, data_cache=LocalDict(), etag_cache=etag_store())


def cached_entry(c: MutableDictCached[Any], key: Any) -> tuple[Any, Any]:
    """(cached value, the main store's ETag recorded for it)."""
    entry = c.etag_cache.get(key, ITEM_NOT_AVAILABLE)
    main_etag = entry if entry is ITEM_NOT_AVAILABLE else entry.split("\n")[0]
    return c.data_cache.get(key, ITEM_NOT_AVAILABLE), main_etag


def plant(c: MutableDictCached[Any], key: Any, value: Any, main_etag: str) -> None:
    """Put a cache entry by the side door: the value, and its ETag paired with that version."""
    c.data_cache[key] = value
    c.etag_cache[key] = f"{main_etag}\n{c.data_cache.etag(key)}"


def test_mutable_cached_constructor_checks() -> None:
    ok = LocalDict()
    for name in ("main_dict", "data_cache", "etag_cache"):
        args: dict[str, Any] = {"main_dict": ok, "data_cache": ok, "etag_cache": ok}
        args[name] = object()
        with pytest.raises(TypeError, match=f"{name} must be a PersiDict"):
            MutableDictCached(**args)
        args[name] = LocalDict(append_only=True)
        with pytest.raises(ValueError, match=f"{name} can't be append-only."):
            MutableDictCached(**args)
    c = MutableDictCached(main_dict=LocalDict(serialization_format="json"), data_cache=ok,
                          etag_cache=etag_store())
    assert (c.append_only, c.serialization_format) == (False, "json")


def test_mutable_cached_write_records_value_and_the_etag_of_that_write(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    mc["k"] = {"v": 1}
    assert cached_entry(mc, "k") == ({"v": 1}, main_mu.etag("k"))
    assert mc.etag("k") == main_mu.etag("k")
    assert mc.timestamp("k") == main_mu.timestamp("k")
    mc["k"] = {"v": 2}
    assert cached_entry(mc, "k") == ({"v": 2}, main_mu.etag("k"))
    mc["k"] = KEEP_CURRENT
    assert mc["k"] == {"v": 2}
    mc["k"] = DELETE_CURRENT
    assert "k" not in mc and "k" not in main_mu
    assert cached_entry(mc, "k") == (ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)


def test_mutable_cached_warm_hit_is_one_conditional_read_without_transfer(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    mc["k"] = Tracked(1)
    Tracked.loads = 0
    main_mu.calls.clear()
    for _ in range(5):
        assert mc["k"] == Tracked(1)
    assert Tracked.loads == 0  # the stored value was never deserialised
    assert main_mu.calls == [("get_item_if", IF_ETAG_CHANGED, VALUE_NOT_RETRIEVED)] * 5
    # A change behind the wrapper's back is transferred once, then cached again.
    main_mu["k"] = Tracked(2)
    main_mu.calls.clear()
    assert mc["k"] == Tracked(2)
    assert Tracked.loads == 1
    assert mc["k"] == Tracked(2)
    assert Tracked.loads == 1
    assert [c[0] for c in main_mu.calls] == ["get_item_if", "get_item_if"]
    assert main_mu.calls[1][2] is VALUE_NOT_RETRIEVED


def test_mutable_cached_reads_heal_after_outside_changes(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    mc["k"] = "one"
    assert mc["k"] == "one"
    main_mu["k"] = "two"  # overwrite behind the wrapper's back
    assert mc["k"] == "two"
    assert cached_entry(mc, "k") == ("two", main_mu.etag("k"))
    del main_mu["k"]  # delete behind its back
    with pytest.raises(KeyError):
        mc["k"]
    assert cached_entry(mc, "k") == (ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    assert mc.get("k", "gone") == "gone"
    main_mu["k"] = "three"  # re-create
    assert mc["k"] == "three"
    assert cached_entry(mc, "k") == ("three", main_mu.etag("k"))
    # Overwrite, then ask for the ETag first: the fresh one, and the stale value is dropped.
    main_mu["k"] = "four"
    assert mc.etag("k") == main_mu.etag("k")
    assert mc["k"] == "four"
    del main_mu["k"]
    with pytest.raises(KeyError):
        mc.etag("k")
    assert cached_entry(mc, "k") == (ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)


def test_mutable_cached_heals_after_losing_cache_entries(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    mc["k"] = "v"
    mc.data_cache.clear()  # the value is gone, the ETag is still there
    assert mc["k"] == "v"
    assert cached_entry(mc, "k") == ("v", main_mu.etag("k"))
    mc.etag_cache.clear()  # the ETag is gone: a full read
    assert mc["k"] == "v"
    mc.etag_cache["k"] = "not-an-etag-main-ever-had"
    main_mu.calls.clear()
    assert mc["k"] == "v"
    assert main_mu.calls[0][2] == "v"  # the ETag mismatch made main send the value
    assert cached_entry(mc, "k") == ("v", main_mu.etag("k"))


_CONDITIONS = [ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED]
_RETRIEVE = [ALWAYS_RETRIEVE, NEVER_RETRIEVE, IF_ETAG_CHANGED]


@pytest.mark.parametrize("cache_state", ["cold", "warm", "stale"])
def test_mutable_cached_get_item_if_answers_like_the_main_store(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict, cache_state: str) -> None:
    main_mu["k"] = "old"
    old_etag = main_mu.etag("k")
    main_mu["k"] = "v"
    etag = main_mu.etag("k")
    for condition, retrieve, expected in itertools.product(
            _CONDITIONS, _RETRIEVE, [etag, old_etag, ITEM_NOT_AVAILABLE]):
        for key in ("k", "absent"):
            mc.data_cache.clear()
            mc.etag_cache.clear()
            if cache_state == "warm":
                plant(mc, "k", "v", etag)
            elif cache_state == "stale":
                plant(mc, "k", "old", old_etag)
                plant(mc, "absent", "ghost", old_etag)
            got = mc.get_item_if(key, condition=condition, expected_etag=expected,
                                 retrieve_value=retrieve)
            want = main_mu.get_item_if(key, condition=condition, expected_etag=expected,
                                       retrieve_value=retrieve)
            assert got == want, (condition, retrieve, expected, key)
            assert mc.get(key) == main_mu.get(key)
    with pytest.raises(ValueError, match="condition must be"):
        mc.get_item_if("k", condition="x", expected_etag=etag)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retrieve_value must be"):
        mc.get_item_if("k", condition=ANY_ETAG, expected_etag=etag,
                       retrieve_value=True)  # type: ignore[arg-type]


def test_mutable_cached_conditional_writes_keep_the_caches_in_sync(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    r = mc.setdefault_if("k", default_value=1, condition=ANY_ETAG,
                         expected_etag=ITEM_NOT_AVAILABLE)
    assert cached_entry(mc, "k") == (1, r.resulting_etag)
    r = mc.set_item_if("k", value=2, condition=ETAG_IS_THE_SAME, expected_etag=r.resulting_etag)
    assert r.value_was_mutated
    assert cached_entry(mc, "k") == (2, main_mu.etag("k"))
    main_mu["k"] = 3  # behind its back
    r = mc.set_item_if("k", value=4, condition=ETAG_IS_THE_SAME, expected_etag=r.resulting_etag,
                       retrieve_value=ALWAYS_RETRIEVE)
    assert not r.condition_was_satisfied and r.new_value == 3
    assert cached_entry(mc, "k") == (3, main_mu.etag("k"))  # the failed write taught it
    main_mu["k"] = 5
    r = mc.discard_if("k", condition=ETAG_IS_THE_SAME, expected_etag=r.actual_etag)
    assert not r.condition_was_satisfied
    assert cached_entry(mc, "k") == (ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)  # stale: dropped
    assert mc["k"] == 5
    r = mc.discard_if("k", condition=ETAG_IS_THE_SAME, expected_etag=main_mu.etag("k"))
    assert r.condition_was_satisfied and "k" not in main_mu
    assert cached_entry(mc, "k") == (ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    res = mc.transform_item("n", transformer=lambda v: 1 if v is ITEM_NOT_AVAILABLE else v + 1)
    assert res.new_value == 1
    res = mc.transform_item("n", transformer=lambda v: v + 1)
    assert res.new_value == 2 and res.resulting_etag == main_mu.etag("n")
    assert cached_entry(mc, "n") == (2, main_mu.etag("n"))
    assert mc.pop("n") == 2
    assert "n" not in main_mu and cached_entry(mc, "n") == (
        ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)


def test_mutable_cached_deletes_and_clear_drop_cache_entries(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    for k in "abcd":
        mc[k] = k
    del mc["a"]
    assert mc.discard("b") is True
    assert mc.discard("b") is False
    assert keys_of(mc.data_cache) == [("c",), ("d",)]
    assert keys_of(mc.etag_cache) == [("c",), ("d",)]
    with pytest.raises(KeyError):
        del mc["a"]
    main_mu["x"] = 1
    mc["x"]
    del main_mu["x"]
    with pytest.raises(KeyError):
        del mc["x"]  # absent in main: KeyError, and the stale cache entry is gone
    assert cached_entry(mc, "x") == (ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    key, value = mc.popitem()
    assert tuple(key) in {("c",), ("d",)} and value == key[0]
    mc.clear()
    assert len(mc) == 0 and len(main_mu) == 0
    assert len(mc.data_cache) == 0 and len(mc.etag_cache) == 0


def test_mutable_cached_listing_comes_from_main(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    mc["a"] = 1
    main_mu["b", "c"] = 2
    assert keys_of(mc) == [("a",), ("b", "c")]
    assert len(mc) == 2 and ("b", "c") in mc
    assert sorted(mc.values()) == [1, 2]
    assert mc.oldest_keys(max_n=1) == [("a",)]


def test_mutable_cached_does_not_cache_written_values_main_reads_back_differently(
        tmp_path: Path) -> None:
    text = {"serialization_format": "txt", "base_class_for_values": str}
    main = FileDirDict(base_dir=tmp_path, **text)
    c = MutableDictCached(main_dict=main, data_cache=LocalDict(**text), etag_cache=etag_store())
    c["k"] = "a\r\nb"  # text files read back with normalised line endings
    assert "k" not in c.data_cache
    assert c["k"] == main["k"] == "a\nb"
    assert c.data_cache["k"] == "a\nb"  # cached from the read, not the write
    pkl = MutableDictCached(main_dict=FileDirDict(base_dir=tmp_path / "p"),
                            data_cache=LocalDict(), etag_cache=etag_store())
    pkl["k"] = {1: "one"}
    assert pkl.data_cache["k"] == {1: "one"}  # pickle reads back what was written


def test_mutable_cached_over_file_caches_like_s3dict(tmp_path: Path) -> None:
    main = LocalDict()
    c = MutableDictCached(
        main_dict=main,
        data_cache=FileDirDict(base_dir=tmp_path, digest_len=8),
        etag_cache=FileDirDict(base_dir=tmp_path, digest_len=8,
                               serialization_format="pkl_etag", base_class_for_values=str))
    c["hello"] = {"x": 1}
    assert c["hello"] == {"x": 1}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["hello_lvauakv4.pkl", "hello_lvauakv4.pkl_etag"]
    etag_file = tmp_path / "hello_lvauakv4.pkl_etag"
    assert etag_file.read_text() == f"{main.etag('hello')}\n{c.data_cache.etag('hello')}"
    main["hello"] = {"x": 2}
    assert c["hello"] == {"x": 2}
    assert etag_file.read_text() == f"{main.etag('hello')}\n{c.data_cache.etag('hello')}"


def test_mutable_cached_never_pairs_a_value_with_another_values_etag(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    """Writers sharing the caches may interleave their value and ETag writes (threads, or
    processes sharing S3Dict's local cache): a value written late must not be served under the
    ETag of the value another writer cached."""
    mc["k"] = "a"
    main_mu["k"] = "b"
    assert mc["k"] == "b"  # refreshed: value "b" cached with main's ETag of "b"
    mc.data_cache["k"] = "a"  # a slower writer's value lands after that ETag entry
    assert mc["k"] == "b"
    assert mc.get_with_etag("k").new_value == "b"
    assert cached_entry(mc, "k") == ("b", main_mu.etag("k"))


def test_mutable_cached_subdict_params_clone(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict) -> None:
    sub = mc.get_subdict("p")
    assert isinstance(sub, MutableDictCached)
    sub["q"] = 1
    assert main_mu["p", "q"] == 1
    assert cached_entry(mc, ("p", "q")) == (1, main_mu.etag(("p", "q")))
    main_mu["p", "q"] = 2
    assert sub["q"] == 2 and mc["p", "q"] == 2
    params = mc.get_params()
    assert list(params) == ["data_cache", "etag_cache", "main_dict"]
    twin = mc.clone()
    assert isinstance(twin, MutableDictCached)
    assert twin.get_params() == params and twin == mc
    assert twin.main_dict is main_mu
    assert copy.copy(mc).get_params() == params
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(mc)
    assert repr(mc).startswith("MutableDictCached(data_cache=LocalDict(")
    assert not hasattr(mc, "base_dir")


# ======================================================================= iteration of values
@pytest.mark.parametrize("parallel", [False, True], ids=["inline", "pooled"])
def test_mutable_cached_values_use_and_refresh_the_cache(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict, parallel: bool) -> None:
    mc._parallel_reads = parallel  # a remote main store reads on a thread pool
    for i in range(50):
        mc["k", str(i)] = i
    main_mu["k", "7"] = 700  # changed behind the wrapper's back
    main_mu["extra"] = -1  # written behind its back
    main_mu.calls.clear()
    got = {tuple(k): v for k, v in mc.items()}
    assert got == {**{("k", str(i)): i for i in range(50)}, ("k", "7"): 700, ("extra",): -1}
    transferred = [c for c in main_mu.calls if c[2] is not VALUE_NOT_RETRIEVED]
    assert sorted(c[2] for c in transferred) == [-1, 700]  # only the two outside changes
    assert cached_entry(mc, ("k", "7")) == (700, main_mu.etag(("k", "7")))
    assert cached_entry(mc, "extra") == (-1, main_mu.etag("extra"))
    assert [v for _, v, _ in mc.items_and_timestamps()] == [
        main_mu[k] for k in main_mu]  # same order as the listing


@pytest.mark.parametrize("parallel", [False, True], ids=["inline", "pooled"])
def test_append_cached_values_fill_the_cache(
        ao: AppendOnlyDictCached[Any], main_ao: SpyFileDirDict, parallel: bool) -> None:
    ao._parallel_reads = parallel
    for i in range(40):
        main_ao[str(i)] = i
    assert sorted(ao.values()) == list(range(40))
    assert len(ao.data_cache) == 40
    main_ao.calls.clear()
    assert sorted(ao.values()) == list(range(40))
    assert [c for c in main_ao.calls if c[0] == "getitem"] == []  # all from the cache


@pytest.mark.parametrize("parallel", [False, True], ids=["inline", "pooled"])
def test_values_skip_items_deleted_during_iteration_and_can_stop_early(
        mc: MutableDictCached[Any], main_mu: SpyFileDirDict, parallel: bool) -> None:
    mc._parallel_reads = parallel
    for i in range(100):
        mc[f"{i:03d}"] = i
    listing = main_mu._iterate

    def listing_then_delete(with_values: bool, with_timestamps: bool) -> Any:
        entries = list(listing(with_values, with_timestamps))
        del main_mu["050"]
        return iter(entries)

    main_mu._iterate = listing_then_delete  # type: ignore[method-assign]
    values = list(mc.values())
    assert len(values) == 99 and 50 not in values
    del main_mu._iterate
    it = mc.values()
    assert next(it) in range(100)
    it.close()  # abandoning the iteration does not hang or leak reads


def test_mutable_cached_reads_a_damaged_cache_entry_as_a_miss(tmp_path: Path) -> None:
    main: LocalDict[Any] = LocalDict()
    c = MutableDictCached(
        main_dict=main,
        data_cache=FileDirDict(base_dir=tmp_path, digest_len=8),
        etag_cache=FileDirDict(base_dir=tmp_path, digest_len=8,
                               serialization_format="pkl_etag", base_class_for_values=str))
    c["hello"] = {"x": 1}
    value_file = tmp_path / "hello_lvauakv4.pkl"
    value_file.write_bytes(b"\x00" * 7)  # torn by a power loss, say
    assert c["hello"] == {"x": 1}
    (tmp_path / "hello_lvauakv4.pkl_etag").write_bytes(b"\xff\xfe")  # not even UTF-8
    assert c["hello"] == {"x": 1}
    assert c.get_with_etag("hello").new_value == {"x": 1}
    assert value_file.read_bytes() != b"\x00" * 7  # healed
