"""S3Backend primitives against moto's in-process mock and moto's HTTP server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from persidict.errors import BackendError
from persidict.markers import ITEM_NOT_AVAILABLE
from persidict.s3_backend import (
    DELETE_BATCH,
    S3Backend,
    S3Capabilities,
    _capabilities,
    content_type_for,
)
from persidict.storage import NOT_MODIFIED, Stat
from tests.s3_support import S3Target

pytestmark = pytest.mark.s3


def quoted_md5(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


@pytest.fixture
def backend(s3_target: S3Target) -> S3Backend:
    return S3Backend(client=s3_target.client, bucket=s3_target.bucket, root_prefix="root")


class RequestCounter:
    """Counts the S3 API calls a client makes (botocore's own event hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        self._client = client
        client.meta.events.register("before-call.s3.*", self._on_call)

    def _on_call(self, model: Any, **kwargs: Any) -> None:
        self.calls.append(model.name)

    def close(self) -> None:
        self._client.meta.events.unregister("before-call.s3.*", self._on_call)


@pytest.fixture
def counter(s3_target: S3Target) -> Iterator[RequestCounter]:
    c = RequestCounter(s3_target.client)
    yield c
    c.close()


def test_root_prefix_and_object_keys(s3_target: S3Target) -> None:
    b = S3Backend(client=s3_target.client, bucket=s3_target.bucket, root_prefix="a/b")
    assert b.root_prefix == "a/b/"
    assert b.object_key(("x", "y.z")) == "a/b/x/y.z.pkl"
    assert S3Backend(client=s3_target.client, bucket="q").object_key(("k",)) == "k.pkl"
    assert b.describe() == f"s3://{s3_target.bucket}/a/b/"


def test_write_then_read(backend: S3Backend, s3_target: S3Target) -> None:
    st = backend.write(("k",), b"hello")
    assert isinstance(st, Stat)
    assert st.etag == quoted_md5(b"hello")
    got = backend.read(("k",))
    assert got is not None
    assert got is not NOT_MODIFIED
    data, st2 = got  # type: ignore[misc]
    assert data == b"hello"
    assert st2.etag == st.etag
    assert abs(st2.mtime - st.mtime) < 5
    head = s3_target.client.head_object(Bucket=s3_target.bucket, Key="root/k.pkl")
    assert head["ETag"] == st.etag
    assert head["ContentType"] == "application/octet-stream"


def test_missing_items(backend: S3Backend) -> None:
    assert backend.stat(("nope",)) is None
    assert backend.exists(("nope",)) is False
    assert backend.read(("nope",)) is None
    assert backend.read(("nope",), if_none_match='"abc"') is None


def test_stat_and_exists(backend: S3Backend) -> None:
    st = backend.write(("a", "b"), b"x")
    assert st is not None
    st2 = backend.stat(("a", "b"))
    assert st2 is not None
    assert st2.etag == st.etag
    assert backend.exists(("a", "b"))
    assert not backend.exists(("a",))


def test_conditional_read(backend: S3Backend, counter: RequestCounter) -> None:
    st = backend.write(("k",), b"v1")
    assert st is not None
    counter.calls.clear()
    assert backend.read(("k",), if_none_match=st.etag) is NOT_MODIFIED
    assert counter.calls == ["GetObject"]
    got = backend.read(("k",), if_none_match='"0123456789abcdef0123456789abcdef"')
    assert got is not None
    assert got is not NOT_MODIFIED
    assert got[0] == b"v1"  # type: ignore[index]


def test_insert_if_absent(backend: S3Backend) -> None:
    first = backend.write(("k",), b"one", if_match=ITEM_NOT_AVAILABLE)
    assert first is not None
    assert backend.write(("k",), b"two", if_match=ITEM_NOT_AVAILABLE) is None
    got = backend.read(("k",))
    assert got is not None
    assert got[0] == b"one"


def test_compare_and_swap(backend: S3Backend) -> None:
    st = backend.write(("k",), b"one")
    assert st is not None
    assert backend.write(("k",), b"two", if_match='"00000000000000000000000000000000"') is None
    st2 = backend.write(("k",), b"two", if_match=st.etag)
    assert st2 is not None
    assert st2.etag == quoted_md5(b"two")
    assert backend.write(("k",), b"three", if_match=st.etag) is None
    assert backend.write(("missing",), b"x", if_match=st.etag) is None
    assert backend.stat(("missing",)) is None


def test_unconditional_delete_reports_existence(
    backend: S3Backend, counter: RequestCounter
) -> None:
    backend.write(("k",), b"one")
    backend.capabilities()
    counter.calls.clear()
    assert backend.delete(("k",)) is True
    assert counter.calls == ["HeadObject", "DeleteObject"]
    assert backend.stat(("k",)) is None
    counter.calls.clear()
    assert backend.delete(("k",)) is False
    assert counter.calls == ["HeadObject"]


def test_remove_is_one_request(backend: S3Backend, counter: RequestCounter) -> None:
    backend.write(("k",), b"one")
    counter.calls.clear()
    backend.remove(("k",))
    assert counter.calls == ["DeleteObject"]
    assert backend.stat(("k",)) is None
    backend.remove(("k",))  # absent: no error


def test_conditional_delete(backend: S3Backend, counter: RequestCounter) -> None:
    st = backend.write(("k",), b"one")
    assert st is not None
    backend.capabilities()
    counter.calls.clear()
    assert backend.delete(("k",), if_match='"00000000000000000000000000000000"') is False
    assert backend.stat(("k",)) is not None
    counter.calls.clear()
    assert backend.delete(("k",), if_match=st.etag) is True
    assert counter.calls == ["DeleteObject"]
    assert backend.stat(("k",)) is None
    assert backend.delete(("k",), if_match=st.etag) is False


def test_capabilities_of_moto(backend: S3Backend, s3_target: S3Target) -> None:
    caps = backend.capabilities()
    assert caps == S3Capabilities(True, True, True)
    assert backend.capabilities() is caps  # cached per endpoint
    assert not [k for k in s3_target.object_keys() if "probe" in k]


def test_fallback_when_endpoint_ignores_preconditions(
    backend: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_capabilities, backend._endpoint, S3Capabilities(False, False, False))
    st = backend.write(("k",), b"one", if_match=ITEM_NOT_AVAILABLE)
    assert st is not None
    assert backend.write(("k",), b"two", if_match=ITEM_NOT_AVAILABLE) is None
    assert backend.write(("k",), b"two", if_match='"bad"') is None
    st2 = backend.write(("k",), b"two", if_match=st.etag)
    assert st2 is not None
    assert backend.delete(("k",), if_match=st.etag) is False
    assert backend.delete(("k",), if_match=st2.etag) is True
    assert backend.stat(("k",)) is None
    backend.write(("k",), b"three")
    assert backend.delete(("k",)) is True
    assert backend.delete(("k",)) is False


def test_scan_skips_foreign_objects(backend: S3Backend, s3_target: S3Target) -> None:
    for key in [("a",), ("b", "c"), ("x.y",), ("d", "e", "f")]:
        backend.write(key, b"1")
    put = s3_target.client.put_object
    b = s3_target.bucket
    for junk in [
        "root/other.json",  # another format
        "root/bad name.pkl",  # unsafe character
        "root/a//b.pkl",  # empty component
        "root/.pkl",  # empty stem
        "root/__persidict_probe_x__",  # probe object
        "root/x.pkl.tmp",
        "rootother/a.pkl",  # a sibling prefix
        "top.pkl",
    ]:
        put(Bucket=b, Key=junk, Body=b"junk")
    keys = sorted(k for k, _ in backend.scan())
    assert keys == [("a",), ("b", "c"), ("d", "e", "f"), ("x.y",)]
    assert backend.count() == 4
    with_stat = dict(backend.scan(with_stat=True))
    for key, st in with_stat.items():
        assert st is not None
        head = backend.stat(key)
        assert head is not None
        assert st.etag == head.etag
        assert abs(st.mtime - head.mtime) < 1.0


def test_child_shares_client_without_requests(
    backend: S3Backend, counter: RequestCounter
) -> None:
    counter.calls.clear()
    child = backend.child(["sub", "dir"])
    assert counter.calls == []
    assert child.client is backend.client
    assert child.root_prefix == "root/sub/dir/"
    child.write(("k",), b"1")
    assert backend.stat(("sub", "dir", "k")) is not None
    assert [k for k, _ in child.scan()] == [("k",)]
    assert backend.child([]).root_prefix == "root/"


def test_clear_deletes_only_items(backend: S3Backend, s3_target: S3Target) -> None:
    for i in range(5):
        backend.write((f"k{i}",), b"1")
    s3_target.client.put_object(Bucket=s3_target.bucket, Key="root/keep.json", Body=b"{}")
    s3_target.client.put_object(Bucket=s3_target.bucket, Key="other/k.pkl", Body=b"1")
    backend.clear()
    assert backend.count() == 0
    assert s3_target.object_keys() == ["other/k.pkl", "root/keep.json"]


def test_clear_in_batches(s3_mock: S3Target) -> None:
    client = s3_mock.client
    backend = S3Backend(client=client, bucket=s3_mock.bucket, root_prefix="p")
    for i in range(2 * DELETE_BATCH + 10):
        client.put_object(Bucket=s3_mock.bucket, Key=f"p/k{i}.pkl", Body=b"1")
    counter = RequestCounter(client)
    backend.clear()
    counter.close()
    assert backend.count() == 0
    assert counter.calls.count("DeleteObjects") == 3
    assert len(counter.calls) <= 3 * 3  # at most 3 requests per (started) 1,000 objects


def test_read_many(backend: S3Backend) -> None:
    keys = [(f"k{i}",) for i in range(50)]
    for i, key in enumerate(keys):
        backend.write(key, str(i).encode())
    wanted = [*keys, ("gone",)]
    got = list(backend.read_many(wanted))
    assert [k for k, _, _ in got] == keys  # in order, the missing one skipped
    assert all(data == str(i).encode() for i, (_, data, _) in enumerate(got))
    assert all(st.etag == quoted_md5(data) for _, data, st in got)


def test_read_many_stops_early(backend: S3Backend) -> None:
    for i in range(40):
        backend.write((f"k{i}",), b"x")
    it = backend.read_many((f"k{i}",) for i in range(40))
    assert next(it)[0] == ("k0",)
    it.close()  # must not hang or leak threads that keep fetching


def test_missing_bucket_is_backend_error(s3_target: S3Target) -> None:
    b = S3Backend(client=s3_target.client, bucket="pd-no-such-bucket-here")
    for call, op in [
        (lambda: b.read(("k",)), "read"),
        (lambda: b.write(("k",), b"1"), "write"),
        (lambda: b.remove(("k",)), "delete"),
        (lambda: list(b.scan()), "list"),
        (b.count, "count"),
        (b.clear, "clear"),
    ]:
        with pytest.raises(BackendError) as info:
            call()
        assert info.value.backend == "s3"
        assert info.value.operation == op
        assert info.value.__cause__ is not None
        assert "NoSuchBucket" in str(info.value)
    # A HEAD answer has no body: over HTTP a missing bucket looks like a missing key there.
    if s3_target.kind == "server":
        assert b.stat(("k",)) is None
    else:
        with pytest.raises(BackendError):
            b.stat(("k",))


def test_error_carries_key(s3_target: S3Target) -> None:
    b = S3Backend(client=s3_target.client, bucket="pd-no-such-bucket-here", root_prefix="r")
    with pytest.raises(BackendError) as info:
        b.read(("a", "b"))
    assert info.value.key == ("a", "b")
    assert "r/a/b.pkl" in str(info.value)


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("pkl", "application/octet-stream"), ("json", "application/json"), ("txt", "text/plain")],
)
def test_content_types(s3_target: S3Target, fmt: str, content_type: str) -> None:
    assert content_type_for(fmt) == content_type
    b = S3Backend(client=s3_target.client, bucket=s3_target.bucket, serialization_format=fmt)
    b.write(("k",), b"1")
    head = s3_target.client.head_object(Bucket=s3_target.bucket, Key=f"k.{fmt}")
    assert head["ContentType"] == content_type


def test_import_does_not_load_boto3() -> None:
    code = (
        "import sys, persidict, persidict.s3_backend;"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
