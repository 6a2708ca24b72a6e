"""S3 object layout: keys, bodies, content types and ETags match persidict 0.309 (SPEC 6.4, 9)."""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from typing import Any

import pytest

from persidict.basic_s3_dict import BasicS3Dict, normalize_root_prefix
from persidict.serialization import PickleSerializer
from tests.s3_support import S3Target

pytestmark = pytest.mark.s3

KEYS: list[tuple[Any, str]] = [
    ("hello", "hello"),
    ("Hello", "Hello"),
    (("a", "B", "c.d"), "a/B/c.d"),
    (("x", "y.z"), "x/y.z"),
    ("(x)=~-", "(x)=~-"),
    ("abc_saav", "abc_saav"),  # never digest-signed, never aliased
]
PREFIXES = [("", ""), ("root", "root/"), ("root/", "root/"), ("a/b", "a/b/")]
CONTENT_TYPES = {"pkl": "application/octet-stream", "json": "application/json",
                 "txt": "text/plain", "md": "text/plain"}


def _value_for(fmt: str) -> Any:
    if fmt in ("pkl", "json"):
        return {"n": 1, "items": [1, 2.5, "three"], "nested": {"t": (1, 2)}}
    return "line one\nline two ü"


def _as_0309_json(value: Any) -> bytes:
    """What 0.309 writes for json: ``jsonpickle.dumps(value, indent=4)`` with its defaults."""
    import jsonpickle

    with warnings.catch_warnings():  # jsonpickle 4.x warns about its future keys default
        warnings.simplefilter("ignore", DeprecationWarning)
        return str(jsonpickle.dumps(value, indent=4)).encode("utf-8")


def _expected_body(fmt: str, value: Any) -> bytes | None:
    if fmt == "json":
        return _as_0309_json(value)
    if fmt == "pkl":
        return None  # checked by decoding instead (pickle bytes are not unique)
    return str(value).encode("utf-8")


@pytest.mark.parametrize("fmt", ["pkl", "json", "txt"])
@pytest.mark.parametrize(("key", "path"), KEYS)
def test_object_layout(s3_mock: S3Target, fmt: str, key: Any, path: str) -> None:
    for root_prefix, normalised in PREFIXES:
        check_layout(s3_mock, fmt, root_prefix, normalised, key, path)


def check_layout(
    s3: S3Target, fmt: str, root_prefix: str, normalised: str, key: Any, path: str
) -> None:
    for old in s3.object_keys():
        s3.client.delete_object(Bucket=s3.bucket, Key=old)
    d: BasicS3Dict[Any] = s3.basic_store(
        root_prefix=root_prefix, serialization_format=fmt,
        base_class_for_values=None if fmt in ("pkl", "json") else str,
    )
    value = _value_for(fmt)
    d[key] = value
    object_key = f"{normalised}{path}.{fmt}"
    assert s3.object_keys() == [object_key]
    raw = s3.get_object(object_key)
    body: bytes = raw["Data"]
    assert raw["ContentType"] == CONTENT_TYPES[fmt]
    assert set(raw.get("Metadata", {})) == {"persidict-write-id"}  # tells versions apart
    etag = '"' + hashlib.md5(body).hexdigest() + '"'
    assert raw["ETag"] == etag
    assert d.etag(key) == etag  # quotes included
    expected = _expected_body(fmt, value)
    if expected is not None:
        assert body == expected
    if fmt == "pkl":
        import joblib

        assert pickle.loads(body) == value
        assert joblib.load(io.BytesIO(body)) == value  # what 0.309 does with our bodies
    assert d[key] == value
    assert [tuple(k) for k in d] == [tuple([key] if isinstance(key, str) else key)]
    assert d.base_url == f"s3://{s3.bucket}/{normalised}"


def test_layout_over_http(s3_http: S3Target) -> None:
    check_layout(s3_http, "pkl", "a/b", "a/b/", ("x", "y.z"), "x/y.z")
    check_layout(s3_http, "json", "", "", "hello", "hello")


@pytest.mark.parametrize(
    ("root_prefix", "key", "fmt", "object_key"),
    [  # the SPEC's own examples
        ("root", "hello", "pkl", "root/hello.pkl"),
        ("root", ("a", "B", "c.d"), "pkl", "root/a/B/c.d.pkl"),
        ("root", "Hello", "pkl", "root/Hello.pkl"),
        ("root", "k", "json", "root/k.json"),
    ],
)
def test_spec_examples(
    s3_target: S3Target, root_prefix: str, key: Any, fmt: str, object_key: str
) -> None:
    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix=root_prefix, serialization_format=fmt)
    d[key] = 1
    assert s3_target.object_keys() == [object_key]


