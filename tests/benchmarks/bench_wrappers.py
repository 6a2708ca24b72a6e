"""Warm-hit latency of the caching wrappers against a dict, a bare LocalDict and a FileDirDict.

    python tests/benchmarks/bench_wrappers.py [--quick] [--repeats N]

Rows (all measured in one run, implementations interleaved inside every repeat so that CPU
drift hits them alike):

* ``dict``: a plain ``dict`` lookup, the floor;
* ``LocalDict``: a bare in-memory store hit;
* ``AppendOnlyDictCached(FileDirDict, LocalDict)``: a warm hit (served by the cache alone);
* ``MutableDictCached(FileDirDict, LocalDict, LocalDict)``: a warm hit (one ETag check on the
  file, the value from the cache);
* ``FileDirDict``: an uncached read (open, read, unpickle);
* ``WriteOnceDict(FileDirDict)``: a read through the write-once wrapper, and a repeated write of
  an existing key (one atomic insert attempt).

Each figure is the median, over many repeats, of the mean time per lookup over a pass across
``N_KEYS`` keys. Two value shapes: a short ``str`` (no copy needed) and a small ``dict`` (memory
stores deep-copy it on every read, so mutating a result never changes the store).

Targets (issue 3): AppendOnlyDictCached warm hit within 2x a bare LocalDict hit; a LocalDict hit
under 2 us; a MutableDictCached warm hit cheaper than an uncached read of its main store.

Not collected by pytest (pyproject ignores tests/benchmarks).
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark a checkout without installing it

from persidict import (  # noqa: E402  (after the sys.path tweak)
    AppendOnlyDictCached,
    FileDirDict,
    LocalDict,
    MutableDictCached,
    WriteOnceDict,
)

N_KEYS = 100
VALUES: dict[str, Callable[[int], Any]] = {
    "str": lambda i: f"value-{i:06d}",
    "dict": lambda i: {"id": i, "name": f"item-{i}", "tags": ["a", "b"], "score": i * 0.5},
}


def build(base: Path, make_value: Callable[[int], Any]) -> dict[str, Callable[[], Any]]:
    """One zero-argument callable per row, each doing one lookup of every key."""
    keys = [f"k{i:04d}" for i in range(N_KEYS)]
    values = {k: make_value(i) for i, k in enumerate(keys)}

    plain = dict(values)
    local: LocalDict[Any] = LocalDict()
    fdd: FileDirDict[Any] = FileDirDict(base_dir=base / "plain")
    ao = AppendOnlyDictCached(main_dict=FileDirDict(base_dir=base / "ao", append_only=True),
                              data_cache=LocalDict(append_only=True))
    mc = MutableDictCached(main_dict=FileDirDict(base_dir=base / "mc"), data_cache=LocalDict(),
                           etag_cache=LocalDict(serialization_format="txt",
                                                base_class_for_values=str))
    wo = WriteOnceDict(wrapped_dict=FileDirDict(base_dir=base / "wo", append_only=True))
    for k, v in values.items():
        for store in (local, fdd, ao, mc, wo):
            store[k] = v
    for k in keys:  # warm the caches and check every row reads the right thing
        for store in (plain, local, fdd, ao, mc, wo):
            assert store[k] == values[k]

    def reader(store: Any) -> Callable[[], Any]:
        get = store.__getitem__

        def run() -> None:
            for k in keys:
                get(k)
        return run

    def rewriter(store: Any) -> Callable[[], Any]:
        put = store.__setitem__

        def run() -> None:
            for k in keys:
                put(k, values[k])
        return run

    return {
        "dict": reader(plain),
        "LocalDict": reader(local),
        "AppendOnlyDictCached(FileDirDict, LocalDict)": reader(ao),
        "MutableDictCached(FileDirDict, LocalDict, LocalDict)": reader(mc),
        "FileDirDict (uncached read)": reader(fdd),
        "WriteOnceDict(FileDirDict) read": reader(wo),
        "WriteOnceDict(FileDirDict) repeated write": rewriter(wo),
    }


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def measure(rows: dict[str, Callable[[], Any]], repeats: int, budget: float,
            clock: Callable[[], float]) -> dict[str, float]:
    """Median microseconds per lookup for every row, rows interleaved inside each repeat."""
    numbers = {}
    for name, fn in rows.items():  # calibrate: enough passes for ~budget seconds per repeat
        t = timeit.timeit(fn, number=3) / 3
        numbers[name] = max(1, int(budget / max(t, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in rows}
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in rows.items():
                t = timeit.Timer(fn, timer=clock).timeit(number=numbers[name])
                samples[name].append(t / numbers[name] / N_KEYS * 1e6)
    finally:
        gc.enable()
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: perf_counter (default); cpu: this process's user+sys CPU "
                             "time, steadier on a busy machine (reads hit the page cache, so "
                             "there is no I/O wait to leave out)")
    from bench_json import add_json_option, progress, row, write_json

    add_json_option(parser)
    args = parser.parse_args()
    repeats = args.repeats or (7 if args.quick else 41)
    budget = 0.005 if args.quick else 0.02

    print(f"# Wrapper warm-hit latency: Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {N_KEYS} keys, median of {repeats} "
          f"repeats, {args.clock} clock\n")
    results: dict[str, dict[str, float]] = {}
    for shape, make_value in VALUES.items():
        progress(f"{shape} values: {repeats} repeats")
        base = Path(tempfile.mkdtemp(prefix="bench_wrappers_"))
        try:
            results[shape] = measure(build(base, make_value), repeats, budget,
                                     CLOCKS[args.clock])
        finally:
            shutil.rmtree(base, ignore_errors=True)

    shapes = list(VALUES)
    print("| row | " + " | ".join(f"{s}: us/op | {s}: x LocalDict | {s}: x FileDirDict"
                                   for s in shapes) + " |")
    print("|---|" + "---:|" * (3 * len(shapes)))
    for name in results[shapes[0]]:
        cells = []
        for s in shapes:
            r = results[s]
            cells += [f"{r[name]:.3f}", f"{r[name] / r['LocalDict']:.2f}",
                      f"{r[name] / r['FileDirDict (uncached read)']:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\nTargets:")
    for s in shapes:
        r = results[s]
        ao = r["AppendOnlyDictCached(FileDirDict, LocalDict)"] / r["LocalDict"]
        mc = (r["MutableDictCached(FileDirDict, LocalDict, LocalDict)"]
              / r["FileDirDict (uncached read)"])
        print(f"* {s} values: AppendOnlyDictCached warm hit = {ao:.2f}x LocalDict "
              f"(target <= 2): {'PASS' if ao <= 2 else 'FAIL'}; "
              f"LocalDict hit = {r['LocalDict']:.3f} us (target < 2): "
              f"{'PASS' if r['LocalDict'] < 2 else 'FAIL'}; "
              f"MutableDictCached warm hit = {mc:.2f}x an uncached FileDirDict read "
              f"(target < 1): {'PASS' if mc < 1 else 'FAIL'}")
    targets = {"AppendOnlyDictCached(FileDirDict, LocalDict)": ("LocalDict", 2.0),
               "MutableDictCached(FileDirDict, LocalDict, LocalDict)":
                   ("FileDirDict (uncached read)", 1.0)}
    records = []
    for s in shapes:
        r = results[s]
        for name in r:
            if name in ("LocalDict", "FileDirDict (uncached read)"):
                continue
            base_name, limit = targets.get(name, ("LocalDict", None))
            ratios = {"LocalDict": r[name] / r["LocalDict"],
                      "uncached FileDirDict": r[name] / r["FileDirDict (uncached read)"]}
            ratio = r[name] / r[base_name]
            verdict = "info" if limit is None else "PASS" if ratio <= limit else "MISS"
            if base_name != "LocalDict":
                ratios = dict(reversed(ratios.items()))  # the target's baseline first
            records.append(row(f"{name}, {s}", ratios, limit, verdict))
    write_json(args.json, "bench_wrappers", args.quick, records)


if __name__ == "__main__":
    main()
