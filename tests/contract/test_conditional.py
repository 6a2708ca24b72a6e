"""Conditional operations, table-driven (SPEC 3.2-3.4, 4.5, 4.6; append-only: 6.6, 6.7).

Every case is condition x key state (present/absent) x expected ETag (the actual one, a stale one,
ITEM_NOT_AVAILABLE) x retrieval mode (and, for ``set_item_if``, a real value or either joker).
Each test runs its whole table on one store, one key per case, next to a bystander item that must
never change, and reports every failing case.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
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
    ConcurrencyConflictError,
    ConditionalOperationResult,
    MutationPolicyError,
    NonEmptySafeStrTuple,
    OperationResult,
    PersiDict,
)

from .helpers import IA, append_only_store, assert_policy_error, is_write_once, mutable_store, shape

VNR = VALUE_NOT_RETRIEVED
CONDITIONS = {"ANY": ANY_ETAG, "SAME": ETAG_IS_THE_SAME, "CHANGED": ETAG_HAS_CHANGED}
RETRIEVES = {"ALWAYS": ALWAYS_RETRIEVE, "NEVER": NEVER_RETRIEVE, "IF_CHANGED": IF_ETAG_CHANGED}
OLD = "an older, longer value of this item"
V0 = "v0"  # the current value of a present item
V1 = {"new": [1]}  # the value the operations try to write
BYSTANDER = ("by", "stander")
STALE = ("stale",)

CASES = [
    (c, state, exp)
    for c in CONDITIONS
    for state in ("present", "absent")
    for exp in ("actual", "stale", "IA")
    if not (state == "absent" and exp == "actual")  # the actual ETag of an absent key is IA
]


def cond_holds(condition: str, expected: Any, actual: Any) -> bool:
    """SPEC 3.2, with IA comparing like any other ETag."""
    if condition == "ANY":
        return True
    if condition == "SAME":
        return bool(expected == actual)
    return bool(expected != actual)


def existing(retrieve: str, expected: Any, actual: Any, value: Any) -> Any:
    """What a result carries for an item left unchanged (SPEC 3.3)."""
    if retrieve == "ALWAYS":
        return value
    if retrieve == "NEVER":
        return VNR
    return value if expected != actual else VNR


class Setup:
    """One store with bystander items; ``prepare`` puts a new key into a state."""

    def __init__(self, d: PersiDict[Any]) -> None:
        self.d = d
        d[BYSTANDER] = "bystander value"
        if d.append_only:
            self.stale = d.etag(BYSTANDER)  # a real ETag, of another item
        else:
            d[STALE] = OLD
            self.stale = d.etag(STALE)  # a real ETag that no item has any more
            d[STALE] = "rewritten"
            assert d.etag(STALE) != self.stale
        self.by_etags = {k: d.etag(k) for k in (BYSTANDER, STALE) if k in d}
        self.n = 0
        self.shared: dict[str, tuple[tuple[str, ...], Any]] = {}

    def prepare(self, state: str, exp: str, *, fresh: bool = True
                ) -> tuple[tuple[str, ...], Any, Any]:
        """A key in ``state``; returns (key, actual ETag, expected ETag to pass).

        ``fresh=False`` reuses one key per state, for operations that must not mutate.
        """
        if fresh or state not in self.shared:
            self.n += 1
            key = ("k", str(self.n))
            actual = IA
            if state == "present":
                self.d[key] = V0
                actual = self.d.etag(key)
                assert actual != self.stale
            if not fresh:
                self.shared[state] = (key, actual)
        else:
            key, actual = self.shared[state]
        expected = {"actual": actual, "stale": self.stale, "IA": IA}[exp]
        return key, actual, expected

    def check_untouched(self, key: Any, state: str, actual: Any) -> None:
        d = self.d
        if state == "present":
            assert d[key] == V0
            assert d.etag(key) == actual
        else:
            assert key not in d

    def check_bystanders(self) -> None:
        """Call at the end of a table: no case touched another item."""
        for k, etag in self.by_etags.items():
            assert self.d.etag(k) == etag
        assert self.d[BYSTANDER] == "bystander value"


def check_written(d: PersiDict[Any], key: Any, r: ConditionalOperationResult[Any],
                  actual: Any, value: Any) -> None:
    """A write-success(actual, new etag, value) result, and the store holds ``value``."""
    assert r.condition_was_satisfied is True
    assert r.actual_etag == actual
    assert r.new_value == value
    assert isinstance(r.resulting_etag, str)
    assert r.resulting_etag != actual
    assert r.value_was_mutated is True
    assert d[key] == value
    assert d.etag(key) == r.resulting_etag


# ------------------------------------------------------------------------------- mutable stores
def run_table(s: Setup, cases: list[tuple[str, ...]], check: Callable[..., None]) -> None:
    """Run ``check(*case)`` for every case; report every failing case, not just the first.

    Then check that no case touched the bystander items.
    """
    failures = []
    for case in cases:
        try:
            check(*case)
        except AssertionError as exc:
            failures.append(f"{'-'.join(case)}: {exc}".replace("\n", " "))
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)
    s.check_bystanders()


def with_retrieves(cases: list[tuple[str, str, str]]) -> list[tuple[str, ...]]:
    return [(*case, r) for case in cases for r in RETRIEVES]


def test_get_item_if(make_store: Any) -> None:
    s = Setup(mutable_store(make_store))
    run_table(s, with_retrieves(CASES), lambda *case: _check_get_item_if(s, *case))


def _check_get_item_if(s: Setup, c: str, state: str, exp: str, rname: str) -> None:
    key, actual, expected = s.prepare(state, exp, fresh=False)
    r = s.d.get_item_if(key, condition=CONDITIONS[c], expected_etag=expected,
                        retrieve_value=RETRIEVES[rname])
    ok = cond_holds(c, expected, actual)
    if state == "absent":
        want = (ok, IA, IA, IA)
    else:
        want = (ok, actual, actual, existing(rname, expected, actual, V0))
    assert shape(r) == want
    assert r.value_was_mutated is False
    s.check_untouched(key, state, actual)


VALUES = {"value": V1, "KEEP_CURRENT": KEEP_CURRENT, "DELETE_CURRENT": DELETE_CURRENT}


@pytest.mark.parametrize("value_kind", list(VALUES))
def test_set_item_if(make_store: Any, value_kind: str) -> None:
    s = Setup(mutable_store(make_store))
    run_table(s, with_retrieves(CASES), lambda *case: _check_set_item_if(s, value_kind, *case))


def _check_set_item_if(s: Setup, value_kind: str, c: str, state: str, exp: str,
                       rname: str) -> None:
    d = s.d
    value = VALUES[value_kind]
    key, actual, expected = s.prepare(state, exp)
    r = d.set_item_if(key, value=value, condition=CONDITIONS[c], expected_etag=expected,
                      retrieve_value=RETRIEVES[rname])
    ok = cond_holds(c, expected, actual)
    if not ok or value is KEEP_CURRENT:
        if state == "absent":
            assert shape(r) == (ok, IA, IA, IA)
        else:
            assert shape(r) == (ok, actual, actual, existing(rname, expected, actual, V0))
        s.check_untouched(key, state, actual)
    elif value is DELETE_CURRENT:
        assert shape(r) == (True, actual, IA, IA)
        assert key not in d
    else:
        check_written(d, key, r, actual, V1)


def test_setdefault_if(make_store: Any) -> None:
    s = Setup(mutable_store(make_store))
    run_table(s, with_retrieves(CASES), lambda *case: _check_setdefault_if(s, *case))


def _check_setdefault_if(s: Setup, c: str, state: str, exp: str, rname: str) -> None:
    d = s.d
    # a present item is never overwritten, so all present cases can share one key
    key, actual, expected = s.prepare(state, exp, fresh=state == "absent")
    r = d.setdefault_if(key, default_value=V1, condition=CONDITIONS[c],
                        expected_etag=expected, retrieve_value=RETRIEVES[rname])
    ok = cond_holds(c, expected, actual)
    if state == "present":
        # never overwrites; the condition may well be satisfied
        assert shape(r) == (ok, actual, actual, existing(rname, expected, actual, V0))
        s.check_untouched(key, state, actual)
    elif ok:
        check_written(d, key, r, IA, V1)
    else:
        assert shape(r) == (False, IA, IA, IA)
        s.check_untouched(key, state, actual)


def test_discard_if(make_store: Any) -> None:
    s = Setup(mutable_store(make_store))
    run_table(s, CASES, lambda *case: _check_discard_if(s, *case))


def _check_discard_if(s: Setup, c: str, state: str, exp: str) -> None:
    d = s.d
    key, actual, expected = s.prepare(state, exp)
    r = d.discard_if(key, condition=CONDITIONS[c], expected_etag=expected)
    ok = cond_holds(c, expected, actual)
    if state == "absent":
        assert shape(r) == (ok, IA, IA, IA)
        s.check_untouched(key, state, actual)
    elif ok:
        assert shape(r) == (True, actual, IA, IA)
        assert r.value_was_mutated is True
        assert key not in d
    else:
        assert shape(r) == (False, actual, actual, VNR)
        s.check_untouched(key, state, actual)


# --------------------------------------------------------------------------- append-only stores
def _refusal(op: Callable[..., Any], *args: Any, **kwargs: Any
             ) -> tuple[Any, MutationPolicyError | None]:
    """Call ``op``; a MutationPolicyError (with a known policy) is returned, not raised."""
    try:
        return op(*args, **kwargs), None
    except MutationPolicyError as exc:
        refused = exc
    assert refused.policy in ("append-only", "write-once")
    return None, refused


def test_append_only_get_item_if_and_setdefault_if(make_store: Any) -> None:
    s = Setup(append_only_store(make_store))
    run_table(s, with_retrieves(CASES), lambda *case: _check_get_item_if(s, *case))
    run_table(s, with_retrieves(CASES), lambda *case: _check_setdefault_if(s, *case))


@pytest.mark.parametrize("value_kind", list(VALUES))
def test_append_only_set_item_if(make_store: Any, value_kind: str) -> None:
    """Adding is fine, changing or deleting a present item is refused (SPEC 4.5, 6.4, 6.6, 6.7).

    A write-once store refuses set_item_if altogether; a store may also refuse to touch a
    present item up front, before it evaluates the condition.
    """
    s = Setup(append_only_store(make_store))
    run_table(s, with_retrieves(CASES),
              lambda *case: _check_append_only_set_item_if(s, value_kind, *case))


def _check_append_only_set_item_if(s: Setup, value_kind: str, c: str, state: str, exp: str,
                                   rname: str) -> None:
    d = s.d
    value = VALUES[value_kind]
    # present items of an append-only store never change, so all present cases share one key
    key, actual, expected = s.prepare(state, exp, fresh=state == "absent")
    ok = cond_holds(c, expected, actual)
    r, refused = _refusal(d.set_item_if, key, value=value, condition=CONDITIONS[c],
                          expected_etag=expected, retrieve_value=RETRIEVES[rname])
    must_refuse = (is_write_once(d) or value is DELETE_CURRENT
                   or (ok and state == "present" and value is not KEEP_CURRENT))
    may_refuse = must_refuse or (state == "present" and value is not KEEP_CURRENT)
    if must_refuse:
        assert refused is not None, f"not refused: {r}"
    elif refused is not None:
        assert may_refuse, f"refused: {refused!r}"
    elif ok and state == "absent" and value is V1:
        check_written(d, key, r, IA, V1)
        return
    elif state == "absent":
        assert shape(r) == (ok, IA, IA, IA)
    else:
        assert shape(r) == (ok, actual, actual, existing(rname, expected, actual, V0))
    s.check_untouched(key, state, actual)


def test_append_only_discard_if(make_store: Any) -> None:
    """A satisfied discard_if of a present item is refused; nothing is ever deleted."""
    s = Setup(append_only_store(make_store))
    run_table(s, CASES, lambda *case: _check_append_only_discard_if(s, *case))


def _check_append_only_discard_if(s: Setup, c: str, state: str, exp: str) -> None:
    d = s.d
    key, actual, expected = s.prepare(state, exp)
    ok = cond_holds(c, expected, actual)
    r, refused = _refusal(d.discard_if, key, condition=CONDITIONS[c], expected_etag=expected)
    if state == "present" and ok:
        assert refused is not None, f"not refused: {r}"
    elif refused is None:
        want = (ok, IA, IA, IA) if state == "absent" else (False, actual, actual, VNR)
        assert shape(r) == want
    s.check_untouched(key, state, actual)


# ----------------------------------------------------------------------------------- ETags
def test_etag_changes_on_every_write_and_is_stable_otherwise(make_store: Any) -> None:
    d = mutable_store(make_store)
    etags = []
    for i in range(6):
        d["a"] = "v" * (i % 3 + 1) + str(i)  # sizes repeat: the ETag must not rely on size
        e = d.etag("a")
        assert isinstance(e, str)
        etags.append(e)
        assert d.etag("a") == e
        assert d["a"] == "v" * (i % 3 + 1) + str(i)
        assert "a" in d
        assert list(d.keys()) == [("a",)]
        assert d.etag(("a",)) == e
        r = d.get_with_etag("a")
        assert shape(r) == (True, e, e, d["a"])
    assert len(set(etags)) == len(etags), etags
    d["b"] = "other"
    assert d.etag("a") == etags[-1]
    assert d.etag("b") not in etags


def test_get_with_etag(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert shape(d.get_with_etag("a")) == (True, IA, IA, IA)
    d["a", "b"] = [1, 2]
    r = d.get_with_etag(["a", "b"])
    assert isinstance(r, ConditionalOperationResult)
    assert shape(r) == (True, d.etag(("a", "b")), d.etag(("a", "b")), [1, 2])
    assert r.value_was_mutated is False


# ---------------------------------------------------------------------------- transform_item
def test_transform_item_increment_insert_delete(make_store: Any) -> None:
    d = mutable_store(make_store)
    calls: list[Any] = []

    def inc(v: Any) -> Any:
        calls.append(v)
        return 1 if v is ITEM_NOT_AVAILABLE else v + 1

    r = d.transform_item("n", transformer=inc)
    assert isinstance(r, OperationResult)
    assert r.new_value == 1
    assert r.resulting_etag == d.etag("n")
    assert d["n"] == 1
    assert calls == [ITEM_NOT_AVAILABLE]
    for expected in range(2, 5):
        before = d.etag("n")
        r = d.transform_item("n", transformer=inc)
        assert r == OperationResult(resulting_etag=d.etag("n"), new_value=expected)
        assert r.resulting_etag != before
        assert d["n"] == expected
    assert calls == [ITEM_NOT_AVAILABLE, 1, 2, 3]
    r = d.transform_item("n", transformer=lambda v: DELETE_CURRENT, n_retries=None)
    assert r == OperationResult(resulting_etag=IA, new_value=IA)
    assert "n" not in d
    r = d.transform_item("n", transformer=lambda v: KEEP_CURRENT, n_retries=0)
    assert r == OperationResult(resulting_etag=IA, new_value=IA)
    assert len(d) == 0


@pytest.mark.parametrize(("n_retries", "err"), [
    (-1, ValueError), (-10, ValueError), ("abc", TypeError), (object(), TypeError),
    ([1], TypeError)])
def test_transform_item_validates_n_retries(make_store: Any, n_retries: Any,
                                            err: type[Exception]) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    with pytest.raises(err):
        d.transform_item("a", transformer=lambda v: v + 1, n_retries=n_retries)
    assert d["a"] == 1


def test_transform_item_conflict_with_no_retries(make_store: Any) -> None:
    """A writer that always gets in between read and write makes the transform give up."""
    d = mutable_store(make_store)
    d["a"] = 0
    calls: list[Any] = []

    def meddling(v: Any) -> Any:
        calls.append(v)
        d["a"] = "x" * (len(calls) + 5)  # someone else writes, behind the transformer's back
        return 100

    with pytest.raises(ConcurrencyConflictError) as exc_info:
        d.transform_item("a", transformer=meddling, n_retries=0)
    assert isinstance(exc_info.value, RuntimeError)
    assert exc_info.value.attempts == 1
    assert exc_info.value.key == NonEmptySafeStrTuple("a")
    assert calls == [0]
    assert d["a"] == "x" * 6  # the other writer's value, not the transformer's


def test_transform_item_retries_after_a_conflict(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 10
    calls: list[Any] = []

    def meddle_once(v: Any) -> Any:
        calls.append(v)
        if len(calls) == 1:
            d["a"] = 20  # a concurrent write; the first attempt must lose
        return v + 1

    r = d.transform_item("a", transformer=meddle_once, n_retries=3)
    assert calls == [10, 20]
    assert d["a"] == 21
    assert r == OperationResult(resulting_etag=d.etag("a"), new_value=21)


def test_transform_item_conflicting_delete(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    calls: list[Any] = []

    def meddling_delete(v: Any) -> Any:
        calls.append(v)
        d["a"] = len(calls) + 1
        return DELETE_CURRENT

    with pytest.raises(ConcurrencyConflictError):
        d.transform_item("a", transformer=meddling_delete, n_retries=1)
    assert calls == [1, 2]
    assert d["a"] == 3


@pytest.mark.atomic_kinds  # only the kinds whose conditional writes are one atomic decision
def test_transform_item_is_atomic_under_threads(make_store: Any) -> None:
    """Concurrent increments never lose an update where conditional writes are atomic."""
    assert make_store.kind.atomic
    d = mutable_store(make_store)
    d["n"] = 0
    n_threads, n_incs = 3, 4
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            handle = copy.copy(d)
            for _ in range(n_incs):
                handle.transform_item("n", transformer=lambda v: v + 1, n_retries=None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert d["n"] == n_threads * n_incs


# ----------------------------------------------------------------------------- bad arguments
BAD_CONDITIONS = ["ANY_ETAG", None, ALWAYS_RETRIEVE, True]


@pytest.mark.parametrize("present", [True, False])
def test_invalid_condition_is_a_value_error(make_store: Any, present: bool) -> None:
    d = mutable_store(make_store)
    d["by"] = 1
    if present:
        d["a"] = 1
    etag = d.etag("a") if present else IA
    for bad in BAD_CONDITIONS:
        with pytest.raises(ValueError):
            d.get_item_if("a", condition=bad, expected_etag=etag)
        with pytest.raises(ValueError):
            d.set_item_if("a", value=2, condition=bad, expected_etag=etag)
        with pytest.raises(ValueError):
            d.setdefault_if("a", default_value=2, condition=bad, expected_etag=etag)
        with pytest.raises(ValueError):
            d.discard_if("a", condition=bad, expected_etag=etag)
    assert ("a" in d) is present
    if present:
        assert d["a"] == 1
        assert d.etag("a") == etag
    assert len(d) == 1 + present


@pytest.mark.parametrize("present", [True, False])
def test_invalid_retrieve_value_is_a_type_error(make_store: Any, present: bool) -> None:
    d = mutable_store(make_store)
    if present:
        d["a"] = 1
    for bad in ["ALWAYS_RETRIEVE", None, ANY_ETAG, True]:
        with pytest.raises(TypeError):
            d.get_item_if("a", condition=ANY_ETAG, expected_etag=IA, retrieve_value=bad)
        with pytest.raises(TypeError):
            d.set_item_if("a", value=2, condition=ANY_ETAG, expected_etag=IA,
                          retrieve_value=bad)
        with pytest.raises(TypeError):
            d.setdefault_if("a", default_value=2, condition=ANY_ETAG, expected_etag=IA,
                            retrieve_value=bad)
    assert ("a" in d) is present
    assert len(d) == present
    if present:
        assert d["a"] == 1


def test_setdefault_if_refuses_joker_default(make_store: Any, append_only: bool) -> None:
    d = make_store(append_only=append_only)
    d["a"] = 1
    for joker in (KEEP_CURRENT, DELETE_CURRENT):
        for key in ("a", "b"):
            with pytest.raises(TypeError) as exc_info:
                d.setdefault_if(key, default_value=joker, condition=ANY_ETAG,
                                expected_etag=ITEM_NOT_AVAILABLE)
            assert not isinstance(exc_info.value, MutationPolicyError)
    assert d["a"] == 1
    assert "b" not in d
    assert len(d) == 1


def test_append_only_transform_item(make_store: Any) -> None:
    """Changing or deleting through transform_item is refused; KEEP_CURRENT is fine."""
    d = append_only_store(make_store)
    d["a"] = 1
    etag = d.etag("a")
    for transformer in (lambda v: v + 1, lambda v: DELETE_CURRENT):
        with pytest.raises(MutationPolicyError) as exc_info:
            d.transform_item("a", transformer=transformer)
        assert_policy_error(exc_info)
    r, refused = _refusal(d.transform_item, "a", transformer=lambda v: KEEP_CURRENT)
    if refused is None:
        assert r == OperationResult(resulting_etag=etag, new_value=1)
    assert d["a"] == 1
    assert d.etag("a") == etag
    assert len(d) == 1
