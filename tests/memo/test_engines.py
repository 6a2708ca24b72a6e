"""Cached functions defined in scripts, notebooks and nested scopes run cached in engines.

The worker receives a *cached* function (not the bare body) sharing the store and the key
namespace of the sender: results computed in workers are hits in the parent, and the other way
round. Scripts run in a fresh interpreter, so the function really lives in ``__main__``.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, LocalDict
from persidict_memo import persistent_cache
from tests.ray_support import ray_env

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT_HEAD = """
import json, os, sys, uuid
from pathlib import Path
from persidict_memo import persistent_cache

RUNS = Path(sys.argv[2])

def mark():
    RUNS.mkdir(exist_ok=True)
    (RUNS / f"{os.getpid()}-{uuid.uuid4().hex}").touch()

def runs():
    return len(list(RUNS.iterdir())) if RUNS.exists() else 0

OFFSET = 10

@persistent_cache(store=sys.argv[1])
def scaled(x):
    mark()
    return x * OFFSET
"""

_LOKY = _SCRIPT_HEAD + """
if __name__ == "__main__":
    from joblib import Parallel, delayed
    before = scaled(100)                                  # computed in the parent
    with Parallel(n_jobs=2, backend="loky") as parallel:
        first = parallel(delayed(scaled)(i) for i in range(6))
        again = parallel(delayed(scaled)(i) for i in (100, 0, 1))  # hits in the workers
        pids = set(parallel(delayed(os.getpid)() for _ in range(8)))
    runs_in_workers = runs()
    parent = [scaled(i) for i in range(6)]
    print(json.dumps({"first": first, "again": again, "parent": parent, "runs": runs_in_workers,
                      "after": runs(), "info": scaled.cache_info()._asdict(),
                      "foreign": os.getpid() not in pids}))
"""

_DASK = _SCRIPT_HEAD + """
if __name__ == "__main__":
    from distributed import Client, LocalCluster
    before = scaled(100)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        first = client.gather(client.map(scaled, range(6)))
        again = client.gather(client.map(scaled, [100, 0, 1], pure=False))
        pids = set(client.run(os.getpid).values())
    runs_in_workers = runs()
    parent = [scaled(i) for i in range(6)]
    print(json.dumps({"first": first, "again": again, "parent": parent, "runs": runs_in_workers,
                      "after": runs(), "info": scaled.cache_info()._asdict(),
                      "foreign": os.getpid() not in pids}))
"""

_RAY = _SCRIPT_HEAD + """
if __name__ == "__main__":
    import ray
    ray.init(log_to_driver=False)  # joins the runtime named by RAY_ADDRESS, as a ray job does
    before = scaled(100)
    task = ray.remote(lambda x: scaled(x))
    first = ray.get([task.remote(i) for i in range(6)])
    again = ray.get([task.remote(i) for i in (100, 0, 1)])
    pids = set(ray.get([ray.remote(lambda: os.getpid()).remote() for _ in range(4)]))
    ray.shutdown()
    runs_in_workers = runs()
    parent = [scaled(i) for i in range(6)]
    print(json.dumps({"first": first, "again": again, "parent": parent, "runs": runs_in_workers,
                      "after": runs(), "info": scaled.cache_info()._asdict(),
                      "foreign": os.getpid() not in pids}))
