"""File CONTENTS compatibility with persidict 0.309 (SPEC 5, 6.1, 9.2-9.4).

Both directions, by the SPEC's rules rather than by our own code:

* a store directory written by hand the way 0.309 writes it (pkl: ``joblib.dump(v, f,
  compress="lz4")``, an LZ4 frame around a joblib pickle, numpy arrays and DataFrames included;
  json: ``jsonpickle.dumps(v, indent=4)`` with the numpy and pandas handlers registered; text:
  UTF-8) under the SPEC's signed file names opens with the right keys and values;
* what we write is readable by the same rules: ``joblib.load(path)`` returns the value of every
  pkl file (0.309 reads any joblib-loadable pickle), our json bytes equal
  ``jsonpickle.dumps(value, indent=4)``, our text files are the UTF-8 of the str, no newline added.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import fractions
import hashlib
import io
import math
import os
import pickle
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
joblib = pytest.importorskip("joblib")
jsonpickle = pytest.importorskip("jsonpickle")

# jsonpickle 4.x warns on every dumps/loads that uses its own default keys=False. The reference
# calls below are made exactly as 0.309 makes them, inside catch_warnings; FileDirDict itself
# must not let that warning reach users (the project's pytest config makes warnings errors).

SPEC_BYTES_OF_1 = bytes.fromhex("04224d18 4040c005 00008080 044b012e 00000000")


def signed(component: str, n: int = 4) -> str:
    """SPEC 2.5, written out independently of the package."""
    if n == 0:
        return component
    digest = base64.b32encode(hashlib.md5(component.encode()).digest()).decode()
    return f"{component}_{digest[:n].lower()}"


def item_path(base: Path, key: tuple[str, ...], fmt: str, n: int = 4) -> Path:
    """The SPEC 6.1 path of ``key``: every component signed, the format as the extension."""
    parts = [signed(c, n) for c in key]
    parts[-1] += "." + fmt
    return base.joinpath(*parts)


def register_jsonpickle_handlers() -> None:
    """What ``import persidict.file_dir_dict`` does in 0.309 (process-wide)."""
    import jsonpickle.ext.numpy
    import jsonpickle.ext.pandas

    jsonpickle.ext.numpy.register_handlers()
    jsonpickle.ext.pandas.register_handlers()


def reference_json(value: Any) -> str:
    """0.309's json writer: ``jsonpickle.dumps(value, indent=4)`` with the handlers on."""
    register_jsonpickle_handlers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        text: str = jsonpickle.dumps(value, indent=4)
    return text


def reference_json_load(text: str) -> Any:
    register_jsonpickle_handlers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return jsonpickle.loads(text)


def reference_pkl_bytes(value: Any) -> bytes:
    """0.309's FileDirDict pkl writer: ``joblib.dump(value, f, compress="lz4")``."""
    buf = io.BytesIO()
    joblib.dump(value, buf, compress="lz4")
    return buf.getvalue()


