"""FileDirDict against the raw file-system limit and against diskcache, measured in one run.

    python tests/benchmarks/bench_file.py [--quick] [--dir DIR] [--profile WORKLOAD]

The raw limit does the same work on the same bytes with the same durability, and nothing else:

* a write  = serialise + temp file (``os.open`` O_EXCL) + write + ``os.fsync`` + ``os.replace``;
* a read   = ``open().read()`` + ``pickle.loads`` (json: ``json.loads``);
* ``in``   = a bare ``os.path.isfile``;
* a delete = ``os.remove``;
* a listing = one bare ``os.scandir`` walk (``stat`` only where timestamps are needed).

The small values are plain JSON-compatible dicts, so the raw json writer (``json.dumps(v,
indent=4)``) produces exactly the bytes FileDirDict's jsonpickle writer does (checked at start).
diskcache (``diskcache.Cache``, default settings: SQLite in WAL mode, no fsync per write) runs the
same workload for reference; it is not held to a target.

Each timing is the median over several repeats (implementations interleaved inside every repeat,
so drift in the disk or CPU hits all of them alike) of the mean per-operation time. The table is
markdown; ``--profile get`` (or set, in, delete, len, keys, random_key, newest_keys, array_write,
array_read) prints a cProfile of FileDirDict on that workload instead.

Not collected by pytest (pyproject ignores tests/benchmarks).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import json
import os
import pickle
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark a checkout without installing it

_O_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


# ------------------------------------------------------------------------------ helpers

def timed(fn: Callable[[], Any], n_ops: int) -> float:
    """Mean microseconds per operation of one call of ``fn`` doing ``n_ops`` operations."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / n_ops * 1e6


@dataclass
class Timings:
    """Per-repeat samples of every case; medians and paired ratios."""

    samples: dict[str, list[float]]

    def __getitem__(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, name: str, base: str) -> float:
        """Median of the per-repeat ratios: runs done back to back see the same machine load."""
        return statistics.median(
            a / b for a, b in zip(self.samples[name], self.samples[base], strict=True))


