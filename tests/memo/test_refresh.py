"""recompute() and max_age=: atomic replacement, expiry, once across processes."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import toolkit_workers as tw

from persidict import LocalDict
from persidict_memo import background, persistent_cache

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(params=["file", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "file":
        return str(tmp_path / "cache")
    if request.param == "memory":
        return LocalDict()
    target = request.getfixturevalue("s3_http")
    return target.cached_store(root_prefix="memo", base_dir=str(tmp_path / "local"))


def counter(store: Any, **options: Any) -> tuple[Any, list[int]]:
    runs: list[int] = []

    @persistent_cache(store=store, **options)
    def tick(x: int) -> list[int]:
        runs.append(x)
        return [x, len(runs)]

    return tick, runs


def test_recompute_replaces_the_stored_result(store: Any) -> None:
    tick, _ = counter(store)
    assert tick(1) == [1, 1]
    first_meta = tick.metadata(1)
    time.sleep(0.05)
    assert tick.recompute(1) == [1, 2]
    assert tick(1) == [1, 2]  # this process's memory follows
    assert tick.lookup(1) == [1, 2]
    other, _ = counter(store)
    assert other(1) == [1, 2]  # and the store: another process reads the new result
    assert other.cache_info().misses == 0
    background.flush()
    assert tick.metadata(1)["created_timestamp"] > first_meta["created_timestamp"]
    assert len(list(tick.cache_entries())) == 1
    assert tick.recompute(5) == [5, 3]  # nothing stored yet: computed and stored
    assert other(5) == [5, 3]


def test_max_age_recomputes_expired_results(store: Any) -> None:
    tick, runs = counter(store, max_age=datetime.timedelta(seconds=1.0))
    assert tick(1) == [1, 1]
    assert tick(1) == [1, 1]
    assert runs == [1]
    time.sleep(1.3)
    assert tick(1) == [1, 2]  # expired: recomputed and replaced
    assert tick(1) == [1, 2]
    assert runs == [1, 1]
    assert tick.cache_info().misses == 2
    fresh, fresh_runs = counter(store, max_age=60)
    assert fresh(1) == [1, 2] and fresh_runs == []  # the replacement is what is stored
    assert len(list(tick.cache_entries())) == 1


def test_max_age_with_map_treats_expired_results_as_misses(tmp_path: Path) -> None:
    tick, runs = counter(str(tmp_path / "c"), max_age=1.0)
    assert tick.map([1, 2]) == [[1, 1], [2, 2]]
    assert tick.map([1, 2, 3]) == [[1, 1], [2, 2], [3, 3]]
    time.sleep(1.3)
    assert tick.map([1, 2]) == [[1, 4], [2, 5]]
    assert runs == [1, 2, 3, 1, 2]


def test_max_age_option_is_checked() -> None:
    with pytest.raises(ValueError):
        persistent_cache(max_age=0)
    with pytest.raises(ValueError):
        persistent_cache(max_age=-1.0)
    with pytest.raises(TypeError):
        persistent_cache(max_age="1d")  # type: ignore[arg-type]


def test_max_age_on_async_functions(tmp_path: Path) -> None:
    import asyncio

    runs: list[int] = []

    @persistent_cache(store=str(tmp_path / "c"), max_age=1.0)
    async def atick(x: int) -> list[int]:
        runs.append(x)
        return [x, len(runs)]

    async def scenario() -> list[Any]:
        a = await atick(1)
        b = await atick(1)
        await asyncio.sleep(1.3)
        c = await atick(1)
        d = await atick.recompute(1)
        return [a, b, c, d]

    assert asyncio.run(scenario()) == [[1, 1], [1, 1], [1, 2], [1, 3]]


def test_max_age_without_leases_recomputes_expired_results(tmp_path: Path) -> None:
    import asyncio

    # max_age 1 s: room for a loaded machine both ways (the two results must expire together
    # after the sleep, and the recomputed ones must still be fresh at the next calls).
    tick, runs = counter(str(tmp_path / "c"), max_age=1.0, lease=False)
    aruns: list[int] = []

    @persistent_cache(store=str(tmp_path / "c"), max_age=1.0, lease=False)
    async def atick(x: int) -> list[int]:
        aruns.append(x)
        return [x, len(aruns)]

    assert tick(1) == [1, 1] and asyncio.run(atick(1)) == [1, 1]
    time.sleep(1.5)
    assert tick(1) == [1, 2] and asyncio.run(atick(1)) == [1, 2]  # expired: recomputed
    assert tick(1) == [1, 2] and asyncio.run(atick(1)) == [1, 2]
    assert runs == aruns == [1, 1]
    assert tick.cache_info().misses == atick.cache_info().misses == 2
    assert tick.cache_info().waits == atick.cache_info().waits == 0


def test_async_max_age_waits_for_another_callers_refresh(tmp_path: Path) -> None:
    import asyncio

    runs: list[int] = []

    def decorate() -> Any:  # one "process": its own decoration (its own memory)
        @persistent_cache(store=str(tmp_path / "c"), max_age=1.0, ignore=("runs",))
        async def slow(x: int) -> list[int]:
            runs.append(x)
            await asyncio.sleep(0.3)
            return [x, len(runs)]

        return slow

    first, second = decorate(), decorate()

    async def scenario() -> list[Any]:
        await first(1)
        await asyncio.sleep(1.3)  # expired for both
        return list(await asyncio.gather(first(1), second(1)))

    assert asyncio.run(scenario()) == [[1, 2], [1, 2]]  # refreshed once, the same result
    assert runs == [1, 1]
    assert first.cache_info().waits + second.cache_info().waits == 1


def child(code: str, store: Path, **env: str) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "PERSIDICT_MEMO_DIR": str(store),
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def result_of(proc: subprocess.Popen[str]) -> Any:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


_EXPIRED_CALL = """
import json, sys, time, toolkit_workers as tw
start = float(sys.argv[1]) if len(sys.argv) > 1 else 0
while time.time() < {start}:
    time.sleep(0.001)
