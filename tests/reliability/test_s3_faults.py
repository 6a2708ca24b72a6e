"""Infrastructure faults on S3 give BackendError within bounded time, and the store recovers.

Faults come from real HTTP peers: a moto server that is stopped and restarted, a closed port,
and a small proxy (tests.s3_support.FaultProxy) that forwards to moto or answers 500/403/503 or
resets the connection. No boto3 fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from persidict.basic_s3_dict import BasicS3Dict
from persidict.errors import BackendError, OutcomeUnknownError
from persidict.markers import ANY_ETAG, ITEM_NOT_AVAILABLE
from tests.s3_support import (
    FaultProxy,
    S3Target,
    free_port,
    make_client,
    new_bucket_name,
    start_moto_server,
)

pytestmark = pytest.mark.s3

# Generous: botocore makes at most 3 attempts with a 3 s connect and 10 s read timeout.
NO_HANG = 60.0


def increment(v: Any) -> Any:
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


def expect_backend_error(action: Callable[[], Any], bound: float = NO_HANG) -> BackendError:
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        action()
    assert time.monotonic() - start < bound, "operation did not fail within bounded time"
    err = info.value
    assert err.backend == "s3"
    assert err.__cause__ is not None  # chained from the botocore error
    assert type(err.__cause__).__module__.startswith("botocore")
    return err


def every_operation(d: BasicS3Dict[Any]) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("get", lambda: d["k"]),
        ("set", lambda: d.__setitem__("k", 99)),
        ("contains", lambda: "k" in d),
        ("len", lambda: len(d)),
        ("keys", lambda: list(d.keys())),
        ("values", lambda: list(d.values())),
        ("delete", lambda: d.__delitem__("k")),
        ("etag", lambda: d.etag("k")),
        ("transform_item", lambda: d.transform_item("k", transformer=increment)),
        ("setdefault", lambda: d.setdefault("new", 5)),
        ("clear", d.clear),
    ]


@pytest.fixture
def own_server(aws_env: None) -> Iterator[tuple[Any, int, str]]:
    """A moto server this test may stop and restart (same port)."""
    port = free_port()
    server, url = start_moto_server(port)
    holder = {"server": server}
    try:
        yield holder, port, url  # type: ignore[misc]
    finally:
        stop_server(holder["server"])


def stop_server(server: Any) -> None:
    """Stop a ThreadedMotoServer and close its listening socket (as a process exit would)."""
    server.stop()
    inner = getattr(server, "_server", None)
    if inner is not None:
        inner.server_close()


@pytest.mark.slow
def test_server_stopped_mid_run_then_back(own_server: tuple[Any, int, str]) -> None:
    holder, port, url = own_server
    bucket = new_bucket_name()
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=bucket, endpoint_url=url, root_prefix="r")
    d["k"] = 1
    d.transform_item("k", transformer=increment)
    stop_server(holder["server"])
    for name, action in every_operation(d):
        err = expect_backend_error(action)
        assert err.operation, name
    holder["server"], _ = start_moto_server(port)
    assert d["k"] == 2  # nothing was written while the endpoint was gone
    assert d.transform_item("k", transformer=increment).new_value == 3
    assert d["k"] == 3


def test_refused_connection(aws_env: None) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    err = expect_backend_error(lambda: BasicS3Dict(bucket_name="pd-x", endpoint_url=url))
    assert err.operation == "init"
    from persidict.s3_backend import S3Backend

    backend = S3Backend(client=make_client(url), bucket="pd-x")
    for action in [lambda: backend.read(("k",)), lambda: backend.write(("k",), b"1"),
                   lambda: backend.stat(("k",)), lambda: list(backend.scan())]:
        expect_backend_error(action)


@pytest.fixture
def proxied(aws_env: None, moto_server: str) -> Iterator[tuple[FaultProxy, BasicS3Dict[Any]]]:
    with FaultProxy(moto_server) as proxy:
        d: BasicS3Dict[Any] = BasicS3Dict(
            bucket_name=new_bucket_name(), endpoint_url=proxy.url, root_prefix="p")
        d["k"] = 1
        d.transform_item("k", transformer=increment)  # probe the endpoint while healthy
        yield proxy, d


@pytest.mark.parametrize(
    ("mode", "code"),
    [("500", "InternalError"), ("403", "AccessDenied"), ("503", "SlowDown"), ("reset", None)],
)
def test_http_faults_then_recovery(
    proxied: tuple[FaultProxy, BasicS3Dict[Any]], mode: str, code: str | None
) -> None:
    proxy, d = proxied
    proxy.mode = mode
    for _, action in every_operation(d):
        before = proxy.requests
        err = expect_backend_error(action)
        if code is not None and "(HTTP" in str(err):
            assert code in str(err) or mode in str(err)
        sent = proxy.requests - before
        assert sent <= 3 * 4, "retries must be bounded"  # a few requests x 3 attempts
    proxy.mode = "forward"
    assert d["k"] == 2
    assert d.transform_item("k", transformer=increment).new_value == 3


def test_transient_500_is_retried(proxied: tuple[FaultProxy, BasicS3Dict[Any]]) -> None:
    proxy, d = proxied
    proxy.mode = "500"
    before = proxy.requests
    expect_backend_error(lambda: d["k"])
    assert proxy.requests - before == 3  # botocore "standard" mode: 3 attempts, then give up
    proxy.mode = "403"
    before = proxy.requests
    expect_backend_error(lambda: d["k"])
    assert proxy.requests - before == 1  # access denied is not retried



def test_transform_item_never_reports_success_without_writing(
    proxied: tuple[FaultProxy, BasicS3Dict[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, d = proxied
    calls: list[Any] = []

    def spy(v: Any) -> Any:
        calls.append(v)
        return v + 10

    # Let the read through, then break the endpoint before the conditional write.
    original = d._backend.write

    def write_after_outage(*args: Any, **kwargs: Any) -> Any:
        proxy.mode = "500"
        return original(*args, **kwargs)

    monkeypatch.setattr(d._backend, "write", write_after_outage)
    expect_backend_error(lambda: d.transform_item("k", transformer=spy))
    assert calls == [2]
    monkeypatch.undo()
    proxy.mode = "forward"
    assert d["k"] == 2  # unchanged: the failed write did not happen


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_lost_answer_is_not_applied_twice(
    proxied: tuple[FaultProxy, BasicS3Dict[Any]], method: str
) -> None:
    """The write lands, its answer is lost, botocore re-sends: one change, reported once."""
    proxy, d = proxied
    calls: list[Any] = []

    def counted(v: Any) -> Any:
        calls.append(v)
        return v + 1

    if method == "PUT":
        proxy.lose_answer_once = "PUT"
        result = d.transform_item("k", transformer=counted)
        assert calls == [2]
        assert result.new_value == 3
        assert d["k"] == 3
        assert result.resulting_etag == d.etag("k")
    else:
        # A 404 cannot tell our delete from someone else's: the honest answer is "unknown".
        proxy.lose_answer_once = "DELETE"
        with pytest.raises(OutcomeUnknownError) as info:
            d.pop("k")
        assert info.value.operation == "delete" and info.value.key == ("k",)
        assert "k" not in d
    assert proxy.lose_answer_once is None  # the fault did happen


def test_body_cut_off_mid_stream(proxied: tuple[FaultProxy, BasicS3Dict[Any]]) -> None:
    proxy, d = proxied
    d["big"] = list(range(20_000))
    proxy.truncate_gets = 1
    assert d["big"] == list(range(20_000))  # read again, transparently
    assert proxy.truncate_gets == 0
    proxy.truncate_gets = 100
    err = expect_backend_error(lambda: d["big"])
    assert err.operation == "read"
    proxy.truncate_gets = 0
    assert d["big"][-1] == 19_999


def test_probe_denied_assumes_an_enforcing_endpoint(
    aws_env: None, moto_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials that may not touch probe objects still get conditional operations."""
    with FaultProxy(moto_server) as proxy:
        d: BasicS3Dict[Any] = BasicS3Dict(
            bucket_name=new_bucket_name(), endpoint_url=proxy.url, root_prefix="np")
        proxy.mode = "403"
        proxy.fault_paths = "__persidict_probe_"
        r = d.setdefault_if("k", default_value=1, condition=ANY_ETAG,
                            expected_etag=ITEM_NOT_AVAILABLE)
        assert r.value_was_mutated
        assert d.transform_item("k", transformer=increment).new_value == 2
        assert "cannot probe" in caplog.text


