"""persistent_cache against joblib.Memory, diskcache's memoize and functools.lru_cache, in one run.

    python tests/benchmarks/bench_memo.py [--quick] [--dir DIR] [--profile CASE] [--only S]
                                          [--readme]

Cases (every implementation stores in its own fresh directory under ``--dir``; persistent_cache
uses its default store kind, a FileDirDict at that path):

* **warm hit, f(3, 4)**: the same call again and again; the median, over many repeats, of the mean
  time per call of a batch. persistent_cache is also measured on a *store hit* (a freshly
  decorated copy of the function, so the result comes from disk, as in a new process).
* **hit, 100 MB float64 array argument**: the call's cost is hashing the argument (lru_cache
  cannot hash an array: n/a). diskcache pickles the whole argument into its SQLite key, so it
  runs in a child process that is stopped after a time bound; hits that ended in time are
  reported, else "too slow".
* **miss overhead, trivial body**, on stores already holding 0, 200 and 10,000 entries (filled
  untimed): fresh arguments at every call, leases on; persistent_cache is also run with
  ``lease=False``. The floor is one atomic small-file write (pickle, temp file, link), measured
  in the same run.
* **S3 requests**: the requests a miss, a warm hit and a cold hit send from the caller's thread
  (botocore's ``before-call`` hook) to a moto server over HTTP.
* **cold stampede**: 4 ``spawn`` processes sharing one store are released together by a barrier
  and call one uncached 1-second function; the body leaves a marker file per run, counted after.

Implementations are interleaved inside every repeat (order reversed every other repeat), so CPU
drift hits them alike; ratios are medians of the per-repeat ratios of back-to-back runs.

Targets (issues 5 and 10): warm hit of f(3, 4) no slower than diskcache's and at least 5x faster
than joblib's; the 100 MB array hit at most a quarter of joblib's time; stampede body runs = 1;
miss overhead no more than joblib's on each store size (stretch: 2x diskcache's); on S3 a miss
sends at most 2 requests besides the result's PUT, a warm hit none, a cold hit one GET.

``--profile warm|array|miss`` prints a cProfile of persistent_cache on that case instead.

Not collected by pytest (pyproject ignores tests/benchmarks). The spawned workers live in
``memo_bench_workers.py`` next to this file.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import itertools
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)  # benchmark a checkout without installing it

import memo_bench_workers as workers  # noqa: E402  (after the sys.path tweak)

PC = "persistent_cache"
PC_NOLEASE = "persistent_cache lease=False"
PC_LEASED = "persistent_cache, lease upfront"
PC_STORE = "persistent_cache (store hit)"
JOBLIB = "joblib.Memory"
DISKCACHE = "diskcache"
LRU = "functools.lru_cache"
ARRAY_MB = 100
N_PROCS = 4


# ------------------------------------------------------------------------------ timing

@dataclass
class Case:
    """One implementation on one workload: ``run`` does ``n_ops`` calls, ``setup`` is untimed."""

    run: Callable[[], Any]
    n_ops: int
    setup: Callable[[], Any] | None = None
    settle: Callable[[], Any] | None = None  # untimed by "returned", timed by "settled"


@dataclass
class Timings:
    """Per-repeat samples (microseconds per call); medians and paired ratios."""

    samples: dict[str, list[float]]
    settled: dict[str, list[float]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, name: str, base: str) -> float:
        """Median of the per-repeat ratios name / base."""
        return statistics.median(
            a / b for a, b in zip(self.samples[name], self.samples[base], strict=True))


def interleaved(cases: dict[str, Case], repeats: int) -> Timings:
    """Per-call microseconds of every case, the cases interleaved inside every repeat."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    settled: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        for name in (list(cases) if r % 2 == 0 else list(reversed(cases))):
            case = cases[name]
            if case.setup is not None:
                case.setup()
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                case.run()
                returned = time.perf_counter()
                if case.settle is not None:
                    case.settle()
                done = time.perf_counter()
            finally:
                gc.enable()
            samples[name].append((returned - start) / case.n_ops * 1e6)
            settled[name].append((done - start) / case.n_ops * 1e6)
    return Timings(samples, settled)


def calibrate(call: Callable[[], Any], budget: float, low: int, high: int) -> int:
    """How many calls fill about ``budget`` seconds (within ``low``..``high``)."""
    start = time.perf_counter()
    for _ in range(low):
        call()
    per_call = (time.perf_counter() - start) / low
    return max(low, min(high, int(budget / max(per_call, 1e-9))))


