"""Small shared helpers for the contract suite (behaviour only: no backend names here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from persidict import (
    ITEM_NOT_AVAILABLE,
    ConditionalOperationResult,
    MutationPolicyError,
    PersiDict,
)

IA = ITEM_NOT_AVAILABLE

# The policies a refused mutation may name (SPEC 3.5).
POLICIES = frozenset({"append-only", "write-once"})


def is_write_once(store: PersiDict[Any]) -> bool:
    """A write-once store (SPEC 6.6) is recognised by its consistency-check knob."""
    return hasattr(store, "p_consistency_checks")


def append_only_store(make_store: Callable[..., PersiDict[Any]], **params: Any) -> PersiDict[Any]:
    """A fresh append-only store that reports every refused overwrite.

    A write-once store only compares a rejected value with the stored one with probability
    ``p_consistency_checks``; setting it to 1 makes the refusal deterministic (SPEC 6.6).
    """
    store = make_store(append_only=True, **params)
    assert store.append_only is True
    if is_write_once(store):
        store.p_consistency_checks = 1.0  # type: ignore[attr-defined]
    return store


def mutable_store(make_store: Callable[..., PersiDict[Any]], **params: Any) -> PersiDict[Any]:
    store = make_store(append_only=False, **params)
    assert store.append_only is False
    return store


def assert_policy_error(exc_info: pytest.ExceptionInfo[MutationPolicyError]) -> None:
    exc = exc_info.value
    assert isinstance(exc, TypeError)
    assert exc.policy in POLICIES, exc.policy


def shape(r: ConditionalOperationResult[Any]) -> tuple[Any, Any, Any, Any]:
    """A result as a plain tuple, for readable comparisons."""
    return (r.condition_was_satisfied, r.actual_etag, r.resulting_etag, r.new_value)


def whole_second_clock(store: PersiDict[Any], key: Any) -> bool:
    """True if the store's timestamps have whole-second resolution (e.g. object stores)."""
    ts = store.timestamp(key)
    return float(ts).is_integer()


def tick(store: PersiDict[Any], key: Any) -> None:
    """Sleep long enough that the next write gets a later timestamp than ``key``'s."""
    time.sleep(1.05 if whole_second_clock(store, key) else 0.03)


def snapshot(store: PersiDict[Any]) -> dict[tuple[str, ...], Any]:
    """The store's content as a plain dict keyed by plain tuples."""
    return {tuple(k): v for k, v in store.items()}
