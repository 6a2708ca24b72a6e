"""The semantics the fast miss path relies on.

* A damaged result reads as a miss (with a warning), is recomputed and replaced atomically, and
  is never returned.
* Quick calls skip the upfront lease (after a streak of quick ones): under contention such a
  call may run twice but is published once, the first result standing for every caller; one
  that outlasts the grace period takes its lease then, so later callers wait for it.
* Slow calls under contention are computed once.
* The lease record becomes the metadata: one record per entry, written before the call returns.
* S3: a miss sends at most 2 requests besides the result's PUT, a warm hit none, a cold hit one
  GET.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, LocalDict
from persidict_memo import CacheStoreWarning, persistent_cache
from persidict_memo.leases import LeaseRecord
from persidict_memo.memoizer import QUICK_STREAK
from tests.s3_support import S3Calls


def token_maker(store: Any, runs: list[str], delay: float = 0.0) -> Any:
    """One "process": its own decoration of a function whose every run returns a new token."""

    @persistent_cache(store=store, ignore=("runs", "delay"))  # (not inputs of the result)
    def token(x: int) -> str:
        value = uuid.uuid4().hex
        runs.append(value)
        time.sleep(delay)
        return value

    return token


_fresh = itertools.count(-1, -1)


def make_quick(fn: Any) -> None:
    """Quick misses until the process skips leases for ``fn`` (a loaded machine may make one
    of them slow: then the streak starts again)."""
    for _ in range(100):
        if fn._self_memo._quick_streak >= QUICK_STREAK:
            return
        fn(next(_fresh))
    raise AssertionError("no streak of quick calls in 100 tries")


# ------------------------------------------------------------------------- damaged entries


def test_a_damaged_entry_is_a_miss_recomputed_and_replaced(tmp_path: Path) -> None:
    runs: list[str] = []
    token = token_maker(str(tmp_path), runs)
    first = token(1)
    (path,) = [p for p in tmp_path.rglob("*.pkl") if token.cache_key(1)[-1] in p.name]
    path.write_bytes(path.read_bytes()[:7])  # torn by a power cut
    fresh = token_maker(str(tmp_path), runs)  # a new process: nothing in memory
    with pytest.warns(CacheStoreWarning, match="damaged"):
        second = fresh(1)
    assert second != first  # recomputed, the damaged bytes never returned
    assert runs == [first, second]
    assert token_maker(str(tmp_path), runs)(1) == second  # replaced: a hit for the next one
    assert len(runs) == 2
    assert fresh.metadata(1)["result_size"] > 0
    assert not list(tmp_path.rglob(".__tmp__*"))


def test_a_damaged_entry_is_replaced_even_when_leases_are_off(tmp_path: Path) -> None:
    @persistent_cache(store=str(tmp_path), lease=False)
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    (path,) = tmp_path.rglob("*.pkl")
    path.write_bytes(b"\x00garbage")

    @persistent_cache(store=str(tmp_path), lease=False)
    def double2(x: int) -> int:  # another process's view (own memory)
        return 2 * x

    double2._self_memo.keys.prefix = double._self_memo.keys.prefix
    with pytest.warns(CacheStoreWarning):
        assert double2(4) == 8
    assert FileDirDict(base_dir=tmp_path)[double.cache_key(4)] == 8


# ------------------------------------------------------------------------------ contention


def race(fns: list[Any], arg: int) -> list[Any]:
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = fns[i](arg)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_quick_call_under_contention_is_published_once(tmp_path: Path, kind: str) -> None:
    store: Any = str(tmp_path) if kind == "file" else LocalDict()
    runs: list[str] = []
    fns = [token_maker(store, runs, delay=0.01) for _ in range(4)]
    for fn in fns:
        make_quick(fn)
    runs.clear()
    results = race(fns, 7)
    assert len(set(results)) == 1  # every caller got the one result that stands
    assert results[0] in runs  # ... which one of them computed
    assert 1 <= len(runs) <= 4
    assert fns[0].lookup(7) == results[0]
    assert fns[0].metadata(7)["arguments"] == "x=7"


def test_a_slow_call_under_contention_is_computed_once(tmp_path: Path) -> None:
    runs: list[str] = []
    fns = [token_maker(str(tmp_path), runs, delay=0.5) for _ in range(4)]
    results = race(fns, 3)
    assert len(runs) == 1
    assert results == [runs[0]] * 4
    assert sum(fn.cache_info().waits for fn in fns) == 3


def test_a_slow_call_turns_leases_back_on(tmp_path: Path) -> None:
    @persistent_cache(store=str(tmp_path))
    def sometimes_slow(x: int) -> int:
        time.sleep(0.2 if x == 50 else 0.0)
        return x

    make_quick(sometimes_slow)
    memo = sometimes_slow._self_memo
    sometimes_slow(50)  # computed without a lease, but slow: the streak is broken
    assert memo._quick_streak == 0
    sometimes_slow(51)  # leased again until the streak is rebuilt
    assert memo._quick_streak < QUICK_STREAK


def test_a_quick_process_waits_for_a_lease_held_elsewhere(tmp_path: Path) -> None:
    runs: list[str] = []
    holder = token_maker(str(tmp_path), runs, delay=0.6)
    quick = token_maker(str(tmp_path), runs, delay=0.0)
    make_quick(quick)
    runs.clear()
    first: list[str] = []
    thread = threading.Thread(target=lambda: first.append(holder(9)))
    thread.start()
    deadline = time.monotonic() + 10
    while not runs:  # the holder has its lease and is computing
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert quick(9) == runs[0]  # it saw the lease and waited instead of computing
    thread.join()
    assert len(runs) == 1
    assert quick.cache_info().waits == 1


def test_a_quick_process_leases_a_call_that_outlasts_the_grace_period(tmp_path: Path) -> None:
    """Two processes in quick mode (no upfront lease): the first one's slow call takes its
    lease within the grace period, so the second one, arriving later, waits for its result
    instead of computing it again (before the fix it never took one: both computed)."""
    release = threading.Event()
    runs: list[str] = []

    def process() -> Any:
        @persistent_cache(store=str(tmp_path), ignore=("runs", "release"))  # (not inputs)
        def work(x: int) -> str:
            value = uuid.uuid4().hex
            runs.append(value)
            if x == 1000:  # the slow call: runs until the test releases it
                assert release.wait(60)
            return value

        return work

    first, late = process(), process()
    make_quick(first)
    make_quick(late)
    runs.clear()
    results: dict[str, str] = {}
    one = threading.Thread(target=lambda: results.setdefault("first", first(1000)))
    one.start()
    store = first._self_memo.store
    record_key = store.lease_key(first.cache_key(1000))
    deadline = time.monotonic() + 30
    try:
        while LeaseRecord.from_text(store.meta.get(record_key)) is None:  # the grace lease
            assert time.monotonic() < deadline, "the slow quick call never took its lease"
            time.sleep(0.01)
        two = threading.Thread(target=lambda: results.setdefault("late", late(1000)))
        two.start()
        two.join(0.3)  # (a late caller that computes would block in the body, as "first" does)
    finally:
        release.set()
    one.join(60)
    two.join(60)
    assert len(runs) == 1
    assert results == {"first": runs[0], "late": runs[0]}
    assert late.cache_info().waits == 1
    metas = [m for m in tmp_path.rglob("*.meta") if LeaseRecord.from_text(m.read_text())]
    assert metas == []  # the grace lease was released by the metadata write


def test_a_quick_call_takes_no_lease(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from persidict_memo.leases import Leases

    taken: list[tuple[str, ...]] = []
    real = Leases.try_acquire

    def counting(self: Leases, key: tuple[str, ...]) -> Any:
        taken.append(key)
        return real(self, key)

    monkeypatch.setattr(Leases, "try_acquire", counting)
    runs: list[str] = []
    token = token_maker(str(tmp_path), runs)
    make_quick(token)
    taken.clear()
    for i in range(5):
        token(100 + i)
    assert taken == []  # (a call outlasting the grace period on a loaded machine is leased)
    assert len(runs) >= QUICK_STREAK + 5


def test_a_failing_slow_quick_call_frees_its_grace_lease(tmp_path: Path) -> None:
    started = threading.Event()
    release = threading.Event()

    @persistent_cache(store=str(tmp_path), ignore=("started", "release"))
    def work(x: int) -> int:
        if x == 7:
            started.set()
            assert release.wait(60)
            raise ValueError("failed")
        return x

    make_quick(work)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            work(7)
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert started.wait(30)
    store = work._self_memo.store
    record_key = store.lease_key(work.cache_key(7))
    deadline = time.monotonic() + 30
    try:
        while LeaseRecord.from_text(store.meta.get(record_key)) is None:
            assert time.monotonic() < deadline, "the slow quick call never took its lease"
            time.sleep(0.01)
    finally:
        release.set()
    thread.join(60)
    assert len(errors) == 1
    assert store.meta.get(record_key) is None  # the next caller takes its turn at once
    assert not work.is_cached(7)


def test_a_local_publish_inserts_without_a_stat_and_a_refused_insert_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persidict_memo.publishing import store_result
    from persidict_memo.stores import ResultStore

    store = ResultStore(FileDirDict(base_dir=tmp_path))
    backend = store.results._backend  # type: ignore[attr-defined]
    stats: list[Any] = []
    real_stat = backend.stat
    monkeypatch.setattr(backend, "stat", lambda key: (stats.append(key), real_stat(key))[1])
    key = ("f", "k")
    assert store_result(store, key, "first", replace=False) is True
    assert stats == []  # the atomic link is the check: a miss's publish costs no stat
    assert store_result(store, key, "second", replace=False) is False
    assert store.results[key] == "first"  # the first result stands
    assert not list(tmp_path.rglob(".__tmp__*"))  # the refused write's temp file is gone


def test_a_miss_signs_each_key_component_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persidict import keys

    monkeypatch.setattr(keys, "_SIGNED", {})  # (no clearing of a full table mid-test)
    hashed: list[str] = []
    real = keys._b32_md5
    monkeypatch.setattr(keys, "_b32_md5", lambda s, n=4: (hashed.append(s), real(s, n))[1])
    runs: list[str] = []
    token = token_maker(str(tmp_path), runs)
    for first in (1000, 2000):  # a leased miss, then (after a streak) a quick one
        if first == 2000:
            make_quick(token)
        token(first)  # signs the shared components (and the shard) the first time
        hashed.clear()
        token(first + 1)  # four store operations on a new key
        digest = token.cache_key(first + 1)[-1]
        assert hashed in ([digest], [digest[:2], digest])  # (a new shard directory)


# ------------------------------------------------------------------------ records on disk


def test_one_record_per_entry_and_no_lease_left(tmp_path: Path) -> None:
    runs: list[str] = []
    token = token_maker(str(tmp_path), runs)
    for i in range(QUICK_STREAK + 3):  # leased calls first, then quick ones
        token(i)
    metas = list(tmp_path.rglob("*.meta"))
    assert len(metas) == len(list(tmp_path.rglob("*.pkl"))) == QUICK_STREAK + 3
    assert not [m for m in metas if LeaseRecord.from_text(m.read_text()) is not None]
    assert not list(tmp_path.rglob("*.lease"))


def test_durable_option_fsyncs_result_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    plain = persistent_cache(store=str(tmp_path / "plain"))(lambda x: x)
    plain(1)
    assert synced == []  # default: no disk flush on the miss path
    durable = persistent_cache(store=str(tmp_path / "durable"), durable=True)(lambda x: x)
    durable(1)
    assert len(synced) >= 1


# --------------------------------------------------------------------------------- async


@pytest.mark.parametrize("n", [16, 200])
def test_asyncio_gather_computes_once(tmp_path: Path, n: int) -> None:
    runs: list[int] = []

    @persistent_cache(store=str(tmp_path), ignore=("runs",))
    async def fetch(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.2)
        return x * 2

    async def main() -> list[int]:
        return await asyncio.gather(*(fetch(5) for _ in range(n)))

    before = threading.active_count()
    started = time.monotonic()
    assert asyncio.run(main()) == [10] * n
    assert runs == [5]
    assert fetch.cache_info().waits == n - 1
    assert time.monotonic() - started < 30
    assert threading.active_count() - before < 20


def test_async_waiters_across_loops_wait_for_the_store_lease(tmp_path: Path) -> None:
    runs: list[int] = []

    def make() -> Any:
        @persistent_cache(store=str(tmp_path), ignore=("runs",))
        async def fetch(x: int) -> int:
            runs.append(x)
            await asyncio.sleep(0.4)
            return x + 1

        return fetch

    fns = [make() for _ in range(3)]  # three "processes", each with its own loop
    results: list[int] = []

    def run(fn: Any) -> None:
        async def many() -> list[int]:
            return await asyncio.gather(*(fn(1) for _ in range(10)))
        results.extend(asyncio.run(many()))

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [2] * 30
    assert runs == [1]


# -------------------------------------------------------------------------- S3 requests


@pytest.fixture
def s3_calls(s3_http: Any) -> Iterator[S3Calls]:
    # HeadBucket: the bucket check behind a HEAD 404 (at most one per 2 s), not per call.
    calls = S3Calls(s3_http.client, this_thread_only=True, skip=frozenset({"HeadBucket"}))
    yield calls
    calls.close()


def beyond_result_put(names: list[str]) -> list[str]:
    rest = list(names)
    rest.remove("PutObject")  # the result's own PUT
    return rest


@pytest.mark.s3
@pytest.mark.parametrize("kind", ["basic", "cached"])
def test_s3_request_counts(s3_http: Any, s3_calls: S3Calls, tmp_path: Path, kind: str) -> None:
    def store(name: str) -> Any:
        if kind == "basic":
            return s3_http.basic_store(root_prefix="req")
        return s3_http.cached_store(root_prefix="req", base_dir=str(tmp_path / name))

    runs: list[str] = []
    token = token_maker(store("a"), runs)
    token(-100)  # opens the store (bucket check, the client's one-time capability probe)
    for i in range(QUICK_STREAK + 2):
        s3_calls.names.clear()
        token(i)
        extra = beyond_result_put(s3_calls.names)
        assert len(extra) <= 2, (i, s3_calls.names)  # leased calls first, then quick ones
    s3_calls.names.clear()
    token(0)
    assert s3_calls.names == []  # a warm hit: memory
    cold = token_maker(store("b"), runs)  # a fresh process with its own local cache
    cold.cache_store  # noqa: B018  (opened: the bucket check is not the call's)
    s3_calls.names.clear()
    assert cold(1) == token(1)
    assert s3_calls.names == ["GetObject"]  # a cold hit: exactly one GET


def test_metadata_text_is_the_canonical_json_of_its_record() -> None:
    """The miss path assembles the record's text directly; it must be exactly what
    json.dumps(record, sort_keys=True) writes, escapes included."""
    import json
    import sys

    from persidict_memo.metadata import build_metadata, parse_metadata

    text = build_metadata(function="m.f", key=("a", "b\u00e9", "c"), arguments="x='\u00e9\"\\n'",
                          compute_seconds=0.25, result=[1], result_size=12)
    record = parse_metadata(text)
    assert json.dumps(record, sort_keys=True) == text
    assert (record["key"], record["arguments"], record["result_type"]) == (
        "a/b\u00e9/c", "x='\u00e9\"\\n'", "builtins.list")
    assert record["compute_seconds"] == 0.25 and record["result_size"] == 12
    assert "numpy" not in record["packages"] or "numpy" in sys.modules