def fmt_us(us: float | None) -> str:
    if us is None:
        return "n/a"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    if us >= 10:
        return f"{us:.1f} us"
    return f"{us:.2f} us"


@dataclass
class Row:
    case: str
    impl: str
    value: str
    vs_pc: str = ""
    note: str = ""


@dataclass
class Target:
    text: str
    measured: str
    ok: bool


# --------------------------------------------------------------------------- workloads

def add(x: int, y: int) -> int:
    return x + y


def trivial(i: int) -> int:
    return i


def decorate(impl: str, root: Path, func: Callable[..., Any]) -> tuple[Any, str]:
    """``func`` under ``impl``, storing in a fresh directory of its own; and that directory."""
    store = tempfile.mkdtemp(prefix=impl.split()[0].replace(".", "_") + "_", dir=root)
    if impl == LRU:
        return functools.lru_cache(maxsize=None)(func), store
    return workers.cached(impl, store, func), store


def bench_warm(root: Path, repeats: int, budget: float) -> tuple[list[Row], list[Target]]:
    from persidict_memo import persistent_cache

    impls = [PC, DISKCACHE, JOBLIB, LRU]
    made = {impl: decorate(impl, root, add) for impl in impls}
    fns = {impl: fn for impl, (fn, _) in made.items()}
    for impl, fn in fns.items():
        assert fn(3, 4) == 7, impl
        assert fn(3, 4) == 7, impl
    assert fns[PC].cache_info().hits == 1

    store_dir = made[PC][1]
    n_store = max(20, min(500, int(budget / 100e-6)))  # store hits take ~100 us
    fresh: list[Any] = []

    def fresh_copies() -> None:  # untimed: new wrappers over the same store, store opened
        fresh.clear()
        for _ in range(n_store):
            fn = persistent_cache(store=store_dir)(add)
            fn.cache_store  # noqa: B018
            fresh.append(fn)

    def store_hits() -> None:
        for fn in fresh:
            fn(3, 4)

    cases: dict[str, Case] = {}
    for impl, fn in fns.items():
        n = calibrate(lambda fn=fn: fn(3, 4), budget, 20, 200_000)

        def run(fn: Any = fn, n: int = n) -> None:
            for _ in range(n):
                fn(3, 4)
        cases[impl] = Case(run, n)
    cases[PC_STORE] = Case(store_hits, n_store, setup=fresh_copies)
    t = interleaved(cases, repeats)
    assert all(fn.cache_info().misses == 0 for fn in fresh)

    name = "warm hit, f(3, 4)"
    rows = [Row(name, impl, fmt_us(t[impl]), f"{t.ratio(impl, PC):.2f}x") for impl in impls]
    rows.append(Row(name, PC_STORE, fmt_us(t[PC_STORE]), f"{t.ratio(PC_STORE, PC):.2f}x",
                    "fresh wrapper: result read from the store"))
    vs_dc = t.ratio(PC, DISKCACHE)
    vs_jl = t.ratio(JOBLIB, PC)
    targets = [
        Target("warm hit f(3, 4): persistent_cache / diskcache <= 1",
               f"{vs_dc:.2f}x ({fmt_us(t[PC])} vs {fmt_us(t[DISKCACHE])})", vs_dc <= 1),
        Target("warm hit f(3, 4): joblib / persistent_cache >= 5",
               f"{vs_jl:.1f}x ({fmt_us(t[JOBLIB])} vs {fmt_us(t[PC])})", vs_jl >= 5),
    ]
    return rows, targets


