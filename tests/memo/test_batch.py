"""f.map: bulk lookup of what is stored, then only the misses computed, on every engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from persidict_memo import persistent_cache
from persidict_memo.grace import QUICK_STREAK
from tests.ray_support import ray_env
from tests.s3_support import S3Calls

ROOT = Path(__file__).resolve().parents[2]


def make(store: Any, runs: list[Any]) -> Any:
    lock = threading.Lock()

    @persistent_cache(store=store, ignore=("lock", "runs"))  # closure values out of the key
    def cube(x: int, shift: int = 0) -> int:
        with lock:
            runs.append(x)
        if x == 13:
            raise ValueError("thirteen")
        return x**3 + shift

    return cube


def test_map_computes_only_the_misses_in_order(tmp_path: Path) -> None:
    runs: list[int] = []
    cube = make(str(tmp_path / "c"), runs)
    for x in (2, 5, 7):
        cube(x)
    runs.clear()
    other = make(str(tmp_path / "c"), runs)  # another process: nothing in memory
    assert other.map(range(10)) == [x**3 for x in range(10)]
    assert sorted(runs) == [0, 1, 3, 4, 6, 8, 9]
    assert other.cache_info().hits == 3
    runs.clear()
    assert other.map([9, 2, 9]) == [729, 8, 729]
    assert runs == []
    assert other.map([]) == []


def test_map_unpack_tuples_and_pairs(tmp_path: Path) -> None:
    runs: list[int] = []
    cube = make(str(tmp_path / "c"), runs)
    got = cube.map([(1,), (2, 10), ((3,), {"shift": 100}), ([4], {})], unpack=True)
    assert got == [1, 18, 127, 64]
    assert cube(2, shift=10) == 18 and cube.cache_info().misses == 4
    with pytest.raises(TypeError, match="item 0"):
        cube.map([5], unpack=True)


def test_a_failing_item_raises_after_the_others_naming_it(tmp_path: Path) -> None:
    runs: list[int] = []
    cube = make(str(tmp_path / "c"), runs)
    with pytest.raises(ValueError, match="thirteen") as info:
        cube.map([1, 13, 2, 3])
    assert any("item 1 (13)" in note for note in info.value.__notes__)
    assert sorted(runs) == [1, 2, 3, 13]  # the others ran to the end
    assert all(cube.is_cached(x) for x in (1, 2, 3)) and not cube.is_cached(13)


def test_map_on_threads(tmp_path: Path) -> None:
    runs: list[int] = []
    cube = make(str(tmp_path / "c"), runs)
    cube(3)
    assert cube.map(range(6), n_jobs=3, backend="threading") == [x**3 for x in range(6)]
    assert sorted(runs) == [0, 1, 2, 3, 4, 5]


def test_map_validates_its_options(tmp_path: Path) -> None:
    cube = make(str(tmp_path / "c"), [])
    with pytest.raises(ValueError, match="backend"):
        cube.map([1, 2], n_jobs=2, backend="mpi")
    with pytest.raises(ValueError):
        cube.map([1], n_jobs=0)
    with pytest.raises(TypeError):
        cube.map([1], n_jobs=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cube.map([1], progress="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="item 1"):
        cube.map([1, threading.Lock()])


def test_map_of_a_bound_method(tmp_path: Path) -> None:
    class Scaler:
        def __init__(self, k: int) -> None:
            self.k = k

        @persistent_cache(store=str(tmp_path / "c"))
        def scale(self, x: int) -> int:
            return self.k * x

    s = Scaler(3)
    assert s.scale.map([1, 2, 3]) == [3, 6, 9]
    assert Scaler(3).scale.map([3, 2]) == [9, 6]
    assert Scaler(4).scale.map([3]) == [12]  # self is part of the key


def test_progress_bar_forced_on_and_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cube = make(str(tmp_path / "c"), [])
    cube.map(range(3), progress=False)
    assert capsys.readouterr().err == ""
    import persidict_memo.progress as progress_module

    bar = progress_module.bar(3, "cube", True, delay=False)
    bar.update(3)
    bar.close()
    assert "3/3" in capsys.readouterr().err
    cube.map(range(3, 6), progress=True)
    assert "3/3" in capsys.readouterr().err
    cube.map(range(6, 9))  # automatic: not a terminal here, so no bar
    assert capsys.readouterr().err == ""


_SWEEP = """
import json, os, sys, uuid
from pathlib import Path
from persidict_memo import persistent_cache

RUNS = Path(sys.argv[2])

@persistent_cache(store=sys.argv[1])
def body(x):
    RUNS.mkdir(exist_ok=True)
    (RUNS / f"{x}-{os.getpid()}-{uuid.uuid4().hex}").touch()
    return {"x": x, "pid": os.getpid()}

def runs():
    return sorted(int(p.name.split("-")[0]) for p in RUNS.iterdir()) if RUNS.exists() else []

