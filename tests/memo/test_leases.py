"""Compute-once leases: insert-if-absent, heartbeats, waiting, release and takeover."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, LocalDict
from persidict_memo.leases import HOST, LeaseRecord, Leases

KEY = ("v1", "mod", "f", "src~x", "ab", "abcdef")


@pytest.fixture(params=["memory", "file"])
def lease_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return LocalDict(serialization_format="lease", base_class_for_values=str)
    return FileDirDict(
        base_dir=tmp_path / "leases", serialization_format="lease", base_class_for_values=str
    )


def foreign_record(**changes: Any) -> str:
    now = time.time()
    fields = {"owner": "elsewhere", "host": "other-host", "pid": 1, "started": now}
    return LeaseRecord(**{**fields, "heartbeat": now, **changes}).to_text()


def test_one_winner_and_release(lease_store: Any) -> None:
    leases = Leases(lease_store, timeout=10)
    first = leases.try_acquire(KEY)
    assert first is not None
    assert Leases(lease_store, timeout=10).try_acquire(KEY) is None
    record = LeaseRecord.from_text(lease_store[KEY])
    assert record is not None
    assert record.host == HOST
    assert record.owner == leases.owner
    first.release()
    assert KEY not in lease_store
    again = leases.try_acquire(KEY)
    assert again is not None
    again.release()


def test_heartbeat_refreshes_the_lease(lease_store: Any) -> None:
    lease = Leases(lease_store, timeout=0.2).try_acquire(KEY)
    assert lease is not None
    first_etag = lease_store.etag(KEY)
    deadline = time.monotonic() + 10
    while lease_store.etag(KEY) == first_etag:  # a beat every 0.05 s (later under heavy load)
        assert time.monotonic() < deadline, "the heartbeat never came"
        time.sleep(0.02)
    lease.stop()
    assert lease.etag == lease_store.etag(KEY)  # the holder knows the ETag it wrote last
    lease.delete()
    assert KEY not in lease_store


def test_a_lease_overwritten_by_another_is_lost(lease_store: Any) -> None:
    lease = Leases(lease_store, timeout=0.2).try_acquire(KEY)
    assert lease is not None
    lease_store[KEY] = foreign_record()
    deadline = time.monotonic() + 10
    while not lease.lost:
        assert time.monotonic() < deadline, "the loss was never noticed"
        time.sleep(0.02)
    lease.release()
    assert KEY in lease_store  # the new holder's lease is left alone


def test_waiter_returns_when_the_result_appears(lease_store: Any) -> None:
    holder = Leases(lease_store, timeout=10).try_acquire(KEY)
    assert holder is not None
    ready = threading.Event()
    threading.Timer(0.2, ready.set).start()
    start = time.monotonic()
    lease, waited = Leases(lease_store, timeout=10).acquire_or_wait(KEY, ready.is_set)
    assert lease is None
    assert waited
    assert 0.15 < time.monotonic() - start < 2
    holder.release()


def test_waiter_takes_its_turn_after_a_failed_holder(lease_store: Any) -> None:
    holder = Leases(lease_store, timeout=10).try_acquire(KEY)
    assert holder is not None
    threading.Timer(0.2, holder.release).start()
    lease, waited = Leases(lease_store, timeout=10).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    assert waited
    lease.release()


def test_silent_holder_is_taken_over_after_timeout(lease_store: Any) -> None:
    lease_store[KEY] = foreign_record()  # fresh heartbeat, but nobody refreshes it
    start = time.monotonic()
    lease, waited = Leases(lease_store, timeout=0.4).acquire_or_wait(KEY, lambda: False)
    elapsed = time.monotonic() - start
    assert lease is not None
    assert waited
    assert 0.35 < elapsed < 3
    record = LeaseRecord.from_text(lease_store[KEY])
    assert record is not None
    assert record.host == HOST
    lease.release()


def test_old_heartbeat_is_taken_over_at_once(lease_store: Any) -> None:
    lease_store[KEY] = foreign_record(heartbeat=time.time() - 1000)
    start = time.monotonic()
    lease, _ = Leases(lease_store, timeout=30).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    assert time.monotonic() - start < 1
    lease.release()


def test_dead_local_process_is_taken_over_at_once(lease_store: Any) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    lease_store[KEY] = foreign_record(host=HOST, pid=dead_pid)
    start = time.monotonic()
    lease, _ = Leases(lease_store, timeout=30).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    assert time.monotonic() - start < 1
    lease.release()


def test_live_holder_is_not_taken_over(lease_store: Any) -> None:
    holder = Leases(lease_store, timeout=1.0).try_acquire(KEY)  # heartbeats every 0.25 s
    assert holder is not None
    done = threading.Event()
    threading.Timer(3.0, done.set).start()
    lease, waited = Leases(lease_store, timeout=1.0).acquire_or_wait(KEY, done.is_set)
    assert lease is None  # waited three timeouts without taking over
    assert waited
    holder.release()


def test_garbage_record_only_counts_by_age(lease_store: Any) -> None:
    lease_store[KEY] = "not json"
    lease, _ = Leases(lease_store, timeout=0.2).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    lease.release()


def test_bad_timeout() -> None:
    with pytest.raises(ValueError, match="positive"):
        Leases(LocalDict(serialization_format="lease", base_class_for_values=str), timeout=0)