def big_array(mb: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).random(mb * 2**20 // 8)


def diskcache_array(root: Path, mb: int, hits: int, bound: float) -> tuple[list[float], float]:
    """diskcache on the big array in a child process: (hit seconds, miss seconds or nan)."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    store = tempfile.mkdtemp(prefix="diskcache_array_", dir=root)
    proc = ctx.Process(target=workers.diskcache_array_worker,
                       args=(store, mb * 2**20 // 8, 0, hits, results), daemon=True)
    proc.start()
    deadline = time.monotonic() + bound
    hit_times: list[float] = []
    miss = float("nan")
    while True:
        try:
            kind, seconds = results.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if kind == "miss":
            miss = seconds
        elif kind == "hit":
            hit_times.append(seconds)
        else:
            break
    if proc.is_alive():
        proc.terminate()
    proc.join(10)
    return hit_times, miss


def bench_array(root: Path, repeats: int, mb: int, dc_hits: int,
                dc_bound: float) -> tuple[list[Row], list[Target]]:
    from persidict_memo import persistent_cache

    arr = big_array(mb)
    made = {impl: decorate(impl, root, workers.array_body) for impl in (PC, JOBLIB)}
    fns = {impl: fn for impl, (fn, _) in made.items()}
    expected = float(arr[0])
    for impl, fn in fns.items():
        assert fn(arr) == expected, impl
        assert fn(arr) == expected, impl
    try:
        functools.lru_cache(workers.array_body)(arr)
        lru = "hashed?!"
    except TypeError as exc:
        lru = f"n/a ({type(exc).__name__}: {exc})"
    store_dir = made[PC][1]
    fresh: list[Any] = []

    def fresh_copy() -> None:
        fresh.clear()
        fn = persistent_cache(store=store_dir)(workers.array_body)
        fn.cache_store  # noqa: B018
        fresh.append(fn)

    cases = {impl: Case(lambda fn=fn: fn(arr), 1) for impl, fn in fns.items()}
    cases[PC_STORE] = Case(lambda: fresh[0](arr), 1, setup=fresh_copy)
    t = interleaved(cases, repeats)
    dc_hit_times, dc_miss = diskcache_array(root, mb, dc_hits, dc_bound)

    name = f"hit, {mb} MB float64 array"
    rows = [Row(name, PC, fmt_us(t[PC]), "1.00x"),
            Row(name, PC_STORE, fmt_us(t[PC_STORE]), f"{t.ratio(PC_STORE, PC):.2f}x",
                "fresh wrapper: hash + store read"),
            Row(name, JOBLIB, fmt_us(t[JOBLIB]), f"{t.ratio(JOBLIB, PC):.2f}x")]
    if dc_hit_times:
        dc = statistics.median(dc_hit_times) * 1e6
        rows.append(Row(name, DISKCACHE, fmt_us(dc), f"{dc / t[PC]:.0f}x (unpaired)",
                        f"median of {len(dc_hit_times)} hit(s) in a child; its miss took "
                        f"{dc_miss:.1f} s"))
    else:
        what = (f"miss took {dc_miss:.1f} s, no hit" if dc_miss == dc_miss else "miss")
        rows.append(Row(name, DISKCACHE, f"too slow (> {dc_bound:.0f} s)", "",
                        f"{what} within the bound; child stopped"))
    rows.append(Row(name, LRU, "n/a", "", lru))
    ratio = t.ratio(PC, JOBLIB)
    targets = [Target(f"{mb} MB array hit: persistent_cache / joblib <= 0.25",
                      f"{ratio:.3f} ({fmt_us(t[PC])} vs {fmt_us(t[JOBLIB])})", ratio <= 0.25)]
    return rows, targets


MISS_SIZES = (0, 200, 10_000)


def raw_write_floor(root: Path, n: int) -> float:
    """Microseconds per atomic small-file write (pickle, temp file, link, unlink; no fsync):
    what any file-backed cache pays at least once per miss."""
    import pickle

    directory = tempfile.mkdtemp(prefix="floor_", dir=root)
    start = time.perf_counter()
    for i in range(n):
        data = pickle.dumps(i, protocol=5)
        tmp = os.path.join(directory, f".tmp{i}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
        os.link(tmp, os.path.join(directory, f"{i}.pkl"))
        os.unlink(tmp)
    return (time.perf_counter() - start) / n * 1e6


def bench_miss(root: Path, repeats: int, budget: float,
               sizes: tuple[int, ...] = MISS_SIZES) -> tuple[list[Row], list[Target]]:
    """Miss overhead (a body that returns at once) on stores already holding ``sizes`` entries.

    Every implementation gets its own store, filled untimed with that many results of the same
    function; then fresh arguments at every call. persistent_cache runs with leases on (its
    default): after a streak of quick calls it takes a call's lease only if the call outlasts
    the grace period (see docs/memo.md). The "lease upfront" row is the miss of a process's
    first calls: the lease inserted before the body runs, released by the metadata write.
    """
    from persidict_memo import background

    impls = [PC, PC_LEASED, PC_NOLEASE, DISKCACHE, JOBLIB]
    rows: list[Row] = []
    targets: list[Target] = []
    for size in sizes:
        counter = itertools.count(1_000_000 * (size + 1))  # fresh arguments for every call
        cases: dict[str, Case] = {}
        for impl in impls:
            fn, _ = decorate(PC if impl == PC_LEASED else impl, root, trivial)
            for i in range(-size, 0):  # untimed: a store of `size` entries
                fn(i)
            memo = fn._self_memo if impl == PC_LEASED else None  # its streak reset every call

            def one(fn: Any = fn, counter: Any = counter, memo: Any = memo) -> None:
                i = next(counter)
                if memo is not None:
                    memo._quick_streak = 0
                assert fn(i) == i
            n = calibrate(one, budget, 5, 20_000)
            background.flush()

            def run(fn: Any = fn, n: int = n, counter: Any = counter, memo: Any = memo) -> None:
                if memo is None:
                    for i in itertools.islice(counter, n):
                        fn(i)
                    return
                for i in itertools.islice(counter, n):
                    memo._quick_streak = 0
                    fn(i)
            cases[impl] = Case(run, n, settle=background.flush)
        t = interleaved(cases, repeats)
        floor = raw_write_floor(root, 300)
        name = f"miss overhead, trivial body, store of {size:,} entries"
        for impl in impls:
            rows.append(Row(name, impl, fmt_us(t[impl]), f"{t.ratio(impl, PC):.2f}x"))
        rows.append(Row(name, "floor: one atomic file write", fmt_us(floor), "",
                        "pickle + temp file + link, no fsync (same run)"))
        vs_jl = t.ratio(PC, JOBLIB)
        vs_dc = t.ratio(PC, DISKCACHE)
        targets.append(Target(f"miss, {size:,} entries: persistent_cache / joblib <= 1",
                              f"{vs_jl:.2f}x ({fmt_us(t[PC])} vs {fmt_us(t[JOBLIB])})",
                              vs_jl <= 1))
        targets.append(Target(f"miss, {size:,} entries (stretch): persistent_cache / diskcache "
                              "<= 2", f"{vs_dc:.2f}x ({fmt_us(t[PC])} vs {fmt_us(t[DISKCACHE])})",
                              vs_dc <= 2))
    return rows, targets


def bench_s3_requests(root: Path) -> tuple[list[Row], list[Target]]:
    """S3 requests on the caller's critical path, counted with botocore's before-call hook."""
    import threading

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    from persidict import BasicS3Dict
    from persidict_memo import background, persistent_cache
    from persidict_memo.memoizer import QUICK_STREAK
    from tests.s3_support import make_client, new_bucket_name, start_moto_server

    server, endpoint = start_moto_server()
    try:
        client = make_client(endpoint)
        bucket = new_bucket_name()
        client.create_bucket(Bucket=bucket)
        calls: list[str] = []
        me = threading.get_ident()

        def on_call(model: Any, **_: Any) -> None:
            if threading.get_ident() == me:  # the caller's thread: its critical path
                calls.append(model.name)
        client.meta.events.register("before-call.s3.*", on_call)

        def fresh() -> Any:
            store = BasicS3Dict(bucket_name=bucket, root_prefix="bench", client=client)
            fn = persistent_cache(store=store)(trivial)
            fn(-1)  # opened (bucket check, the client's one-time probe): not a call's requests
            return fn

        def requests(call: Callable[[], Any]) -> list[str]:
            background.flush()
            calls.clear()
            call()
            return list(calls)

        fn = fresh()
        leased = requests(lambda: fn(1))
        for i in range(2, 2 + QUICK_STREAK):
            fn(i)
        quick = requests(lambda: fn(100))
        warm = requests(lambda: fn(100))
        cold = fresh()
        cold_hit = requests(lambda: cold(100))
        background.flush()
    finally:
        server.stop()

    def beyond_put(names: list[str]) -> int:
        return len(names) - (1 if "PutObject" in names else 0)

    name = "S3 (moto server), requests on the critical path"
    rows = [Row(name, PC, ", ".join(leased), f"{beyond_put(leased)} beyond the PUT",
                "first miss (leased)"),
            Row(name, PC, ", ".join(quick), f"{beyond_put(quick)} beyond the PUT",
                "miss after a streak of quick calls"),
            Row(name, PC, ", ".join(warm) or "none", "", "warm hit"),
            Row(name, PC, ", ".join(cold_hit) or "none", "", "cold hit (fresh wrapper)")]
    worst = max(beyond_put(leased), beyond_put(quick))
    targets = [Target("S3 miss: requests beyond the result's PUT <= 2", str(worst), worst <= 2),
               Target("S3 warm hit: no request", str(len(warm)), not warm),
               Target("S3 cold hit: exactly one GET", ", ".join(cold_hit) or "none",
                      cold_hit == ["GetObject"])]
    return rows, targets


def stampede_round(root: Path, impl: str, arg: int) -> tuple[int, list[float], list[str]]:
    """One stampede: (body runs, seconds each caller took, problems)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tag = impl.split()[0].replace(".", "_")
    store = tempfile.mkdtemp(prefix=f"stampede_{tag}_", dir=root)
    markers = tempfile.mkdtemp(prefix=f"markers_{tag}_", dir=root)
    barrier = ctx.Barrier(N_PROCS)
    results = ctx.Queue()
    procs = [ctx.Process(target=workers.stampede_worker,
                         args=(impl, store, markers, arg, barrier, results), daemon=True)
             for _ in range(N_PROCS)]
    for p in procs:
        p.start()
    seconds: list[float] = []
    problems: list[str] = []
    deadline = time.monotonic() + 120
    for _ in range(N_PROCS):
        try:
            _pid, value, took, error = results.get(
                timeout=max(0.0, deadline - time.monotonic()))
        except Exception:
            problems.append("a caller did not return within 120 s")
            break
        seconds.append(took)
        if error:
            problems.append(error)
        elif value != arg * 2:
            problems.append(f"wrong result {value!r}")
    for p in procs:
        p.join(15)
        if p.is_alive():
            p.terminate()
            p.join(5)
            problems.append(f"worker {p.pid} did not exit")
    runs = len(os.listdir(markers))
    return runs, seconds, problems


def bench_stampede(root: Path, rounds: int) -> tuple[list[Row], list[Target]]:
    impls = [PC, PC_NOLEASE, JOBLIB, DISKCACHE]
    runs: dict[str, list[int]] = {impl: [] for impl in impls}
    callers: dict[str, list[list[float]]] = {impl: [] for impl in impls}
    problems: dict[str, list[str]] = {impl: [] for impl in impls}
    for r in range(rounds):
        for impl in (impls if r % 2 == 0 else list(reversed(impls))):
            n, seconds, trouble = stampede_round(root, impl, 1000 + r)
            runs[impl].append(n)
            callers[impl].append(sorted(seconds))
            problems[impl] += trouble

    name = f"cold stampede, {N_PROCS} processes, 1 s body"
    rows = []
    for impl in impls:
        note = "callers returned after " + "; ".join(
            "/".join(f"{s:.2f}" for s in times) for times in callers[impl]) + " s"
        if problems[impl]:
            note += "; PROBLEMS: " + "; ".join(problems[impl])
        rows.append(Row(name, impl, "body runs " + ", ".join(map(str, runs[impl])), "", note))
    ok = all(n == 1 for n in runs[PC]) and not problems[PC]
    targets = [Target("stampede: persistent_cache body runs = 1 (every round)",
                      ", ".join(map(str, runs[PC])) + ("" if not problems[PC] else " + problems"),
                      ok)]
    return rows, targets


# ------------------------------------------------- key-making targets (issue 10, memokeys)

CONFIG = {"model": "resnet", "layers": [64, 128, 256], "lr": 0.001, "dropout": 0.1,
          "optimizer": {"name": "adam", "betas": [0.9, 0.999], "eps": 1e-8}, "epochs": 10,
          "seed": 0, "augment": True, "tags": ["a", "b"], "schedule": None}
FLOOR = "floor: xxh3_128(pickle.dumps(cfg)) + dict lookup"


def config_body(cfg: dict[str, Any]) -> int:
    return len(cfg)


def text_body(x: int, s: str) -> int:
    return x + len(s)


def bench_key_hits(root: Path, repeats: int, budget: float) -> tuple[list[Row], list[Target]]:
    """Warm hits of f(config_dict) against the hashing floor, and of f(3, "abc") against lru."""
    import pickle

    import xxhash

    rows: list[Row] = []
    targets: list[Target] = []
    table: dict[int, int] = {}
    digest = xxhash.xxh3_128_intdigest
    dumps = pickle.dumps

    def floor_once() -> None:
        table.get(digest(dumps(CONFIG)))

    for name, body, call_args, base in (
        ("warm hit, f(config_dict)", config_body, (CONFIG,), FLOOR),
        ('warm hit, f(3, "abc")', text_body, (3, "abc"), LRU),
    ):
        impls = [PC, DISKCACHE, JOBLIB] + ([LRU] if base == LRU else [])
        fns = {impl: decorate(impl, root, body)[0] for impl in impls}
        for fn in fns.values():
            fn(*call_args)
            fn(*call_args)
        cases: dict[str, Case] = {}
        calls: dict[str, Callable[[], Any]] = {
            impl: functools.partial(fn, *call_args) for impl, fn in fns.items()}
        if base == FLOOR:
            calls[FLOOR] = floor_once
        for impl, one in calls.items():
            n = calibrate(one, budget, 20, 200_000)

            def run(one: Callable[[], Any] = one, n: int = n) -> None:
                for _ in range(n):
                    one()
            cases[impl] = Case(run, n)
        t = interleaved(cases, repeats)
        assert fns[PC].cache_info().misses == 1
        for impl in calls:
            rows.append(Row(name, impl, fmt_us(t[impl]), f"{t.ratio(impl, PC):.2f}x"))
        ratio = t.ratio(PC, base)
        limit = 5 if base == FLOOR else 20
        short = "the floor" if base == FLOOR else "lru_cache"
        targets.append(Target(f"{name}: persistent_cache / {short} <= {limit}",
                              f"{ratio:.1f}x ({fmt_us(t[PC])} vs {fmt_us(t[base])})",
                              ratio <= limit))
    return rows, targets


_IMPORT_PROBE = (
    "import sys, time; t = time.perf_counter(); {statement}; "
    "t = time.perf_counter() - t; heavy = [m for m in ('asyncio', 'numpy', 'pandas', 'boto3') "
    "if m in sys.modules]; print(t, ','.join(heavy))"
)
_IMPORTS = {  # row label -> statement timed in a fresh interpreter
    "persidict_memo": "import persidict_memo",
    "from persidict_memo import persistent_cache": "from persidict_memo import persistent_cache",
    "persidict alone (a dependency)": "import persidict",
    "wrapt alone (no longer imported)": "import wrapt",
}


def _bytecode_env(**extra: str) -> dict[str, str]:
    """The environment of the fresh interpreters: bytecode caches allowed, as in an install.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on some CI machines) every import of this source
    tree would compile it from source, while the peers in site-packages have their caches.
    """
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def bench_import(repeats: int) -> tuple[list[Row], list[Target]]:
    """``import persidict_memo`` in fresh interpreters: best time, and what came with it."""
    import subprocess

    def probe(statement: str) -> tuple[float, str]:
        done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE.format(statement=statement)],
                              capture_output=True, text=True, check=True, cwd=REPO,
                              env=_bytecode_env())
        seconds, _, heavy = done.stdout.strip().partition(" ")
        return float(seconds), heavy

    for statement in _IMPORTS.values():  # writes the bytecode caches, untimed
        probe(statement)
    runs = {label: [probe(statement) for _ in range(repeats)]
            for label, statement in _IMPORTS.items()}
    best = {label: min(s for s, _ in got) * 1e3 for label, got in runs.items()}
    heavy = {label: sorted({m for _, h in got for m in h.split(",") if m})
             for label, got in runs.items()}
    name = f"import (fresh interpreter, bytecode cached, best of {repeats})"
    rows = [Row(name, label, f"{best[label]:.1f} ms", "",
                "also imported: " + (", ".join(heavy[label])
                                     or "none of asyncio/numpy/pandas/boto3"))
            for label in _IMPORTS]
    ours = "persidict_memo"
    decorator = "from persidict_memo import persistent_cache"
    targets = [
        Target("import persidict_memo <= 60 ms", f"{best[ours]:.1f} ms", best[ours] <= 60),
        Target("import persidict_memo imports none of asyncio/numpy/pandas/boto3",
               ", ".join(heavy[ours]) or "none", not heavy[ours]),
        Target("from persidict_memo import persistent_cache: none of them either",
               ", ".join(heavy[decorator]) or "none", not heavy[decorator]),
    ]
    return rows, targets


