"""PersiDict subclasses written against persidict 0.309 (SPEC 4.7): what the base class gives them,
and the hooks they call. The whole contract suite also runs on one (tests/conftest.py)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import persidict
from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    AppendOnlyDictCached,
    ConcurrencyConflictError,
    FileDirDict,
    LocalDict,
    MutableDictCached,
    MutationPolicyError,
    NonEmptySafeStrTuple,
    PersiDict,
    SafeStrTuple,
    WriteOnceDict,
)
from tests.core.user_store_0309 import RamDict


class TimestampedDict(PersiDict):  # type: ignore[type-arg]
    """The smallest 0.309 subclass: no etag (so the base's formatted timestamp), no subdicts,
    and a 0.309-style ``_remove_item`` that raises KeyError."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.data: dict[tuple[str, ...], tuple[Any, float]] = {}
        self.removals = 0

    def __contains__(self, key: Any) -> bool:
        return NonEmptySafeStrTuple(key).strings in self.data

    def __getitem__(self, key: Any) -> Any:
        key = NonEmptySafeStrTuple(key)
        if key.strings not in self.data:
            raise KeyError(key)
        return self.data[key.strings][0]

    def __setitem__(self, key: Any, value: Any) -> None:
        key = NonEmptySafeStrTuple(key)
        if self._process_setitem_args(key, value) is persidict.EXECUTION_IS_COMPLETE:
            return
        if self.append_only and key in self:
            raise MutationPolicyError("append-only")
        self.data[key.strings] = (value, time.time())

    def __delitem__(self, key: Any) -> None:
        del self.data[NonEmptySafeStrTuple(key).strings]

    def _remove_item(self, key: Any) -> None:  # type: ignore[override]
        self.removals += 1
        del self[key]  # KeyError when absent, as 0.309's default

    def __len__(self) -> int:
        return len(self.data)

    def _generic_iter(self, result_type: set[str]) -> Iterator[Any]:
        self._process_generic_iter_args(result_type)
        for strings, (value, ts) in list(self.data.items()):
            row = [x for name, x in (("keys", SafeStrTuple(strings)), ("values", value),
                                     ("timestamps", ts)) if name in result_type]
            yield row[0] if len(row) == 1 else tuple(row)

    def timestamp(self, key: Any) -> float:
        return self.data[NonEmptySafeStrTuple(key).strings][1]


# ----------------------------------------------------------------------------- instantiation
def test_abstract_methods_are_the_0309_ones() -> None:
    assert PersiDict.__abstractmethods__ == {
        "__contains__", "__getitem__", "__setitem__", "__delitem__", "__len__",
        "_generic_iter", "timestamp"}
    with pytest.raises(TypeError, match="abstract"):
        PersiDict()  # type: ignore[abstract]

    class NoIteration(TimestampedDict):
        _generic_iter = PersiDict._generic_iter  # still abstract

    with pytest.raises(TypeError, match="_generic_iter"):
        NoIteration()


def test_a_minimal_subclass_gets_the_whole_api() -> None:
    d = TimestampedDict()
    d["a"] = 1
    d["b", "c"] = 2
    assert d.etag("a") == f"{d.timestamp('a'):.6f}"  # the base's ETag: the timestamp
    assert sorted(d.keys(), key=str) == [("a",), ("b", "c")]
    assert all(type(k) is SafeStrTuple for k in d)
    assert dict(d.items()) == {("a",): 1, ("b", "c"): 2} and sorted(d.values()) == [1, 2]
    assert [k for k, _ in d.keys_and_timestamps()] == [("a",), ("b", "c")]
    assert d.oldest_keys() == [("a",), ("b", "c")] and d.newest_values(max_n=1) == [2]
    assert d.get("zz", 5) == 5 and d.setdefault("a", 9) == 1 and d.setdefault("n", 3) == 3
    assert d.random_key() in {("a",), ("b", "c"), ("n",)}
    assert d.pop("n") == 3 and d.pop("n", None) is None
    r = d.get_with_etag("a")
    assert r.new_value == 1 and r.actual_etag == d.etag("a")
    assert d.transform_item("a", transformer=lambda v: v + 10).new_value == 11
    assert d["a"] == 11
    d["a"] = DELETE_CURRENT
    d["zz"] = KEEP_CURRENT
    assert "a" not in d and "zz" not in d and len(d) == 1
    with pytest.raises(NotImplementedError, match="get_subdict"):
        d.subdicts()


def test_0309_remove_item_that_raises_keyerror() -> None:
    d = TimestampedDict()
    d["a"] = 1
    assert d.discard("a") is True and d.discard("a") is False and d.removals == 2
    d["x"], d["y"] = 1, 2
    d.clear()
    assert len(d) == 0
    d["z"] = 1
    r = d.discard_if("z", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    assert r.condition_was_satisfied and "z" not in d


# ------------------------------------------------------------------------ conditional operations
def test_conditional_operations_are_check_then_act_on_etag() -> None:
    d = RamDict()
    d["k"] = "one"
    e1 = d.etag("k")
    r = d.set_item_if("k", value="two", condition=ETAG_IS_THE_SAME, expected_etag="v999")
    assert not r.condition_was_satisfied and d["k"] == "one" and r.actual_etag == e1
    r = d.set_item_if("k", value="two", condition=ETAG_IS_THE_SAME, expected_etag=e1)
    assert r.condition_was_satisfied and r.resulting_etag == d.etag("k") != e1
    assert d.setdefault_if("new", default_value=1, condition=ANY_ETAG,
                           expected_etag=ITEM_NOT_AVAILABLE).value_was_mutated
    r = d.discard_if("k", condition=ETAG_IS_THE_SAME, expected_etag=e1)
    assert not r.condition_was_satisfied and "k" in d


def test_get_value_and_etag_override_is_used_and_conflicts_are_reported() -> None:
    class Restless(RamDict):
        """Every read of the ETag sees a new write by someone else."""

        def etag(self, key: Any) -> Any:
            super().__setitem__(key, self.memory.items[self._full(key)][0])
            return super().etag(key)

    d = Restless()
    RamDict.__setitem__(d, "k", 1)
    with pytest.raises(ConcurrencyConflictError):
        d.get_item_if("k", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                      retrieve_value=ALWAYS_RETRIEVE)

    class Counting(RamDict):
        reads = 0

        def _get_value_and_etag(self, key: Any) -> Any:
            Counting.reads += 1
            return super()._get_value_and_etag(key)

    c = Counting()
    c["k"] = 1
    assert c.get_with_etag("k").new_value == 1 and Counting.reads == 1


def test_setdefault_on_an_existing_key_does_not_check_the_default() -> None:
    d = RamDict(base_class_for_values=int)
    d["a"] = 1
    assert d.setdefault("a", "not an int") == 1
    with pytest.raises(TypeError):
        d.setdefault("b", "not an int")


# ---------------------------------------------------------------------------------- hooks
def test_process_setitem_args() -> None:
    d = RamDict(base_class_for_values=int)
    done, go_on = persidict.EXECUTION_IS_COMPLETE, persidict.CONTINUE_NORMAL_EXECUTION
    assert "EXECUTION_IS_COMPLETE" not in persidict.__all__
    assert d._process_setitem_args("a", KEEP_CURRENT) is done
    assert d._process_setitem_args("a", 1) is go_on
    with pytest.raises(TypeError, match="instance of int"):
        d._process_setitem_args("a", "x")
    with pytest.raises(TypeError, match="PersiDict"):
        d._process_setitem_args("a", LocalDict())
    with pytest.raises(ValueError):
        d._process_setitem_args("a b", 1)
    d["a"] = 1
    assert d._process_setitem_args("a", DELETE_CURRENT) is done and "a" not in d
    frozen = RamDict(append_only=True)
    with pytest.raises(MutationPolicyError):
        frozen._process_setitem_args("a", DELETE_CURRENT)
    assert frozen._process_setitem_args("a", 1) is go_on  # existence is __setitem__'s business


@pytest.mark.parametrize(("arg", "exc"), [(["keys"], TypeError), ("keys", TypeError),
                                          (set(), ValueError), ({"keys", "nope"}, ValueError),
                                          ({"keys", "values", "timestamps", "x"}, ValueError)])
def test_process_generic_iter_args_rejects(arg: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        PersiDict._process_generic_iter_args(arg)
    with pytest.raises(exc):
        list(LocalDict()._generic_iter(arg))


@pytest.mark.parametrize("kind", ["local", "file"])
def test_generic_iter_of_the_package_stores(kind: str, tmp_path: Path) -> None:
    d: PersiDict[Any] = LocalDict() if kind == "local" else FileDirDict(base_dir=tmp_path)
    d["a"] = 1
    assert list(d._generic_iter({"keys"})) == [("a",)]
    assert list(d._generic_iter({"values"})) == [1]
    (k, v), = d._generic_iter({"values", "keys"})
    assert (k, v) == (("a",), 1)
    (k, ts), = d._generic_iter({"timestamps", "keys"})
    assert ts == d.timestamp("a")
    (k, v, ts), = d._generic_iter({"keys", "values", "timestamps"})
    assert (k, v) == (("a",), 1)


# ------------------------------------------------------------------------------------ wrappers
def test_wrappers_take_a_0309_subclass_as_main_store() -> None:
    m = MutableDictCached(main_dict=RamDict(), data_cache=LocalDict(),
                          etag_cache=LocalDict(serialization_format="txt",
                                               base_class_for_values=str))
    m["a"] = [1]
    assert m["a"] == [1] and m.main_dict["a"] == [1] and m.etag("a") == m.main_dict.etag("a")
    m.main_dict["a"] = [2]  # behind the wrapper's back: the next read heals the cache
    assert m["a"] == [2]
    a = AppendOnlyDictCached(main_dict=RamDict(append_only=True),
                             data_cache=LocalDict(append_only=True))
    a["k"] = {"x": 1}
    assert a["k"] == {"x": 1} and "k" in a.data_cache
    with pytest.raises(MutationPolicyError):
        a.discard_if("k", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    w = WriteOnceDict(wrapped_dict=RamDict(append_only=True), p_consistency_checks=1.0)
    w["k"] = 1
    w["k"] = 1  # the same value again: ignored
    assert w["k"] == 1 and copy.copy(w)["k"] == 1
