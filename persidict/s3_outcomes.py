"""S3 conditional requests applied exactly once, or reported as unknown.

A conditional PUT or DELETE whose answer is lost (a reset connection, a timeout, a 5xx) may or
may not have been applied, and neither a re-sent request nor the object's ETag can say which:

* re-sent, a request that did land fails against its own change (a PUT gets 412, a DELETE
  404), indistinguishable from losing a race;
* an ETag is the MD5 of the body, so another writer's identical bytes look like ours, and a
  missing key looks the same whoever deleted it.

So botocore never re-sends a conditional request (:func:`~persidict.s3_client.
forbid_conditional_retries`), every conditional PUT carries a fresh write id in the object's
user metadata (``x-amz-meta-persidict-write-id``), and when an answer is lost one HEAD decides:

========================================  ==================================================
after a lost answer, the object ...       the outcome
========================================  ==================================================
carries our write id                      our PUT landed: success
still satisfies our precondition          ours did not land (yet): sent again, same write id
(PUT: same ETag or still absent; DELETE:  (of two copies at most one can apply)
the very version we meant to delete)
anything else                             :class:`~persidict.errors.OutcomeUnknownError`
========================================  ==================================================

A precondition failure seen after a lost answer is settled the same way (ours, or unknown). A
request that certainly never left (no connection could be made) is simply sent again. The
version a DELETE means is identified by ETag, write id and ``LastModified`` as this process
last saw them (:class:`VersionLog`); without such a record the outcome is reported unknown
rather than guessed.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn

from .errors import BackendError, OutcomeUnknownError
from .s3_client import (
    MAX_ATTEMPTS,
    NOT_FOUND,
    PRECONDITION_FAILED,
    is_unsent,
    may_have_landed,
)
from .storage import Key, Stat

if TYPE_CHECKING:
    from .s3_backend import S3Backend

__all__ = ["WRITE_ID_META", "Version", "VersionLog", "delete_exactly_once", "put_exactly_once"]

#: The user-metadata name of the write id (sent as ``x-amz-meta-persidict-write-id``).
WRITE_ID_META: Final = "persidict-write-id"
_LOG_LIMIT: Final = 4096  # versions remembered per store family before the log starts afresh


class Version(NamedTuple):
    """One stored version of an object, as a HEAD or GET describes it."""

    etag: str
    write_id: str | None
    modified: float

    @classmethod
    def of(cls, resp: dict[str, Any]) -> Version:
        """The version a HeadObject / GetObject response describes."""
        meta = resp.get("Metadata") or {}
        return cls(resp["ETag"], meta.get(WRITE_ID_META), resp["LastModified"].timestamp())


class VersionLog:
    """The last version of each object this store family has seen (bounded, thread-safe)."""

    __slots__ = ("_lock", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, Version] = {}
        self._lock = threading.Lock()

    def note(self, object_key: str, version: Version) -> None:
        with self._lock:
            if len(self._seen) >= _LOG_LIMIT and object_key not in self._seen:
                self._seen.clear()
            self._seen[object_key] = version

    def get(self, object_key: str) -> Version | None:
        return self._seen.get(object_key)

    def forget(self, object_key: str) -> None:
        with self._lock:
            self._seen.pop(object_key, None)


def _unknown(backend: S3Backend, operation: str, key: Key, lost: BaseException,
             why: str) -> NoReturn:
    """Raise OutcomeUnknownError, chained from the lost answer."""
    raise OutcomeUnknownError(
        f"S3 conditional {operation} of {backend._where(key)}: the answer was lost "
        f"({type(lost).__name__}: {lost}) and {why}, so whether it took effect is unknown; "
        "nothing was re-sent blindly", backend="s3", operation=operation, key=key) from lost


def _look(backend: S3Backend, operation: str, key: Key, lost: BaseException) -> Version | None:
    """The object's current version after a lost answer (None: absent)."""
    try:
        return backend.head_version(key)
    except BackendError as exc:
        _unknown(backend, operation, key, lost,
                 f"the object could not be checked afterwards ({exc})")