_COLD_MODULES = {
    "cold_pc": (
        "import os\nfrom persidict_memo import persistent_cache\n\n"
        "@persistent_cache(store=os.environ['COLD_STORE'])\n"
        "def square(x):\n    return x * x\n"),
    "cold_joblib": (
        "import os\nimport joblib\n\n"
        "@joblib.Memory(os.environ['COLD_STORE'], verbose=0).cache\n"
        "def square(x):\n    return x * x\n"),
}
_COLD_CALL = (
    "import time; t0 = time.perf_counter(); import {module} as m; t1 = time.perf_counter(); "
    "v = m.square({arg}); t2 = time.perf_counter(); assert v == {arg} * {arg}; "
    "print(t2 - t1, t2 - t0)"
)


def bench_cold_hit(root: Path, entries: int, repeats: int) -> tuple[list[Row], list[Target]]:
    """First call in a fresh interpreter, a hit in a store of ``entries`` results."""
    import subprocess

    from persidict_memo import background

    code_dir = root / "cold_code"
    code_dir.mkdir()
    for module, source in _COLD_MODULES.items():
        (code_dir / f"{module}.py").write_text(source)
    env_base = _bytecode_env(PYTHONPATH=os.pathsep.join([str(code_dir), str(REPO)]))
    stores = {PC: str(root / "cold_store_pc"), JOBLIB: str(root / "cold_store_joblib")}
    modules = {PC: "cold_pc", JOBLIB: "cold_joblib"}
    fill_seconds: dict[str, float] = {}
    sys.path.insert(0, str(code_dir))
    try:
        for impl, module in modules.items():  # fill each store with `entries` results
            os.environ["COLD_STORE"] = stores[impl]
            mod = __import__(module)
            start = time.perf_counter()
            for i in range(entries):
                mod.square(i)
            background.flush()
            fill_seconds[impl] = time.perf_counter() - start
    finally:
        sys.path.remove(str(code_dir))
        os.environ.pop("COLD_STORE", None)
    first: dict[str, list[float]] = {impl: [] for impl in modules}
    total: dict[str, list[float]] = {impl: [] for impl in modules}
    for r in range(-1, repeats):  # r = -1: writes the bytecode caches, untimed
        for impl in (list(modules) if r % 2 == 0 else list(reversed(modules))):
            env = {**env_base, "COLD_STORE": stores[impl]}
            code = _COLD_CALL.format(module=modules[impl], arg=(r * 7919) % entries)
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                  text=True, check=True)
            call_s, all_s = map(float, done.stdout.split())
            if r >= 0:
                first[impl].append(call_s * 1e6)
                total[impl].append(all_s * 1e6)
    name = f"cold-process hit, store of {entries:,} results"
    med = {impl: statistics.median(first[impl]) for impl in modules}
    med_total = {impl: statistics.median(total[impl]) for impl in modules}
    rows = [Row(name, impl, fmt_us(med[impl]), f"{med[impl] / med[PC]:.2f}x",
                f"import + first call {fmt_us(med_total[impl])}; store filled in "
                f"{fill_seconds[impl]:.1f} s") for impl in modules]
    targets = [
        Target("cold-process first hit: persistent_cache <= joblib",
               f"{fmt_us(med[PC])} vs {fmt_us(med[JOBLIB])}", med[PC] <= med[JOBLIB]),
        Target("cold-process import + first hit: persistent_cache <= joblib",
               f"{fmt_us(med_total[PC])} vs {fmt_us(med_total[JOBLIB])}",
               med_total[PC] <= med_total[JOBLIB]),
    ]
    return rows, targets