if __name__ == "__main__":
    for x in (0, 3, 4):
        body(x)                            # three results stored beforehand, here
    engine = sys.argv[3]
    if engine == "dask":
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            got = body.map(range(10), backend=client)
    elif engine == "ray":
        got = body.map(range(10), n_jobs=2, backend="ray")
    else:
        got = body.map(range(10), n_jobs=2, backend="loky")
    again = body.map(range(10), n_jobs=2, backend="loky")
    print(json.dumps({"xs": [g["x"] for g in got], "pids": sorted({g["pid"] for g in got}),
                      "me": os.getpid(), "runs": runs(), "again": [g["x"] for g in again]}))
"""


def run_sweep(tmp_path: Path, engine: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(_SWEEP))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / "runs"), engine],
        env={**(env or os.environ), "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check_sweep(result: dict[str, Any]) -> None:
    assert result["xs"] == list(range(10))
    assert result["again"] == list(range(10))
    assert result["runs"] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # each once: only the 7 misses ran
    assert len([p for p in result["pids"] if p != result["me"]]) >= 1  # in worker processes


@pytest.mark.slow
def test_map_on_loky_computes_only_the_misses(tmp_path: Path) -> None:
    check_sweep(run_sweep(tmp_path, "loky"))


@pytest.mark.slow
def test_map_on_a_dask_local_cluster_computes_only_the_misses(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    check_sweep(run_sweep(tmp_path, "dask"))


@pytest.mark.slow
def test_map_on_ray_computes_only_the_misses(tmp_path: Path, ray_cluster: str) -> None:
    # The script joins the runtime named by RAY_ADDRESS (as a job on a ray cluster does): map
    # must not try to size a runtime it did not start.
    check_sweep(run_sweep(tmp_path, "ray", env=ray_env(ray_cluster)))


@pytest.mark.slow
def test_map_on_the_ray_runtime_this_process_runs(tmp_path: Path, ray_cluster: str) -> None:
    runs = tmp_path / "runs"

    @persistent_cache(store=str(tmp_path / "c"))
    def square(x: int) -> tuple[int, int]:
        runs.mkdir(exist_ok=True)
        (runs / f"{x}-{uuid.uuid4().hex}").touch()  # counted across processes
        return x * x, os.getpid()

    square(2)
    square(5)
    got = square.map(range(8), n_jobs=2, backend="ray")
    assert [value for value, _ in got] == [x * x for x in range(8)]
    assert sorted(int(p.name.split("-")[0]) for p in runs.iterdir()) == list(range(8))
    assert os.getpid() not in {got[x][1] for x in (0, 1, 3, 4, 6, 7)}  # computed by ray workers
    assert square.map(range(8), n_jobs=2, backend="ray") == got  # all hits now
    assert len(list(runs.iterdir())) == 8


@pytest.mark.s3
def test_the_bulk_lookup_is_one_listing_on_s3(s3_http: Any, tmp_path: Path) -> None:
    calls = S3Calls(s3_http.client)  # every "machine" below shares this client

    def take() -> dict[str, int]:
        counts = dict(Counter(calls.names))
        calls.names.clear()
        return counts

    def machine(name: str) -> Any:
        store = s3_http.cached_store(root_prefix="team", base_dir=str(tmp_path / name))

        @persistent_cache(store=store)
        def cube(x: int) -> int:
            return x**3

        assert cube._self_memo.store is not None  # opened (bucket checked) before counting
        take()
        return cube

    author = machine("author")
    author.map(range(100), n_jobs=8, backend="threading")
    from persidict_memo import background

    background.flush()
    take()
    colleague = machine("colleague")  # an empty local cache: every result comes from S3
    assert colleague.map(range(100)) == [x**3 for x in range(100)]
    # one listing (results and metadata of 100 calls fit in one page), then one GET per result:
    # no HEAD and no lookup request per item
    assert take() == {"ListObjectsV2": 1, "GetObject": 100}
    again = machine("colleague")  # the same machine, a new process: the local copies serve
    assert again.map(range(100)) == [x**3 for x in range(100)]
    assert take() == {"ListObjectsV2": 1}
    assert again.map(range(100)) == [x**3 for x in range(100)]
    assert take() == {}  # all in this process's memory now: not even a listing
    other = machine("colleague")
    assert other.map([5, 7]) == [125, 343]
    assert take() == {"ListObjectsV2": 1}  # the whole prefix fits in one page
    # Misses: the listing found neither a result nor a record, so neither is looked for again.
    # Each costs its result and metadata, plus the lease until calls prove quick (QUICK_STREAK).
    assert other.map(range(100, 110)) == [x**3 for x in range(100, 110)]
    background.flush()
    mapped = take()
    mapped.pop("HeadBucket", None)  # (a 404's bucket check, at most one per 2 s)
    assert mapped.pop("ListObjectsV2") == 1
    assert set(mapped) == {"PutObject"}, mapped
    assert mapped["PutObject"] == 3 * QUICK_STREAK + 2 * (10 - QUICK_STREAK)
    assert [other(x) for x in range(110, 120)] == [x**3 for x in range(110, 120)]
    background.flush()
    single = take()
    single.pop("HeadBucket", None)  # (a 404's bucket check, at most one per 2 s)
    assert single["GetObject"] == 10 and sum(single.values()) == 4 * 10, single
    loop = machine("loop")
    assert [loop(x) for x in range(100)] == [x**3 for x in range(100)]
    assert take() == {"GetObject": 100}  # for comparison: single calls