def test_access_denied_on_bucket_check_is_ignored(
    aws_env: None, moto_server: str
) -> None:
    """403 on HEAD bucket (another account's bucket) does not stop construction."""
    bucket = new_bucket_name()
    make_client(moto_server).create_bucket(Bucket=bucket)
    with FaultProxy(moto_server) as proxy:
        proxy.mode = "403"
        d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=bucket, endpoint_url=proxy.url)
        proxy.mode = "forward"
        d["k"] = 1
        assert d["k"] == 1
    with FaultProxy(moto_server) as proxy:
        proxy.mode = "500"
        err = expect_backend_error(lambda: BasicS3Dict(bucket_name=bucket, endpoint_url=proxy.url))
        assert err.operation == "init"


def test_bucket_deleted_under_live_store(s3_target: S3Target) -> None:
    d: BasicS3Dict[Any] = s3_target.basic_store(root_prefix="gone")
    d["k"] = 1
    d.transform_item("k", transformer=increment)
    client = s3_target.client
    for key in s3_target.object_keys():
        client.delete_object(Bucket=s3_target.bucket, Key=key)
    client.delete_bucket(Bucket=s3_target.bucket)
    for name, action in [
        ("get", lambda: d["k"]),
        ("set", lambda: d.__setitem__("k", 5)),
        ("len", lambda: len(d)),
        ("keys", lambda: list(d.keys())),
        ("transform_item", lambda: d.transform_item("k", transformer=increment)),
        ("get_with_etag", lambda: d.get_with_etag("k")),
        ("clear", d.clear),
    ]:
        err = expect_backend_error(action)
        assert "NoSuchBucket" in str(err), name
    # A HEAD 404 has no body: the bucket is confirmed before "absent" is answered.
    for name, action in [
        ("in", lambda: "k" in d),
        ("etag", lambda: d.etag("k")),
        ("timestamp", lambda: d.timestamp("k")),
        ("del", lambda: d.__delitem__("k")),
        ("discard", lambda: d.discard("k")),
        ("sub-store in", lambda: "x" in d.get_subdict("s")),
    ]:
        err = expect_backend_error(action)
        assert "NoSuchBucket" in str(err), name
        assert err.key is not None, name
    client.create_bucket(Bucket=s3_target.bucket)
    assert "k" not in d
    d["k"] = 7
    assert d["k"] == 7


@pytest.mark.slow
def test_endpoint_that_never_answers(aws_env: None) -> None:
    """A peer that accepts connections but never responds: bounded by timeouts x attempts."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        from persidict.s3_backend import S3Backend

        backend = S3Backend(client=make_client(url), bucket="pd-x")
        err = expect_backend_error(lambda: backend.read(("k",)), bound=120.0)
        assert err.operation == "read"


def test_head_404_with_bucket_check_denied(aws_env: None, moto_server: str) -> None:
    """Credentials that may not HeadBucket (another account's bucket) still answer "absent"."""
    with FaultProxy(moto_server) as proxy:
        d: BasicS3Dict[Any] = BasicS3Dict(
            bucket_name=new_bucket_name(), endpoint_url=proxy.url, root_prefix="x")
        proxy.mode = "403"
        proxy.fault_if = lambda method, path: method == "HEAD" and path.count("/") == 1
        assert "missing" not in d
        before = proxy.requests
        assert "missing" not in d
        assert proxy.requests - before == 1  # never asked again
