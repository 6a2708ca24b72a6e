"""S3 test support: moto's in-process mock, moto's real HTTP server, and a fault-injecting proxy.

Fixtures (import them into ``tests/conftest.py``):

* ``aws_env``: dummy credentials and region in the environment, no endpoint override;
* ``moto_server``: one ``ThreadedMotoServer`` on ``127.0.0.1:<free port>`` for the session;
  its endpoint URL is the fixture value;
* ``s3_mock`` / ``s3_http``: an :class:`S3Target` (a client and a fresh, empty bucket) on the
  in-process mock / on the moto server; ``target.basic_store(...)`` and
  ``target.cached_store(...)`` build stores in that bucket sharing the target's client;
* ``s3_target``: parametrised ``"mock"`` / ``"server"`` over the two above.

moto keeps its state per process, shared by ``mock_aws`` and the threaded server, and
``mock_aws`` resets it when it starts, so every test uses its own bucket.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [  # what `from tests.s3_support import *` in tests/conftest.py brings in
    "FaultProxy",
    "S3Target",
    "aws_env",
    "free_port",
    "make_client",
    "make_session",
    "moto_server",
    "new_bucket_name",
    "s3_http",
    "s3_mock",
    "s3_target",
    "start_moto_server",
]

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
REGION = "us-east-1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def new_bucket_name() -> str:
    """A unique, valid bucket name."""
    return f"pd-{uuid.uuid4().hex[:20]}"


_SESSION: list[Any] = []


def make_session() -> Any:
    """A boto3 session with dummy credentials (no environment needed), one per process.

    Building a session loads botocore's models again (about half a second); clients made
    from a warm session take milliseconds.
    """
    if not _SESSION:
        import boto3

        _SESSION.append(boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ))
    return _SESSION[0]


def make_client(endpoint_url: str | None = None) -> Any:
    """A client built the way persidict builds its own (timeouts, bounded retries)."""
    from persidict.s3_backend import make_s3_client

    return make_s3_client(region=REGION, endpoint_url=endpoint_url, session=make_session())


_MOTO_OBJECT_LOCK = threading.RLock()


def make_moto_object_requests_atomic() -> None:
    """Serialise moto's handling of object requests, as S3 itself behaves.

    moto checks ``If-Match`` / ``If-None-Match`` and then writes, with no lock in between, so two
    threads of its server (or of the in-process mock) can both pass the same precondition; real
    S3 decides each conditional request atomically. The concurrency tests test *our* use of
    conditional requests, so they need a server with S3's semantics. Idempotent.
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response, "_persidict_atomic", False):
        return
    for name in ("key_response", "bucket_response"):
        original = getattr(S3Response, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _MOTO_OBJECT_LOCK:
                return __original(self, *args, **kwargs)

        setattr(S3Response, name, locked)
    S3Response._persidict_atomic = True  # type: ignore[attr-defined]


def start_moto_server(port: int | None = None) -> tuple[Any, str]:
    """Start a ThreadedMotoServer on 127.0.0.1; returns (server, endpoint_url)."""
    from moto.server import ThreadedMotoServer

    make_moto_object_requests_atomic()
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials; no endpoint or profile from the developer's machine leaks in."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto server (real HTTP on 127.0.0.1) shared by the session."""
    server, url = start_moto_server()
    try:
        yield url
    finally:
        server.stop()


@dataclass
class S3Target:
    """Where an S3 test runs: a client, a fresh bucket and (for the server) its endpoint."""

    kind: str  # "mock" or "server"
    client: Any
    bucket: str
    endpoint_url: str | None

    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for BasicS3Dict pointing at this target (sharing the client)."""
        return {"bucket_name": self.bucket, "client": self.client}

    def basic_store(self, **params: Any) -> Any:
        """A BasicS3Dict in this bucket (``root_prefix`` and the common params as given)."""
        from persidict.basic_s3_dict import BasicS3Dict

        return BasicS3Dict(**self.store_kwargs(), **params)

    def cached_store(self, **params: Any) -> Any:
        """An S3Dict (BasicS3Dict + local file cache) in this bucket; pass ``base_dir``."""
        from persidict import S3Dict

        return S3Dict(**self.store_kwargs(), **params)

    def object_keys(self) -> list[str]:
        """Every object key in the bucket (a side door: raw listing)."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def get_object(self, key: str) -> dict[str, Any]:
        """The raw GetObject response with the body read into ``"Data"``."""
        resp: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=key)
        resp["Data"] = resp["Body"].read()
        return resp


@pytest.fixture
def s3_mock(aws_env: None) -> Iterator[S3Target]:
    """An empty bucket on moto's in-process mock."""
    from moto import mock_aws

    make_moto_object_requests_atomic()

    with mock_aws():
        client = make_client()
        bucket = new_bucket_name()
        client.create_bucket(Bucket=bucket)
        yield S3Target("mock", client, bucket, None)


@pytest.fixture
def s3_http(aws_env: None, moto_server: str) -> S3Target:
    """An empty bucket on the session's moto server, over real HTTP."""
    client = make_client(moto_server)
    bucket = new_bucket_name()
    client.create_bucket(Bucket=bucket)
    return S3Target("server", client, bucket, moto_server)


