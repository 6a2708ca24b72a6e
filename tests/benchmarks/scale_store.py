"""bench_scale's store and its measurements: the layout, the raw limits, every row's operation,
and what a fresh child process measures (peak RSS, timed ``clear()`` runs).

Imported by ``bench_scale.py`` and by the child processes it starts (which import this module,
not the script). Not collected by pytest.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)  # benchmark a checkout without installing it

from bench_file import (  # noqa: E402
    walk_count,
    walk_keys,
    walk_newest,
    walk_random,
    write_no_sync,
)

SHARDS = 100
EXT = ".pkl"
SAMPLE = 2000


# ------------------------------------------------------------------------------- the store

def key_of(i: int) -> tuple[str, str]:
    return f"shard_{i % SHARDS:02d}", f"key_{i}"


def value_of(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"item-{i}", "score": i * 0.5}


def item_path(base: str, i: int) -> str:
    """Where FileDirDict keeps item ``i`` (its signed layout), for the raw limits."""
    from persidict.keys import sign_component

    shard, name = key_of(i)
    return os.path.join(base, sign_component(shard, 4), sign_component(name, 4) + EXT)


def populate(base: Path, n: int) -> None:
    """Write the store's files directly (the bytes FileDirDict writes), without fsync."""
    s = str(base)
    for shard in range(min(SHARDS, n)):
        os.makedirs(os.path.dirname(item_path(s, shard)), exist_ok=True)
    for i in range(n):
        write_no_sync(item_path(s, i), pickle.dumps(value_of(i), protocol=5))


# The raw limits are bare loops written out one per operation, on purpose: a shared walker
# (a generator, a callback) would slow the limit down and flatter our ratios.

def raw_items(root: str) -> list[tuple[tuple[str, ...], Any]]:
    cut = -len(EXT)
    out = []
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:
        path, prefix = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, (*prefix, e.name)))
                elif e.name.endswith(EXT):
                    with open(e.path, "rb") as f:
                        out.append(((*prefix, e.name[:cut]), pickle.loads(f.read())))
    return out


def raw_clear(root: str) -> None:
    """Unlink every item, then remove the emptied directories (as ``clear()`` must)."""
    stack, seen = [root], []
    while stack:
        path = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    seen.append(e.path)
                elif e.name.endswith(EXT):
                    os.unlink(e.path)
    for path in reversed(seen):
        try:
            os.rmdir(path)
        except OSError:
            pass


# ------------------------------------------------------------------------------- the rows

def sample_picks(n: int) -> list[int]:
    """The items ``get`` and ``in`` are timed on (the same in every process)."""
    rng = random.Random(n)
    return [rng.randrange(n) for _ in range(min(SAMPLE, n))]


def row_ops(base: Path, n: int) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Every FileDirDict row's operation and its raw limit, on the store at ``base``.

    One definition for the timed runs and for the fresh-process peak-RSS children.
    """
    from persidict import FileDirDict

    d: FileDirDict[Any] = FileDirDict(base_dir=base)
    s = str(base)
    picks = sample_picks(n)
    keys = [key_of(i) for i in picks]
    paths = [item_path(s, i) for i in picks]

    def ours_get() -> None:
        for k in keys:
            d[k]

    def raw_get() -> None:
        loads = pickle.loads
        for p in paths:
            with open(p, "rb") as f:
                loads(f.read())

    def ours_in() -> None:
        for k in keys:
            k in d  # noqa: B015

    def raw_in() -> None:
        isfile = os.path.isfile
        for p in paths:
            isfile(p)

    return {
        "get": (ours_get, raw_get),
        "`in`": (ours_in, raw_in),
        "len": (lambda: len(d), lambda: walk_count(s, EXT)),
        "keys": (lambda: list(d.keys()), lambda: walk_keys(s, EXT)),
        "random_key": (d.random_key, lambda: walk_random(s, EXT)),
        "items": (lambda: list(d.items()), lambda: raw_items(s)),
        "newest_keys(10)": (lambda: d.newest_keys(max_n=10), lambda: walk_newest(s, EXT, 10)),
        "clear": (d.clear, lambda: raw_clear(s)),
    }


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measured(fn: Callable[[], Any]) -> dict[str, float]:
    """One call of ``fn``: its seconds, this process's peak RSS (VmHWM) during it, and how far
    that peak rose above the RSS before (MB)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    return {"seconds": seconds, "peak_mb": peak / 1024, "growth_mb": (peak - before) / 1024}


