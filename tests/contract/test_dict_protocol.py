"""The dict protocol, key normalisation, value round trips and value validation (SPEC 2.4, 4)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from persidict import (
    ANY_ETAG,
    DELETE_CURRENT,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    VALUE_NOT_RETRIEVED,
    NonEmptySafeStrTuple,
    SafeStrTuple,
)

from .helpers import mutable_store, snapshot


@dataclass(frozen=True)
class Point:
    """A user-defined, picklable value type."""

    x: int
    y: int


# --------------------------------------------------------------------------- basic access
def test_setitem_getitem_contains_len(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert len(d) == 0
    assert "a" not in d
    d["a"] = 1
    d["b", "c"] = 2
    assert d["a"] == 1
    assert d["b", "c"] == 2
    assert "a" in d
    assert ("b", "c") in d
    assert "b" not in d  # a prefix is not a key
    assert ("a", "c") not in d
    assert len(d) == 2
    d["a"] = 10  # overwrite in a mutable store
    assert d["a"] == 10
    assert len(d) == 2


def test_missing_key_raises_keyerror_with_normalised_key(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["present"] = 1
    with pytest.raises(KeyError) as exc_info:
        d["nope"]
    (arg,) = exc_info.value.args
    assert isinstance(arg, NonEmptySafeStrTuple)
    assert arg == NonEmptySafeStrTuple("nope")
    with pytest.raises(KeyError) as exc_info:
        d[["x", ("y",)]]
    assert exc_info.value.args[0] == NonEmptySafeStrTuple("x", "y")
    with pytest.raises(KeyError):
        del d["nope"]
    with pytest.raises(KeyError):
        d.timestamp("nope")
    with pytest.raises(KeyError):
        d.etag("nope")


def test_iteration_yields_safestrtuples_from_fresh_generators(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b", "c"] = 2
    d["b", "d", "e"] = 3
    expected = {("a",), ("b", "c"), ("b", "d", "e")}
    for it in (iter(d), d.keys(), d.values(), d.items()):
        assert isinstance(it, Iterator)
        assert not hasattr(it, "__len__")  # generators, not views
    keys = list(d.keys())
    assert len(keys) == 3
    assert all(isinstance(k, SafeStrTuple) for k in keys)
    assert {tuple(k) for k in keys} == expected
    assert {tuple(k) for k in d} == expected
    assert sorted(d.values()) == [1, 2, 3]
    items = list(d.items())
    assert all(isinstance(k, SafeStrTuple) for k, _ in items)
    assert {tuple(k): v for k, v in items} == {("a",): 1, ("b", "c"): 2, ("b", "d", "e"): 3}
    # each call is a new traversal
    first = d.keys()
    next(first)
    assert len(list(d.keys())) == 3


def test_get(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    assert d.get("a") == 1
    assert d.get(("a",)) == 1
    assert d.get("b") is None
    assert d.get("b", 7) == 7
    with pytest.raises(ValueError):
        d.get("a b", 7)  # a bad key is not turned into the default
    with pytest.raises(TypeError):
        d.get(5, 7)


def test_pop(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b"] = 2
    assert d.pop("a") == 1
    assert "a" not in d
    assert d.pop("a", "dflt") == "dflt"
    assert d.pop("a", None) is None
    with pytest.raises(KeyError) as exc_info:
        d.pop("a")
    assert exc_info.value.args[0] == NonEmptySafeStrTuple("a")
    with pytest.raises(TypeError):
        d.pop("b", 1, 2)
    assert d["b"] == 2  # the refused pop did not touch the store
    assert len(d) == 1


def test_popitem(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b", "c"] = 2
    seen = {}
    for _ in range(2):
        k, v = d.popitem()
        assert isinstance(k, SafeStrTuple)
        seen[tuple(k)] = v
    assert seen == {("a",): 1, ("b", "c"): 2}
    assert len(d) == 0
    with pytest.raises(KeyError):
        d.popitem()


def test_setdefault(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert d.setdefault("a", 5) == 5
    assert d["a"] == 5
    assert d.setdefault("a", 6) == 5
    assert d["a"] == 5
    assert d.setdefault("n") is None
    assert "n" in d
    assert d["n"] is None
    for joker in (KEEP_CURRENT, DELETE_CURRENT):
        with pytest.raises(TypeError):
            d.setdefault("j", joker)
        with pytest.raises(TypeError):
            d.setdefault("a", joker)
    assert "j" not in d
    assert d["a"] == 5


def test_update_and_ior(make_store: Any) -> None:
    d = mutable_store(make_store)
    d.update({"a": 1, ("b", "c"): 2})
    d.update([("e", 3), (["f", "g"], 4)])
    d.update(h=5)
    assert snapshot(d) == {("a",): 1, ("b", "c"): 2, ("e",): 3, ("f", "g"): 4, ("h",): 5}
    alias = d
    alias |= {"a": 10, "z": 26}
    assert alias is d
    assert d["a"] == 10
    assert d["z"] == 26
    with pytest.raises(TypeError):
        d |= [("q", 1)]  # type: ignore[arg-type]
    assert "q" not in d
    with pytest.raises(TypeError):
        d | {"q": 1}  # type: ignore[operator]


def test_clear(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b", "c"] = 2
    d["b", "d", "e"] = 3
    d.clear()
    assert len(d) == 0
    assert list(d.keys()) == []
    assert "a" not in d
    d["a"] = 4  # still usable after clear
    assert d["a"] == 4


def test_discard(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    assert d.discard("a") is True
    assert "a" not in d
    assert d.discard("a") is False
    d["x", "y"] = 2
    assert d.delete_if_exists(["x", "y"]) is True
    assert len(d) == 0


def test_bool(make_store: Any) -> None:
    d = mutable_store(make_store)
    assert not d
    assert bool(d) is False
    d["a", "b"] = 0
    assert d
    assert bool(d) is True
    del d["a", "b"]
    assert bool(d) is False


def test_equality(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    d["b", "c"] = [1, 2]
    assert d == {"a": 1, ("b", "c"): [1, 2]}
    assert d == {("a",): 1, ("b", "c"): [1, 2]}
    assert d == {SafeStrTuple("a"): 1, SafeStrTuple("b", "c"): [1, 2]}
    assert {"a": 1, ("b", "c"): [1, 2]} == d  # noqa: SIM300 (the reflected comparison)
    assert (d != {"a": 1, ("b", "c"): [1, 2]}) is False
    assert d != {"a": 2, ("b", "c"): [1, 2]}
    assert d != {"a": 1}  # fewer items
    assert d != {"a": 1, ("b", "c"): [1, 2], "x": 3}  # more items
    assert d != {"a": 1, "zz": [1, 2]}  # same length, other key
    assert d != {"a b": 1, ("b", "c"): [1, 2]}  # a key that is not even valid
    assert d != [1]
    assert (d == [1]) is False
    assert d == d
    assert d == copy.copy(d)
    other = mutable_store(make_store)
    assert d != other
    other.update({"a": 1, ("b", "c"): [1, 2]})
    assert d == other
    other["a"] = 2
    assert d != other


def test_stores_are_unhashable(make_store: Any) -> None:
    d = mutable_store(make_store)
    with pytest.raises(TypeError):
        hash(d)


# --------------------------------------------------------------------- params, repr, copies
def test_repr_and_get_params(make_store: Any) -> None:
    d = mutable_store(make_store)
    params = d.get_params()
    assert isinstance(params, dict)
    assert list(params) == sorted(params)
    body = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
    assert repr(d) == f"{type(d).__name__}({body})"
    assert not hasattr(d, "copy")


def test_copy_is_a_handle_on_the_same_data(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    c = copy.copy(d)
    assert c is not d
    assert type(c) is type(d)
    assert c.get_params() == d.get_params()
    assert c["a"] == 1
    c["b"] = 2
    assert d["b"] == 2
    del d["a"]
    assert "a" not in c


def test_pickle_and_deepcopy_refused(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    with pytest.raises(TypeError):
        pickle.dumps(d)
    with pytest.raises(TypeError):
        copy.deepcopy(d)
    assert d["a"] == 1


def test_clone(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = 1
    try:
        c = d.clone()
    except TypeError:
        # Stores whose parameters hold other stores cannot be cloned (SPEC 4.2).
        assert any(hasattr(v, "get_params") for v in d.get_params().values())
        return
    assert c is not d
    assert type(c) is type(d)
    assert c.get_params() == d.get_params()
    assert c["a"] == 1
    with pytest.raises(TypeError):
        d.clone(no_such_parameter=1)


# ------------------------------------------------------------------------ key normalisation
EQUIVALENT_KEYS = [
    ("a", "b", "c"),
    ["a", "b", "c"],
    ("a", ("b", "c")),
    ["a", ["b"], ("c",)],
    SafeStrTuple("a", "b", "c"),
    NonEmptySafeStrTuple(("a", "b"), "c"),
    (SafeStrTuple("a"), "b", ["c"]),
]


def test_key_forms_are_equivalent(make_store: Any) -> None:
    d = mutable_store(make_store)
    for i, key in enumerate(EQUIVALENT_KEYS):
        d[key] = i
        assert d["a", "b", "c"] == i
    assert len(d) == 1
    for other in EQUIVALENT_KEYS:
        assert other in d
        assert d[other] == len(EQUIVALENT_KEYS) - 1
        assert d.get(other) == len(EQUIVALENT_KEYS) - 1
    assert [tuple(k) for k in d] == [("a", "b", "c")]
    d["single"] = "s"
    assert d[("single",)] == "s"
    assert d[["single"]] == "s"
    assert d[SafeStrTuple("single")] == "s"
    stamp, etag = d.timestamp(("a", "b", "c")), d.etag(("a", "b", "c"))
    for key in EQUIVALENT_KEYS:
        assert d.timestamp(key) == stamp
        assert d.etag(key) == etag
    assert d.discard(EQUIVALENT_KEYS[-1]) is True
    assert ("a", "b", "c") not in d


def test_keys_with_dots_are_fine(make_store: Any) -> None:
    d = mutable_store(make_store)
    for i, key in enumerate([".hidden", "a.", "...", "x..y", ("v", "1.0"), "(x)=~-_"]):
        d[key] = i
        assert d[key] == i
    assert len(d) == 6


BAD_VALUE_KEYS = [
    "a b",
    "a/b",
    "a\\b",
    "é",
    "",
    ".",
    "..",
    "x" * 254,
    ("a", ""),
    ("a", ".."),
    ("..", "a"),
    (),
    [],
    [[]],
    SafeStrTuple(),
]
BAD_TYPE_KEYS = [5, None, {"a": 1}, {"a"}, 1.5, ("a", 5), b"ab"]


def test_bad_keys_are_rejected_before_anything_is_written(make_store: Any,
                                                          append_only: bool) -> None:
    d = make_store(append_only=append_only)
    cases = [(k, ValueError) for k in BAD_VALUE_KEYS] + [(k, TypeError) for k in BAD_TYPE_KEYS]
    for key, err in cases:
        ops = [
            lambda k: d.__setitem__(k, 1),
            lambda k: d[k],
            lambda k: k in d,
            lambda k: d.get(k),
            lambda k: d.setdefault(k, 1),
            lambda k: d.timestamp(k),
            lambda k: d.etag(k),
            lambda k: d.get_with_etag(k),
            lambda k: d.set_item_if(k, value=1, condition=ANY_ETAG,
                                    expected_etag=ITEM_NOT_AVAILABLE),
            lambda k: d.setdefault_if(k, default_value=1, condition=ANY_ETAG,
                                      expected_etag=ITEM_NOT_AVAILABLE),
        ]
        if not append_only:
            ops += [
                lambda k: d.__delitem__(k),
                lambda k: d.discard(k),
                lambda k: d.pop(k, None),
                lambda k: d.transform_item(k, transformer=lambda v: 1),
                lambda k: d.discard_if(k, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE),
                lambda k: d.__setitem__(k, DELETE_CURRENT),
                lambda k: d.__setitem__(k, KEEP_CURRENT),
            ]
        for op in ops:
            with pytest.raises(err):
                op(key)
    assert len(d) == 0
    assert list(d.keys()) == []


# --------------------------------------------------------------------------- value round trips
PKL_VALUES: list[Any] = [
    0,
    -17,
    2**80,
    3.25,
    float("inf"),
    1 + 2j,
    True,
    None,
    "",
    "text with spaces, ünïcödé and a\nnewline",
    b"\x00\x01bytes\xff",
    bytearray(b"ba"),
    (1, "two", (3.0, None)),
    [1, [2, [3, [4]]]],
    {"k": [1, 2], 3: {"nested": (4, 5)}, ("t", 1): None},
    {1, 2, 3},
    frozenset({"a", "b"}),
    Point(1, 2),
    [Point(i, -i) for i in range(3)],
    list(range(20_000)),
    {"big": "x" * 100_000},
]

JSON_VALUES: list[Any] = [
    0,
    -17,
    3.25,
    True,
    False,
    None,
    "",
    "ünïcödé \"quoted\" \\ text\nwith newline",
    [1, "two", [3.0, None, {"k": "v"}]],
    {"a": 1, "b": [True, None], "c": {"d": {"e": "f"}}},
    list(range(5_000)),
    {"n": 1, "ints": list(range(100)), "s": "x" * 10_000},
]

TEXT_VALUES = ["", "plain", "ünïcödé €", "multi\nline\ntext", "  padded  ", "x" * 100_000]


@pytest.mark.parametrize(("fmt", "bcv", "values"), [
    pytest.param("pkl", None, PKL_VALUES, id="pkl"),
    pytest.param("json", None, JSON_VALUES, id="json"),
    pytest.param("txt", str, TEXT_VALUES, id="txt"),
    pytest.param("md", str, TEXT_VALUES[:3], id="md"),
])
def test_values_round_trip(make_store: Any, fmt: str, bcv: type | None,
                           values: list[Any]) -> None:
    d = make_store(serialization_format=fmt, base_class_for_values=bcv)
    assert d.serialization_format == fmt
    assert d.base_class_for_values is bcv
    for i, v in enumerate(values):
        d["v", str(i)] = v
    for i, v in enumerate(values):
        got = d["v", str(i)]
        assert got == v, (i, v, got)
        assert type(got) is type(v), (i, type(v), type(got))
    assert sorted(snapshot(d)) == sorted(("v", str(i)) for i in range(len(values)))
    assert snapshot(d) == {("v", str(i)): v for i, v in enumerate(values)}


def test_mutating_a_returned_value_does_not_change_the_store(make_store: Any) -> None:
    d = mutable_store(make_store)
    d["a"] = {"l": [1, 2]}
    got = d["a"]
    got["l"].append(3)
    got["new"] = 1
    assert d["a"] == {"l": [1, 2]}
    original = [1, 2]
    d["b"] = original
    original.append(3)
    assert d["b"] == [1, 2]


@pytest.mark.parametrize(("fmt", "bcv", "good", "bad"), [
    pytest.param("pkl", int, [1, -5, True], ["1", 1.0, None, [1]], id="pkl-int"),
    pytest.param("json", dict, [{}, {"a": 1}], [[], "d", None], id="json-dict"),
    pytest.param("txt", str, ["s", ""], [1, b"s", None, ["s"]], id="txt-str"),
])
def test_base_class_for_values_enforced(make_store: Any, fmt: str, bcv: type,
                                        good: list[Any], bad: list[Any]) -> None:
    d = make_store(serialization_format=fmt, base_class_for_values=bcv)
    for i, v in enumerate(good):
        d["good", str(i)] = v
        assert d["good", str(i)] == v
    for v in bad:
        with pytest.raises(TypeError):
            d["bad"] = v
        with pytest.raises(TypeError):
            d.setdefault("bad", v)
        with pytest.raises(TypeError):
            d.set_item_if("bad", value=v, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
        with pytest.raises(TypeError):
            d.setdefault_if("bad", default_value=v, condition=ANY_ETAG,
                            expected_etag=ITEM_NOT_AVAILABLE)
        with pytest.raises(TypeError):
            d.update({"bad": v})
    assert "bad" not in d
    assert len(d) == len(good)


@pytest.mark.parametrize("fmt", ["xml", "txt", "pickle"])
def test_text_formats_need_str_values(make_store: Any, fmt: str) -> None:
    with pytest.raises(ValueError):
        make_store(serialization_format=fmt)
    with pytest.raises(ValueError):
        make_store(serialization_format=fmt, base_class_for_values=int)


@pytest.mark.parametrize("fmt", ["", "a b", "x/y"])
def test_bad_serialization_format(make_store: Any, fmt: str) -> None:
    with pytest.raises(ValueError):
        make_store(serialization_format=fmt, base_class_for_values=str)


def test_bad_base_class_for_values(make_store: Any) -> None:
    with pytest.raises(TypeError):
        make_store(base_class_for_values="int")


def test_persidict_values_refused(make_store: Any) -> None:
    d = mutable_store(make_store)
    other = mutable_store(make_store)
    other["x"] = 1
    with pytest.raises(TypeError):
        d["a"] = other
    with pytest.raises(TypeError):
        d["a"] = d
    with pytest.raises(TypeError):
        d.setdefault("a", other)
    with pytest.raises(TypeError):
        d.set_item_if("a", value=other, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    assert "a" not in d
    assert len(d) == 0


@pytest.mark.parametrize("sentinel", [ITEM_NOT_AVAILABLE, VALUE_NOT_RETRIEVED],
                         ids=["IA", "VNR"])
def test_status_sentinels_refused_as_values(make_store: Any, sentinel: Any,
                                            append_only: bool) -> None:
    d = make_store(append_only=append_only)
    with pytest.raises(TypeError):
        d["a"] = sentinel
    with pytest.raises(TypeError):
        d.setdefault("a", sentinel)
    with pytest.raises(TypeError):
        d.setdefault_if("a", default_value=sentinel, condition=ANY_ETAG,
                        expected_etag=ITEM_NOT_AVAILABLE)
    with pytest.raises(TypeError):
        d.update({"a": sentinel})
    d["b"] = 1
    with pytest.raises(TypeError):
        d["b"] = sentinel
    assert "a" not in d
    assert d["b"] == 1
    assert len(d) == 1
    if not append_only:
        with pytest.raises(TypeError):
            d.set_item_if("b", value=sentinel, condition=ANY_ETAG,
                          expected_etag=ITEM_NOT_AVAILABLE)
        with pytest.raises(TypeError):
            d.transform_item("b", transformer=lambda v: sentinel)
        assert d["b"] == 1