def assert_same(got: Any, expected: Any, where: str = "value") -> None:
    """Deep equality that understands numpy arrays, numpy scalars, DataFrames and NaN."""
    if isinstance(expected, pd.DataFrame):
        assert isinstance(got, pd.DataFrame), where
        pd.testing.assert_frame_equal(got, expected)
    elif isinstance(expected, pd.Series):
        assert isinstance(got, pd.Series), where
        pd.testing.assert_series_equal(got, expected)
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got)}"
        assert got.dtype == expected.dtype, f"{where}: {got.dtype} != {expected.dtype}"
        assert got.shape == expected.shape, where
        equal_nan = expected.dtype.kind in "fc"
        assert np.array_equal(got, expected, equal_nan=equal_nan), where
    elif isinstance(expected, np.generic):
        assert type(got) is type(expected), f"{where}: {type(got)}"
        assert got == expected or (got != got and expected != expected), where
    elif isinstance(expected, dict):
        assert type(got) is type(expected), f"{where}: {type(got)}"
        assert list(got) == list(expected), where
        for k in expected:
            assert_same(got[k], expected[k], f"{where}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected), f"{where}: {type(got)}"
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same(g, e, f"{where}[{i}]")
    elif isinstance(expected, (pd.Index, pd.Categorical)):
        assert type(got) is type(expected), f"{where}: {type(got)}"
        assert got.equals(expected), where
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(got, float) and math.isnan(got), where
    else:
        assert type(got) is type(expected), f"{where}: {type(got)} != {type(expected)}"
        assert got == expected, where


def _frame() -> Any:
    return pd.DataFrame({
        "i": np.arange(5, dtype="int64"),
        "f": [0.5, 1.5, float("nan"), -2.0, 1e300],
        "s": ["a", "b", "ü", "", "e"],
        "b": [True, False, True, True, False],
        "t": pd.date_range("2026-01-01", periods=5, freq="D"),
    }, index=pd.Index(list("vwxyz"), name="idx"))


# Values 0.309's pkl files hold: Python objects, numpy arrays of several dtypes, pandas.
PKL_VALUES: dict[str, Callable[[], Any]] = {
    "int": lambda: 1,
    "big-int": lambda: 10**40,
    "float": lambda: 1.25,
    "nan": lambda: float("nan"),
    "str": lambda: "héllo wörld",
    "bytes": lambda: bytes(range(256)),
    "none": lambda: None,
    "bool": lambda: True,
    "complex": lambda: 1 + 2j,
    "list": lambda: [1, "two", 3.0, None],
    "tuple": lambda: (1, (2, 3)),
    "set": lambda: {1, 2, 3},
    "frozenset": lambda: frozenset({"a"}),
    "dict": lambda: {"a": 1, 2: "b", (3, 4): [5]},
    "ordered": lambda: OrderedDict([("z", 1), ("a", 2)]),
    "date": lambda: datetime.date(2026, 11, 27),
    "datetime": lambda: datetime.datetime(2026, 11, 27, 1, 2, 3, 456789,
                                          tzinfo=datetime.UTC),
    "decimal": lambda: decimal.Decimal("3.14159"),
    "fraction": lambda: fractions.Fraction(1, 3),
    "uuid": lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "int8": lambda: np.arange(-5, 5, dtype=np.int8),
    "uint16": lambda: np.arange(10, dtype=np.uint16) * 1000,
    "int64": lambda: np.arange(1000, dtype=np.int64) ** 2,
    "float32": lambda: np.linspace(0, 1, 7, dtype=np.float32),
    "float64-nan": lambda: np.array([1.0, np.nan, np.inf, -0.0]),
    "complex128": lambda: np.array([1 + 1j, 2 - 3j]),
    "bool-array": lambda: np.array([True, False, True]),
    "unicode-array": lambda: np.array(["ab", "üé"]),
    "datetime64": lambda: np.array(["2026-01-01", "2026-12-31"], dtype="datetime64[D]"),
    "2d-fortran": lambda: np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "structured": lambda: np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")]),
    "object-array": lambda: np.array([1, "a", None], dtype=object),
    "big-array": lambda: np.arange(200_000, dtype=np.float64),  # > 64 KiB: many LZ4 blocks
    "empty-array": lambda: np.zeros((0, 3), dtype=np.int32),
    "numpy-scalar": lambda: np.float32(2.5),
    "dataframe": _frame,
    "series": lambda: pd.Series([1.5, 2.5], index=["a", "b"], name="s"),
    "nested": lambda: {"arrays": [np.arange(3), np.ones((2, 2))], "frame": _frame(),
                       "meta": {"n": 1}},
}

KEYS = [("a",), ("hello",), ("Hello",), ("a", "B", "c.d"), ("k1", "k2", "k3"), ("x.y",),
        ("(x)=~-",), ("0",)]


def _key(i: int, name: str) -> tuple[str, ...]:
    return (*KEYS[i % len(KEYS)], name)


# --------------------------------------------------------------------- SPEC 5 example bytes

def test_spec_example_bytes_for_1_are_what_joblib_lz4_writes() -> None:
    """The reference writer used below reproduces SPEC 5's example byte for byte."""
    assert reference_pkl_bytes(1) == SPEC_BYTES_OF_1


@pytest.mark.parametrize("data", [
    pytest.param(SPEC_BYTES_OF_1, id="lz4-framed-joblib"),
    pytest.param(bytes.fromhex("80044b012e"), id="bare-joblib-s3-style"),
])
def test_spec_example_bytes_for_1_decode(tmp_path: Path, data: bytes) -> None:
    path = item_path(tmp_path, ("hello",), "pkl")
    assert path.name == "hello_lvau.pkl"
    path.write_bytes(data)
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    assert list(d.keys()) == [("hello",)]
    assert d["hello"] == 1
    assert list(d.values()) == [1]


# ------------------------------------------------------------- a store written by 0.309's rules

@pytest.mark.parametrize("digest_len", [4, 0, 8])
def test_hand_written_pkl_store_opens(tmp_path: Path, digest_len: int) -> None:
    expected: dict[tuple[str, ...], Any] = {}
    for i, (name, make) in enumerate(PKL_VALUES.items()):
        key = _key(i, name)
        value = make()
        path = item_path(tmp_path, key, "pkl", digest_len)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            joblib.dump(value, f, compress="lz4")
        assert path.read_bytes()[:4] == b"\x04\x22\x4d\x18"
        expected[key] = value

    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, digest_len=digest_len)
    assert sorted(tuple(k) for k in d) == sorted(expected)
    assert len(d) == len(expected)
    for key, value in expected.items():
        assert key in d
        assert_same(d[key], value, f"d[{key}]")
    for key, value in d.items():
        assert_same(value, expected[tuple(key)], f"items() {key}")
    assert_same(d.get_subdict("a")["int"], 1)


