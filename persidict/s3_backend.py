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

**Errors** are translated in one place, :func:`persidict.s3_client.translate` (with the client
and the capability probe below, in :mod:`persidict.s3_client`): not-found -> None/False,
precondition failed (412, or 409 ``ConditionalRequestConflict``) -> None/False, 304 ->
NOT_MODIFIED; everything else (no connection, timeouts, 5xx after botocore's bounded retries,
403, ``NoSuchBucket``, throttling) -> :class:`~persidict.errors.BackendError` chained from the
botocore error.

**Lost answers.** botocore never re-sends a conditional PUT or DELETE (a re-sent request that
did land fails against its own change, and a 412 or 404 then hides what happened). Instead
every conditional PUT carries a write id in its user metadata, and when an answer is lost one
HEAD settles it: ours, not landed (then sent again), or
:class:`~persidict.errors.OutcomeUnknownError`. See :mod:`persidict.s3_outcomes`. So
``transform_item``, ``pop``, ``setdefault_if``, ``discard_if`` and ``WriteOnceDict`` never
apply an operation twice and never report one that did not happen. Unconditional requests
keep botocore's bounded retries.

**Deleted buckets.** A HEAD answer has no body, so a deleted bucket's 404 looks like a missing
key's. Before a HEAD 404 is answered as "absent" the bucket is confirmed with one HeadBucket,
at most every ``BUCKET_CHECK_INTERVAL`` seconds per store family (a bucket deleted within that
window still reads as a missing key until the next check); a missing bucket is
``BackendError`` for ``in``, ``etag``, ``timestamp``, ``del`` and ``discard`` as for every
other operation.

**Timestamps** are S3's ``LastModified``, which has one-second resolution: ``newest_keys()``
cannot order writes made within the same second.

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

import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, Final

from .errors import BackendError
from .keys import unsign_component
from .markers import ItemNotAvailableFlag
from .s3_client import (
    BOTO3_MISSING_MESSAGE,
    MAX_ATTEMPTS,
    NOT_FOUND,
    NOT_FOUND_CODES,
    PRECONDITION_FAILED,
    READ_MANY_WORKERS,
    UNCHANGED,
    S3Capabilities,
    body_errors,
    botocore_errors,
    endpoint_capabilities,
    endpoint_of,
    forbid_conditional_retries,
    is_access_denied,
    make_s3_client,
    translate,
)
from .s3_client import _capabilities as _capabilities  # the per-endpoint cache (tests use it)
from .s3_outcomes import (
    WRITE_ID_META,
    Version,
    VersionLog,
    delete_exactly_once,
    put_exactly_once,
)
from .storage import NOT_MODIFIED, Backend, IfMatch, Key, NotModified, Stat

__all__ = [
    "BOTO3_MISSING_MESSAGE",
    "DELETE_BATCH",
    "S3Backend",
    "S3Capabilities",
    "content_type_for",
    "make_s3_client",
]

DELETE_BATCH: Final = 1000
MAX_OBJECT_KEY_BYTES: Final = 1024  # S3's limit on object key length
#: A HEAD 404 is confirmed with a HeadBucket at most this often (seconds) per store family.
BUCKET_CHECK_INTERVAL: Final = 2.0


class _BucketCheck:
    """When the bucket was last confirmed to exist (shared by a store and its sub-stores)."""

    __slots__ = ("confirmed_at",)

    def __init__(self) -> None:
        self.confirmed_at = -float("inf")


def content_type_for(serialization_format: str) -> str:
    """The ``ContentType`` 0.309 writes: json / pkl / text."""
    if serialization_format == "json":
        return "application/json"
    if serialization_format == "pkl":
        return "application/octet-stream"
    return "text/plain"


class S3Backend(Backend):
    """Payload bytes in one bucket under one root prefix (see the module docstring)."""

    name: ClassVar[str] = "s3"
    atomic_conditional_writes: ClassVar[bool] = True
    atomic_insert: ClassVar[bool] = True
    insert_before_stat: ClassVar[bool] = True  # a PUT with If-None-Match, no HEAD first

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
        self._errors = botocore_errors()
        self._body_errors = body_errors()
        self._endpoint = endpoint_of(client)
        self.versions = VersionLog()  # shared with sub-stores (child() copies the reference)
        self._bucket_check = _BucketCheck()
        forbid_conditional_retries(client)

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
        return translate(
            exc, operation=operation, key=key, where=self._where(key), expected=frozenset(expected)
        )

    # -- primitives -----------------------------------------------------------------------

    def stat(self, key: Key) -> Stat | None:
        version = self.head_version(key)
        return None if version is None else Stat(version.etag, version.modified)

    def head_version(self, key: Key, operation: str = "stat") -> Version | None:
        """HEAD: the object's current version (None if absent), noted in :attr:`versions`."""
        object_key = self.object_key(key)
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=object_key)
        except self._errors as exc:
            self._fail(exc, operation, key, NOT_FOUND)
            self._confirm_bucket(exc, operation, key)
            return None
        version = Version.of(resp)
        self.versions.note(object_key, version)
        return version

    def _confirm_bucket(self, not_found: BaseException, operation: str, key: Key) -> None:
        """A HEAD 404 has no body, so a deleted bucket looks like a missing key: confirm the
        bucket (one HeadBucket, at most every BUCKET_CHECK_INTERVAL seconds) before answering
        "absent"."""
        check = self._bucket_check
        now = time.monotonic()
        if now - check.confirmed_at < BUCKET_CHECK_INTERVAL:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors as exc:
            if is_access_denied(exc):  # another account's bucket: it exists, as far as we know
                check.confirmed_at = float("inf")
                return
            kind = self._fail(exc, operation, key, NOT_FOUND)  # other failures: BackendError
            assert kind == NOT_FOUND
            raise BackendError(
                f"S3 {operation} failed for {self._where(key)}: NoSuchBucket: the bucket "
                f"{self.bucket!r} does not exist (any more)", backend="s3", operation=operation,
                key=key) from not_found
        check.confirmed_at = now

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
                kind = self._fail(exc, "read", key, NOT_FOUND, UNCHANGED)
                return NOT_MODIFIED if kind == UNCHANGED else None
            version = Version.of(resp)
            self.versions.note(kwargs["Key"], version)
            return body, Stat(etag, version.modified)
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
            return put_exactly_once(self, key, kwargs, None)
        if if_match is not None:
            kwargs["IfMatch"] = if_match
            return put_exactly_once(self, key, kwargs, if_match)
        kwargs["Metadata"] = {WRITE_ID_META: uuid.uuid4().hex}  # tells this version apart
        try:
            resp = self.client.put_object(**kwargs)
        except self._errors as exc:
            self._fail(exc, "write", key)
        return Stat(resp["ETag"], time.time())

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
        if if_match is not None:
            return delete_exactly_once(self, key, if_match)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except self._errors as exc:
            self._fail(exc, "delete", key, NOT_FOUND, PRECONDITION_FAILED)
            return False
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
        errors = [e for e in resp.get("Errors", []) if e.get("Code") not in NOT_FOUND_CODES]
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
        return endpoint_capabilities(self.client, self.bucket, self.root_prefix)
