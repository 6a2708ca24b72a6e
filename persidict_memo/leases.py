"""Compute-once leases kept in the store itself (no lock server).

Before computing an uncached call, a process inserts a *lease record* under the call's key in
a small text store (atomic insert-if-absent: exactly one process wins). The winner computes,
refreshes the record's heartbeat while it works (a compare-and-swap on the ETag it last wrote),
publishes the result and deletes the lease. The others wait: they poll, with growing pauses, two
cheap things (does the result exist; has the lease's ETag changed) and return the published
result as soon as it appears.

A holder that dies is never waited on forever. Its lease is *stale* when

* its ETag has not changed for ``timeout`` seconds of the waiter's own clock (so clock skew
  between machines does not matter), or
* its recorded heartbeat is older than ``timeout`` by the waiter's wall clock, or
* it was taken on this host by a process that no longer exists.

A stale lease is taken over with a conditional write on the ETag the waiter saw, so of several
waiters at most one (on stores with atomic conditional writes, e.g. S3 and memory; the file
store's compare-and-swap is check-then-act) becomes the new holder. If the holder's computation
fails, it deletes its lease and a waiter takes its turn.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from persidict import (
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    NEVER_RETRIEVE,
    PersiDict,
)

__all__ = ["Lease", "LeaseRecord", "Leases"]

HOST: Final = socket.gethostname()
_FIRST_PAUSE: Final = 0.005
_GROWTH: Final = 1.5
_INSERT_ATTEMPTS: Final = 3


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds a lease, stored as JSON text."""

    owner: str
    host: str
    pid: int
    started: float
    heartbeat: float

    def to_text(self) -> str:
        """The record as the JSON text that is stored."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> LeaseRecord | None:
        """Parse a stored record; None if it is not one (then only its ETag age counts)."""
        try:
            data = json.loads(text)
            return cls(
                owner=str(data["owner"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                started=float(data["started"]),
                heartbeat=float(data["heartbeat"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def fresh(cls, owner: str) -> LeaseRecord:
        """A record for this process, with the heartbeat set to now."""
        now = time.time()
        return cls(owner=owner, host=HOST, pid=os.getpid(), started=now, heartbeat=now)


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


class _Pacemaker:
    """One daemon thread per process that refreshes the heartbeat of every lease held here."""

    def __init__(self) -> None:
        self.leases: set[Lease] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self.lock:
            self.leases.add(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="persidict_memo leases", daemon=True
                )
                self.thread.start()
        self.wake.set()

    def remove(self, lease: Lease) -> None:
        with self.lock:
            self.leases.discard(lease)

    def _run(self) -> None:
        while True:
            with self.lock:
                leases = list(self.leases)
            now = time.monotonic()
            for lease in leases:
                if lease.next_beat <= now:
                    lease.beat()
            pause = min((lease.next_beat for lease in leases), default=now + 1.0) - now
            self.wake.wait(max(0.005, pause))
            self.wake.clear()


_pacemaker = _Pacemaker()


def _reset_after_fork() -> None:
    global _pacemaker
    _pacemaker = _Pacemaker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class Lease:
    """A lease this process holds; its heartbeat goes on until :meth:`release`."""

    def __init__(
        self, leases: Leases, key: tuple[str, ...], etag: str, record: LeaseRecord
    ) -> None:
        self._leases = leases
        self.key = key
        self.etag = etag
        self.record = record
        self.lost = False  # another process took the lease over (we were presumed dead)
        self._released = False
        self._lock = threading.Lock()
        self.next_beat = time.monotonic() + leases.heartbeat_interval
        _pacemaker.add(self)

    def beat(self) -> None:
        """Refresh the heartbeat (a compare-and-swap on the ETag this process last wrote)."""
        with self._lock:
            self.next_beat = time.monotonic() + self._leases.heartbeat_interval
            if self._released or self.lost:
                return
            record = LeaseRecord(**{**asdict(self.record), "heartbeat": time.time()})
            try:
                result = self._leases.store.set_item_if(
                    self.key,
                    value=record.to_text(),
                    condition=ETAG_IS_THE_SAME,
                    expected_etag=self.etag,  # type: ignore[arg-type]
                    retrieve_value=NEVER_RETRIEVE,
                )
            except Exception:  # a transient store error: try again at the next beat
                return
            if not result.value_was_mutated:
                self.lost = True
                _pacemaker.remove(self)
                return
            self.etag = str(result.resulting_etag)
            self.record = record

    def stop(self) -> None:
        """Stop the heartbeat (the lease record stays until :meth:`delete`)."""
        with self._lock:
            self._released = True
        _pacemaker.remove(self)

    def delete(self) -> None:
        """Delete the lease record if it is still ours (best effort)."""
        if self.lost:
            return
        try:
            self._leases.store.discard_if(
                self.key,
                condition=ETAG_IS_THE_SAME,
                expected_etag=self.etag,  # type: ignore[arg-type]
            )
        except Exception:  # an undeletable lease simply expires
            pass

    def release(self) -> None:
        """Stop the heartbeat and delete the lease record now."""
        self.stop()
        self.delete()


class Leases:
    """The leases of one store of results.

    Args:
        store: a mutable store of ``str`` values (the lease records).
        timeout: seconds after which a silent holder is presumed dead.
        max_pause: the longest pause between two polls of a waiter.
    """

    def __init__(self, store: PersiDict[Any], timeout: float, max_pause: float = 0.5) -> None:
        if not timeout > 0:
            raise ValueError(f"lease_timeout must be a positive number of seconds, got {timeout}")
        self.store = store
        self.timeout = float(timeout)
        self.heartbeat_interval = max(0.01, self.timeout / 4)
        self.max_pause = min(max_pause, max(0.01, self.timeout / 4))
        self.owner = uuid.uuid4().hex

    def try_acquire(self, key: tuple[str, ...]) -> Lease | None:
        """One atomic insert-if-absent of a fresh lease record; the Lease if it was ours.

        A store error is retried twice after short pauses (a file store's directory may be
        pruned by a concurrent deletion at the very moment of the insert), then raised.
        """
        record = LeaseRecord.fresh(self.owner)
        for attempt in range(_INSERT_ATTEMPTS):
            try:
                result = self.store.setdefault_if(
                    key,
                    default_value=record.to_text(),
                    condition=ANY_ETAG,
                    expected_etag=ITEM_NOT_AVAILABLE,
                    retrieve_value=NEVER_RETRIEVE,
                )
                break
            except Exception:
                if attempt == _INSERT_ATTEMPTS - 1:
                    raise
                time.sleep(_FIRST_PAUSE * (attempt + 1))
        if not result.value_was_mutated:
            return None
        return Lease(self, key, str(result.resulting_etag), record)

    def _take_over(self, key: tuple[str, ...], stale_etag: str) -> Lease | None:
        record = LeaseRecord.fresh(self.owner)
        result = self.store.set_item_if(
            key,
            value=record.to_text(),
            condition=ETAG_IS_THE_SAME,
            expected_etag=stale_etag,  # type: ignore[arg-type]
            retrieve_value=NEVER_RETRIEVE,
        )
        if not result.value_was_mutated:
            return None
        return Lease(self, key, str(result.resulting_etag), record)

    def _record_is_stale(self, key: tuple[str, ...]) -> bool:
        try:
            record = LeaseRecord.from_text(self.store[key])
        except KeyError:
            return False
        if record is None:
            return False
        if time.time() - record.heartbeat > self.timeout:
            return True
        return record.host == HOST and record.pid != os.getpid() and _process_is_gone(record.pid)

    def acquire_or_wait(
        self, key: tuple[str, ...], is_ready: Callable[[], bool]
    ) -> tuple[Lease | None, bool]:
        """Become the one process computing ``key``, or wait until its result is ready.

        Returns ``(lease, waited)``: a held :class:`Lease` (the caller computes, publishes and
        releases it), or ``None`` once ``is_ready()`` is true (the result was published, by
        another process or just before we got the lease). ``waited`` tells whether this call
        had to wait for another holder.
        """
        pause = _FIRST_PAUSE
        seen_etag: str | None = None
        seen_since = time.monotonic()
        record_checked = False
        waited = False
        lease_seen = False  # False: try to insert a lease first (polls then only read)
        while True:
            if not lease_seen:
                lease = self.try_acquire(key)
                if lease is not None:
                    if is_ready():  # published between the caller's check and our insert
                        lease.release()
                        return None, waited
                    return lease, waited
            if is_ready():
                return None, waited
            try:
                etag = str(self.store.etag(key))
            except KeyError:
                lease_seen = False  # released a moment ago: try to take it
                continue
            lease_seen = True
            now = time.monotonic()
            if etag != seen_etag:
                seen_etag, seen_since, record_checked = etag, now, False
            stale = now - seen_since >= self.timeout
            if not stale and not record_checked:
                stale = self._record_is_stale(key)
                record_checked = True
            if stale:
                lease = self._take_over(key, etag)
                if lease is not None:
                    if is_ready():
                        lease.release()
                        return None, waited
                    return lease, waited
                seen_etag = None
                continue
            waited = True
            time.sleep(pause)
            pause = min(pause * _GROWTH, self.max_pause)
