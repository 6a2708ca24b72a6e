"""Process entry points for bench_memo.py (spawned workers need importable module-level functions).

Kept apart from the benchmark script so that a ``spawn`` child imports only this small module
(and the cache library it is asked to use), not the benchmark's own set-up.

Not collected by pytest (pyproject ignores tests/benchmarks).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)  # a spawned child starts with a fresh sys.path

SLOW_SECONDS = 1.0
IMPLS = ("persistent_cache", "persistent_cache lease=False", "joblib.Memory", "diskcache")

# Where the body of the slow function leaves its markers; set by each worker before calling.
_marker_dir: str | None = None


def slow_body(x: int) -> int:
    """The uncached 1-second function of the stampede: leaves one marker file per run."""
    if _marker_dir is not None:
        Path(_marker_dir, f"run-{os.getpid()}-{uuid.uuid4().hex}").touch()
    time.sleep(SLOW_SECONDS)
    return x * 2


def array_body(a: Any) -> float:
    """The function of the big-array hit: cheap, so a hit measures the cache, not the body."""
    return float(a[0])


def cached(impl: str, store_dir: str, func: Any) -> Any:
    """``func`` wrapped by one of the caches under comparison, storing in ``store_dir``."""
    if impl == "persistent_cache":
        from persidict_memo import persistent_cache

        return persistent_cache(store=store_dir)(func)
    if impl == "persistent_cache lease=False":
        from persidict_memo import persistent_cache

        return persistent_cache(store=store_dir, lease=False)(func)
    if impl == "joblib.Memory":
        import joblib

        return joblib.Memory(store_dir, verbose=0).cache(func)
    if impl == "diskcache":
        import diskcache

        return diskcache.Cache(store_dir).memoize()(func)
    raise ValueError(f"unknown implementation {impl!r}")


def stampede_worker(impl: str, store_dir: str, marker_dir: str, arg: int, barrier: Any,
                    results: Any) -> None:
    """Set up the cache, wait for the others, then call the slow function once.

    Puts ``(pid, value, seconds from release to return, error or "")`` on ``results``.
    """
    global _marker_dir
    _marker_dir = marker_dir
    fn = cached(impl, store_dir, slow_body)
    if impl.startswith("persistent_cache"):
        fn.cache_store  # noqa: B018  (open the store before the start, as a warm process would)
    barrier.wait(timeout=120)
    start = time.perf_counter()
    try:
        value = fn(arg)
    except Exception as exc:  # reported, not raised: the parent counts and prints it
        results.put((os.getpid(), None, time.perf_counter() - start, repr(exc)))
        return
    results.put((os.getpid(), value, time.perf_counter() - start, ""))


def diskcache_array_worker(store_dir: str, n_items: int, seed: int, hits: int,
                           results: Any) -> None:
    """diskcache's memoize on a big float64 array, in a child that may be stopped when overdue.

    Puts ``("miss", seconds)`` then one ``("hit", seconds)`` per hit, as each one ends, so that
    the parent keeps what finished in time; ``("done", 0.0)`` at the end.
    """
    import numpy as np

    arr = np.random.default_rng(seed).random(n_items)
    fn = cached("diskcache", store_dir, array_body)
    start = time.perf_counter()
    fn(arr)
    results.put(("miss", time.perf_counter() - start))
    for _ in range(hits):
        start = time.perf_counter()
        fn(arr)
        results.put(("hit", time.perf_counter() - start))
    results.put(("done", 0.0))