def interleaved(cases: dict[str, tuple[Callable[[], Any] | None, Callable[[], Any]]],
                n_ops: int, repeats: int) -> Timings:
    """Per-op microseconds of every case, the cases interleaved inside every repeat.

    ``setup`` (untimed, may be None) runs before each timed run.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            setup, run = cases[name]
            if setup is not None:
                setup()
            samples[name].append(timed(run, n_ops))
    return Timings(samples)


def repeated(fn: Callable[[], Any], times: int) -> Callable[[], None]:
    """``fn`` called ``times`` times in one timed run: a listing of a few thousand items takes
    a few milliseconds, about what a scheduler hiccup on a loaded machine costs."""
    def run() -> None:
        for _ in range(times):
            fn()
    return run


def calls_per_run(n_items: int, budget: int = 20_000) -> int:
    """How many listings of ``n_items`` to time together: about ``budget`` items a run."""
    return max(1, budget // max(1, n_items))


def raw_write(path: str, data: bytes) -> None:
    """The durability FileDirDict promises, and nothing more."""
    tmp = os.path.join(os.path.dirname(path), ".__tmp__" + os.urandom(6).hex())
    fd = os.open(tmp, _O_TEMP, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_no_sync(path: str, data: bytes) -> None:
    """For populating large stores quickly (not timed)."""
    with open(path, "wb") as f:
        f.write(data)


def walk_count(root: str, ext: str) -> int:
    n = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.name.endswith(ext):
                    n += 1
    return n


def walk_keys(root: str, ext: str) -> list[tuple[str, ...]]:
    cut = -len(ext)
    out: list[tuple[str, ...]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:
        path, prefix = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, (*prefix, e.name)))
                elif e.name.endswith(ext):
                    out.append((*prefix, e.name[:cut]))
    return out


def walk_random(root: str, ext: str) -> tuple[str, ...]:
    return random.choice(walk_keys(root, ext))


def walk_newest(root: str, ext: str, max_n: int) -> list[tuple[str, ...]]:
    cut = -len(ext)
    found: list[tuple[float, tuple[str, ...]]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:
        path, prefix = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, (*prefix, e.name)))
                elif e.name.endswith(ext):
                    found.append((e.stat(follow_symlinks=False).st_mtime, (*prefix, e.name[:cut])))
    return [k for _, k in heapq.nlargest(max_n, found, key=lambda p: p[0])]


@dataclass
class Row:
    workload: str
    ours: float            # microseconds per op (seconds for absolute rows)
    limit: float | None    # raw limit, same unit
    target: float | None   # max ratio ours/limit, or max absolute value for absolute rows
    diskcache: float | None = None
    unit: str = "us"
    absolute: bool = False
    note: str = ""
    ratio: float | None = None      # ours / limit (paired median)
    dc_ratio: float | None = None   # ours / diskcache (paired median)
    peak_mb: tuple[float, float] | None = None  # peak-RSS growth of one call: ours, raw (MB)

    @classmethod
    def of(cls, workload: str, t: Timings, ours: str, raw: str, target: float | None,
           dc: str | None = None, **kw: Any) -> Row:
        return cls(workload, t[ours], t[raw], target, None if dc is None else t[dc],
                   ratio=t.ratio(ours, raw), dc_ratio=None if dc is None else t.ratio(ours, dc),
                   **kw)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        value = self.ours if self.absolute else self.ratio
        assert value is not None
        return "PASS" if value <= self.target else "MISS"


def fmt_time(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "ms":
        return f"{v / 1000:.2f} ms"
    return f"{v:.1f} us" if v < 1000 else f"{v / 1000:.2f} ms"


def render(rows: list[Row]) -> str:
    rss = any(r.peak_mb is not None for r in rows)  # a column only where a script measured it
    lines = [
        "| workload | FileDirDict | raw limit | ratio | target | verdict | diskcache | "
        "FileDirDict / diskcache |" + (" peak RSS growth, ours / raw |" if rss else ""),
        "|---|---:|---:|---:|---:|:---:|---:|---:|" + ("---:|" if rss else ""),
    ]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.target is None:
            target = ""
        elif r.absolute:
            target = f"< {fmt_time(r.target, r.unit)}"
        else:
            target = f"<= {r.target:g}x"
        vs_dc = "" if r.dc_ratio is None else f"{r.dc_ratio:.2f}x"
        name = r.workload + (f" ({r.note})" if r.note else "")
        line = (f"| {name} | {fmt_time(r.ours, r.unit)} | {fmt_time(r.limit, r.unit)} | "
                f"{ratio} | {target} | {r.verdict} | {fmt_time(r.diskcache, r.unit)} | "
                f"{vs_dc} |")
        if rss:
            line += "" if r.peak_mb is None else f" {r.peak_mb[0]:.1f} / {r.peak_mb[1]:.1f} MB"
            line += " |"
        lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------- workloads

def small_values(n: int) -> tuple[list[str], list[dict[str, Any]]]:
    keys = [f"key{i:05d}" for i in range(n)]
    values = [{"id": i, "name": f"item-{i}", "tags": ["a", "b"], "score": i * 0.5}
              for i in range(n)]
    return keys, values


def bench_small(root: Path, n: int, repeats: int) -> list[Row]:
    import diskcache

    from persidict import FileDirDict
    from persidict.keys import sign_component

    keys, values = small_values(n)
    stores = {fmt: FileDirDict(base_dir=root / f"fdd_{fmt}", serialization_format=fmt)
              for fmt in ("pkl", "json")}
    raw_dirs = {fmt: root / f"raw_{fmt}" for fmt in ("pkl", "json")}
    for p in raw_dirs.values():
        p.mkdir()
    raw_paths = {fmt: [str(raw_dirs[fmt] / f"{sign_component(k, 4)}.{fmt}") for k in keys]
                 for fmt in ("pkl", "json")}
    dc = diskcache.Cache(str(root / "diskcache"))

    # The raw json writer produces the very bytes FileDirDict writes.
    stores["json"][keys[0]] = values[0]
    ours = (root / "fdd_json" / f"{sign_component(keys[0], 4)}.json").read_bytes()
    assert ours == json.dumps(values[0], indent=4).encode(), "json bytes differ from the raw"
    del stores["json"][keys[0]]

    def raw_set(fmt: str) -> Callable[[], None]:
        paths = raw_paths[fmt]
        if fmt == "pkl":
            def run() -> None:
                for p, v in zip(paths, values, strict=True):
                    raw_write(p, pickle.dumps(v, protocol=5))
        else:
            def run() -> None:
                for p, v in zip(paths, values, strict=True):
                    raw_write(p, json.dumps(v, indent=4).encode())
        return run

    def ours_set(fmt: str) -> Callable[[], None]:
        d = stores[fmt]

        def run() -> None:
            for k, v in zip(keys, values, strict=True):
                d[k] = v
        return run

    def dc_set() -> None:
        for k, v in zip(keys, values, strict=True):
            dc[k] = v

    def raw_get(fmt: str) -> Callable[[], None]:
        paths = raw_paths[fmt]
        loads = pickle.loads if fmt == "pkl" else json.loads

        def run() -> None:
            for p in paths:
                with open(p, "rb") as f:
                    loads(f.read())
        return run

    def ours_get(fmt: str) -> Callable[[], None]:
        d = stores[fmt]

        def run() -> None:
            for k in keys:
                d[k]
        return run

    def dc_get() -> None:
        for k in keys:
            dc[k]

    def raw_in() -> None:
        isfile = os.path.isfile
        for p in raw_paths["pkl"]:
            isfile(p)

    def ours_in() -> None:
        d = stores["pkl"]
        for k in keys:
            k in d  # noqa: B015

    def dc_in() -> None:
        for k in keys:
            k in dc  # noqa: B015

    def raw_del() -> None:
        for p in raw_paths["pkl"]:
            os.remove(p)

    def ours_del() -> None:
        d = stores["pkl"]
        for k in keys:
            del d[k]

    def dc_del() -> None:
        for k in keys:
            del dc[k]

    rows: list[Row] = []
    sets = interleaved({
        "raw_pkl": (None, raw_set("pkl")), "ours_pkl": (None, ours_set("pkl")),
        "raw_json": (None, raw_set("json")), "ours_json": (None, ours_set("json")),
        "dc": (None, dc_set),
    }, n, repeats)
    rows.append(Row.of(f"set, {n:,} small values, pkl", sets, "ours_pkl", "raw_pkl", 1.2, "dc"))
    rows.append(Row.of(f"set, {n:,} small values, json", sets, "ours_json", "raw_json", 1.2,
                       "dc"))
    gets = interleaved({
        "raw_pkl": (None, raw_get("pkl")), "ours_pkl": (None, ours_get("pkl")),
        "raw_json": (None, raw_get("json")), "ours_json": (None, ours_get("json")),
        "dc": (None, dc_get),
    }, n, 3 * repeats)  # cheap: more repeats
    rows.append(Row.of(f"get, {n:,} small values, pkl", gets, "ours_pkl", "raw_pkl", 2.0, "dc"))
    rows.append(Row.of(f"get, {n:,} small values, json", gets, "ours_json", "raw_json", 2.0,
                       "dc"))
    ins = interleaved({"raw": (None, raw_in), "ours": (None, ours_in), "dc": (None, dc_in)},
                      n, 3 * repeats)
    rows.append(Row.of(f"`in`, {n:,} present keys", ins, "ours", "raw", 2.0, "dc",
                       note="raw: os.path.isfile"))
    # Deletes: the files are put back between runs without fsync (untimed, same bytes).
    ours_paths = [str(root / "fdd_pkl" / f"{sign_component(k, 4)}.pkl") for k in keys]
    payloads = [pickle.dumps(v, protocol=5) for v in values]

    def refill(paths: list[str]) -> Callable[[], None]:
        def run() -> None:
            for p, data in zip(paths, payloads, strict=True):
                write_no_sync(p, data)
        return run

    dels = interleaved({
        "raw": (refill(raw_paths["pkl"]), raw_del), "ours": (refill(ours_paths), ours_del),
        "dc": (dc_set, dc_del),
    }, n, repeats)
    rows.append(Row.of(f"delete, {n:,} small values", dels, "ours", "raw", None, "dc",
                       note="raw: os.remove"))
    dc.close()
    return rows


def listing_rows(root: str, d: Any, dc: Any, label: str, n: int, repeats: int) -> list[Row]:
    ext = ".pkl"
    cases: dict[str, tuple[dict[str, Callable[[], Any]], bool]] = {
        "len": ({"raw": lambda: walk_count(root, ext), "ours": lambda: len(d),
                 "dc": lambda: len(dc)}, True),
        "keys": ({"raw": lambda: walk_keys(root, ext), "ours": lambda: list(d.keys()),
                  "dc": lambda: list(dc)}, True),
        "random_key": ({"raw": lambda: walk_random(root, ext),
                        "ours": lambda: d.random_key()}, False),
        "newest_keys(max_n=10)": ({"raw": lambda: walk_newest(root, ext, 10),
                                   "ours": lambda: d.newest_keys(max_n=10)}, False),
    }
    rows = []
    times = calls_per_run(n)
    for name, (fns, has_dc) in cases.items():
        med = interleaved({k: (None, repeated(f, times)) for k, f in fns.items()}, times,
                          repeats)
        rows.append(Row.of(f"{name}, {label}", med, "ours", "raw", 1.5,
                           "dc" if has_dc else None, unit="ms",
                           note="raw: scandir walk + stat" if name.startswith("newest")
                           else "raw: scandir walk"))
    return rows


def bench_listing(root: Path, n: int, repeats: int) -> list[Row]:
    import diskcache

    from persidict import FileDirDict
    from persidict.keys import sign_component

    rows: list[Row] = []
    data = pickle.dumps({"v": 1}, protocol=5)
    dc = diskcache.Cache(str(root / "diskcache_list"))
    for i in range(n):
        dc[f"key{i:05d}"] = {"v": 1}
    for layout in ("flat", "100 dirs"):
        base = root / f"list_{layout.replace(' ', '_')}"
        base.mkdir()
        for i in range(n):
            if layout == "flat":
                path = base / f"{sign_component(f'key{i:05d}', 4)}.pkl"
            else:
                sub = base / sign_component(f"g{i % 100:03d}", 4)
                sub.mkdir(exist_ok=True)
                path = sub / f"{sign_component(f'key{i:05d}', 4)}.pkl"
            write_no_sync(str(path), data)
        d = FileDirDict(base_dir=base)
        assert len(d) == n, f"populated {n} files, FileDirDict sees {len(d)}"
        rows += listing_rows(str(base), d, dc, f"{n:,} items, {layout}", n, repeats)
    dc.close()
    return rows


def bench_array(root: Path, mb: int, repeats: int) -> list[Row]:
    import diskcache
    import numpy as np

    from persidict import FileDirDict
    from persidict.keys import sign_component

    arr = np.random.default_rng(0).random(mb * 2**20 // 8)
    d = FileDirDict(base_dir=root / "array_fdd")
    raw_dir = root / "array_raw"
    raw_dir.mkdir()
    raw_path = str(raw_dir / f"{sign_component('arr', 4)}.pkl")
    dc = diskcache.Cache(str(root / "array_dc"))

    def raw_w() -> None:
        raw_write(raw_path, pickle.dumps(arr, protocol=5))

    def ours_w() -> None:
        d["arr"] = arr

    def dc_w() -> None:
        dc["arr"] = arr

    def raw_r() -> None:
        with open(raw_path, "rb") as f:
            pickle.loads(f.read())

    def ours_r() -> None:
        d["arr"]

    def dc_r() -> None:
        dc["arr"]

    writes = interleaved({"raw": (None, raw_w), "ours": (None, ours_w), "dc": (None, dc_w)},
                         1, repeats)
    assert np.array_equal(d["arr"], arr)
    reads = interleaved({"raw": (None, raw_r), "ours": (None, ours_r), "dc": (None, dc_r)},
                        1, repeats)
    dc.close()
    return [
        Row.of(f"write a {mb} MB numpy array", writes, "ours", "raw", 1.5, "dc", unit="ms"),
        Row.of(f"read a {mb} MB numpy array", reads, "ours", "raw", 1.5, "dc", unit="ms"),
    ]


IMPORT_PROBE = """
import sys, time, json
before = set(sys.modules)
t = time.perf_counter()
import persidict
dt = time.perf_counter() - t
heavy = sorted(m for m in ("pandas", "numpy", "boto3", "botocore", "joblib", "jsonpickle")
               if m in sys.modules)