def test_pickle_value_one_is_a_bare_pickle(s3_mock: S3Target) -> None:
    d: BasicS3Dict[Any] = s3_mock.basic_store(root_prefix="root")
    d["one"] = 1
    body = s3_mock.get_object("root/one.pkl")["Data"]
    assert body[:2] == b"\x80\x05"  # a standard pickle, no LZ4 frame, no compression
    assert pickle.loads(body) == 1


def _joblib_bytes(value: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(value, buf)  # exactly what 0.309's BasicS3Dict writes (no compression)
    return buf.getvalue()


@pytest.mark.parametrize(
    "value", [1, "text", {"a": [1, 2], "b": (3, None)}, [1.5, b"bytes", {"s"}]],
    ids=["int", "str", "dict", "list"],
)
def test_reads_bodies_written_by_0309(s3_target: S3Target, value: Any) -> None:
    data = _joblib_bytes(value)
    s3_target.client.put_object(
        Bucket=s3_target.bucket, Key="root/k.pkl", Body=data,
        ContentType="application/octet-stream",
    )
    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix="root")
    assert d["k"] == value
    assert PickleSerializer().decode(data) == value
    assert d.etag("k") == '"' + hashlib.md5(data).hexdigest() + '"'


def test_reads_numpy_bodies_written_by_0309(s3_mock: S3Target) -> None:
    np = pytest.importorskip("numpy")
    value = {"arr": np.arange(12, dtype="int64").reshape(3, 4)}
    s3_mock.client.put_object(Bucket=s3_mock.bucket, Key="np.pkl", Body=_joblib_bytes(value))
    d: BasicS3Dict[Any] = s3_mock.basic_store()
    got = d["np"]
    assert (got["arr"] == value["arr"]).all()


def test_reads_json_and_text_written_by_0309(s3_mock: S3Target) -> None:
    value = {"t": (1, 2), "s": "ü"}
    s3_mock.client.put_object(Bucket=s3_mock.bucket, Key="j.json", Body=_as_0309_json(value),
                              ContentType="application/json")
    s3_mock.client.put_object(Bucket=s3_mock.bucket, Key="t.txt", Body="héllo".encode(),
                              ContentType="text/plain")
    dj: BasicS3Dict[Any] = s3_mock.basic_store(serialization_format="json")
    dt: BasicS3Dict[Any] = s3_mock.basic_store(serialization_format="txt",
                                               base_class_for_values=str)
    assert dj["j"] == value
    assert dt["t"] == "héllo"
    assert [tuple(k) for k in dj] == [("j",)]
    assert [tuple(k) for k in dt] == [("t",)]


def test_iteration_skips_foreign_objects(s3_mock: S3Target) -> None:
    d: BasicS3Dict[Any] = s3_mock.basic_store(root_prefix="r")
    d["ok"] = 1
    for junk in ["r/bad key.pkl", "r/x.json", "r/__persidict_probe_1__", "r//e.pkl", "s/ok.pkl"]:
        s3_mock.client.put_object(Bucket=s3_mock.bucket, Key=junk, Body=b"junk")
    assert [tuple(k) for k in d] == [("ok",)]
    assert len(d) == 1
    assert list(d.values()) == [1]


def test_nested_stores_see_each_other(s3_mock: S3Target) -> None:
    top: BasicS3Dict[Any] = s3_mock.basic_store()
    inner: BasicS3Dict[Any] = s3_mock.basic_store(root_prefix="p/q")
    inner["k"] = 1
    assert [tuple(k) for k in top] == [("p", "q", "k")]
    assert top.get_subdict(("p", "q"))["k"] == 1
    assert top.get_subdict(("p", "q")).root_prefix == "p/q/"


@pytest.mark.parametrize(
    ("given", "normalised"),
    [("", ""), ("a", "a/"), ("a/", "a/"), ("a/b.c/d", "a/b.c/d/"), ("x_y-z", "x_y-z/")],
)
def test_root_prefix_normalisation(given: str, normalised: str) -> None:
    assert normalize_root_prefix(given) == normalised


@pytest.mark.parametrize("bad", ["/a", "a//b", "a//", "a b", "a/../b", "..", "/", "é"])
def test_root_prefix_rejected(bad: str, s3_mock: S3Target) -> None:
    with pytest.raises(ValueError, match="root_prefix"):
        normalize_root_prefix(bad)
    with pytest.raises(ValueError, match="root_prefix"):
        s3_mock.basic_store(root_prefix=bad)


def test_root_prefix_type() -> None:
    with pytest.raises(TypeError, match="root_prefix"):
        normalize_root_prefix(5)
