"""Several processes sharing one cache: hash seeds, stampedes, killed holders, spawn pools."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import memo_workers
import pytest

from persidict import FileDirDict, LocalDict
from persidict_memo import persistent_cache

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.slow


def child_env(store: Path, seed: str = "0") -> dict[str, str]:
    return {
        **os.environ,
        "PERSIDICT_MEMO_DIR": str(store),
        "PYTHONHASHSEED": seed,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
    }


def run_child(code: str, store: Path, seed: str = "0", timeout: float = 60) -> Any:
    """Run ``code`` in a fresh interpreter; it prints one JSON document, returned parsed."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(store, seed),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


_STRUCTURED = """
import json, memo_workers as m
result = m.structured({{"b": 1, "a": [1, 2]}}, {{"x", "y", "z", "w"}}, {runs!r})
key = m.structured.cache_key({{"a": [1, 2], "b": 1}}, {{"w", "z"}} | {{"x", "y"}}, "")
info = m.structured.cache_info()._asdict()
print(json.dumps({{"result": result, "info": info, "key": list(key)}}))
"""


def test_hit_in_a_fresh_process_with_another_hash_seed(tmp_path: Path) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    first = run_child(_STRUCTURED.format(runs=runs), store, seed="1")
    assert first["info"]["misses"] == 1
    second = run_child(_STRUCTURED.format(runs=runs), store, seed="2")
    assert second["info"] == {"hits": 1, "misses": 0, "waits": 0, "store_errors": 0}
    assert second["result"] == first["result"]
    assert memo_workers.count_runs(runs, "structured") == 1
    parent_key = memo_workers.structured.cache_key({"b": 1, "a": [1, 2]}, {"z", "y", "x", "w"}, "")
    assert list(parent_key) == first["key"] == second["key"]
    assert parent_key in FileDirDict(base_dir=store)


_STAMPEDE = """
import json, sys, time, memo_workers as m
time.sleep(max(0.0, {go} - time.time()))
value = m.slow_square(7, 1.0, {runs!r})
print(json.dumps({{"value": value, "info": m.slow_square.cache_info()._asdict()}}))
"""


def test_stampede_of_four_processes_runs_the_body_once(tmp_path: Path) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    code = _STAMPEDE.format(go=time.time() + 2.0, runs=runs)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=child_env(store),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o["value"] for o in outputs] == [49] * 4
    assert memo_workers.count_runs(runs, "slow") == 1
    assert sum(o["info"]["misses"] for o in outputs) == 1
    assert sum(o["info"]["waits"] + o["info"]["hits"] for o in outputs) == 3
    assert memo_workers.lease_records(store) == []


_HANG = """
import json, memo_workers as m
print(json.dumps({{"value": m.may_hang(1, {runs!r}, {control!r}),
                  "info": m.may_hang.cache_info()._asdict()}}))
"""


def test_killed_lease_holder_is_taken_over(tmp_path: Path) -> None:
    store, runs, control = tmp_path / "cache", str(tmp_path / "runs"), tmp_path / "control"
    control.mkdir()
    (control / "hang").touch()
    code = _HANG.format(runs=runs, control=str(control))
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env=child_env(store), stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while memo_workers.count_runs(runs, "hang") == 0:
        assert time.monotonic() < deadline, "the holder never started"
        time.sleep(0.05)
    assert memo_workers.lease_records(store)
    holder.kill()
    holder.wait()
    (control / "hang").unlink()
    start = time.monotonic()
    taker = run_child(code, store, timeout=60)
    assert taker["value"] == 1001
    assert taker["info"]["misses"] == 1
    assert time.monotonic() - start < 20
    assert memo_workers.count_runs(runs, "hang") == 2
    assert memo_workers.lease_records(store) == []


def test_spawn_pool_workers_share_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    monkeypatch.setenv("PERSIDICT_MEMO_DIR", str(store))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        first = list(pool.map(memo_workers.square, range(6), [runs] * 6))
        second = list(pool.map(memo_workers.square, range(6), [runs] * 6))
    assert first == second == [i * i for i in range(6)]
    assert memo_workers.count_runs(runs, "square") == 6
    results = FileDirDict(base_dir=store)
    for i in range(6):
        assert results[memo_workers.square.cache_key(i, runs)] == i * i


def test_threads_of_one_process_compute_once() -> None:
    runs: list[int] = []

    @persistent_cache(store=LocalDict(), ignore=("runs",))  # bookkeeping, not an input
    def slow(x: int) -> int:
        runs.append(x)
        time.sleep(0.3)
        return x

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(3))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3, 3, 3, 3]
    assert runs == [3]
    assert slow.cache_info().waits == 3
