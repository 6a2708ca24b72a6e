"""Scale: FileDirDict's per-item cost at 1k, 10k, 100k (and 1M) items against the raw limit.

    python tests/benchmarks/bench_scale.py [--max-n 1000000] [--quick] [--no-s3] [--no-memo]
                                           [--dir DIR] [--out docs/benchmarks/bench_scale.json]

Every N gets one store in the layout ``("shard_xx", "key_i")`` (100 shards, small pickled
values), and every operation is timed on those very files against the raw limit measured in the
same run (implementations interleaved in every repeat; medians of per-repeat ratios):

* ``get`` / ``in`` (2,000 random keys): ``open().read()`` + ``pickle.loads`` / ``os.path.isfile``;
* ``len`` / ``keys`` / ``random_key``: one bare ``os.scandir`` walk (counting, building key
  tuples, choosing from them);
* ``items``: the walk plus ``open().read()`` + ``pickle.loads`` of each file;
* ``newest_keys(10)``: the walk plus an ``lstat`` per file;
* ``clear``: the walk plus ``os.unlink`` per file (before every run the tree is removed, written
  afresh and synced, untimed; each run in a fresh process; several pairs per N,
  ``CLEAR_PAIRS``, the median ratio decides).

Every row also reports how far one call raises the peak RSS: ours and the raw limit, each in a
fresh process for the FileDirDict rows, in this process for LocalDict and S3 (a lower bound
there: freed memory is reused).

Listings of the small stores are timed several calls to a run and with more repeats (a call
takes milliseconds); the peak-RSS rows run on the largest store before it is cleared.

diskcache (``diskcache.Cache``) holds the same items and runs the same operations for
reference. Memory rows run in fresh processes and report the peak RSS (``VmHWM``): ``len()`` and
iterating ``keys()`` / ``items()`` against the bare walk, and ``get`` / ``set`` of a big numpy
array in "copies beyond the array" (the array's own size subtracted). LocalDict ``get`` is timed
against a dict of pickles; S3 listings and ``values()`` on moto's HTTP server against a raw
``list_objects_v2`` paginator and raw concurrent GETs on a pool of the same size.

The memo rows (``--no-memo`` to skip) time ``cache_clear()`` and ``forget`` of 10,000 results
against joblib's ``clear()`` and the first hit in a fresh process against joblib's, with
bench_toolkit's and bench_memo's own workloads.

The JSON results and a log-log plot of per-item cost against N are written side by side
(``--out``; the plot is the same path with ``.png``). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)  # benchmark a checkout without installing it

from bench_file import Row, Timings, calls_per_run, interleaved, render, repeated  # noqa: E402
from scale_store import (  # noqa: E402
    EXT,
    SAMPLE,
    child,
    fresh_peaks,
    fresh_tree,
    key_of,
    peak_pair,
    populate,
    row_ops,
    sample_picks,
    value_of,
)

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "bench_scale.json"
CLEAR_PAIRS = {1_000: 8, 10_000: 6, 100_000: 5, 1_000_000: 2}  # clear() runs of each, per N


# ------------------------------------------------------------------------------- timings

def bench_n(root: Path, n: int, repeats: int, memory: list[dict[str, Any]] | None = None
            ) -> list[Row]:
    """The rows of one N; with ``memory``, the peak-RSS rows of this store are added to it."""
    import diskcache

    base = root / f"store_{n}"
    t0 = time.perf_counter()
    populate(base, n)
    dc = diskcache.Cache(str(root / f"dc_{n}"))
    with dc.transact():
        for i in range(n):
            dc[key_of(i)] = value_of(i)
    print(f"  N={n:,}: populated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    time.sleep(0.2)  # let the last directory change settle (see persidict.file_scan)
    ops = row_ops(base, n)
    assert ops["len"][0]() == n
    keys = [key_of(i) for i in sample_picks(n)]
    label = f"N={n:,}"
    rows: list[Row] = []

    def dc_get() -> None:
        for k in keys:
            dc[k]

    def dc_in() -> None:
        for k in keys:
            k in dc  # noqa: B015

    point = interleaved({"ours_get": (None, ops["get"][0]), "raw_get": (None, ops["get"][1]),
                         "dc_get": (None, dc_get), "ours_in": (None, ops["`in`"][0]),
                         "raw_in": (None, ops["`in`"][1]), "dc_in": (None, dc_in)},
                        len(keys), 3 * repeats)
    for op, dc_case in (("get", "dc_get"), ("`in`", "dc_in")):
        rows.append(Row.of(f"{op}, {label}", point, f"ours_{op.strip('`')}",
                           f"raw_{op.strip('`')}", 2.0, dc_case,
                           peak_mb=fresh_peaks(base, n, op)))

    listing: dict[str, tuple[Callable[[], Any] | None, float, str]] = {
        "len": (lambda: len(dc), 1.5, "scandir walk"),
        "keys": (lambda: list(dc), 1.5, "scandir walk"),
        "random_key": (None, 1.5, "scandir walk"),
        "items": (lambda: [(k, dc[k]) for k in dc], 2.0, "walk + reads"),
        "newest_keys(10)": (None, 1.5, "walk + stat"),
    }
    for name, (dc_fn, target, raw_note) in listing.items():
        fns = dict(zip(("ours", "raw"), ops[name], strict=True))
        if dc_fn is not None:
            fns["dc"] = dc_fn
        reps = repeats if name != "items" else max(2, repeats // 2)
        if n <= 10_000:
            reps *= 3  # cheap: more samples where a run is a few milliseconds
        times = calls_per_run(n)
        if name == "items":  # one untimed pass: whichever ran first would read from disk
            ops[name][1]()
        t = interleaved({k: (None, repeated(f, times)) for k, f in fns.items()}, n * times, reps)
        rows.append(Row.of(f"{name}, {label}", t, "ours", "raw", target,
                           "dc" if dc_fn is not None else None, note=f"raw: {raw_note}",
                           peak_mb=fresh_peaks(base, n, name)))

    if memory is not None:  # on this very store (writing another million files costs minutes)
        memory += memory_rows(base, n)

    # clear(): every run gets a tree written afresh (untimed): the old one removed, the new one
    # synced to disk, so both clear files in the same state (rewriting files in place, or
    # writeback still running, makes a clear several times slower at 100k items). Even so the
    # disk's state swings a single run 2-4x either way (an unlink costs 70-320 us on a disk
    # mounted with online discard), so the median of several pairs decides. Each run is a
    # fresh process, as a clear() usually is, which also gives its peak RSS.
    samples: dict[str, list[float]] = {"ours": [], "raw": []}
    peaks = {"ours": 0.0, "raw": 0.0}
    for r in range(CLEAR_PAIRS.get(n, 2)):
        for who in (("ours", "raw") if r % 2 == 0 else ("raw", "ours")):
            fresh_tree(base, n)
            got = child("row", base, str(n), "clear", who)
            samples[who].append(got["seconds"] / n * 1e6)
            peaks[who] = max(peaks[who], got["growth_mb"])
    rows.append(Row.of(f"clear, {label}", Timings(samples), "ours", "raw", 1.5,
                       note="raw: walk + unlink + rmdir",
                       peak_mb=(peaks["ours"], peaks["raw"])))
    dc.close()
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(root / f"dc_{n}", ignore_errors=True)
    return rows


def bench_local(n: int, repeats: int) -> Row:
    from persidict import LocalDict

    d: LocalDict[Any] = LocalDict()
    pickles: dict[tuple[str, str], bytes] = {}
    for i in range(n):
        d[key_of(i)] = value_of(i)
        pickles[key_of(i)] = pickle.dumps(value_of(i), protocol=5)
    rng = random.Random(n)
    keys = [key_of(rng.randrange(n)) for _ in range(min(SAMPLE * 5, n))]

    def ours() -> None:
        for k in keys:
            d[k]

    def raw() -> None:
        loads = pickle.loads
        for k in keys:
            loads(pickles[k])

    t = interleaved({"ours": (None, ours), "raw": (None, raw)}, len(keys), 3 * repeats)
    return Row.of(f"LocalDict get, N={n:,}", t, "ours", "raw", 3.0,
                  note="raw: pickle.loads from a dict", peak_mb=peak_pair(ours, raw))


# ---------------------------------------------------------------------------------- memory

def memory_rows(base: Path, n: int) -> list[dict[str, Any]]:
    """Peak RSS of listings of the store at ``base``, each in a fresh process."""
    rows = []
    for ours, raw, target in (("len", "walk_count", 1.5), ("iter_keys", "raw_iter_keys", None),
                              ("iter_items", "raw_iter_items", None)):
        a, b = child("memory", base, ours), child("memory", base, raw)
        rows.append({"row": f"peak RSS of {ours}, N={n:,}", "ours_mb": a["peak_mb"],
                     "raw_mb": b["peak_mb"], "ours_growth_mb": a["growth_mb"],
                     "raw_growth_mb": b["growth_mb"], "ratio": a["peak_mb"] / b["peak_mb"],
                     "target": target})
    return rows


def array_rows(root: Path, array_mb: int) -> list[dict[str, Any]]:
    """Copies of a big array held by ``set`` and ``get``, each in a fresh process."""
    rows = []
    if array_mb:
        abase = root / "mem_array"
        set_copies = child("array_set", abase, str(array_mb))["copies"]
        get_copies = child("array_get", abase, str(array_mb))["copies"]
        rows.append({"row": f"set of a {array_mb} MB array: copies held beyond the array",
                     "ours": set_copies, "target": 1.0})
        rows.append({"row": f"get of a {array_mb} MB array: copies held beyond the result",
                     "ours": get_copies, "target": 1.1})
        shutil.rmtree(abase, ignore_errors=True)
    return rows


def render_memory(rows: list[dict[str, Any]]) -> str:
    lines = ["| memory | FileDirDict | raw limit | ratio | target | verdict |",
             "|---|---:|---:|---:|---:|:---:|"]
    for r in rows:
        if "ratio" in r:
            target = r["target"]
            verdict = "info" if target is None else ("PASS" if r["ratio"] <= target else "MISS")
            lines.append(f"| {r['row']} (growth: ours {r['ours_growth_mb']:.1f} MB, raw "
                         f"{r['raw_growth_mb']:.1f} MB) | {r['ours_mb']:.1f} MB | "
                         f"{r['raw_mb']:.1f} MB | {r['ratio']:.2f}x | "
                         f"{'' if target is None else f'<= {target:g}x'} | {verdict} |")
        else:
            verdict = "PASS" if r["ours"] <= r["target"] else "MISS"
            lines.append(f"| {r['row']} | {r['ours']:.2f} | | | <= {r['target']:g} | {verdict} |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- S3

def bench_s3(n: int, repeats: int) -> list[Row]:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from persidict import BasicS3Dict
    from persidict.s3_client import READ_MANY_WORKERS
    from tests.s3_support import DUMMY_CREDENTIALS, make_client, start_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    os.environ.update(DUMMY_CREDENTIALS)
    server, url = start_moto_server()
    try:
        client = make_client(url)
        bucket = "bench-scale"
        client.create_bucket(Bucket=bucket)
        d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=bucket, endpoint_url=url, client=client)
        t0 = time.perf_counter()
        payloads = [pickle.dumps(value_of(i), protocol=5) for i in range(n)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: client.put_object(
                Bucket=bucket, Key="/".join(key_of(i)) + EXT, Body=payloads[i]), range(n)))
        print(f"  S3: {n:,} objects in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

        def raw_keys() -> list[str]:
            out: list[str] = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                out.extend(obj["Key"] for obj in page.get("Contents", []))
            return out

        def raw_values() -> list[Any]:
            names = raw_keys()

            def get(name: str) -> Any:
                return pickle.loads(client.get_object(Bucket=bucket, Key=name)["Body"].read())

            with ThreadPoolExecutor(READ_MANY_WORKERS) as pool:
                return list(pool.map(get, names))

        lst = interleaved({"ours_len": (None, lambda: len(d)), "raw": (None, raw_keys),
                           "ours_keys": (None, lambda: list(d.keys()))}, n, repeats)
        vals = interleaved({"ours": (None, lambda: list(d.values())), "raw": (None, raw_values)},
                           n, max(2, repeats // 2))
        peaks = {"len": peak_pair(lambda: len(d), raw_keys),
                 "keys": peak_pair(lambda: list(d.keys()), raw_keys),
                 "values": peak_pair(lambda: list(d.values()), raw_values)}
    finally:
        server.stop()
    return [
        Row.of(f"S3 len, {n:,} objects", lst, "ours_len", "raw", 1.2,
               note="raw: list_objects_v2 paginator", peak_mb=peaks["len"]),
        Row.of(f"S3 keys, {n:,} objects", lst, "ours_keys", "raw", 1.2,
               note="raw: list_objects_v2 paginator", peak_mb=peaks["keys"]),
        Row.of(f"S3 values, {n:,} objects", vals, "ours", "raw", 1.5,
               note=f"raw: paginator + GETs on {READ_MANY_WORKERS} threads",
               peak_mb=peaks["values"]),
    ]


# ------------------------------------------------------------------------------------ memo

def memo_rows(root: Path, n: int, repeats: int) -> list[dict[str, Any]]:
    """The memo targets on a store of ``n`` results: ``cache_clear()`` and ``forget`` against
    joblib's ``clear()`` (bench_toolkit), the first hit in a fresh process against joblib's
    (bench_memo)."""
    from bench_memo import bench_cold_hit
    from bench_toolkit import bench_clear

    (root / "memo_cold").mkdir(parents=True)
    out: list[dict[str, Any]] = []
    for r in bench_clear(root / "memo_clear", n):
        out.append({"row": r["row"], "measured": f"{r['ours_s']:.2f} s, joblib clear() "
                    f"{r['joblib_clear_s']:.2f} s ({r['ratio_vs_joblib']:.2f}x)", "ok": r["ok"]})
    _, targets = bench_cold_hit(root / "memo_cold", n, repeats)
    out += [{"row": f"{t.text} (store of {n:,} results)", "measured": t.measured, "ok": t.ok}
            for t in targets]
    return out


def render_memo(rows: list[dict[str, Any]]) -> str:
    lines = ["| memo | measured | target | verdict |", "|---|---|:---:|:---:|"]
    lines += [f"| {r['row']} | {r['measured']} | <= joblib | {'PASS' if r['ok'] else 'MISS'} |"
              for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ plot

def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_op: dict[str, dict[str, list[tuple[int, float]]]] = {}
    import re

    for r in results["rows"]:
        m = re.fullmatch(r"(.+), N=([\d,]+)", r["workload"])
        if m is None or m.group(1).startswith("LocalDict"):
            continue
        op, n = m.group(1), int(m.group(2).replace(",", ""))
        series = by_op.setdefault(op, {"ours": [], "raw": []})
        series["ours"].append((n, r["ours"]))
        series["raw"].append((n, r["limit"]))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (op, series), color in zip(sorted(by_op.items()), colors * 3, strict=False):
        for who, style in (("ours", "-o"), ("raw", "--")):
            pts = sorted(series[who])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color,
                    label=f"{op} (FileDirDict)" if who == "ours" else None, linewidth=1.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("items in the store (N)")
    ax.set_ylabel("microseconds per item (solid: FileDirDict, dashed: raw limit)")
    ax.set_title("FileDirDict per-item cost against N")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main

def growth_rows(rows: list[Row], ns: list[int]) -> list[dict[str, Any]]:
    """Ratio at the largest N over the ratio at the smallest: at most 1.25x."""
    lo, hi = f"N={ns[0]:,}", f"N={ns[-1]:,}"
    out = []
    for r in rows:
        if not r.workload.endswith(lo):
            continue
        op = r.workload[: -len(lo)]
        big = next((x for x in rows if x.workload == op + hi), None)
        if big is None or r.ratio is None or big.ratio is None:
            continue
        out.append({"row": f"{op.rstrip(', ')}: ratio at {hi} / ratio at {lo}",
                    "ours": big.ratio / r.ratio, "target": 1.25})
    return out


def render_growth(rows: list[dict[str, Any]]) -> str:
    lines = ["| growth with N | value | target | verdict |", "|---|---:|---:|:---:|"]
    for r in rows:
        verdict = "PASS" if r["ours"] <= r["target"] else "MISS"
        lines.append(f"| {r['row']} | {r['ours']:.2f} | <= {r['target']:g} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-n", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="N up to 10k, fewer repeats")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--s3-n", type=int, default=10_000)
    ap.add_argument("--no-memo", action="store_true", help="skip the memo rows")
    ap.add_argument("--memo-n", type=int, default=10_000, help="results in the memo rows' stores")
    ap.add_argument("--array-mb", type=int, default=500, help="0: no big-array memory rows")
    ap.add_argument("--dir", type=Path, default=REPO / ".bench")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    max_n = 10_000 if args.quick else args.max_n
    ns = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= max_n]
    repeats = 3 if args.quick else 5
    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.dir))
    started, load = time.time(), os.getloadavg()[0]
    rows: list[Row] = []
    try:
        memory: list[dict[str, Any]] = []
        for n in ns:
            rows += bench_n(root, n, repeats, memory if n == ns[-1] else None)
        for n in ns:
            rows.append(bench_local(n, repeats))
        growth = growth_rows(rows, ns) if len(ns) > 1 else []
        memory += array_rows(root, 0 if args.quick else args.array_mb)
        if not args.no_s3:
            rows += bench_s3(1000 if args.quick else args.s3_n, repeats)
        memo = [] if args.no_memo else memo_rows(root, 1000 if args.quick else args.memo_n,
                                                 repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    import diskcache

    header = (f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} "
              f"CPUs, diskcache {diskcache.__version__}; {time.time() - started:.0f} s; 1-min "
              f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end. Times are per "
              "item (listings: the whole call divided by N); ratios are medians of per-repeat "
              "ratios of back-to-back runs.")
    print(f"## Scale benchmark (N = {', '.join(f'{n:,}' for n in ns)})\n\n{header}\n")
    print(render(rows))
    print()
    print(render_growth(growth))
    print()
    print(render_memory(memory))
    if memo:
        print()
        print(render_memo(memo))
    misses = [r.workload for r in rows if r.verdict == "MISS"]
    misses += [m["row"] for m in memory + growth if m.get("target") is not None and
               m.get("ratio", m.get("ours")) > m["target"]]
    misses += [m["row"] for m in memo if not m["ok"]]
    print(f"\n{len(misses)} target(s) missed" + (": " + "; ".join(misses) if misses else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {"header": header, "ns": ns,
               "rows": [{"workload": r.workload, "ours": r.ours, "limit": r.limit,
                         "ratio": r.ratio, "target": r.target, "diskcache": r.diskcache,
                         "verdict": r.verdict, "unit": r.unit, "peak_rss_growth_mb":
                         None if r.peak_mb is None else dict(zip(("ours", "raw"), r.peak_mb,
                                                                  strict=True))}
                        for r in rows],
               "growth": growth, "memory": memory, "memo": memo}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"\nWritten: {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