"""


def run_script(
    tmp_path: Path, source: str, timeout: float = 240, env: dict[str, str] | None = None
) -> dict[str, Any]:
    script = tmp_path / "experiment.py"
    script.write_text(textwrap.dedent(source))
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / "runs")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check_shared(result: dict[str, Any]) -> None:
    assert result["foreign"]  # the work really ran in other processes
    assert result["first"] == [i * 10 for i in range(6)]
    assert result["again"] == [1000, 0, 10]
    assert result["runs"] == 7  # the parent's call + 6 in the workers; none repeated there
    assert result["parent"] == result["first"]
    assert result["after"] == 7  # the workers' results are hits in the parent
    assert result["info"]["hits"] == 6


@pytest.mark.slow
def test_script_function_runs_cached_in_loky_workers(tmp_path: Path) -> None:
    pytest.importorskip("joblib")
    check_shared(run_script(tmp_path, _LOKY))


@pytest.mark.slow
def test_script_function_runs_cached_in_dask_workers(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    check_shared(run_script(tmp_path, _DASK))


@pytest.mark.slow
def test_script_function_runs_cached_in_ray_tasks(tmp_path: Path, ray_cluster: str) -> None:
    check_shared(run_script(tmp_path, _RAY, env=ray_env(ray_cluster)))


def marking_scaler(store: str, runs: Path) -> Any:
    @persistent_cache(store=store)
    def scale(x: int) -> int:
        runs.mkdir(exist_ok=True)
        (runs / f"{x}-{os.getpid()}-{uuid.uuid4().hex}").touch()  # counted across processes
        return x * 3

    return scale


@pytest.mark.slow
def test_nested_function_runs_cached_in_ray_tasks_of_this_process(
    tmp_path: Path, ray_cluster: str
) -> None:
    import ray

    runs = tmp_path / "runs"
    scale = marking_scaler(str(tmp_path / "cache"), runs)
    assert scale(100) == 300  # computed here
    task = ray.remote(lambda x: (scale(x), os.getpid()))  # the cached function travels by value
    first = ray.get([task.remote(i) for i in range(4)])
    again = ray.get([task.remote(i) for i in (100, 0, 3)])  # hits in the workers
    assert [value for value, _ in first + again] == [0, 3, 6, 9, 300, 0, 9]
    assert os.getpid() not in {pid for _, pid in first + again}
    assert sorted(int(p.name.split("-")[0]) for p in runs.iterdir()) == [0, 1, 2, 3, 100]
    assert [scale(i) for i in range(4)] == [0, 3, 6, 9]  # the workers' results are hits here
    assert len(list(runs.iterdir())) == 5
    assert scale.cache_info().hits == 4 and scale.cache_info().misses == 1


@pytest.mark.slow
def test_notebook_function_runs_cached_in_loky_workers(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = _LOKY.replace("sys.argv[1]", repr(str(tmp_path / "cache")))
    code = code.replace("sys.argv[2]", repr(str(tmp_path / "runs")))
    head, main = code.split('if __name__ == "__main__":')
    cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})"),
             nbformat.v4.new_code_cell(head), nbformat.v4.new_code_cell(textwrap.dedent(main))]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = nb.cells[-1].get("outputs", [])
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    check_shared(json.loads(text.strip().splitlines()[-1]))


# ----------------------------------------------------------------- reduction, in process


def make_scaler(store: Any, runs: list[int]) -> Any:
    @persistent_cache(store=store, ignore=("runs",))
    def scale(x: int) -> int:
        runs.append(x)
        return x * 3

    return scale


def test_nested_function_round_trips_to_the_same_wrapper(tmp_path: Path) -> None:
    scale = make_scaler(str(tmp_path), [])
    assert pickle.loads(pickle.dumps(scale)) is scale


def test_the_pickle_holds_no_live_store_objects(tmp_path: Path) -> None:
    scale = make_scaler(FileDirDict(base_dir=tmp_path / "c"), [])
    scale(1)  # the store is open (and holds its locks) in this process
    data = pickle.dumps(scale)
    assert b"_thread" not in data and b"RLock" not in data
    assert len(data) < 20_000


_LOAD = """
import json, pickle, sys
sys.path.insert(0, {root!r})
scale = pickle.loads(open({path!r}, "rb").read())
print(json.dumps({{"value": scale(2), "again": scale(5), "info": scale.cache_info()._asdict(),
                   "key": list(scale.cache_key(2))}}))
"""


@pytest.mark.slow
def test_nested_function_travels_to_another_process_with_its_namespace(tmp_path: Path) -> None:
    runs: list[int] = []
    scale = make_scaler(str(tmp_path / "cache"), runs)
    assert scale(2) == 6
    blob = tmp_path / "scale.pkl"
    blob.write_bytes(pickle.dumps(scale))  # the standard pickler (multiprocessing's)
    code = _LOAD.format(root=str(ROOT), path=str(blob))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["value"] == 6 and child["again"] == 15
    assert child["info"]["hits"] == 1 and child["info"]["misses"] == 1
    assert tuple(child["key"]) == scale.cache_key(2)
    assert scale(5) == 15
    assert runs == [2]  # the child's result for 5 is a hit here
    assert scale.cache_info().hits == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local_dict", "signed_store"])
def test_a_store_that_cannot_travel_fails_loudly_in_the_other_process(
    tmp_path: Path, kind: str
) -> None:
    """A LocalDict would arrive empty and a signed store without its key (signing keys are
    never pickled): the other process refuses them, saying why, instead of running silently
    on an empty or unsigned store."""
    store: Any = (LocalDict() if kind == "local_dict"
                  else FileDirDict(base_dir=tmp_path / "signed", signing_key=b"k" * 32))
    scale = make_scaler(store, [])
    assert scale(2) == 6
    assert pickle.loads(pickle.dumps(scale)) is scale  # in this very process: the same wrapper
    blob = tmp_path / "scale.pkl"
    blob.write_bytes(pickle.dumps(scale))
    code = _LOAD.format(root=str(ROOT), path=str(blob))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode != 0
    expected = "keeps its items in the memory" if kind == "local_dict" else "signing key"
    assert "ValueError" in done.stderr and expected in done.stderr, done.stderr


def test_a_persidict_store_travels_as_its_parameters(tmp_path: Path) -> None:
    scale = make_scaler(LocalDict(), [])
    from persidict_memo import engines

    description = engines.describe_store(FileDirDict(base_dir=tmp_path / "d"))
    assert description == ("persidict", FileDirDict, FileDirDict(base_dir=tmp_path / "d")
                           .get_params())
    assert pickle.loads(pickle.dumps(scale)) is scale