deps = [m for m in sys.modules if m not in before and not m.startswith("persidict")]
print(json.dumps({"seconds": dt, "heavy": heavy, "deps": deps}))
"""

# Calibration: the same run's cost of importing just the (standard-library) modules that
# `import persidict` pulls in, so a loaded machine can be told apart from a slow package.
DEPS_PROBE = """
import sys, time, json, importlib
deps = json.loads(sys.argv[1])
t = time.perf_counter()
for m in deps:
    if m not in sys.modules:
        try:
            importlib.import_module(m)
        except ImportError:
            pass
print(json.dumps({"seconds": time.perf_counter() - t, "heavy": []}))
"""

IMPORT_FDD_PROBE = """
import sys, time, json
t = time.perf_counter()
from persidict import FileDirDict
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "heavy": []}))
"""


def bench_import(repeats: int, root: Path) -> tuple[list[Row], list[str]]:
    """Import times in fresh interpreters, with persidict's bytecode cached as after a
    ``pip install`` (a private PYTHONPYCACHEPREFIX, warmed once), and without any bytecode
    cache (PYTHONDONTWRITEBYTECODE=1, as some sandboxes run: every module compiled anew)."""
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    base_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    warm_env = {**base_env, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
    cold_env = {**base_env, "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(root / "no_pycache")}

    def probe(code: str, env: dict[str, str], *argv: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", code, *argv], env=env,
                             cwd=tempfile.gettempdir(), capture_output=True, text=True,
                             check=True).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    first = probe(IMPORT_PROBE, warm_env)  # also fills the bytecode cache
    probe(IMPORT_FDD_PROBE, warm_env)
    heavy: list[str] = first["heavy"]
    deps = json.dumps(first["deps"])
    samples: dict[str, list[float]] = {"pkg": [], "fdd": [], "cold": [], "deps": []}
    for _ in range(repeats):  # interleaved, like everything else
        samples["pkg"].append(probe(IMPORT_PROBE, warm_env)["seconds"])
        samples["fdd"].append(probe(IMPORT_FDD_PROBE, warm_env)["seconds"])
        samples["cold"].append(probe(IMPORT_PROBE, cold_env)["seconds"])
        samples["deps"].append(probe(DEPS_PROBE, warm_env, deps)["seconds"])
    med = {k: statistics.median(v) for k, v in samples.items()}
    rows = [
        Row("`import persidict`, fresh interpreter, bytecode cached", med["pkg"], None, 0.1,
            unit="s", absolute=True),
        Row("`from persidict import FileDirDict`, same", med["fdd"], None, None,
            unit="s", absolute=True),
        Row("`import persidict` without a bytecode cache (PYTHONDONTWRITEBYTECODE=1)",
            med["cold"], None, None, unit="s", absolute=True),
        Row(f"calibration: import only the {len(first['deps'])} stdlib modules persidict "
            "pulls in", med["deps"], None, None, unit="s", absolute=True),
    ]
    return rows, heavy


# ---------------------------------------------------------------------------- profiling

def profile(workload: str, root: Path, n: int) -> None:
    import numpy as np

    from persidict import FileDirDict
    from persidict.keys import sign_component

    keys, values = small_values(n)
    d = FileDirDict(base_dir=root / "profile")
    prof = cProfile.Profile()
    if workload in ("get", "in", "delete", "set"):
        for k, v in zip(keys, values, strict=True):
            d[k] = v
        ops: dict[str, Callable[[], Any]] = {
            "get": lambda: [d[k] for k in keys],
            "in": lambda: [k in d for k in keys],
            "delete": lambda: [d.__delitem__(k) for k in keys],
            "set": lambda: [d.__setitem__(k, v) for k, v in zip(keys, values, strict=True)],
        }
        fn = ops[workload]
    elif workload in ("len", "keys", "random_key", "newest_keys"):
        data = pickle.dumps({"v": 1}, protocol=5)
        for i in range(n):
            write_no_sync(str(root / "profile" / f"{sign_component(f'key{i:05d}', 4)}.pkl"), data)
        list_ops: dict[str, Callable[[], Any]] = {
            "len": lambda: [len(d) for _ in range(20)],
            "keys": lambda: [list(d.keys()) for _ in range(20)],
            "random_key": lambda: [d.random_key() for _ in range(20)],
            "newest_keys": lambda: [d.newest_keys(max_n=10) for _ in range(20)],
        }
        fn = list_ops[workload]
    elif workload in ("array_write", "array_read"):
        arr = np.random.default_rng(0).random(50 * 2**20 // 8)
        d["arr"] = arr

        def array_op() -> None:
            for _ in range(5):
                if workload == "array_write":
                    d["arr"] = arr
                else:
                    d["arr"]
        fn = array_op
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    prof.runcall(fn)
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def bench_signed(root: Path, n: int, repeats: int) -> list[Row]:
    """Signed stores (HMAC-SHA256 per value) against the same store unsigned."""
    from persidict import FileDirDict

    keys, values = small_values(n)
    plain = FileDirDict(base_dir=root / "unsigned", signing_key="")
    signed = FileDirDict(base_dir=root / "signed", signing_key=b"bench key")

    def set_all(d: Any) -> Callable[[], None]:
        def run() -> None:
            for k, v in zip(keys, values, strict=True):
                d[k] = v
        return run

    def get_all(d: Any) -> Callable[[], None]:
        def run() -> None:
            for k in keys:
                d[k]
        return run

    sets = interleaved({"plain": (None, set_all(plain)), "signed": (None, set_all(signed))},
                       n, repeats)
    gets = interleaved({"plain": (None, get_all(plain)), "signed": (None, get_all(signed))},
                       n, 3 * repeats)
    note = "limit: the same store unsigned"
    return [Row.of(f"signed set, {n:,} small values, pkl", sets, "signed", "plain", 1.3,
                   note=note),
            Row.of(f"signed get, {n:,} small values, pkl", gets, "signed", "plain", 1.3,
                   note=note)]


# --------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer items and repeats (~20 s)")
    ap.add_argument("--dir", type=Path, default=REPO / ".bench",
                    help="where the stores live (default: .bench/ in the repo, gitignored)")
    ap.add_argument("--profile", metavar="WORKLOAD", help="cProfile FileDirDict on a workload")
    from bench_json import add_json_option, progress, row, write_json

    add_json_option(ap)
    args = ap.parse_args()

    n_small, n_list, mb = (300, 2000, 10) if args.quick else (2000, 10_000, 50)
    repeats, list_repeats, array_repeats = (3, 3, 3) if args.quick else (4, 9, 5)

    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench_file_", dir=args.dir))
    try:
        if args.profile:
            profile(args.profile, root, n_list if args.profile in
                    ("len", "keys", "random_key", "newest_keys") else n_small)
            return
        started = time.time()
        load_before = os.getloadavg()
        progress(f"small values: set/get/in/delete of {n_small:,} items, {repeats} repeats")
        rows = bench_small(root, n_small, repeats)
        progress(f"signed stores: set/get of {n_small:,} items")
        rows += bench_signed(root, n_small, repeats)
        progress(f"listings of {n_list:,} items")
        rows += bench_listing(root, n_list, list_repeats)
        progress(f"a {mb} MB array")
        rows += bench_array(root, mb, array_repeats)
        progress("import time")
        import_rows, heavy = bench_import(7 if not args.quick else 3, root)
        rows += import_rows
    finally:
        shutil.rmtree(root, ignore_errors=True)

    import diskcache
    import numpy as np

    print(f"## FileDirDict benchmark ({'quick' if args.quick else 'full'} run)\n")
    print(f"Python {platform.python_version()} on {platform.platform()}, "
          f"{os.cpu_count()} CPUs; numpy {np.__version__}, diskcache {diskcache.__version__}; "
          f"data under {args.dir} ({time.time() - started:.0f} s; 1-min load average "
          f"{load_before[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end). Times are medians "
          f"of {repeats} repeats for set/delete, {3 * repeats} for get/`in`, {list_repeats} "
          f"for listings, {array_repeats} for the array; ratios are medians of the per-repeat "
          f"ratios of back-to-back runs.\n")
    print(render(rows))
    print()
    print("Heavy modules imported by `import persidict`: "
          + (", ".join(heavy) if heavy else "none (no pandas, numpy, boto3)"))
    misses = [r.workload for r in rows if r.verdict == "MISS"]
    print(f"\n{len(misses)} target(s) missed" + (": " + "; ".join(misses) if misses else ""))
    write_json(args.json, "bench_file", args.quick, [
        row(r.workload, {"raw limit": r.ratio, "diskcache": r.dc_ratio},
            r.target, r.verdict) for r in rows if not r.absolute])


if __name__ == "__main__":
    main()
