"""Markers, results and errors (SPEC 3)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

import persidict as p

SINGLETONS = [
    (p.KeepCurrentFlag, p.KEEP_CURRENT), (p.DeleteCurrentFlag, p.DELETE_CURRENT),
    (p.ItemNotAvailableFlag, p.ITEM_NOT_AVAILABLE),
    (p.ValueNotRetrievedFlag, p.VALUE_NOT_RETRIEVED), (p.AnyETagFlag, p.ANY_ETAG),
    (p.ETagIsTheSameFlag, p.ETAG_IS_THE_SAME), (p.ETagHasChangedFlag, p.ETAG_HAS_CHANGED),
    (p.AlwaysRetrieveFlag, p.ALWAYS_RETRIEVE), (p.NeverRetrieveFlag, p.NEVER_RETRIEVE),
    (p.IfETagChangedRetrieveFlag, p.IF_ETAG_CHANGED),
]


@pytest.mark.parametrize(("cls", "inst"), SINGLETONS, ids=lambda x: getattr(x, "__name__", ""))
def test_singletons_survive_copy_and_pickle(cls: type, inst: object) -> None:
    assert cls() is inst
    assert copy.copy(inst) is inst and copy.deepcopy(inst) is inst
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(inst, protocol=proto)) is inst
    assert repr(inst) == f"{cls.__name__}({{}})" == str(inst)
    assert bool(inst)
    assert inst.get_params() == {}  # type: ignore[attr-defined]


def test_hierarchy() -> None:
    assert isinstance(p.KEEP_CURRENT, p.Joker) and isinstance(p.DELETE_CURRENT, p.Joker)
    assert not isinstance(p.ITEM_NOT_AVAILABLE, p.Joker)
    for c in (p.ANY_ETAG, p.ETAG_IS_THE_SAME, p.ETAG_HAS_CHANGED):
        assert isinstance(c, p.ETagConditionFlag)
    for r in (p.ALWAYS_RETRIEVE, p.NEVER_RETRIEVE, p.IF_ETAG_CHANGED):
        assert isinstance(r, p.RetrieveValueFlag)
    assert p.KEEP_CURRENT is not p.DELETE_CURRENT


def test_results() -> None:
    r = p.ConditionalOperationResult(True, p.ETagValue("1"), p.ETagValue("2"), 5)
    assert r.value_was_mutated
    same = p.ConditionalOperationResult(False, "1", "1", p.VALUE_NOT_RETRIEVED)
    assert not same.value_was_mutated
    assert hash(r) == hash(p.ConditionalOperationResult(True, "1", "2", 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.new_value = 3  # type: ignore[misc]
    o = p.OperationResult(resulting_etag="3", new_value=4)
    assert (o.resulting_etag, o.new_value) == ("3", 4)
    assert isinstance(lambda x: x, p.TransformingFunction)


def test_errors() -> None:
    e = p.MutationPolicyError("append-only")
    assert isinstance(e, TypeError) and str(e) == "append-only" and e.policy == "append-only"
    detailed = p.MutationPolicyError("write-once", "values differ")
    assert detailed.policy == "write-once" and "values differ" in str(detailed)
    c = p.ConcurrencyConflictError(("k",), 3)
    assert isinstance(c, RuntimeError) and c.attempts == 3 and c.key == ("k",)
    assert str(c) == "operation failed after 3 attempt(s) for key ('k',)"
    b = p.BackendError("boom", backend="s3", operation="read", key="k")
    assert isinstance(b, RuntimeError) and (b.backend, b.operation, b.key) == ("s3", "read", "k")
