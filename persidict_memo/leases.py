"""Compute-once leases kept in the store itself (no lock server).

A lease lives in the *metadata record* of the call it guards (``<digest>.meta`` beside
``<digest>.pkl``): before computing an uncached call, a process inserts a lease record there
(atomic insert-if-absent: exactly one process wins). The winner computes, refreshes the record's
heartbeat while it works (a compare-and-swap on the ETag it last wrote, with a beat counter so
the content always changes), publishes the result, and then *replaces the lease record by the
result's metadata*: releasing the lease and recording the metadata is one write, done before the
call returns, so a process that exits abruptly right after (``os._exit``, a killed pool worker)
leaves neither a lease behind nor an entry without metadata. A computation that fails deletes
its lease record, and a waiter takes its turn.

The others wait: they poll, with growing pauses, two cheap things (does the result exist; has
the record's ETag changed) and return the published result as soon as it appears. A finished
record (metadata) blocks a new lease, so a caller that arrives just after the result was
published never computes it again.

A holder that dies is never waited on forever. Its lease is *stale* when

* its ETag has not changed for ``timeout`` seconds of the waiter's own monotonic clock: the
  holder's and waiter's clocks are never compared, so machines whose clocks disagree by hours
  never steal a live holder's lease; or
* it was taken by a process of this very machine and PID namespace (same host name, same boot
  id, same ``/proc/self/ns/pid`` inode) that no longer exists. Containers sharing a host name
  but not a PID namespace do not match, and then only the silent heartbeat counts.

A stale lease is taken over with a conditional write on the ETag the waiter saw, so of several
waiters at most one (on stores with atomic conditional writes, e.g. S3 and memory; the file
store's compare-and-swap is check-then-act) becomes the new holder.

Waiting comes in two forms: :meth:`Leases.acquire_or_wait` sleeps in the calling thread;
:meth:`Leases.acquire_or_wait_async` awaits ``asyncio.sleep`` between polls and runs each poll's
store I/O in a worker thread only for its duration, so thousands of waiting coroutines hold no
thread.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from persidict import (
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    NEVER_RETRIEVE,
    PersiDict,
)

__all__ = ["BOOT_ID", "HOST", "PID_NAMESPACE", "Lease", "LeaseRecord", "Leases"]

def _host_name() -> str:
    if hasattr(os, "uname"):  # what socket.gethostname() answers, without importing socket
        return os.uname().nodename
    import socket  # pragma: no cover - Windows

    return socket.gethostname()


HOST: Final = _host_name()
_FIRST_PAUSE: Final = 0.005
_GROWTH: Final = 1.5
_INSERT_ATTEMPTS: Final = 3


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # no /proc (macOS, Windows): one namespace per boot
        return ""


BOOT_ID: Final = _read_text("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE: Final = _pid_namespace()


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds a lease, stored as JSON text ``{"lease": {...}}`` in the metadata record.

    ``started`` and ``heartbeat`` are the holder's wall-clock times, for people reading the
    record; staleness never compares them with anyone's clock. ``beat`` counts heartbeats.
    """

    owner: str
    host: str
    pid: int
    pid_namespace: str
    boot_id: str
    started: float
    heartbeat: float
    beat: int = 0

    def to_text(self) -> str:
        """The record as the JSON text that is stored."""
        fields = {
            "owner": self.owner, "host": self.host, "pid": self.pid,
            "pid_namespace": self.pid_namespace, "boot_id": self.boot_id,
            "started": self.started, "heartbeat": self.heartbeat, "beat": self.beat,
        }  # (dataclasses.asdict deep-copies: slow on the miss path)
        return json.dumps({"lease": fields}, sort_keys=True)

    @classmethod
    def from_text(cls, text: object) -> LeaseRecord | None:
        """Parse a stored record; None if it is not a lease (metadata, or damaged text)."""
        try:
            data = json.loads(text)["lease"]  # type: ignore[arg-type]
            return cls(
                owner=str(data["owner"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                pid_namespace=str(data.get("pid_namespace", "?")),
                boot_id=str(data.get("boot_id", "?")),
                started=float(data["started"]),
                heartbeat=float(data["heartbeat"]),
                beat=int(data.get("beat", 0)),
            )
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def fresh(cls, owner: str) -> LeaseRecord:
        """A record for this process, with the heartbeat set to now."""
        now = time.time()
        return cls(owner=owner, host=HOST, pid=os.getpid(), pid_namespace=PID_NAMESPACE,
                   boot_id=BOOT_ID, started=now, heartbeat=now)

    def next_beat(self) -> LeaseRecord:
        """The record of the next heartbeat."""
        return replace(self, heartbeat=time.time(), beat=self.beat + 1)

    def holder_is_gone(self) -> bool:
        """True only if the holder provably no longer exists: a process of this machine and
        PID namespace (same host, boot id and namespace) whose pid is free."""
        if (self.host, self.boot_id, self.pid_namespace) != (HOST, BOOT_ID, PID_NAMESPACE):
            return False
        if self.pid == os.getpid():
            return False  # this very process (another decoration of the same function)
        return _process_is_gone(self.pid)


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


class _Pacemaker:
    """One daemon thread per process that refreshes the heartbeat of every lease held here.

    Adding a lease wakes the thread only when the lease's first beat is due before the
    thread's next wake-up (rarely: beats are ``timeout / 4`` apart), so a short computation
    under a lease costs no thread switch.
    """

    def __init__(self) -> None:
        self.leases: set[Lease] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.next_wake = 0.0

    def add(self, lease: Lease) -> None:
        with self.lock:
            self.leases.add(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="persidict_memo leases", daemon=True
                )
                self.thread.start()
                return
            early = lease.next_beat < self.next_wake
        if early:
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
            with self.lock:
                due = min((lease.next_beat for lease in self.leases), default=now + 1.0)
                self.next_wake = max(now + 0.005, min(due, now + 1.0))
                pause = self.next_wake - now
            self.wake.wait(pause)
            self.wake.clear()


_pacemaker = _Pacemaker()


def _reset_after_fork() -> None:
    global _pacemaker
    _pacemaker = _Pacemaker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class Lease:
    """A lease this process holds; its heartbeat goes on until :meth:`finish` or
    :meth:`abandon`."""

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
            record = self.record.next_beat()
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

    def _stop(self) -> bool:
        """Stop the heartbeat; False if the lease was lost meanwhile."""
        with self._lock:
            self._released = True
        _pacemaker.remove(self)
        return not self.lost

    def finish(self, metadata: str) -> bool:
        """Release the lease by replacing its record with the result's metadata (one write).

        Returns False if the lease had been taken over (the record is then someone else's and
        is left alone). Store errors are raised (the result is published either way).
        """
        if not self._stop():
            return False
        result = self._leases.store.set_item_if(
            self.key,
            value=metadata,
            condition=ETAG_IS_THE_SAME,
            expected_etag=self.etag,  # type: ignore[arg-type]
            retrieve_value=NEVER_RETRIEVE,
        )
        return bool(result.value_was_mutated)

    def abandon(self) -> None:
        """Give the lease up without a result: delete the record if it is still ours."""
        if not self._stop():
            return
        try:
            self._leases.store.discard_if(
                self.key,
                condition=ETAG_IS_THE_SAME,
                expected_etag=self.etag,  # type: ignore[arg-type]
            )
        except Exception:  # an undeletable lease goes silent and is taken over
            pass


class _Wait:
    """The state of one caller waiting for a key: each :meth:`step` is one poll."""

    def __init__(self, leases: Leases, key: tuple[str, ...], is_ready: Callable[[], bool]):
        self.leases = leases
        self.key = key
        self.is_ready = is_ready
        self.pause = _FIRST_PAUSE
        self.seen_etag: str | None = None
        self.seen_since = time.monotonic()
        self.record_checked = False
        self.waited = False
        self.lease_seen = False  # False: try to insert a lease first (polls then only read)

    def step(self) -> tuple[Lease | None, bool, float]:
        """One poll: ``(lease, ready, pause)``; pause > 0 means "sleep, then step again"."""
        leases, key = self.leases, self.key
        if not self.lease_seen:
            lease = leases.try_acquire(key)
            if lease is not None:
                return lease, False, 0.0
        if self.is_ready():
            return None, True, 0.0
        got = leases.store.get_with_etag(key)
        if got.resulting_etag is ITEM_NOT_AVAILABLE:
            self.lease_seen = False  # released a moment ago: try to take it
            return None, False, 0.0
        self.lease_seen = True
        etag = str(got.resulting_etag)
        now = time.monotonic()
        if etag != self.seen_etag:
            self.seen_etag, self.seen_since, self.record_checked = etag, now, False
        stale = now - self.seen_since >= leases.timeout
        if not stale and not self.record_checked:
            record = LeaseRecord.from_text(got.new_value)
            # Not a lease (a finished record whose result is gone, or damaged text): free.
            stale = record is None or record.holder_is_gone()
            self.record_checked = True
        if stale:
            if self.is_ready():
                return None, True, 0.0
            lease = leases.take_over(key, etag)
            if lease is not None:
                if self.is_ready():  # published between our check and the takeover
                    previous = got.new_value
                    if isinstance(previous, str) and LeaseRecord.from_text(previous) is None:
                        lease.finish(previous)  # put the finished record back
                    else:
                        lease.abandon()
                    return None, True, 0.0
                return lease, False, 0.0
            self.seen_etag = None
            return None, False, 0.0
        self.waited = True
        pause = self.pause
        self.pause = min(pause * _GROWTH, leases.max_pause)
        return None, False, pause


class Leases:
    """The leases of one store of metadata records.

    Args:
        store: a mutable store of ``str`` values (the metadata and lease records).
        timeout: seconds of silence (no heartbeat seen) after which a holder is presumed dead.
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

    def take_over(self, key: tuple[str, ...], stale_etag: str) -> Lease | None:
        """Replace a stale record (conditionally on its ETag); the Lease if it was ours."""
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

    def acquire_or_wait(
        self, key: tuple[str, ...], is_ready: Callable[[], bool]
    ) -> tuple[Lease | None, bool]:
        """Become the one process computing ``key``, or wait until its result is ready.

        Returns ``(lease, waited)``: a held :class:`Lease` (the caller computes, publishes and
        finishes it), or ``None`` once ``is_ready()`` is true (the result was published).
        ``waited`` tells whether this call had to wait for another holder.
        """
        wait = _Wait(self, key, is_ready)
        while True:
            lease, ready, pause = wait.step()
            if lease is not None or ready:
                return lease, wait.waited
            if pause > 0:
                time.sleep(pause)

    async def acquire_or_wait_async(
        self, key: tuple[str, ...], is_ready: Callable[[], bool]
    ) -> tuple[Lease | None, bool]:
        """:meth:`acquire_or_wait` for coroutines: ``await asyncio.sleep`` between polls."""
        import asyncio

        wait = _Wait(self, key, is_ready)
        while True:
            lease, ready, pause = await asyncio.to_thread(wait.step)
            if lease is not None or ready:
                return lease, wait.waited
            if pause > 0:
                await asyncio.sleep(pause)