# ------------------------------------------------------------------------------ profile

def profile(case: str, root: Path) -> None:
    from persidict_memo import background

    if case == "warm":
        fn, _ = decorate(PC, root, add)
        fn(3, 4)

        def work() -> None:
            for _ in range(100_000):
                fn(3, 4)
    elif case == "array":
        arr = big_array(ARRAY_MB)
        fn, _ = decorate(PC, root, workers.array_body)
        fn(arr)

        def work() -> None:
            for _ in range(20):
                fn(arr)
    elif case == "miss":
        fn, _ = decorate(PC, root, trivial)
        fn(-1)

        def work() -> None:
            for i in range(300):
                fn(i)
            background.flush()
    else:
        raise SystemExit(f"unknown case {case!r} (warm, array, miss)")
    prof = cProfile.Profile()
    prof.runcall(work)
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


# --------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    ap.add_argument("--dir", type=Path, default=REPO / ".bench",
                    help="where the stores live (default: .bench/ in the repo, gitignored)")
    ap.add_argument("--keys-only", action="store_true",
                    help="only the key-making rows (config-dict and f(3, 'abc') hits, import "
                         "time, cold-process hit)")
    ap.add_argument("--profile", metavar="CASE",
                    help="cProfile persistent_cache on a case: warm, array, miss")
    ap.add_argument("--only", metavar="SECTIONS", default="warm,array,miss,s3,stampede",
                    help="comma-separated sections to run (default: all of "
                         "warm,array,miss,s3,stampede)")
    from bench_json import add_json_option, progress, row, write_json

    add_json_option(ap)
    ap.add_argument("--readme", action="store_true",
                    help="also write the tables into README.md's bench_memo block")
    args = ap.parse_args()
    only = set(args.only.split(","))

    if args.quick:
        warm_repeats, warm_budget, array_repeats, dc_hits, dc_bound = 9, 0.01, 3, 1, 15.0
        miss_repeats, miss_budget, rounds = 3, 0.05, 1
    else:
        warm_repeats, warm_budget, array_repeats, dc_hits, dc_bound = 31, 0.02, 7, 3, 40.0
        miss_repeats, miss_budget, rounds = 7, 0.1, 2

    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench_memo_", dir=args.dir))
    try:
        if args.profile:
            profile(args.profile, root)
            return
        started = time.time()
        load_before = os.getloadavg()
        sections: list[tuple[str, str, Callable[[], tuple[list[Row], list[Target]]]]] = [
            ("warm", f"warm hits, {warm_repeats} repeats",
             lambda: bench_warm(root, warm_repeats, warm_budget)),
            ("array", f"a {ARRAY_MB} MB array argument, {array_repeats} repeats",
             lambda: bench_array(root, array_repeats, ARRAY_MB, dc_hits, dc_bound)),
            ("miss", f"misses on 0/200/10,000-entry stores, {miss_repeats} repeats",
             lambda: bench_miss(root, miss_repeats, miss_budget)),
            ("s3", "S3 request counts (moto server)", lambda: bench_s3_requests(root)),
            ("stampede", f"a 4-process stampede, {rounds} round(s)",
             lambda: bench_stampede(root, rounds)),
        ]
        rows, targets = [], []
        for section, what, run in sections:
            if section in only and not args.keys_only:
                progress(what)
                more, tg = run()
                rows += more
                targets += tg
        progress("key-making: config-dict and f(3, 'abc') hits, import time, cold-process hit")
        for more, tg in (bench_key_hits(root, warm_repeats, warm_budget),
                         bench_import(5 if args.quick else 11),
                         bench_cold_hit(root, 10_000, 3 if args.quick else 7)):
            rows += more
            targets += tg
    finally:
        shutil.rmtree(root, ignore_errors=True)

    import diskcache
    import joblib
    import numpy as np
    import xxhash

    lines = [f"## persidict_memo benchmark ({'quick' if args.quick else 'full'} run)", "",
             f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} "
             f"CPUs; joblib {joblib.__version__}, diskcache {diskcache.__version__}, numpy "
             f"{np.__version__}, xxhash {xxhash.VERSION} ({time.time() - started:.0f} s; 1-min "
             f"load average {load_before[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end). "
             f"Medians of {warm_repeats} repeats (warm hit), {array_repeats} (array), "
             f"{miss_repeats} (miss); {rounds} stampede round(s); 'x persistent_cache' is the "
             "median of per-repeat paired ratios.", "",
             "| case | implementation | per call | x persistent_cache | notes |",
             "|---|---|---:|---:|---|"]
    lines += [f"| {r.case} | {r.impl} | {r.value} | {r.vs_pc} | {r.note} |" for r in rows]
    lines += ["", "| target | measured | verdict |", "|---|---|:---:|"]
    lines += [f"| {tg.text} | {tg.measured} | {'PASS' if tg.ok else 'MISS'} |" for tg in targets]
    misses = [tg.text for tg in targets if not tg.ok]
    lines += ["", f"{len(misses)} target(s) missed" + (": " + "; ".join(misses) if misses else "")]
    print("\n".join(lines))
    by_case: dict[str, dict[str, float | None]] = {}
    for r in rows:  # vs_pc is theirs / ours ("3.20x"); the JSON records ours / theirs
        x = r.vs_pc.split("x")[0]
        if r.impl != PC and x.replace(".", "", 1).isdigit() and float(x) > 0:
            by_case.setdefault(r.case, {})[r.impl] = 1 / float(x)
    write_json(args.json, "bench_memo", args.quick,
               [row(case, ratios) for case, ratios in by_case.items()])
    if args.readme:
        write_readme_section(lines)


README_START = "<!-- bench_memo.py --readme: start -->"
README_END = "<!-- bench_memo.py --readme: end -->"


def write_readme_section(lines: list[str]) -> None:
    """Replace the README's bench_memo block (between the two markers) with this run's output."""
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise SystemExit(f"README.md has no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = "\n".join(["", *[line.replace("## ", "#### ", 1) if line.startswith("## ") else line
                            for line in lines], ""])
    readme.write_text(head + README_START + body + README_END + tail, encoding="utf-8")
    print("\n(README.md benchmark block rewritten from this run)")


if __name__ == "__main__":
    main()
