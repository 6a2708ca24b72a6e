"""S3Backend primitives against moto's in-process mock and moto's HTTP server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from persidict.basic_s3_dict import BasicS3Dict
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
    assert _capabilities[s3_target.client.meta.endpoint_url] is caps
    assert not [k for k in s3_target.object_keys() if "probe" in k]
    other = S3Backend(client=s3_target.client, bucket=s3_target.bucket, root_prefix="other")
    counter = RequestCounter(s3_target.client)
    try:
        assert other.capabilities() is caps
        assert other.write(("k",), b"1", if_match=ITEM_NOT_AVAILABLE) is not None
        assert counter.calls == ["PutObject"]  # no second probe on the same endpoint
    finally:
        counter.close()


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
    # A HEAD answer has no body: the bucket is confirmed before "absent" is answered.
    with pytest.raises(BackendError) as info:
        b.stat(("k",))
    assert "NoSuchBucket" in str(info.value)


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


def test_too_long_key_is_a_value_error(backend: S3Backend, s3_target: S3Target) -> None:
    key = tuple("c" * 200 for _ in range(6))
    with pytest.raises(ValueError, match="too long for S3"):
        backend.write(key, b"1")
    assert s3_target.object_keys() == []
    backend.write(key[:4], b"1")  # 4 x 201 bytes + prefix fits


def test_import_does_not_load_boto3() -> None:
    code = (
        "import sys, persidict, persidict.s3_backend;"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------------------------------
# BasicS3Dict over the backend
# ------------------------------------------------------------------------------------------


def test_requests_per_operation(s3_target: S3Target) -> None:
    from persidict.markers import ETAG_IS_THE_SAME

    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix="ops")
    d["warm"] = 0
    d.transform_item("warm", transformer=lambda v: v)  # the endpoint probe, once
    c = RequestCounter(s3_target.client)

    def calls(action: Any) -> list[str]:
        c.calls.clear()
        action()
        return list(c.calls)

    try:
        assert calls(lambda: d.__setitem__("k", 1)) == ["PutObject"]
        assert calls(lambda: d["k"]) == ["GetObject"]
        assert calls(lambda: "k" in d) == ["HeadObject"]
        assert calls(lambda: d.etag("k")) == ["HeadObject"]
        etag = d.etag("k")
        r = None

        def cond_get() -> None:
            nonlocal r
            r = d.get_item_if("k", condition=ETAG_IS_THE_SAME, expected_etag=etag)

        assert calls(cond_get) == ["GetObject"]  # answered by a 304, no body
        assert r is not None
        assert r.condition_was_satisfied
        assert calls(lambda: len(d)) == ["ListObjectsV2"]
        assert calls(lambda: d.get_subdict("sub")) == []
        assert calls(lambda: d.transform_item("k", transformer=lambda v: v + 1)) == [
            "GetObject", "PutObject"]
        assert calls(lambda: d.__delitem__("k")) == ["HeadObject", "DeleteObject"]
    finally:
        c.close()


def test_subdict_shares_client(s3_target: S3Target) -> None:
    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix="top")
    sub = d.get_subdict(("a", "b"))
    assert isinstance(sub, BasicS3Dict)
    assert sub.s3_client is d.s3_client
    assert sub.root_prefix == "top/a/b/"
    assert sub.get_params()["root_prefix"] == "top/a/b/"
    sub["k"] = 1
    assert d["a", "b", "k"] == 1
    assert d.get_subdict(()).root_prefix == "top/"


def test_params_rebuild_an_equivalent_store(s3_target: S3Target) -> None:
    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix="p")
    d["k"] = 1
    params = d.get_params()
    assert params["client"] is s3_target.client
    assert list(params) == sorted(params)
    again = BasicS3Dict(**params)
    assert again["k"] == 1
    assert again == d


def test_params_with_endpoint_url(s3_http: S3Target) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(
        bucket_name=s3_http.bucket, endpoint_url=s3_http.endpoint_url, root_prefix="e",
        region="us-east-1",
    )
    d["k"] = 2
    params = d.get_params()
    assert params["endpoint_url"] == s3_http.endpoint_url
    assert "client" not in params
    assert "session" not in params
    again = d.clone()
    assert again.s3_client is not d.s3_client
    assert again["k"] == 2
    assert s3_http.object_keys() == ["e/k.pkl"]


def test_aws_endpoint_url_environment(
    s3_http: S3Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", str(s3_http.endpoint_url))
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=s3_http.bucket, root_prefix="env")
    d["k"] = 3
    assert s3_http.object_keys() == ["env/k.pkl"]


def test_session_parameter(s3_http: S3Target) -> None:
    from tests.s3_support import make_session

    d: BasicS3Dict[Any] = BasicS3Dict(
        bucket_name=s3_http.bucket, endpoint_url=s3_http.endpoint_url, session=make_session())
    d["s"] = 1
    assert s3_http.object_keys() == ["s.pkl"]


def test_creates_missing_bucket(s3_mock: S3Target) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="pd-new-bucket", client=s3_mock.client)
    d["k"] = 1
    names = [b["Name"] for b in s3_mock.client.list_buckets()["Buckets"]]
    assert "pd-new-bucket" in names
    BasicS3Dict(bucket_name="pd-new-bucket", client=s3_mock.client)  # exists: fine


def test_creates_bucket_in_region(aws_env: None) -> None:
    from moto import mock_aws

    from persidict.s3_backend import make_s3_client

    with mock_aws():
        d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="pd-eu-bucket", region="eu-west-1")
        d["k"] = 1
        client = make_s3_client(region="eu-west-1")
        loc = client.get_bucket_location(Bucket="pd-eu-bucket")["LocationConstraint"]
        assert loc == "eu-west-1"
        assert d.get_params()["region"] == "eu-west-1"


def test_default_bucket_name(aws_env: None) -> None:
    from moto import mock_aws

    with mock_aws():
        d: BasicS3Dict[Any] = BasicS3Dict()
        d["k"] = 1
        assert d.base_url == "s3://my_bucket/"


def test_constructor_validation(s3_mock: S3Target) -> None:
    with pytest.raises(ValueError, match="bucket_name"):
        BasicS3Dict(bucket_name="", client=s3_mock.client)
    with pytest.raises(TypeError, match="region"):
        BasicS3Dict(bucket_name=s3_mock.bucket, region=5, client=s3_mock.client)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="root_prefix"):
        BasicS3Dict(bucket_name=s3_mock.bucket, root_prefix=None, client=s3_mock.client)  # type: ignore[arg-type]


def test_missing_boto3_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from persidict.s3_backend import BOTO3_MISSING_MESSAGE, make_s3_client

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ImportError, match=r'pip install "persidict\[aws\]"') as info:
        make_s3_client()
    assert str(info.value) == BOTO3_MISSING_MESSAGE


def test_values_use_the_thread_pool(s3_target: S3Target) -> None:
    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix="many")
    for i in range(30):
        d[f"k{i}"] = i
    assert sorted(d.values()) == list(range(30))
    assert sorted((tuple(k), v) for k, v in d.items()) == sorted(
        ((f"k{i}",), i) for i in range(30))