def peak_pair(ours: Callable[[], Any], raw: Callable[[], Any]) -> tuple[float, float]:
    """Peak-RSS growth of one call of each in this process: a lower bound (freed memory is
    reused), for the rows whose store cannot be opened again in a fresh process."""
    return measured(ours)["growth_mb"], measured(raw)["growth_mb"]


def fresh_peaks(base: Path, n: int, op: str) -> tuple[float, float]:
    """Peak-RSS growth of one call of ``op``, ours and raw, each in a fresh process."""
    return (child("row", base, str(n), op, "ours")["growth_mb"],
            child("row", base, str(n), op, "raw")["growth_mb"])


def fresh_tree(base: Path, n: int) -> None:
    """The store written afresh and synced, for a clear() run (untimed)."""
    shutil.rmtree(base, ignore_errors=True)
    populate(base, n)
    os.sync()
    time.sleep(0.2)


# ------------------------------------------------------------------------ child processes

def raw_iter_keys(base: str) -> Iterator[tuple[str, ...]]:
    """The bare walk's keys one at a time (for peak RSS while iterating)."""
    cut = -len(EXT)
    stack: list[tuple[str, tuple[str, ...]]] = [(base, ())]
    while stack:
        path, prefix = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, (*prefix, e.name)))
                elif e.name.endswith(EXT):
                    yield (*prefix, e.name[:cut])


def raw_iter_items(base: str) -> Iterator[tuple[tuple[str, ...], Any]]:
    for k in raw_iter_keys(base):
        with open(os.path.join(base, *k[:-1], k[-1] + EXT), "rb") as f:
            yield k, pickle.loads(f.read())


def memory_ops(base: str) -> dict[str, Callable[[], Any]]:
    """The fresh-process memory rows' operations, ours and raw."""
    from persidict import FileDirDict

    d: FileDirDict[Any] = FileDirDict(base_dir=base)
    return {
        "len": lambda: len(d), "walk_count": lambda: walk_count(base, EXT),
        "iter_keys": lambda: sum(1 for _ in d.keys()),  # noqa: SIM118 (keys() is the row)
        "raw_iter_keys": lambda: sum(1 for _ in raw_iter_keys(base)),
        "iter_items": lambda: sum(1 for _ in d.items()),
        "raw_iter_items": lambda: sum(1 for _ in raw_iter_items(base)),
    }


def array_copies(base: str, op: str, mb: int) -> float:
    """Copies of an ``mb`` MB array held beyond the array by ``set`` or ``get``."""
    import numpy as np

    from persidict import FileDirDict

    d: FileDirDict[Any] = FileDirDict(base_dir=base)
    if op == "array_set":
        arr = np.random.default_rng(0).random(mb * 2**20 // 8)
        growth = measured(lambda: d.__setitem__("arr", arr))["growth_mb"]
        return growth * 2**20 / arr.nbytes
    got: list[Any] = []
    growth = measured(lambda: got.append(d["arr"]))["growth_mb"]
    return float(growth * 2**20 / got[0].nbytes) - 1  # the result itself is not a copy


def child_main(argv: list[str]) -> dict[str, float]:
    """What a fresh child process measures (see :func:`child`)."""
    kind, base, *rest = argv
    if kind == "row":
        n, op, side = rest
        ours, raw = row_ops(Path(base), int(n))[op]
        return measured(ours if side == "ours" else raw)
    if kind == "memory":
        return measured(memory_ops(base)[rest[0]])
    return {"copies": array_copies(base, kind, int(rest[0]))}


CHILD = r"""
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import numpy  # imported by every child alike, so baselines match
import scale_store
print(json.dumps(scale_store.child_main(sys.argv[3:])))
"""


def child(kind: str, base: Path, *args: str) -> dict[str, float]:
    """:func:`child_main` in a fresh process: ``row`` (n, op, side), ``memory`` (op),
    ``array_set`` / ``array_get`` (MB)."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(HERE), kind, str(base),
                          *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    result: dict[str, float] = json.loads(out.stdout)
    return result