@pytest.fixture(params=["mock", "server"])
def s3_target(request: pytest.FixtureRequest) -> S3Target:
    """An empty bucket on moto's in-process mock, then on the moto HTTP server."""
    name = "s3_mock" if request.param == "mock" else "s3_http"
    target: S3Target = request.getfixturevalue(name)
    return target


# --------------------------------------------------------------------------------------------
# A real HTTP peer that forwards to moto or misbehaves on demand
# --------------------------------------------------------------------------------------------

_S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
)


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of an upstream S3 endpoint.

    ``mode``: ``"forward"`` (pass through), ``"500"`` (InternalError), ``"403"``
    (AccessDenied), ``"503"`` (SlowDown throttling) or ``"reset"`` (TCP reset without an
    answer). ``requests`` counts the requests received. ``lose_answer_once`` = an HTTP method:
    the next such request is forwarded, done by moto, and then its answer is lost (reset).
    ``drop_request_once`` = an HTTP method: the next such request is never forwarded (reset).
    ``on_fault``: called once, in the proxy, right after one of those two faults and before the
    client sees the reset (a second client acts "while the answer is lost"). ``fault_rate``:
    each request is, with that probability (from ``rng``), dropped or has its answer lost,
    half and half; ``faults`` counts the faults injected. ``fault_delay``: seconds the client
    waits before it sees such a fault (as a real timeout makes it wait; others act meanwhile).
    """

    def __init__(self, upstream: str) -> None:
        host_port = upstream.split("://", 1)[1].rstrip("/")
        host, port = host_port.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.mode = "forward"
        self.lose_answer_once: str | None = None
        self.truncate_gets = 0  # cut off the body of this many GET answers half-way
        self.fault_paths: str | None = None  # if set, faults apply only to paths containing it
        self.fault_if: Callable[[str, str], bool] | None = None  # (method, path) -> fault it?
        self.requests = 0
        self.drop_request_once: str | None = None
        self.on_fault: Callable[[], Any] | None = None
        self.fault_rate = 0.0
        self.rng = random.Random(0)
        self.faults = 0
        self.fault_delay = 0.0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                with proxy._lock:
                    proxy.requests += 1
                    mode = proxy.mode
                    if proxy.fault_paths is not None and proxy.fault_paths not in self.path:
                        mode = "forward"
                    if proxy.fault_if is not None and not proxy.fault_if(self.command, self.path):
                        mode = "forward"
                    lose = proxy.lose_answer_once == self.command
                    if lose:
                        proxy.lose_answer_once = None
                    drop = proxy.drop_request_once == self.command
                    if drop:
                        proxy.drop_request_once = None
                    if (proxy.fault_rate and mode == "forward" and not (lose or drop)
                            and proxy.rng.random() < proxy.fault_rate):
                        drop = proxy.rng.random() < 0.5
                        lose = not drop
                    hook = None
                    if lose or drop:
                        proxy.faults += 1
                        hook, proxy.on_fault = proxy.on_fault, None
                    truncate = self.command == "GET" and proxy.truncate_gets > 0
                    if truncate:
                        proxy.truncate_gets -= 1
                body = self._body()
                if lose:
                    self._forward(body, answer=False)
                if lose or drop:
                    if hook is not None:
                        hook()
                    if proxy.fault_delay:
                        time.sleep(proxy.fault_delay)
                    mode = "reset"
                if mode == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if mode in ("500", "403", "503"):
                    code, message = {
                        "500": ("InternalError", "We encountered an internal error."),
                        "403": ("AccessDenied", "Access Denied"),
                        "503": ("SlowDown", "Please reduce your request rate."),
                    }[mode]
                    payload = _S3_ERROR.format(code=code, message=message).encode()
                    self.send_response(int(mode))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                self._forward(body, truncate=truncate)

            def _forward(self, body: bytes, answer: bool = True, truncate: bool = False) -> None:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"
                    }
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if not answer:
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                         "server", "date"):
                        self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header(
                        "Content-Length", resp.getheader("Content-Length") or str(len(data))
                    )
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if truncate and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class S3Calls:
    """The S3 API calls a boto3 client makes, by operation name (botocore's ``before-call``).

    ``this_thread_only`` keeps the calls of the thread that created the recorder (a caller's
    critical path, not a housekeeping thread's); operations named in ``skip`` are left out.
    """

    def __init__(
        self, client: Any, *, this_thread_only: bool = False, skip: frozenset[str] = frozenset()
    ) -> None:
        self.names: list[str] = []
        self._client = client
        self._thread = threading.get_ident() if this_thread_only else None
        self._skip = skip
        client.meta.events.register("before-call.s3.*", self._on_call)

    def _on_call(self, model: Any, **_: Any) -> None:
        if self._thread in (None, threading.get_ident()) and model.name not in self._skip:
            self.names.append(model.name)

    def of(self, action: Callable[[], Any]) -> list[str]:
        """The calls ``action()`` makes."""
        self.names.clear()
        action()
        return list(self.names)

    def close(self) -> None:
        self._client.meta.events.unregister("before-call.s3.*", self._on_call)