print(json.dumps(tw.expiring(1, {runs!r}, delay=1.0)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["file", "s3"])
def test_max_age_expiry_is_recomputed_once_across_processes(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    env: dict[str, str] = {}
    if where == "s3":  # the children share a bucket on the moto server (over HTTP)
        target = request.getfixturevalue("s3_http")
        env = {"MEMO_TEST_STORE": f"s3://{target.bucket}/memo",
               "AWS_ENDPOINT_URL": target.endpoint_url}
    first = result_of(child(_EXPIRED_CALL.format(start=0, runs=runs), store, **env))
    assert tw.count(runs, "expiring-1") == 1
    time.sleep(2.3)  # max_age is 2 s: the stored result expired
    start = time.time() + 2.0  # both children are up and importing by then
    procs = [child(_EXPIRED_CALL.format(start=start, runs=runs), store, **env) for _ in range(2)]
    values = [result_of(p) for p in procs]
    assert tw.count(runs, "expiring-1") == 2, "the expired result was recomputed exactly once"
    assert values[0] == values[1] > first


_READER = """
import json, time, toolkit_workers as tw
key = tw.stamp.cache_key(1, {runs!r})
store = tw.stamp.cache_store
seen, reads, deadline = set(), 0, time.time() + {seconds}
while time.time() < deadline:
    seen.add(store[key][1])      # a KeyError here would be a reader seeing no result
    reads += 1
print(json.dumps({{"reads": reads, "distinct": len(seen)}}))
"""


@pytest.mark.slow
def test_recompute_while_another_process_reads(tmp_path: Path) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    mine = persistent_cache(store=str(store), ignore=("runs",))(tw.stamp.__wrapped__)
    mine(1, runs)
    reader = child(_READER.format(runs=runs, seconds=3.0), store)
    recomputed = 0
    while reader.poll() is None:  # for as long as the reader reads (3 s from its start)
        mine.recompute(1, runs)
        recomputed += 1
        time.sleep(0.005)
    got = result_of(reader)
    assert recomputed > 10 and got["reads"] > 10
    assert got["distinct"] > 1  # it saw replacements, and never a missing result


def test_a_swap_overwritten_in_the_same_instant_is_noticed(tmp_path: Path) -> None:
    # On a local directory a compare-and-swap is check-then-act: two refreshers may both "win"
    # the swap of an expired result's record. The one whose lease was overwritten must notice.
    from persidict_memo.leases import LeaseRecord, Leases
    from persidict_memo.refresh import _still_ours
    from persidict_memo.stores import ResultStore, open_store

    rs = ResultStore(open_store(str(tmp_path / "c")))
    assert rs.leases is not None
    key = ("v2", "m", "f", "ver~1", "ab", "ab" * 16)
    rs.meta[key] = '{"created_timestamp": 0}'  # the expired result's metadata record
    mine = Leases(rs.leases, 10.0)
    lease = mine.take_over(key, str(rs.meta.get_with_etag(key).resulting_etag))
    assert lease is not None
    assert _still_ours(mine, key, lease)
    rival = LeaseRecord.fresh("rival").to_text()
    rs.leases[key] = rival  # the rival's swap landed just after ours
    assert not _still_ours(mine, key, lease)
    lease.abandon()
    assert rs.leases[key] == rival  # the rival's lease is left alone