@pytest.mark.parametrize("writer", [
    pytest.param(lambda v, f: joblib.dump(v, f), id="joblib-uncompressed"),
    pytest.param(lambda v, f: pickle.dump(v, f, protocol=2), id="pickle-2"),
    pytest.param(lambda v, f: pickle.dump(v, f, protocol=4), id="pickle-4"),
    pytest.param(lambda v, f: pickle.dump(v, f, protocol=5), id="pickle-5"),
])
def test_other_joblib_loadable_pickles_open(tmp_path: Path,
                                            writer: Callable[[Any, Any], None]) -> None:
    """0.309's S3 stores write bare joblib pickles; any standard pickle is joblib-loadable."""
    names = ["int", "dict", "int64", "2d-fortran", "big-array", "dataframe", "nested"]
    for name in names:
        with open(item_path(tmp_path, (name,), "pkl"), "wb") as f:
            writer(PKL_VALUES[name](), f)
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    assert sorted(tuple(k) for k in d) == sorted((n,) for n in names)
    for name in names:
        assert_same(d[name], PKL_VALUES[name](), name)


JSON_VALUES: dict[str, Callable[[], Any]] = {
    "int": lambda: 1,
    "float": lambda: 1.25,
    "str": lambda: "str",
    "unicode": lambda: "ü ∑ 😀",
    "none": lambda: None,
    "bool": lambda: False,
    "list": lambda: [1, "two", [3.0]],
    "tuple": lambda: (1, 2, (3,)),
    "set": lambda: {1, 2},
    "dict": lambda: {"a": 1, "b": [1, 2]},
    "int-keys": lambda: {1: "x", 2: "y"},
    "tuple-in-dict": lambda: {"t": (1, 2)},
    "date": lambda: datetime.date(2026, 11, 27),
    "datetime": lambda: datetime.datetime(2026, 11, 27, 1, 2, 3),
    "decimal": lambda: decimal.Decimal("1.5"),
    "complex": lambda: 1 + 2j,
    "bytes": lambda: b"\x00\x01bytes",
    "nan": lambda: float("nan"),
    "int64": lambda: np.arange(3, dtype=np.int64),
    "float32": lambda: np.array([0.5, 1.5], dtype=np.float32),
    "bool-array": lambda: np.array([True, False]),
    "2d": lambda: np.arange(6, dtype=np.int32).reshape(2, 3),
    "big-array": lambda: np.arange(5000, dtype=np.float64),
    "numpy-scalar": lambda: np.int16(7),
    "dataframe": lambda: pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [1.5, None]}),
    "object-frame": lambda: pd.DataFrame({"o": pd.Series([1, "a", None], dtype=object)}),
    "multi-index-frame": lambda: pd.DataFrame(
        {"a": [1, 2]}, index=pd.MultiIndex.from_tuples([("x", 1), ("y", 2)])),
    "timestamp": lambda: pd.Timestamp("2026-01-01 12:00"),
    "series": lambda: pd.Series([1, 2, 3], name="n"),
    "index": lambda: pd.Index([1, 2]),
    "categorical": lambda: pd.Categorical(["a", "b", "a"]),
    "period": lambda: pd.Period("2026-01"),
    "interval": lambda: pd.Interval(0, 1),
    "nested": lambda: {"arr": np.arange(2), "items": [(1, "a"), {2, 3}]},
    # Plain JSON, which is written by json.dumps: it must give jsonpickle's very bytes.
    "plain": lambda: {"id": 1, "name": "item-1", "tags": ["a", "b"], "score": 0.5},
    "plain-edges": lambda: {"é": "☃\n\t\"\\\x00", "d": {}, "l": [], "s": "",
                            "big": 12345678901234567890, "zero": -0.0, "inf": float("inf")},
    "shared-list": lambda: (lambda a: {"x": a, "y": [a]})([1]),  # py/id, not json.dumps
    "py-key": lambda: {"py/tuple": [1]},
    "bool-in-list": lambda: [True, None, 1.0, [[]]],
}

