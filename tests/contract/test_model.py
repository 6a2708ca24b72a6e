"""A Hypothesis state machine: random operations on a store against a plain ``dict`` model.

Mutable stores must behave exactly like the model. Append-only stores must add like the model,
refuse every change or deletion of a present item with MutationPolicyError, and never lose or
alter an item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    MutationPolicyError,
    PersiDict,
)

from .helpers import IA, append_only_store, is_write_once, mutable_store

Key = tuple[str, ...]
# A small alphabet of keys, including nested ones and keys that are prefixes of others.
KEYS: list[Key] = [("a",), ("b",), ("a", "x"), ("a", "x", "y"), ("c", "d"), ("b", "a")]
keys_st = st.sampled_from(KEYS)
values_st = st.integers(min_value=0, max_value=4) | st.sampled_from(["s", "", None]) | st.lists(
    st.integers(0, 2), max_size=2)
conditions_st = st.sampled_from([ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED])
expectation_st = st.sampled_from(["actual", "stale", "IA"])

SETTINGS = settings(max_examples=8, stateful_step_count=20, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _holds(condition: Any, expected: Any, actual: Any) -> bool:
    if condition is ANY_ETAG:
        return True
    if condition is ETAG_IS_THE_SAME:
        return bool(expected == actual)
    return bool(expected != actual)


def bump(v: Any) -> Any:
    """The transformer's new value: 0 for an absent item, +1 for an int, else wrapped."""
    if v is ITEM_NOT_AVAILABLE:
        return 0
    return v + 1 if isinstance(v, int) else [v]


