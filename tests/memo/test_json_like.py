"""The JSON-like fast path keeps every distinction of the general encoding."""

from __future__ import annotations

import collections
import enum
from typing import Any

import pytest

from persidict_memo.hashing import Encoder, content_hash
from persidict_memo.json_like import encode_json_like


class Level(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


def general(value: Any) -> str:
    """The digest the general encoder (no fast path) gives."""
    import xxhash

    enc = Encoder()
    enc.encode(value)
    return xxhash.xxh3_128_hexdigest(enc.out)


def test_config_dicts_take_the_fast_path() -> None:
    cfg = {"lr": 0.001, "layers": [64, 128], "opt": {"name": "adam", "eps": 1e-8}, "x": None}
    assert encode_json_like(cfg) is not None
    assert content_hash(cfg) != general(cfg)  # a different encoding, tagged apart
    # pinned: a change of the fast path's bytes (marshal version 2) must be deliberate
    assert content_hash(cfg) == "1ae7d109ff6c2047c7886b3d64f5a5b7"


@pytest.mark.parametrize(
    "not_json_like",
    [
        {"a": (1, 2)},
        {1: "a"},
        {"a": {1, 2}},
        collections.OrderedDict(a=1),
        [Level.ONE],
        [Text("a")],
        {"a": b"x"},
        [1.5j],
    ],
)
def test_other_values_take_the_general_path(not_json_like: Any) -> None:
    assert encode_json_like(not_json_like) is None
    assert content_hash(not_json_like) == general(not_json_like)


def test_distinctions_are_kept() -> None:
    values = [
        {"a": 1}, {"a": 1.0}, {"a": True}, {"a": "1"}, {"a": None}, {"a": -0.0}, {"a": 0.0},
        {"1": "a"}, {1: "a"}, [1, 2], (1, 2), [[1, 2]], [(1, 2)], ["a"], [Text("a")],
        [1], [Level.ONE], {"a": [1]}, {"a": (1,)}, collections.OrderedDict(a=1), [],
        {}, [{}], [[]], ["é"], ["\ud800"], ["\\ud800"], [float("inf")], [10**30], [1e30],
    ]
    digests = [content_hash(v) for v in values]
    assert len(set(digests)) == len(values)
    assert [content_hash(v) for v in values] == digests  # again, from the per-process memo


def test_order_nan_and_big_ints() -> None:
    assert content_hash({"a": 1, "b": [2, {"c": 3, "d": 4}]}) == content_hash(
        {"b": [2, {"d": 4, "c": 3}], "a": 1}
    )
    nan = float("nan")
    assert encode_json_like([nan]) is None  # NaNs go the general way, where they are one value
    assert content_hash([nan]) == content_hash([-nan])
    huge = [10**5000]
    assert content_hash(huge) != content_hash([10**5000 + 1])


def test_a_mutated_dict_is_hashed_afresh() -> None:
    cfg: dict[str, Any] = {"a": 1, "b": [1, 2]}
    before = content_hash(cfg)
    cfg["b"].append(3)
    assert content_hash(cfg) != before
    cfg["b"].pop()
    assert content_hash(cfg) == before
    cfg["a"] = True
    assert content_hash(cfg) != before


def test_cycles_still_raise() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    with pytest.raises(TypeError):
        content_hash(cyclic)