# jsonpickle's own pandas handlers call jsonpickle without a context for these (they used to leak
# its "keys will default to True" DeprecationWarning); kept as a separate group of cases.
PANDAS_NESTED = {"series", "index", "categorical", "period", "interval"}


def json_names(pandas_nested: bool) -> list[str]:
    return [n for n in JSON_VALUES if (n in PANDAS_NESTED) == pandas_nested]


@pytest.mark.parametrize(("digest_len", "names"), [
    pytest.param(4, json_names(False), id="4"),
    pytest.param(0, json_names(False), id="0"),
    pytest.param(4, json_names(True), id="4-pandas-nested"),
])
def test_hand_written_json_store_opens(tmp_path: Path, digest_len: int,
                                       names: list[str]) -> None:
    expected: dict[tuple[str, ...], Any] = {}
    for i, name in enumerate(names):
        make = JSON_VALUES[name]
        key = _key(i, name)
        path = item_path(tmp_path, key, "json", digest_len)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = reference_json(make())
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        expected[key] = reference_json_load(text)  # what 0.309 itself reads back

    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json",
                                      digest_len=digest_len)
    assert sorted(tuple(k) for k in d) == sorted(expected)
    for key, value in expected.items():
        assert_same(d[key], value, f"d[{key}]")
    for key, value in d.items():
        assert_same(value, expected[tuple(key)], f"items() {key}")


