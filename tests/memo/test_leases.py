"""Compute-once leases: insert-if-absent, heartbeats, waiting, release and takeover.

Staleness is judged only by what the waiter itself observes (the record's ETag changing, by its
own monotonic clock), never by comparing the holder's timestamps with the waiter's clock; early
takeover of a dead holder needs the same host, boot id and PID namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, LocalDict
from persidict_memo.leases import BOOT_ID, HOST, PID_NAMESPACE, LeaseRecord, Leases

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
    fields = {"owner": "elsewhere", "host": "other-host", "pid": 1, "pid_namespace": "1",
              "boot_id": "other-boot", "started": now, "heartbeat": now}
    return LeaseRecord(**{**fields, **changes}).to_text()


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_one_winner_and_release(lease_store: Any) -> None:
    leases = Leases(lease_store, timeout=10)
    first = leases.try_acquire(KEY)
    assert first is not None
    assert Leases(lease_store, timeout=10).try_acquire(KEY) is None
    record = LeaseRecord.from_text(lease_store[KEY])
    assert record is not None
    assert record.host == HOST
    assert record.owner == leases.owner
    first.abandon()
    assert KEY not in lease_store
    again = leases.try_acquire(KEY)
    assert again is not None
    again.abandon()


def test_heartbeat_refreshes_the_lease(lease_store: Any) -> None:
    lease = Leases(lease_store, timeout=0.2).try_acquire(KEY)
    assert lease is not None
    first_etag = lease_store.etag(KEY)
    deadline = time.monotonic() + 10
    while lease_store.etag(KEY) == first_etag:  # a beat every 0.05 s (later under heavy load)
        assert time.monotonic() < deadline, "the heartbeat never came"
        time.sleep(0.02)
    assert lease.finish('{"created": 1}')  # the holder knows the ETag it wrote last
    assert lease_store[KEY] == '{"created": 1}'  # the lease became the metadata record
    assert LeaseRecord.from_text(lease_store[KEY]) is None


def test_a_lease_overwritten_by_another_is_lost(lease_store: Any) -> None:
    lease = Leases(lease_store, timeout=0.2).try_acquire(KEY)
    assert lease is not None
    lease_store[KEY] = foreign_record()
    deadline = time.monotonic() + 10
    while not lease.lost:
        assert time.monotonic() < deadline, "the loss was never noticed"
        time.sleep(0.02)
    assert not lease.finish('{"created": 1}')
    lease.abandon()
    assert LeaseRecord.from_text(lease_store[KEY]) is not None  # the new holder's is left alone


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
    holder.abandon()


def test_waiter_takes_its_turn_after_a_failed_holder(lease_store: Any) -> None:
    holder = Leases(lease_store, timeout=10).try_acquire(KEY)
    assert holder is not None
    threading.Timer(0.2, holder.abandon).start()
    lease, waited = Leases(lease_store, timeout=10).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    assert waited
    lease.abandon()


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
    lease.abandon()


def refresh_forever(store: Any, stop: threading.Event, **fields: Any) -> threading.Thread:
    """A holder on another machine, refreshing its record every 0.05 s with its own clock."""

    store[KEY] = foreign_record(beat=0, **fields)  # there before the waiter comes

    def run() -> None:
        beat = 0
        while not stop.is_set():
            beat += 1
            store[KEY] = foreign_record(beat=beat, **fields)
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_a_live_holder_with_a_skewed_clock_keeps_its_lease(lease_store: Any, skew: float) -> None:
    stop = threading.Event()
    now = time.time()
    holder = refresh_forever(lease_store, stop, started=now + skew, heartbeat=now + skew)
    done = threading.Event()
    threading.Timer(1.5, done.set).start()
    lease, waited = Leases(lease_store, timeout=0.5).acquire_or_wait(KEY, done.is_set)
    stop.set()
    holder.join()
    assert lease is None  # three timeouts of waiting, and the live holder was never robbed
    assert waited


def test_dead_holder_of_this_machine_and_namespace_is_taken_over_at_once(
    lease_store: Any,
) -> None:
    lease_store[KEY] = foreign_record(host=HOST, pid=dead_pid(), boot_id=BOOT_ID,
                                      pid_namespace=PID_NAMESPACE)
    start = time.monotonic()
    lease, _ = Leases(lease_store, timeout=30).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    assert time.monotonic() - start < 1
    lease.abandon()


@pytest.mark.parametrize("other", [{"pid_namespace": "4026531836-other"}, {"boot_id": "b2"}])
def test_dead_pid_in_another_namespace_or_boot_waits_for_silence(
    lease_store: Any, other: dict[str, str]
) -> None:
    fields = {"host": HOST, "pid": dead_pid(), "boot_id": BOOT_ID,
              "pid_namespace": PID_NAMESPACE, **other}
    lease_store[KEY] = foreign_record(**fields)  # same host name, another container or boot
    start = time.monotonic()
    lease, _ = Leases(lease_store, timeout=0.6).acquire_or_wait(KEY, lambda: False)
    elapsed = time.monotonic() - start
    assert lease is not None
    assert elapsed >= 0.55  # not early: the pid may be alive in its own namespace
    lease.abandon()


def test_a_record_without_namespace_fields_is_not_taken_over_early(lease_store: Any) -> None:
    record = {"lease": {"owner": "old", "host": HOST, "pid": dead_pid(), "started": 0.0,
                        "heartbeat": 0.0}}
    lease_store[KEY] = json.dumps(record)
    start = time.monotonic()
    lease, _ = Leases(lease_store, timeout=0.4).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    assert time.monotonic() - start >= 0.35
    lease.abandon()


def test_a_finished_record_blocks_a_new_lease_until_its_result_is_gone(lease_store: Any) -> None:
    lease_store[KEY] = '{"created": 1}'  # metadata: the result was published
    assert Leases(lease_store, timeout=30).try_acquire(KEY) is None
    start = time.monotonic()
    lease, _ = Leases(lease_store, timeout=30).acquire_or_wait(KEY, lambda: False)
    assert lease is not None  # no result beside it (forgotten): taken at once
    assert time.monotonic() - start < 1
    lease.abandon()


def test_async_waiting_holds_no_thread(lease_store: Any) -> None:
    import asyncio

    holder = Leases(lease_store, timeout=10).try_acquire(KEY)
    assert holder is not None
    ready = threading.Event()

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, ready.set)
        waiters = [Leases(lease_store, timeout=10).acquire_or_wait_async(KEY, ready.is_set)
                   for _ in range(100)]
        return await asyncio.gather(*waiters)

    before = threading.active_count()
    results = asyncio.run(main())
    assert all(lease is None and waited for lease, waited in results)
    assert threading.active_count() - before < 20  # the executor's few threads, not 100
    holder.abandon()


def test_live_holder_is_not_taken_over(lease_store: Any) -> None:
    holder = Leases(lease_store, timeout=1.0).try_acquire(KEY)  # heartbeats every 0.25 s
    assert holder is not None
    done = threading.Event()
    threading.Timer(3.0, done.set).start()
    lease, waited = Leases(lease_store, timeout=1.0).acquire_or_wait(KEY, done.is_set)
    assert lease is None  # waited three timeouts without taking over
    assert waited
    holder.abandon()


def test_garbage_record_only_counts_by_age(lease_store: Any) -> None:
    lease_store[KEY] = "not json"
    lease, _ = Leases(lease_store, timeout=0.2).acquire_or_wait(KEY, lambda: False)
    assert lease is not None
    lease.abandon()


def test_bad_timeout() -> None:
    with pytest.raises(ValueError, match="positive"):
        Leases(LocalDict(serialization_format="lease", base_class_for_values=str), timeout=0)
