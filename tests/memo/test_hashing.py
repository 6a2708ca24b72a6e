"""Canonical content hashing: equal values agree, different values differ, the unreliable refuse."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import math
import os
import pathlib
import struct
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persidict_memo.hashing import content_digest, content_hash


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Shade(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass
class OtherPoint:
    x: float
    y: float


class Plain:
    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b


class Slotted:
    __slots__ = ("a",)

    def __init__(self, a: Any) -> None:
        self.a = a


class Hooked:
    def __init__(self, key: str, noise: Any) -> None:
        self.key = key
        self.noise = noise

    def __persidict_hash__(self) -> Any:
        return self.key


Pair = collections.namedtuple("Pair", "a b")


def module_level(x: int) -> int:
    return x


def h(value: Any) -> str:
    return content_hash(value)


# ---------------------------------------------------------------------------- scalars


def test_digest_is_128_bits() -> None:
    assert len(content_digest(1)) == 16
    assert len(h("x")) == 32


def test_int_float_bool_are_distinct() -> None:
    assert len({h(1), h(1.0), h(True), h(np.int64(1)), h(np.float64(1.0)), h("1")}) == 6
    assert len({h(0), h(0.0), h(False), h(None), h(""), h(b"")}) == 6


def test_negative_zero_and_nan() -> None:
    assert h(-0.0) != h(0.0)  # deliberately distinct: 1/x and atan2 tell them apart
    (payload_nan,) = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")
    assert math.isnan(payload_nan)
    assert h(payload_nan) == h(-float("nan")) == h(math.nan)
    assert h(complex(1, float("nan"))) == h(complex(1, -float("nan")))
    assert h(complex(1, 2)) != h(complex(2, 1))


def test_big_ints_and_boundaries() -> None:
    values = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**100, -(10**100)]
    assert len({h(v) for v in values}) == len(values)


def test_strings_and_bytes() -> None:
    assert h("ab") != h(b"ab") != h(bytearray(b"ab"))
    assert h("\ud800") != h("\udc00")  # lone surrogates are fine
    assert h(("a", "bc")) != h(("ab", "c"))  # length prefixes
    big = os.urandom(1 << 20)
    assert h(big) == h(bytes(big))
    assert h(big) != h(big[:-1] + bytes([big[-1] ^ 1]))
    assert h(memoryview(b"abc")) != h(b"abc")


# ---------------------------------------------------------------------------- containers


def test_tuple_list_set_frozenset_distinct() -> None:
    assert len({h((1, 2)), h([1, 2]), h({1, 2}), h(frozenset({1, 2}))}) == 4
    assert h(()) != h([]) != h(set())


def test_dict_and_set_order_do_not_matter() -> None:
    a = {"x": 1, "y": [1, 2], 3: {"z"}}
    b = {3: {"z"}, "y": [1, 2], "x": 1}
    assert h(a) == h(b)
    assert h({"b", "a", "c"}) == h({"c", "a", "b"})
    assert h({1: "a", 2: "b"}) != h({1: "b", 2: "a"})


def test_ordered_dict_keeps_its_order() -> None:
    od1 = collections.OrderedDict([("a", 1), ("b", 2)])
    od2 = collections.OrderedDict([("b", 2), ("a", 1)])
    assert h(od1) != h(od2)
    assert h(od1) != h(dict(od1))


def test_nesting_is_structural() -> None:
    assert h([[1], 2]) != h([1, [2]])
    assert h([[]]) != h([[], []])


def test_cycles_raise_type_error() -> None:
    lst: list[Any] = [1]
    lst.append(lst)
    with pytest.raises(TypeError, match="cyclic"):
        h(lst)
    d: dict[str, Any] = {}
    d["self"] = d
    with pytest.raises(TypeError, match="cyclic"):
        h(d)
    p = Plain(1, None)
    p.b = p
    with pytest.raises(TypeError, match="cyclic"):
        h(p)


def test_shared_references_are_not_cycles() -> None:
    inner = [1, 2]
    assert h([inner, inner]) == h([[1, 2], [1, 2]])


def test_deep_nesting_raises_type_error() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TypeError):
        h(deep)


# ---------------------------------------------------------------------------- numpy


def test_numpy_arrays_by_dtype_shape_content() -> None:
    a = np.arange(12, dtype=np.float64)
    assert h(a) == h(a.copy())
    assert h(a) != h(a.astype(np.float32))
    assert h(a) != h(a.reshape(3, 4))
    assert h(a.reshape(3, 4)) != h(a.reshape(4, 3))
    assert h(a) != h(a.tolist())
    assert h(np.zeros(0)) != h(np.zeros((0, 3)))


def test_numpy_memory_layout_does_not_matter() -> None:
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert h(np.asfortranarray(a)) == h(a)
    assert h(a[:, ::2]) == h(np.ascontiguousarray(a[:, ::2]))


def test_numpy_byte_order_is_part_of_the_key() -> None:
    """Issue 9: ``a.astype(">i4")`` and ``a`` are different calls (``tobytes()`` differs)."""
    a = np.arange(12, dtype="<i4")
    assert h(a.astype(">i4")) != h(a)
    assert h(a.astype(">i4")) == h(a.astype(">i4").copy())
    assert h(a.astype("=i4")) == h(a.astype(np.dtype("i4").newbyteorder("=")))
    record = np.dtype([("x", "<f8"), ("y", "<i2")])
    assert h(np.zeros(3, record)) != h(np.zeros(3, record.newbyteorder(">")))
    assert h(np.float64(1.0)) == h(np.float64(1.0))


def test_numpy_arrays_differing_in_one_middle_element_never_collide() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(1_000_001)
    middle = base.size // 2
    seen = {h(base)}
    for delta in (1e-12, -1e-12, 1.0, np.nextafter(base[middle], 2) - base[middle]):
        changed = base.copy()
        changed[middle] += delta
        seen.add(h(changed))
    assert len(seen) == 5
    ints = np.zeros(10_000, dtype=np.int8)
    flipped = ints.copy()
    flipped[5_000] = 1
    assert h(ints) != h(flipped)


def test_numpy_special_dtypes() -> None:
    dates = np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[ns]")
    assert h(dates) != h(dates.astype("datetime64[s]"))
    assert h(np.array(["a", "b"])) != h(np.array(["a", "c"]))
    structured = np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    assert h(structured) == h(structured.copy())
    assert h(np.array(3.0)) != h(np.array([3.0]))


def test_numpy_object_arrays_elementwise() -> None:
    a = np.array([1, "x", None, (1, 2)], dtype=object)
    b = np.array([1, "x", None, (1, 2)], dtype=object)
    assert h(a) == h(b)
    b[1] = "y"
    assert h(a) != h(b)
    bad = np.array([threading.Lock()], dtype=object)
    with pytest.raises(TypeError):
        h(bad)


def test_numpy_scalars_and_masked_arrays() -> None:
    assert h(np.float32(1.5)) != h(np.float64(1.5))
    assert h(np.int64(7)) == h(np.int64(7))
    m1 = np.ma.array([1, 2, 3], mask=[0, 1, 0])
    m2 = np.ma.array([1, 2, 3], mask=[0, 0, 0])
    assert h(m1) != h(m2)
    assert h(m2) != h(np.array([1, 2, 3]))


def test_hashing_100mb_array_is_fast() -> None:
    a = np.random.default_rng(1).random(100 * 1024 * 1024 // 8)
    h(a)
    best = min(_timed(lambda: h(a)) for _ in range(3))
    assert best < 0.1, f"hashing 100 MB took {best * 1000:.1f} ms"


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- pandas


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1, 2, 3],
            "y": [0.5, None, 2.5],
            "s": ["a", "b", None],
            "c": pd.Categorical(["u", "v", "u"]),
            "t": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
            "n": pd.array([1, None, 3], dtype="Int64"),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )


def test_pandas_frame_equal_content_equal_hash() -> None:
    assert h(_frame()) == h(_frame())
    assert h(_frame()) == h(_frame().copy(deep=True))


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(x=[1, 2, 4]),
        lambda df: df.assign(s=["a", "b", "c"]),
        lambda df: df.rename(columns={"x": "X"}),
        lambda df: df.set_axis([10, 20, 31], axis=0),
        lambda df: df.rename_axis("key"),
        lambda df: df.astype({"x": "int32"}),
        lambda df: df.astype({"x": "float64"}),
        lambda df: df[["y", "x", "s", "c", "t", "n"]],
        lambda df: df.assign(c=pd.Categorical(["u", "v", "u"], ordered=True)),
        lambda df: df.iloc[:2],
    ],
)
def test_pandas_frame_changes_change_hash(change: Any) -> None:
    assert h(change(_frame())) != h(_frame())


def test_pandas_series_and_index() -> None:
    s = pd.Series([1.0, 2.0], index=["a", "b"], name="v")
    assert h(s) == h(s.copy())
    assert h(s) != h(s.rename("w"))
    assert h(s) != h(s.to_frame())
    assert h(pd.RangeIndex(3)) == h(pd.Index([0, 1, 2]))
    assert h(pd.Index([0, 1, 2])) != h(pd.Index([0.0, 1.0, 2.0]))
    mi = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
    assert h(mi) == h(pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"]))
    assert h(mi) != h(mi.set_names(["k", "m"]))
    assert h(pd.Series(["1", 1], dtype=object)) != h(pd.Series([1, "1"], dtype=object))


# ---------------------------------------------------------------------------- other objects


def test_dataclasses_by_type_and_compared_fields() -> None:
    assert h(Point(1.0, 2.0)) == h(Point(1.0, 2.0, label="ignored: compare=False"))
    assert h(Point(1.0, 2.0)) != h(Point(2.0, 1.0))
    assert h(Point(1.0, 2.0)) != h(OtherPoint(1.0, 2.0))


def test_enums_by_type_and_member() -> None:
    assert h(Color.RED) != h(Color.GREEN)
    assert h(Color.RED) != h(Shade.RED)
    assert h(Color.RED) != h(1)


def test_plain_objects_by_type_and_state() -> None:
    assert h(Plain(1, [2])) == h(Plain(1, [2]))
    assert h(Plain(1, [2])) != h(Plain(1, [3]))
    assert h(Slotted(1)) != h(Slotted(2))
    assert h(Pair(1, 2)) != h((1, 2))
    assert h(Pair(1, 2)) == h(Pair(1, 2))


def test_persidict_hash_hook() -> None:
    assert h(Hooked("k", threading.Lock())) == h(Hooked("k", object()))
    assert h(Hooked("k", 1)) != h(Hooked("j", 1))
    assert h(Hooked("k", 1)) != h("k")


def test_standard_library_values() -> None:
    utc = datetime.UTC
    values = [
        datetime.datetime(2020, 1, 1, 12),
        datetime.datetime(2020, 1, 1, 12, tzinfo=utc),
        datetime.datetime(2020, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
        datetime.date(2020, 1, 1),
        datetime.time(12),
        datetime.timedelta(seconds=1),
        decimal.Decimal("1.0"),
        decimal.Decimal("1.00"),
        fractions.Fraction(1, 3),
        pathlib.PurePosixPath("/a/b"),
        pathlib.PurePosixPath("/a/c"),
        uuid.UUID(int=1),
        range(3),
        range(0, 3, 2),
        slice(1, 2),
        slice(1, 3),
        Ellipsis,
    ]
    assert len({h(v) for v in values}) == len(values)
    assert h(slice(1, 2)) == h(slice(1, 2, None))
    assert h(datetime.datetime(2020, 1, 1)) == h(datetime.datetime(2020, 1, 1))


def test_callables_by_name_and_code() -> None:
    assert h(module_level) == h(module_level)
    assert h(len) != h(max)
    assert h(functools.partial(max, 1)) != h(functools.partial(max, 2))
    assert h(int) != h(float)
    assert h(lambda x: x + 1) != h(lambda x: x + 2)

    def make(k: int) -> Any:
        def inner(x: int) -> int:
            return x + k

        return inner

    assert h(make(1)) == h(make(1))
    assert h(make(1)) != h(make(2))

    def fact(n: int) -> int:
        return 1 if n < 2 else n * fact(n - 1)

    assert h(fact) == h(fact)  # a self-referencing closure is not a cycle error


@pytest.mark.parametrize(
    "value",
    [
        threading.Lock(),
        (x for x in range(3)),
        open(os.devnull),  # noqa: SIM115 - closed below by the garbage collector
        [1, {"k": threading.Lock()}],
    ],
    ids=["lock", "generator", "file", "nested-lock"],
)
def test_unreliable_values_raise_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        h(value)
    if hasattr(value, "close"):
        value.close()


# ---------------------------------------------------------------------------- stability


_SNIPPET = """
import sys
sys.path.insert(0, {path!r})
from persidict_memo.hashing import content_hash
print(content_hash([{{"b": {{"x", "y", "z"}}, "a": frozenset({{"p", "q"}})}}, ("s", 1, 2.5, None)]))
"""


def test_stable_across_hash_seeds() -> None:
    value = [{"a": frozenset({"q", "p"}), "b": {"z", "y", "x"}}, ("s", 1, 2.5, None)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outputs = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _SNIPPET.format(path=root)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(result.stdout.strip())
    assert outputs == {h(value)}


def test_known_digest_is_pinned() -> None:
    """A change of encoding would orphan every stored result: it must be deliberate."""
    assert h((1, "a", 2.5, None, True)) == "2d841ba84fb0873287d2b7b2ba6ec3a8"
    assert h({"k": [1.0, b"x"]}) == "c23b6497e7be3bbe26284a5b626f6e3e"


# ---------------------------------------------------------------------------- properties


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _strict(value: Any) -> Any:
    """A form of ``value`` whose equality is type-strict (1 != 1.0 != True) and -0.0-aware."""
    if isinstance(value, list):
        return ("list", tuple(_strict(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((k, _strict(v)) for k, v in value.items()))
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(_json_like, _json_like)
def test_hash_equal_iff_values_equal(a: Any, b: Any) -> None:
    assert (h(a) == h(b)) == (_strict(a) == _strict(b))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=8), st.randoms())
def test_dict_insertion_order_never_matters(d: dict[str, int], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert h(dict(items)) == h(d)


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


def test_flag_combinations() -> None:
    assert h(Perm.R | Perm.W) == h(Perm.W | Perm.R)
    assert h(Perm.R | Perm.W) != h(Perm.R | Perm.X)
    assert h(Perm.R | Perm.W) != h(Perm.R)