def test_json_keys_become_strings_as_in_0309(tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    d["k"] = {1: "x"}
    assert d["k"] == {"1": "x"}


def test_hand_written_text_store_opens(tmp_path: Path) -> None:
    values = {"plain": "hello", "empty": "", "multi": "line 1\nline 2", "uni": "ünï ∑ 😀",
              "trailing": "ends with a newline\n"}
    for name, value in values.items():
        path = item_path(tmp_path, ("t", name), "txt")
        path.parent.mkdir(exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:  # 0.309's text writer
            f.write(value)
    # Windows line ends on disk read back as "\n" (text mode, universal newlines).
    item_path(tmp_path, ("t", "crlf"), "txt").write_bytes(b"a\r\nb\r\n")
    values["crlf"] = "a\nb\n"
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="txt",
                                      base_class_for_values=str)
    assert sorted(tuple(k) for k in d) == sorted(("t", n) for n in values)
    for name, value in values.items():
        assert d["t", name] == value


# ----------------------------------------------------------- what we write, read by 0.309's rules

@pytest.mark.parametrize("name", list(PKL_VALUES))
def test_our_pkl_files_load_with_joblib(tmp_path: Path, name: str) -> None:
    value = PKL_VALUES[name]()
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    key = ("grp", name)
    d[key] = value
    path = item_path(tmp_path, key, "pkl")
    assert os.listdir(path.parent) == [path.name]  # the SPEC file name, and nothing else
    assert_same(joblib.load(path), value, f"joblib.load({path.name})")
    with open(path, "rb") as f:  # 0.309 passes an open file object
        assert_same(joblib.load(f), value, "joblib.load(file object)")


def test_our_pkl_files_are_plain_pickles(tmp_path: Path) -> None:
    """No joblib wrapper records: a plain ``pickle.loads`` reads them too (numpy included)."""
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    for name in ("int", "nested", "big-array", "dataframe"):
        d[name] = PKL_VALUES[name]()
        data = item_path(tmp_path, (name,), "pkl").read_bytes()
        assert data[:1] == b"\x80"
        assert_same(pickle.loads(data), PKL_VALUES[name](), name)


@pytest.mark.parametrize("name", list(JSON_VALUES))
def test_our_json_bytes_equal_jsonpickle_indent_4(tmp_path: Path, name: str) -> None:
    value = JSON_VALUES[name]()
    reference = reference_json(value)
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    d[name] = value
    data = item_path(tmp_path, (name,), "json").read_bytes()
    assert data == reference.encode("utf-8")
    assert data.isascii()  # ensure_ascii, as 0.309
    assert_same(d[name], reference_json_load(reference), name)


def test_spec_json_examples(tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    cases = {
        "str": ("str", '"str"'),
        "u": ("ü", '"\\u00fc"'),
        "tuple": ((1, 2), '{\n    "py/tuple": [\n        1,\n        2\n    ]\n}'),
        "date": (datetime.date(2026, 1, 2),
                 '{\n    "py/object": "datetime.date",\n    "__reduce__": [\n        {\n'
                 '            "py/type": "datetime.date"\n        },\n        [\n'
                 '            "B+oBAg=="\n        ]\n    ]\n}'),
        "array": (np.arange(3), '{\n    "py/object": "numpy.ndarray",\n    "dtype": "int64",\n'
                  '    "values": [\n        0,\n        1,\n        2\n    ]\n}'),
    }
    for name, (value, text) in cases.items():
        d[name] = value
        assert item_path(tmp_path, (name,), "json").read_text(encoding="utf-8") == text


@pytest.mark.parametrize("value", ["hello", "", "line 1\nline 2", "ünï ∑ 😀",
                                   "ends with a newline\n", "  spaces  "])
def test_our_text_files_are_utf8_with_no_newline_added(tmp_path: Path, value: str) -> None:
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="txt",
                                      base_class_for_values=str)
    d["t"] = value
    path = item_path(tmp_path, ("t",), "txt")
    assert path.read_bytes() == value.encode("utf-8")
    with open(path, encoding="utf-8") as f:  # 0.309's reader
        assert f.read() == value


def test_formats_share_a_directory_as_in_0309(tmp_path: Path) -> None:
    """One base_dir, three formats: each store sees only its own extension."""
    (tmp_path / "k_rtsl.pkl").write_bytes(reference_pkl_bytes([1]))
    (tmp_path / "k_rtsl.json").write_text(reference_json((2,)), encoding="utf-8")
    (tmp_path / "k_rtsl.txt").write_text("three", encoding="utf-8")
    assert FileDirDict(base_dir=tmp_path)["k"] == [1]
    assert FileDirDict(base_dir=tmp_path, serialization_format="json")["k"] == (2,)
    txt: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="txt",
                                        base_class_for_values=str)
    assert txt["k"] == "three"
    for fmt in ("pkl", "json", "txt"):
        d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format=fmt,
                                          base_class_for_values=str if fmt == "txt" else None)
        assert list(d.keys()) == [("k",)]


# ------------------------------------------------------------------- warnings reach no user

@pytest.mark.filterwarnings("error")
def test_json_store_emits_no_deprecation_warning(tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d["k"] = {"a": (1, 2)}
        assert d["k"] == {"a": (1, 2)}
