"""EmptyDict, the "/dev/null" store: writes are validated, then thrown away (SPEC 6.3)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ConditionalOperationResult,
    EmptyDict,
    MutationPolicyError,
    OperationResult,
)

IA = ITEM_NOT_AVAILABLE


def ia(satisfied: bool) -> ConditionalOperationResult[Any]:
    return ConditionalOperationResult(satisfied, IA, IA, IA)


def test_constructor_and_params() -> None:
    e: EmptyDict[Any] = EmptyDict()
    assert e.get_params() == {"append_only": False, "base_class_for_values": None,
                              "serialization_format": "pkl"}
    assert repr(e) == ("EmptyDict(append_only=False, base_class_for_values=None, "
                       "serialization_format='pkl')")
    typed = EmptyDict(append_only=True, base_class_for_values=str, serialization_format="txt")
    assert typed.append_only and typed.base_class_for_values is str
    with pytest.raises(ValueError, match="serialization_format"):
        EmptyDict(serialization_format="txt")  # non-str values need pkl or json
    assert EmptyDict() == EmptyDict()
    assert EmptyDict() == {}
    assert EmptyDict() != {"a": 1}
    assert isinstance(copy.copy(e), EmptyDict)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(e)


def test_writes_are_validated_then_discarded() -> None:
    e: EmptyDict[Any] = EmptyDict(base_class_for_values=int)
    e["a"] = 1
    e["a", "b"] = 2
    e.update({"c": 3})
    assert "a" not in e
    assert len(e) == 0
    assert list(e.keys()) == [] and list(e.values()) == [] and list(e.items()) == []
    assert list(e.keys_and_timestamps()) == []
    assert not e
    with pytest.raises(TypeError, match="Value must be an instance of int"):
        e["a"] = "x"
    with pytest.raises(ValueError):
        e["a b"] = 1
    with pytest.raises(TypeError):
        e[5] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="PersiDict"):
        EmptyDict()["a"] = EmptyDict()
    e["a"] = KEEP_CURRENT
    e["a"] = DELETE_CURRENT


def test_reads_find_nothing_and_do_not_validate_keys() -> None:
    e: EmptyDict[Any] = EmptyDict()
    with pytest.raises(KeyError) as exc:
        e["a b"]
    assert exc.value.args[0] == "a b"  # the raw key, not normalised
    assert "a b" not in e
    assert e.get("a", 5) == 5
    assert e.get("a") is None
    with pytest.raises(KeyError):
        del e["a"]
    with pytest.raises(KeyError):
        e.timestamp("a")
    with pytest.raises(KeyError):
        e.etag("a")
    assert e.random_key() is None
    assert e.newest_keys() == [] and e.oldest_values(max_n=3) == []
    assert e.subdicts() == {}


def test_setdefault_discard_clear_pop_popitem() -> None:
    e: EmptyDict[Any] = EmptyDict()
    assert e.setdefault("a", 7) == 7
    assert "a" not in e
    assert e.setdefault("a") is None
    assert e.discard("a") is False
    assert e.delete_if_exists("a") is False
    e.clear()
    with pytest.raises(KeyError):
        e.pop("a")
    assert e.pop("a", "d") == "d"
    with pytest.raises(KeyError, match="dictionary is empty"):
        e.popitem()
    ao: EmptyDict[Any] = EmptyDict(append_only=True)
    assert ao.discard("a") is False  # ignores append_only
    ao.clear()  # ignores append_only
    with pytest.raises(MutationPolicyError) as exc:
        ao.pop("a", None)
    assert exc.value.policy == "append-only"
    with pytest.raises(MutationPolicyError):
        ao["a"] = DELETE_CURRENT
    ao["a"] = 1  # accepted and discarded


def test_get_subdict_is_another_empty_dict() -> None:
    e: EmptyDict[Any] = EmptyDict(append_only=True, base_class_for_values=int)
    sub = e.get_subdict("x")
    assert isinstance(sub, EmptyDict)
    assert sub.get_params() == e.get_params()
    assert isinstance(e.get_subdict(()), EmptyDict)
    with pytest.raises(ValueError):
        e.get_subdict("a b")


@pytest.mark.parametrize("condition", [ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED])
@pytest.mark.parametrize("expected", [IA, "some-etag"])
def test_conditional_ops_treat_every_key_as_absent(condition: Any, expected: Any) -> None:
    e: EmptyDict[Any] = EmptyDict()
    satisfied = (condition is ANY_ETAG or (condition is ETAG_IS_THE_SAME and expected is IA)
                 or (condition is ETAG_HAS_CHANGED and expected is not IA))
    for retrieve in (ALWAYS_RETRIEVE, NEVER_RETRIEVE):
        assert e.get_item_if("k", condition=condition, expected_etag=expected,
                             retrieve_value=retrieve) == ia(satisfied)
        assert e.set_item_if("k", value=1, condition=condition, expected_etag=expected,
                             retrieve_value=retrieve) == ia(satisfied)
        assert e.setdefault_if("k", default_value=1, condition=condition,
                               expected_etag=expected, retrieve_value=retrieve) == ia(satisfied)
    assert e.discard_if("k", condition=condition, expected_etag=expected) == ia(satisfied)
    assert "k" not in e


def test_conditional_ops_validate_their_arguments() -> None:
    e: EmptyDict[Any] = EmptyDict(base_class_for_values=int)
    with pytest.raises(TypeError, match="retrieve_value must be"):
        e.get_item_if("k", condition=ANY_ETAG, expected_etag=IA,
                      retrieve_value=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        e.get_item_if("a b", condition=ANY_ETAG, expected_etag=IA)
    with pytest.raises(ValueError, match="condition must be"):
        e.get_item_if("k", condition="always", expected_etag=IA)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Value must be an instance of int"):
        e.set_item_if("k", value="x", condition=ANY_ETAG, expected_etag=IA)
    with pytest.raises(TypeError, match="not a Joker"):
        e.setdefault_if("k", default_value=KEEP_CURRENT, condition=ANY_ETAG, expected_etag=IA)
    with pytest.raises(TypeError, match="not a Joker"):
        e.setdefault_if("k", default_value=DELETE_CURRENT, condition=ANY_ETAG,
                        expected_etag=IA)
    assert e.setdefault("k", DELETE_CURRENT) is DELETE_CURRENT  # setdefault checks nothing
    with pytest.raises(ValueError):
        e.discard_if("a b", condition=ANY_ETAG, expected_etag=IA)
    with pytest.raises(MutationPolicyError):
        EmptyDict(append_only=True).set_item_if("k", value=DELETE_CURRENT, condition=ANY_ETAG,
                                                expected_etag=IA)


def test_transform_item_never_calls_the_transformer() -> None:
    calls: list[Any] = []

    def transformer(v: Any) -> Any:
        calls.append(v)
        return 1

    e: EmptyDict[Any] = EmptyDict()
    assert e.transform_item("k", transformer=transformer) == OperationResult(IA, IA)
    assert e.transform_item("a b", transformer=transformer) == OperationResult(IA, IA)
    assert calls == []
    assert e.get_with_etag("k") == ia(True)
