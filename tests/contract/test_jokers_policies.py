"""Jokers (KEEP_CURRENT, DELETE_CURRENT) and the append-only policy (SPEC 3.1, 3.5, 4.3-4.6)."""

from __future__ import annotations

from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    VALUE_NOT_RETRIEVED,
    MutationPolicyError,
    OperationResult,
)

from .helpers import (
    IA,
    append_only_store,
    assert_policy_error,
    is_write_once,
    mutable_store,
    shape,
    snapshot,
)


# ----------------------------------------------------------------------------------- jokers
def test_keep_current_via_setitem(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["absent"] = KEEP_CURRENT
    assert "absent" not in d
    assert len(d) == 0
    d["a", "b"] = 1
    etag = d.etag(("a", "b"))
    d["a", "b"] = KEEP_CURRENT
    assert d["a", "b"] == 1
    assert d.etag(("a", "b")) == etag
    with pytest.raises(ValueError):
        d["a b"] = KEEP_CURRENT  # the key is still validated


def test_delete_current_via_setitem(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b"] = 2
    d["a"] = DELETE_CURRENT
    assert "a" not in d
    d["a"] = DELETE_CURRENT  # absent: no error
    d["never", "there"] = DELETE_CURRENT
    assert snapshot(d) == {("b",): 2}


def test_jokers_via_set_item_if(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    etag = d.etag("a")
    r = d.set_item_if("a", value=KEEP_CURRENT, condition=ANY_ETAG, expected_etag=etag)
    assert shape(r) == (True, etag, etag, VALUE_NOT_RETRIEVED)
    r = d.set_item_if("a", value=KEEP_CURRENT, condition=ANY_ETAG, expected_etag=etag,
                      retrieve_value=ALWAYS_RETRIEVE)
    assert shape(r) == (True, etag, etag, 1)
    assert d["a"] == 1
    assert d.etag("a") == etag
    r = d.set_item_if("a", value=DELETE_CURRENT, condition=ETAG_IS_THE_SAME, expected_etag=etag)
    assert shape(r) == (True, etag, IA, IA)
    assert "a" not in d
    r = d.set_item_if("a", value=DELETE_CURRENT, condition=ANY_ETAG, expected_etag=IA)
    assert shape(r) == (True, IA, IA, IA)
    r = d.set_item_if("a", value=KEEP_CURRENT, condition=ANY_ETAG, expected_etag=IA)
    assert shape(r) == (True, IA, IA, IA)
    assert len(d) == 0


def test_jokers_via_transform_item(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    etag = d.etag("a")
    seen: list[Any] = []

    def keep(v: Any) -> Any:
        seen.append(v)
        return KEEP_CURRENT

    r = d.transform_item("a", transformer=keep)
    assert r == OperationResult(resulting_etag=etag, new_value=1)
    assert seen == [1]
    assert d["a"] == 1
    assert d.etag("a") == etag
    r = d.transform_item("absent", transformer=keep)
    assert r == OperationResult(resulting_etag=IA, new_value=IA)
    assert seen[-1] is ITEM_NOT_AVAILABLE
    assert "absent" not in d
    r = d.transform_item("a", transformer=lambda v: DELETE_CURRENT)
    assert r == OperationResult(resulting_etag=IA, new_value=IA)
    assert "a" not in d
    r = d.transform_item("a", transformer=lambda v: DELETE_CURRENT)  # already absent
    assert r == OperationResult(resulting_etag=IA, new_value=IA)
    assert len(d) == 0


# ------------------------------------------------------------------------------ the errors
def test_mutation_policy_error_is_a_type_error() -> None:
    e = MutationPolicyError("append-only")
    assert isinstance(e, TypeError)
    assert e.policy == "append-only"
    assert "append-only" in str(e)
    with pytest.raises(TypeError):
        raise MutationPolicyError("write-once")


# ------------------------------------------------------------------------------ append-only
def _filled_append_only(make_store: Any) -> Any:
    d = append_only_store(make_store)
    d["a"] = 1
    d["b", "c"] = [2]
    return d


CONTENT = {("a",): 1, ("b", "c"): [2]}


def test_append_only_accepts_new_keys(make_store: Any) -> None:
    d = _filled_append_only(make_store)
    d["new"] = 3
    d.update({"n2": 4})
    assert d.setdefault("n3", 5) == 5
    assert d.setdefault("a", 99) == 1
    assert snapshot(d) == {**CONTENT, ("new",): 3, ("n2",): 4, ("n3",): 5}


@pytest.mark.parametrize("new_value", [10, 1], ids=["different", "same"])
def test_append_only_overwrite_refused_first_value_stays(make_store: Any,
                                                         new_value: Any) -> None:
    d = _filled_append_only(make_store)
    etag = d.etag("a")
    if is_write_once(d) and new_value == 1:
        # write-once: re-writing the very same value is accepted as a no-op (SPEC 6.6)
        d["a"] = new_value
    else:
        with pytest.raises(MutationPolicyError) as exc_info:
            d["a"] = new_value
        assert_policy_error(exc_info)
    with pytest.raises(MutationPolicyError) as exc_info:
        d.update({("b", "c"): "other"})
    assert_policy_error(exc_info)
    assert snapshot(d) == CONTENT
    assert d.etag("a") == etag


def test_append_only_refuses_every_deletion(make_store: Any) -> None:
    d = _filled_append_only(make_store)
    refused = [
        lambda: d.__delitem__("a"),
        lambda: d.__delitem__("absent"),
        lambda: d.discard("a"),
        lambda: d.discard("absent"),
        lambda: d.delete_if_exists("a"),
        lambda: d.pop("a"),
        lambda: d.pop("absent", None),
        lambda: d.popitem(),
        lambda: d.clear(),
        lambda: d.__setitem__("a", DELETE_CURRENT),
        lambda: d.__setitem__("absent", DELETE_CURRENT),
    ]
    for op in refused:
        with pytest.raises(MutationPolicyError) as exc_info:
            op()
        assert_policy_error(exc_info)
    assert snapshot(d) == CONTENT
    assert len(d) == 2


def test_append_only_allows_keep_current(make_store: Any) -> None:
    d = _filled_append_only(make_store)
    etag = d.etag("a")
    d["a"] = KEEP_CURRENT
    d["absent"] = KEEP_CURRENT
    assert snapshot(d) == CONTENT
    assert d.etag("a") == etag


def test_append_only_conditional_deletes_refused(make_store: Any) -> None:
    d = _filled_append_only(make_store)
    etag = d.etag("a")
    with pytest.raises(MutationPolicyError) as exc_info:
        d.discard_if("a", condition=ETAG_IS_THE_SAME, expected_etag=etag)
    assert_policy_error(exc_info)
    with pytest.raises(MutationPolicyError) as exc_info:
        d.discard_if("a", condition=ANY_ETAG, expected_etag=IA)
    assert_policy_error(exc_info)
    with pytest.raises(MutationPolicyError) as exc_info:
        d.set_item_if("a", value=DELETE_CURRENT, condition=ANY_ETAG, expected_etag=etag)
    assert_policy_error(exc_info)
    with pytest.raises(MutationPolicyError) as exc_info:
        d.set_item_if("a", value=2, condition=ETAG_IS_THE_SAME, expected_etag=etag)
    assert_policy_error(exc_info)
    with pytest.raises(MutationPolicyError) as exc_info:
        d.transform_item("a", transformer=lambda v: DELETE_CURRENT)
    assert_policy_error(exc_info)
    with pytest.raises(MutationPolicyError) as exc_info:
        d.transform_item("a", transformer=lambda v: v + 1)
    assert_policy_error(exc_info)
    assert snapshot(d) == CONTENT
    assert d.etag("a") == etag


def test_append_only_is_read_only_property(make_store: Any, append_only: bool) -> None:
    d = make_store(append_only=append_only)
    assert d.append_only is append_only
    with pytest.raises(AttributeError):
        d.append_only = not append_only  # type: ignore[misc]
    assert d.append_only is append_only