def _definitive(backend: S3Backend, exc: BaseException, operation: str, key: Key,
                lost: BaseException | None) -> None:
    """Return if ``exc`` says the precondition did not hold; otherwise raise BackendError, or
    OutcomeUnknownError when an earlier attempt may have landed."""
    try:
        backend._fail(exc, operation, key, PRECONDITION_FAILED, NOT_FOUND)
    except BackendError as failure:
        if lost is None:
            raise
        _unknown(backend, operation, key, lost, f"a later attempt failed ({failure})")


def put_exactly_once(backend: S3Backend, key: Key, kwargs: dict[str, Any],
                     if_match: str | None) -> Stat | None:
    """A conditional PUT (``kwargs`` carry ``IfMatch`` or ``IfNoneMatch: *``; ``if_match`` is
    the expected ETag, None for insert-if-absent). Returns the new Stat, or None when the
    condition did not hold; raises OutcomeUnknownError when that cannot be established."""
    write_id = uuid.uuid4().hex
    kwargs["Metadata"] = {WRITE_ID_META: write_id}
    lost: BaseException | None = None  # the first attempt whose answer did not come back
    unsent: BaseException | None = None
    for _ in range(MAX_ATTEMPTS):
        try:
            resp = backend.client.put_object(**kwargs)
        except backend._errors as exc:
            if is_unsent(exc):
                unsent = exc
                continue
            if not may_have_landed(exc):  # a definitive answer
                _definitive(backend, exc, "write", key, lost)
                if lost is None:
                    return None  # the condition did not hold
                current = _look(backend, "write", key, lost)
                if current is not None and current.write_id == write_id:
                    return Stat(current.etag, current.modified)  # an earlier copy landed
                _unknown(backend, "write", key, lost,
                               "the object now holds another writer's version")
            lost = lost or exc
            current = _look(backend, "write", key, lost)
            if current is not None and current.write_id == write_id:
                return Stat(current.etag, current.modified)
            if (current is None) if if_match is None else (
                    current is not None and current.etag == if_match):
                continue  # ours has not landed: send it again, with the same write id
            _unknown(backend, "write", key, lost,
                           "the object changed to a version that is not this write's")
        else:
            return Stat(resp["ETag"], time.time())
    if lost is not None:
        _unknown(backend, "write", key, lost, f"{MAX_ATTEMPTS} attempts got no answer")
    assert unsent is not None
    backend._fail(unsent, "write", key)  # raises BackendError: it never reached S3
    raise AssertionError("unreachable")  # pragma: no cover


def delete_exactly_once(backend: S3Backend, key: Key, if_match: str) -> bool:
    """``DELETE If-Match``: True if this request deleted the object, False if the condition
    did not hold (or the key was absent); OutcomeUnknownError when that cannot be
    established."""
    object_key = backend.object_key(key)
    meant = backend.versions.get(object_key)
    if meant is not None and meant.etag != if_match:
        meant = None
    lost: BaseException | None = None
    unsent: BaseException | None = None
    for _ in range(MAX_ATTEMPTS):
        try:
            backend.client.delete_object(Bucket=backend.bucket, Key=object_key, IfMatch=if_match)
        except backend._errors as exc:
            if is_unsent(exc):
                unsent = exc
                continue
            if not may_have_landed(exc):
                _definitive(backend, exc, "delete", key, lost)
                if lost is None:
                    return False
                _unknown(backend, "delete", key, lost,
                               "a later attempt found the version gone")
            lost = lost or exc
            current = _look(backend, "delete", key, lost)
            if current is None:
                _unknown(backend, "delete", key, lost,
                               "the key is now absent (deleted by this request, or by another?)")
            if meant is not None and meant.write_id is not None and current == meant:
                continue  # the very version we meant is still there: ours did not land
            _unknown(backend, "delete", key, lost,
                           "the key now holds a version this process cannot tell from the "
                           "one it meant to delete" if current.etag == if_match else
                           "the key now holds another version")
        else:
            backend.versions.forget(object_key)
            return True
    if lost is not None:
        _unknown(backend, "delete", key, lost, f"{MAX_ATTEMPTS} attempts got no answer")
    assert unsent is not None
    backend._fail(unsent, "delete", key)
    raise AssertionError("unreachable")  # pragma: no cover
