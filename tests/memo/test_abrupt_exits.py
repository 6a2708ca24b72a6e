"""Processes that end abruptly lose nothing of the calls that returned before they ended.

``os._exit``, a forked pool worker (which ends with ``os._exit``), ``Pool.terminate`` and SIGTERM
skip ``atexit`` and kill daemon threads: whatever a call had to write (result, metadata, the
release of its lease) must be written before it returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import memo_workers
import pytest

from persidict import FileDirDict
from persidict_memo.metadata import parse_metadata

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.slow


def env(store: Path) -> dict[str, str]:
    return {**os.environ, "PERSIDICT_MEMO_DIR": str(store),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}


def check_complete(store: Path, xs: range, runs: str) -> None:
    """Every call of ``xs`` has its result and its metadata, and no lease is left."""
    results = FileDirDict(base_dir=store)
    metas = FileDirDict(base_dir=store, serialization_format="meta", base_class_for_values=str)
    for x in xs:
        key = memo_workers.square.cache_key(x, runs)
        assert results[key] == x * x
        assert parse_metadata(metas[key])["arguments"] == f"x={x}"
    assert memo_workers.lease_records(store) == []


_EXIT = """
import os, memo_workers as m
for x in range(8):                 # leased calls first, then quick ones
    m.square(x, {runs!r})
os._exit(0)
"""


def test_os_exit_right_after_the_calls(tmp_path: Path) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    done = subprocess.run([sys.executable, "-c", _EXIT.format(runs=runs)], env=env(store),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    check_complete(store, range(8), runs)


_POOL = """
import multiprocessing as mp, memo_workers as m
ctx = mp.get_context("fork")
pool = ctx.Pool(2)
assert pool.starmap(m.square, [(x, {runs!r}) for x in range(10)]) == [x * x for x in range(10)]
{ending}
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork start method")
@pytest.mark.parametrize("ending", ["pool.close(); pool.join()", "pool.terminate()"])
def test_forked_pool_workers(tmp_path: Path, ending: str) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    code = _POOL.format(runs=runs, ending=ending)
    done = subprocess.run([sys.executable, "-c", code], env=env(store), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    check_complete(store, range(10), runs)
    assert memo_workers.count_runs(runs, "square") == 10


_SIGTERM = """
import sys, time, memo_workers as m
for x in range(6):
    m.square(x, {runs!r})
print("done", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_after_the_calls(tmp_path: Path) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    with subprocess.Popen([sys.executable, "-c", _SIGTERM.format(runs=runs)], env=env(store),
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "done"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    check_complete(store, range(6), runs)


_UNPICKLABLE = """
import os, threading, warnings
from persidict_memo import persistent_cache
warnings.simplefilter("ignore")

@persistent_cache
def lock_maker(x):
    return threading.Lock()

lock_maker(1)
os._exit(0)
"""


def test_an_unpicklable_result_leaves_no_record(tmp_path: Path) -> None:
    store = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-c", _UNPICKLABLE], env=env(store),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert list(store.rglob("*.meta")) == []
    assert list(store.rglob("*.pkl")) == []