class StoreMachine(RuleBasedStateMachine):
    """Subclassed per test with ``factory`` set to a store builder."""

    factory: Callable[[], PersiDict[Any]]

    def __init__(self) -> None:
        super().__init__()
        self.d: PersiDict[Any] = type(self).factory()
        self.ao = self.d.append_only
        self.model: dict[Key, Any] = {}
        self.stale: dict[Key, Any] = {}  # an ETag each key had before its last change

    # -------------------------------------------------------------------------- helpers
    def actual_etag(self, k: Key) -> Any:
        if k in self.model:
            return self.d.etag(k)
        return IA

    def expected_etag(self, k: Key, how: str) -> Any:
        if how == "actual":
            return self.actual_etag(k)
        if how == "stale":
            return self.stale.get(k, IA)
        return IA

    def remember(self, k: Key) -> None:
        """Call before a change of ``k``: its current ETag becomes a stale one."""
        if k in self.model:
            self.stale[k] = self.d.etag(k)

    def refused(self, op: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        try:
            return False, op(*args, **kwargs)
        except MutationPolicyError as exc:
            policy = exc.policy
        assert self.ao, "a mutable store refused an operation"
        assert policy in ("append-only", "write-once")
        return True, None

    # ---------------------------------------------------------------------------- rules
    @initialize()
    def starts_empty(self) -> None:
        assert len(self.d) == 0

    @rule(k=keys_st, v=values_st)
    def set(self, k: Key, v: Any) -> None:
        if self.ao and k in self.model:
            was_refused, _ = self.refused(self.d.__setitem__, k, v)
            if not was_refused:  # write-once accepts re-writing an equal value as a no-op
                assert is_write_once(self.d)
                assert v == self.model[k] and type(v) is type(self.model[k])
            return
        self.remember(k)
        self.d[k] = v
        self.model[k] = v

    @rule(k=keys_st)
    def get(self, k: Key) -> None:
        if k in self.model:
            assert self.d[k] == self.model[k]
        else:
            with pytest.raises(KeyError):
                self.d[k]
        assert self.d.get(k, "dflt") == self.model.get(k, "dflt")

    @rule(k=keys_st)
    def contains(self, k: Key) -> None:
        assert (k in self.d) == (k in self.model)

    @rule()
    def length_and_keys(self) -> None:
        assert len(self.d) == len(self.model)
        listed = sorted(tuple(k) for k in self.d.keys())  # noqa: SIM118 (keys() under test)
        assert listed == sorted(self.model)

    @rule(k=keys_st)
    def delete(self, k: Key) -> None:
        if self.ao:
            assert self.refused(self.d.__delitem__, k)[0]
        elif k in self.model:
            del self.d[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.d[k]

    @rule(k=keys_st)
    def discard(self, k: Key) -> None:
        if self.ao:
            assert self.refused(self.d.discard, k)[0]
            return
        assert self.d.discard(k) is (k in self.model)
        self.model.pop(k, None)

    @rule(k=keys_st)
    def pop(self, k: Key) -> None:
        if self.ao:
            assert self.refused(self.d.pop, k, None)[0]
            return
        assert self.d.pop(k, "dflt") == self.model.pop(k, "dflt")

    @rule(k=keys_st, v=values_st)
    def setdefault(self, k: Key, v: Any) -> None:
        expected = self.model.setdefault(k, v)
        assert self.d.setdefault(k, v) == expected

    @rule(k=keys_st, joker=st.sampled_from([KEEP_CURRENT, DELETE_CURRENT]))
    def set_joker(self, k: Key, joker: Any) -> None:
        if joker is KEEP_CURRENT:
            self.d[k] = joker
        elif self.ao:
            assert self.refused(self.d.__setitem__, k, joker)[0]
        else:
            self.d[k] = joker
            self.model.pop(k, None)

    @rule(k=keys_st, v=values_st, cond=conditions_st, how=expectation_st)
    def set_item_if(self, k: Key, v: Any, cond: Any, how: str) -> None:
        actual = self.actual_etag(k)
        expected = self.expected_etag(k, how)
        ok = _holds(cond, expected, actual)
        if self.ao:
            was_refused, r = self.refused(self.d.set_item_if, k, value=v, condition=cond,
                                          expected_etag=expected, retrieve_value=ALWAYS_RETRIEVE)
            if (ok and k in self.model) or is_write_once(self.d):
                assert was_refused
            if was_refused:  # a present item may be refused up front, whatever the condition
                assert k in self.model or is_write_once(self.d)
                return
        else:
            self.remember(k)
            r = self.d.set_item_if(k, value=v, condition=cond, expected_etag=expected,
                                   retrieve_value=ALWAYS_RETRIEVE)
        assert r.condition_was_satisfied is ok
        assert r.actual_etag == actual
        if ok:
            self.model[k] = v
            assert r.new_value == v
            assert r.resulting_etag == self.d.etag(k)
        else:
            assert r.new_value == self.model.get(k, ITEM_NOT_AVAILABLE)
            assert r.resulting_etag == actual

    @rule(k=keys_st, v=values_st, cond=conditions_st, how=expectation_st)
    def setdefault_if(self, k: Key, v: Any, cond: Any, how: str) -> None:
        actual = self.actual_etag(k)
        expected = self.expected_etag(k, how)
        ok = _holds(cond, expected, actual)
        r = self.d.setdefault_if(k, default_value=v, condition=cond, expected_etag=expected,
                                 retrieve_value=ALWAYS_RETRIEVE)
        assert r.condition_was_satisfied is ok
        assert r.actual_etag == actual
        if k in self.model:
            assert r.new_value == self.model[k]
            assert r.resulting_etag == actual
        elif ok:
            self.model[k] = v
            assert r.new_value == v
            assert r.resulting_etag == self.d.etag(k)
        else:
            assert r.new_value is ITEM_NOT_AVAILABLE

    @rule(k=keys_st, cond=conditions_st, how=expectation_st)
    def discard_if(self, k: Key, cond: Any, how: str) -> None:
        actual = self.actual_etag(k)
        expected = self.expected_etag(k, how)
        ok = _holds(cond, expected, actual)
        if self.ao:
            was_refused, r = self.refused(self.d.discard_if, k, condition=cond,
                                          expected_etag=expected)
            if ok and k in self.model:
                assert was_refused
            if was_refused:
                return
        else:
            r = self.d.discard_if(k, condition=cond, expected_etag=expected)
        assert r.condition_was_satisfied is ok
        assert r.actual_etag == actual
        if ok and k in self.model:
            del self.model[k]
        assert r.resulting_etag == self.actual_etag(k)

    @rule(k=keys_st, action=st.sampled_from(["inc", "delete", "keep"]))
    def transform_item(self, k: Key, action: str) -> None:
        def transformer(v: Any) -> Any:
            assert v == self.model.get(k, ITEM_NOT_AVAILABLE)
            if action == "keep":
                return KEEP_CURRENT
            if action == "delete":
                return DELETE_CURRENT
            return bump(v)

        if self.ao:
            # write-once stores refuse transform_item altogether (SPEC 6.6)
            was_refused, r = self.refused(self.d.transform_item, k, transformer=transformer)
            if k in self.model and action != "keep":
                assert was_refused
            if was_refused:
                return
        else:
            self.remember(k)
            r = self.d.transform_item(k, transformer=transformer)
        if action == "inc":
            self.model[k] = bump(self.model.get(k, ITEM_NOT_AVAILABLE))
        elif action == "delete":
            self.model.pop(k, None)
        assert r.new_value == self.model.get(k, ITEM_NOT_AVAILABLE)
        assert r.resulting_etag == self.actual_etag(k)

    @precondition(lambda self: not self.ao)
    @rule()
    def popitem_or_clear(self) -> None:
        if self.model:
            k, v = self.d.popitem()
            assert self.model.pop(tuple(k)) == v
        else:
            with pytest.raises(KeyError):
                self.d.popitem()

    def teardown(self) -> None:
        assert {tuple(k): v for k, v in self.d.items()} == self.model
        assert len(self.d) == len(self.model)


def test_random_operations_match_a_dict(make_store: Any, append_only: bool) -> None:
    if append_only:
        append_only_store(make_store)  # skips kinds that cannot be append-only

        def factory() -> PersiDict[Any]:
            return append_only_store(make_store)
    else:
        mutable_store(make_store)

        def factory() -> PersiDict[Any]:
            return mutable_store(make_store)

    machine = type("Machine", (StoreMachine,), {"factory": staticmethod(factory)})
    run_state_machine_as_test(machine, settings=SETTINGS)
