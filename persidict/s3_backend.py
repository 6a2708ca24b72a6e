"""The S3 backend: bytes under ``s3://bucket/root_prefix`` through one shared boto3 client.

Object layout (byte-compatible with persidict 0.309)::

    object key = root_prefix + "/".join(key components) + "." + serialization_format

``root_prefix`` is empty or ends with ``/``; components are never digest-signed. ETags are the
S3 ``ETag`` response fields exactly as returned, double quotes included.

Requests per primitive (one each except the unconditional delete; nothing is fetched "just in
case"):

============================  =============================================================
``stat`` / ``exists``         HEAD
``read``                      GET (``If-None-Match: <etag>`` when asked; 304 -> NOT_MODIFIED)
``write``                     PUT (``If-Match: <etag>`` / ``If-None-Match: *`` when asked)
``delete``                    DELETE ``If-Match: <etag>`` (unconditional: HEAD first, below)
``remove``                    DELETE (no answer needed)
``scan`` / ``count``          ListObjectsV2 pages only (1,000 keys a request)
``clear``                     ListObjectsV2 + DeleteObjects per 1,000 objects
``read_many``                 GETs on a bounded thread pool
============================  =============================================================

**Unconditional delete.** S3 answers ``DELETE`` of a missing key with 204, exactly as for a key
that existed, so one unconditional DELETE cannot say whether anything was removed, while the
:class:`~persidict.storage.Backend` contract (``del d[k]`` raising ``KeyError``, ``discard``
returning a bool) needs that answer. ``delete(key)`` therefore sends HEAD, then
``DELETE If-Match: <that etag>``: two requests for an existing key (one for a missing key), and
the pair is atomic, so of two racing ``del d[k]`` exactly one succeeds. A DELETE with
``If-Match`` of a missing key is a 404, so conditional deletes report existence in a single
request. Callers that do not need the answer (``d[k] = DELETE_CURRENT``) use
:meth:`S3Backend.remove`: one DELETE, nothing else.

**Errors** are translated in one place, :func:`_translate`: not-found -> None/False,
precondition failed (412, or 409 ``ConditionalRequestConflict``) -> None/False, 304 ->
NOT_MODIFIED; everything else (no connection, timeouts, 5xx after botocore's bounded retries,
403, ``NoSuchBucket``, throttling) -> :class:`~persidict.errors.BackendError` chained from the
botocore error. HEAD responses carry no body, so a HEAD cannot tell a deleted bucket from a
missing key: ``stat``/``exists`` report such a bucket as "absent"; every other primitive raises
``BackendError`` for it.

**Lost answers.** botocore re-sends a request whose answer was lost (a reset connection). For a
conditional request whose first attempt did land, the re-sent one fails against our own
change: a PUT gets 412, a DELETE gets 404. So a precondition failure seen only after a retry is
checked: a PUT landed if the stored ETag is the MD5 of our body (one HEAD); a DELETE with
``If-Match`` that ends in 404 after a retry counts as done. Without this, ``transform_item``
could apply a transformer twice.

**Capabilities.** Conditional PUT/DELETE are checked once per endpoint URL (not per class, not
per instance) the first time a conditional write or delete is made: a probe object
``<root_prefix>__persidict_probe_<random>__`` (no format extension, so never listed as an item)
is written and then written/deleted with deliberately wrong preconditions (five requests, once
per endpoint and process). An endpoint that enforces them (verified here: moto 5.2.5, in-process
and as a server) gets single-request atomic operations. For an
endpoint that ignores a precondition header the documented fallback is check-then-act
(HEAD, compare, then act) and a warning is logged once per endpoint: such stores lose the
atomicity guarantee, never silently. Credentials that may not write or delete the probe object
(403) make the backend assume an enforcing endpoint, with a logged warning.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from .errors import BackendError
from .keys import unsign_component
from .markers import ItemNotAvailableFlag
from .storage import NOT_MODIFIED, Backend, IfMatch, Key, NotModified, Stat

__all__ = [
    "BOTO3_MISSING_MESSAGE",
    "S3Backend",
    "S3Capabilities",
    "content_type_for",
    "make_s3_client",
]

_log = logging.getLogger(__name__)

BOTO3_MISSING_MESSAGE: Final = 'S3 stores need boto3: pip install "persidict[aws]"'

#: botocore settings for clients persidict creates: bounded retries of transient failures and
#: bounded waits, so an unreachable endpoint gives BackendError in seconds rather than hanging.
CONNECT_TIMEOUT: Final = 3.0
READ_TIMEOUT: Final = 10.0
MAX_ATTEMPTS: Final = 3  # in total, the first attempt included
READ_MANY_WORKERS: Final = 8
DELETE_BATCH: Final = 1000
MAX_OBJECT_KEY_BYTES: Final = 1024  # S3's limit on object key length

_NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION_CODES: Final = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
_NOT_MODIFIED_CODES: Final = frozenset({"304", "NotModified"})


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - exercised only without the aws extra
        raise ImportError(BOTO3_MISSING_MESSAGE) from exc
    return boto3


_session_lock = threading.Lock()
_shared_session: Any = None


def make_s3_client(
    *, region: str | None = None, endpoint_url: str | None = None, session: Any = None
) -> Any:
    """A boto3 S3 client with persidict's timeouts and retry policy.

    ``endpoint_url=None`` lets boto3 apply its own configuration (including the standard
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` environment variables). Without a
    ``session``, clients come from one process-wide boto3 session: building a session loads
    the service models again (about half a second), a client from a warm session takes
    milliseconds. Client creation is serialised, as botocore sessions are not thread-safe.
    """
    global _shared_session
    boto3 = _import_boto3()
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=max(10, READ_MANY_WORKERS * 2),
    )
    with _session_lock:
        if session is None:
            if _shared_session is None:
                _shared_session = boto3.session.Session()
            session = _shared_session
        return session.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


def content_type_for(serialization_format: str) -> str:
    """The ``ContentType`` 0.309 writes: json / pkl / text."""
    if serialization_format == "json":
        return "application/json"
    if serialization_format == "pkl":
        return "application/octet-stream"
    return "text/plain"


# --------------------------------------------------------------------------------------------
# The one error table
# --------------------------------------------------------------------------------------------

_NOT_FOUND: Final = "not-found"
_PRECONDITION: Final = "precondition-failed"
_NOT_MODIFIED: Final = "not-modified"


def _classify_client_error(exc: Any) -> str | None:
    """not-found / precondition-failed / not-modified, or None for a real failure."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    code = str(error.get("Code", ""))
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return None
    if code in _NOT_FOUND_CODES or (status == 404 and code in ("", "NoSuchVersion")):
        return _NOT_FOUND
    if code in _PRECONDITION_CODES or status == 412:
        return _PRECONDITION
    if code in _NOT_MODIFIED_CODES or status == 304:
        return _NOT_MODIFIED
    return None


def _retry_attempts(exc: BaseException) -> int:
    """How many times botocore re-sent the request before this answer (0 if unknown)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int((response.get("ResponseMetadata") or {}).get("RetryAttempts") or 0)


def _is_access_denied(exc: BaseException | None) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str((response.get("Error") or {}).get("Code", ""))
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code in ("AccessDenied", "403", "Forbidden") or status == 403


def _describe_error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return f"{error.get('Code', '?')} (HTTP {status}): {error.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


def _translate(
    exc: BaseException, *, operation: str, key: Key | None, where: str, expected: frozenset[str]
) -> str:
    """Map a botocore exception to an expected outcome, or raise BackendError from it.

    ``expected`` lists the outcomes the caller turns into return values; anything else —
    including a not-found where none is expected — is an infrastructure failure.
    """
    kind = None
    if hasattr(exc, "response"):
        kind = _classify_client_error(exc)
    if kind is not None and kind in expected:
        return kind
    raise BackendError(
        f"S3 {operation} failed for {where}: {_describe_error(exc)}",
        backend="s3",
        operation=operation,
        key=key,
    ) from exc


# --------------------------------------------------------------------------------------------
# Capabilities, per endpoint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Capabilities:
    """Which preconditions an endpoint enforces (checked once per endpoint URL)."""

    put_if_none_match_star: bool
    put_if_match: bool
    delete_if_match: bool


_capabilities: dict[str, S3Capabilities] = {}
_capabilities_lock = threading.Lock()


def _endpoint_of(client: Any) -> str:
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")


def _botocore_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def _body_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import IncompleteReadError, ResponseStreamingError

    return (IncompleteReadError, ResponseStreamingError)


class S3Backend(Backend):
    """Payload bytes in one bucket under one root prefix (see the module docstring)."""

    name: ClassVar[str] = "s3"
    atomic_conditional_writes: ClassVar[bool] = True
    atomic_insert: ClassVar[bool] = True

    def __init__(
        self,
        *,
        client: Any,
        bucket: str,
        root_prefix: str = "",
        serialization_format: str = "pkl",
        content_type: str | None = None,
    ) -> None:
        if root_prefix and not root_prefix.endswith("/"):
            root_prefix += "/"
        self.client = client
        self.bucket = bucket
        self.root_prefix = root_prefix
        self.extension = serialization_format
        self._suffix = "." + serialization_format
        self.content_type = content_type or content_type_for(serialization_format)
        self._errors = _botocore_errors()
        self._body_errors = _body_errors()
        self._endpoint = _endpoint_of(client)

    # -- structure ------------------------------------------------------------------------

    def child(self, prefix: Iterable[str]) -> S3Backend:
        """The backend of a sub-store: same client and bucket, a longer prefix, no request."""
        parts = list(prefix)
        new = object.__new__(S3Backend)
        new.__dict__.update(self.__dict__)
        if parts:
            new.root_prefix = self.root_prefix + "/".join(parts) + "/"
        return new

    def object_key(self, key: Key) -> str:
        """The S3 object key of a store key."""
        return self.root_prefix + "/".join(key) + self._suffix

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.root_prefix}"

    def _where(self, key: Key | None) -> str:
        if key is None:
            return self.describe()
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def _fail(
        self, exc: BaseException, operation: str, key: Key | None, *expected: str
    ) -> str:
        return _translate(
            exc, operation=operation, key=key, where=self._where(key), expected=frozenset(expected)
        )

    # -- primitives -----------------------------------------------------------------------

    def stat(self, key: Key) -> Stat | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except self._errors as exc:
            self._fail(exc, "stat", key, _NOT_FOUND)
            return None
        return Stat(resp["ETag"], resp["LastModified"].timestamp())

    def exists(self, key: Key) -> bool:
        return self.stat(key) is not None

    def read(
        self, key: Key, *, if_none_match: str | None = None
    ) -> tuple[bytes, Stat] | NotModified | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_key(key)}
        if if_none_match is not None:
            kwargs["IfNoneMatch"] = if_none_match
        for attempt in range(MAX_ATTEMPTS):
            try:
                resp = self.client.get_object(**kwargs)
                etag = resp["ETag"]
                if if_none_match is not None and etag == if_none_match:
                    resp["Body"].close()  # an endpoint that ignored If-None-Match
                    return NOT_MODIFIED
                body = resp["Body"].read()
            except self._body_errors as exc:
                # botocore retries requests, not the reading of a body cut off mid-stream.
                if attempt + 1 >= MAX_ATTEMPTS:
                    self._fail(exc, "read", key)  # raises BackendError
                continue
            except self._errors as exc:
                kind = self._fail(exc, "read", key, _NOT_FOUND, _NOT_MODIFIED)
                return NOT_MODIFIED if kind == _NOT_MODIFIED else None
            return body, Stat(etag, resp["LastModified"].timestamp())
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, key: Key, payload: Any, *, if_match: IfMatch = None) -> Stat | None:
        if if_match is not None:
            caps = self.capabilities()
            if isinstance(if_match, ItemNotAvailableFlag):
                if not caps.put_if_none_match_star:
                    return self._write_check_then_act(key, payload, if_match)
            elif not caps.put_if_match:
                return self._write_check_then_act(key, payload, if_match)
        return self._put(key, payload, if_match)

    def _put(self, key: Key, payload: Any, if_match: IfMatch) -> Stat | None:
        object_key = self.object_key(key)
        if len(object_key) > MAX_OBJECT_KEY_BYTES:  # safe characters are ASCII: chars == bytes
            raise ValueError(
                f"key {key!r} is too long for S3: its object key {object_key[:60]!r}... has "
                f"{len(object_key)} bytes, the limit is {MAX_OBJECT_KEY_BYTES}"
            )
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": object_key,
            "Body": payload,
            "ContentType": self.content_type,
        }
        if isinstance(if_match, ItemNotAvailableFlag):
            kwargs["IfNoneMatch"] = "*"
        elif if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            resp = self.client.put_object(**kwargs)
        except self._errors as exc:
            # If-Match on a missing key is a 404 (NoSuchKey): the precondition did not hold.
            expected = (_PRECONDITION,) if if_match is None else (_PRECONDITION, _NOT_FOUND)
            self._fail(exc, "write", key, *expected)
            if _retry_attempts(exc) > 0:
                return self._landed_after_retry(key, payload)
            return None
        return Stat(resp["ETag"], time.time())

    def _landed_after_retry(self, key: Key, payload: Any) -> Stat | None:
        """A conditional PUT failed only on a retry: did an earlier attempt land?

        When the answer to a successful PUT is lost (connection reset), botocore sends the PUT
        again and the same precondition now fails against our own write. A single-part PUT's
        ETag is the MD5 of its body, so a HEAD tells whether the stored object is ours.
        """
        current = self.stat(key)
        if (
            current is not None
            and isinstance(payload, (bytes, bytearray, memoryview))
            and current.etag == '"' + hashlib.md5(payload).hexdigest() + '"'
        ):
            return current
        return None

    def delete(self, key: Key, *, if_match: str | None = None) -> bool:
        if if_match is None:
            return self._delete_existing(key)
        if not self.capabilities().delete_if_match:
            current = self.stat(key)
            if current is None or current.etag != if_match:
                return False
            if_match = None
        return self._delete(key, if_match)

    def _delete_existing(self, key: Key) -> bool:
        """Unconditional delete that knows whether the key existed: HEAD + DELETE If-Match."""
        current = self.stat(key)
        if current is None:
            return False
        if not self.capabilities().delete_if_match:
            return self._delete(key, None)
        if self._delete(key, current.etag):
            return True
        # 404: someone else deleted it first. 412: rewritten meanwhile, so it still exists.
        return self._delete(key, None) if self.stat(key) is not None else False

    def remove(self, key: Key) -> None:
        """Make sure ``key`` is absent: one DELETE, without finding out whether it existed."""
        self._delete(key, None)

    def _delete(self, key: Key, if_match: str | None) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_key(key)}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            self.client.delete_object(**kwargs)
        except self._errors as exc:
            kind = self._fail(exc, "delete", key, _NOT_FOUND, _PRECONDITION)
            # A 404 that only a retry saw: the first attempt deleted it, its answer was lost.
            return kind == _NOT_FOUND and if_match is not None and _retry_attempts(exc) > 0
        return True

    def _write_check_then_act(self, key: Key, payload: Any, if_match: IfMatch) -> Stat | None:
        """Documented fallback for endpoints that ignore preconditions on PUT (not atomic)."""
        current = self.stat(key)
        if isinstance(if_match, ItemNotAvailableFlag):
            if current is not None:
                return None
        elif current is None or current.etag != if_match:
            return None
        return self._put(key, payload, None)

    # -- listing --------------------------------------------------------------------------

    def _parse(self, object_key: str) -> Key | None:
        """The store key of an object key, or None for objects that are not items here."""
        if not object_key.startswith(self.root_prefix) or not object_key.endswith(self._suffix):
            return None
        stem = object_key[len(self.root_prefix) : len(object_key) - len(self._suffix)]
        if not stem:
            return None
        parts = tuple(stem.split("/"))
        for part in parts:
            if unsign_component(part, 0) is None:
                return None
        return parts

    def _pages(self, operation: str) -> Iterator[list[dict[str, Any]]]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root_prefix):
                yield page.get("Contents", [])
        except self._errors as exc:
            self._fail(exc, operation, None)

    def scan(self, *, with_stat: bool = False) -> Iterator[tuple[Key, Stat | None]]:
        for contents in self._pages("list"):
            for obj in contents:
                key = self._parse(obj["Key"])
                if key is None:
                    continue
                if with_stat:
                    yield key, Stat(obj["ETag"], obj["LastModified"].timestamp())
                else:
                    yield key, None

    def count(self) -> int:
        n = 0
        for contents in self._pages("count"):
            for obj in contents:
                if self._parse(obj["Key"]) is not None:
                    n += 1
        return n

    def clear(self) -> None:
        """Delete every item of this store: one listing page + one DeleteObjects per 1,000."""
        for contents in self._pages("clear"):
            batch = [{"Key": obj["Key"]} for obj in contents if self._parse(obj["Key"]) is not None]
            for start in range(0, len(batch), DELETE_BATCH):
                self._delete_batch(batch[start : start + DELETE_BATCH])

    def _delete_batch(self, objects: list[dict[str, str]]) -> None:
        try:
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except self._errors as exc:
            self._fail(exc, "clear", None)
            return
        errors = [e for e in resp.get("Errors", []) if e.get("Code") not in _NOT_FOUND_CODES]
        if errors:
            first = errors[0]
            raise BackendError(
                f"S3 clear failed for {len(errors)} object(s) in {self.describe()}, e.g. "
                f"{first.get('Key')!r}: {first.get('Code')}: {first.get('Message')}",
                backend="s3",
                operation="clear",
            )

    def read_many(self, keys: Iterable[Key]) -> Iterator[tuple[Key, Any, Stat]]:
        """GETs on a bounded pool (8 threads, at most 32 in flight); vanished items skipped."""
        window = READ_MANY_WORKERS * 4
        with ThreadPoolExecutor(max_workers=READ_MANY_WORKERS) as pool:
            pending: list[tuple[Key, Future[Any]]] = []
            try:
                for key in keys:
                    pending.append((key, pool.submit(self.read, key)))
                    if len(pending) >= window:
                        yield from self._drain(pending[: window // 2])
                        del pending[: window // 2]
                yield from self._drain(pending)
                pending = []
            finally:
                for _, fut in pending:
                    fut.cancel()

    @staticmethod
    def _drain(batch: list[tuple[Key, Future[Any]]]) -> Iterator[tuple[Key, Any, Stat]]:
        for key, fut in batch:
            got = fut.result()
            if got is not None and not isinstance(got, NotModified):
                yield key, got[0], got[1]

    # -- capabilities ---------------------------------------------------------------------

    def capabilities(self) -> S3Capabilities:
        """Which preconditions this endpoint enforces; probed once per endpoint URL."""
        caps = _capabilities.get(self._endpoint)
        if caps is not None:
            return caps
        with _capabilities_lock:
            caps = _capabilities.get(self._endpoint)
            if caps is None:
                try:
                    caps = self._probe()
                except BackendError as exc:
                    if not _is_access_denied(exc.__cause__):
                        raise  # the endpoint is unreachable: so is the operation; probe later
                    # Credentials that may not write/delete probe objects (a narrow policy):
                    # trust the endpoint, as every current S3 implementation enforces them.
                    _log.warning(
                        "cannot probe S3 endpoint %s for conditional requests (%s); assuming "
                        "it enforces If-Match / If-None-Match", self._endpoint or "<default>", exc,
                    )
                    caps = S3Capabilities(True, True, True)
                _capabilities[self._endpoint] = caps
                if not (caps.put_if_none_match_star and caps.put_if_match and caps.delete_if_match):
                    _log.warning(
                        "S3 endpoint %s does not enforce every precondition (%s); persidict "
                        "falls back to check-then-act for those operations, which is not atomic",
                        self._endpoint or "<default>",
                        caps,
                    )
        return caps

    def _probe(self) -> S3Capabilities:
        probe_key = f"{self.root_prefix}__persidict_probe_{uuid.uuid4().hex}__"
        bucket = self.bucket

        def attempt(call: Callable[[], Any]) -> bool:
            """True when the endpoint refused the request with a precondition failure."""
            try:
                call()
            except self._errors as exc:
                kind = _translate(
                    exc, operation="probe", key=None, where=f"s3://{bucket}/{probe_key}",
                    expected=frozenset({_PRECONDITION, _NOT_FOUND}),
                )
                return kind == _PRECONDITION
            return False

        client = self.client
        try:
            try:
                client.put_object(Bucket=bucket, Key=probe_key, Body=b"probe")
            except self._errors as exc:
                self._fail(exc, "probe", None)
            star = attempt(lambda: client.put_object(
                Bucket=bucket, Key=probe_key, Body=b"probe2", IfNoneMatch="*"))
            match = attempt(lambda: client.put_object(
                Bucket=bucket, Key=probe_key, Body=b"probe3", IfMatch='"__wrong_etag__"'))
            delete = attempt(lambda: client.delete_object(
                Bucket=bucket, Key=probe_key, IfMatch='"__wrong_etag__"'))
        finally:
            try:
                client.delete_object(Bucket=bucket, Key=probe_key)
            except self._errors:
                pass  # best effort; a leftover probe object is never listed as an item
        return S3Capabilities(star, match, delete)
