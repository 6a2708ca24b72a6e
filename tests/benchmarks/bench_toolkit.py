"""The memo toolkit's speed: clearing and forgetting many results, and ``map`` on S3.

    python tests/benchmarks/bench_toolkit.py [--quick] [--n 10000] [--map-n 1000] [--dir DIR]
                                             [--json OUT]

Rows:

* **cache_clear() of N results** (local disk) against joblib.Memory's ``clear()`` of the same
  number of results (a function's folder removed with ``shutil.rmtree``) and against the raw limit
  (``shutil.rmtree`` of a copy of our own store). Target (issue 14): no slower than joblib.
* **forget of N results, one call at a time** (each hashes its arguments and removes a result and
  its metadata), against the same joblib ``clear()``. Target: no slower than joblib.
* **map over M items of which 90% are stored, on S3** (a moto server over real HTTP on
  127.0.0.1): S3 requests (counted with botocore's ``before-call`` events, metadata writes of
  the housekeeping thread included) and wall time of ``f.map(items)`` against a loop of single
  calls ``[f(x) for x in items]``, each on a "machine" whose local file cache is empty (a
  colleague's first run on a team cache) and on the machine that computed the stored results
  (they are in its memory). Each of the four runs has a bucket and a cache of its own: moto's
  ``ListObjectsV2`` scans and sorts the whole bucket for every page (real S3 does not), so a
  shared bucket would charge each listing for the other runs' objects. The raw cost of a GET
  and of a listing page on the same server is printed for reference. Target (issue 11): at
  least 5x fewer requests than the loop. The floor printed with it: S3 has no multi-object
  read, so a map still needs one GET per stored result not in memory, plus the listing pages
  (a result and its metadata record per stored call, 1,000 keys a page) and two PUTs per miss
  (result, metadata); the loop needs the same GETs plus four requests per miss.

Not collected by pytest (pyproject ignores tests/benchmarks).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)  # benchmark a checkout without installing it

from bench_json import add_json_option, progress, row, write_json  # noqa: E402

from persidict_memo import background, persistent_cache  # noqa: E402


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def square(x: int) -> int:
    return x * x


# ------------------------------------------------------------------------ clear / forget


def fill_ours(where: Path, n: int) -> Any:
    f = persistent_cache(store=str(where), lease=False)(square)
    for i in range(n):
        f(i)
    background.flush()
    return f


def fill_joblib(where: Path, n: int) -> Any:
    from joblib import Memory

    g = Memory(str(where), verbose=0).cache(square)
    for i in range(n):
        g(i)
    return g


def bench_clear(root: Path, n: int) -> list[dict[str, Any]]:
    progress(f"filling stores with {n} results (ours twice, joblib twice)")
    ours = fill_ours(root / "ours", n)
    shutil.copytree(root / "ours", root / "raw")
    g = fill_joblib(root / "joblib", n)
    t_joblib, _ = timed(g.clear)
    t_raw, _ = timed(lambda: shutil.rmtree(root / "raw"))
    t_ours, removed = timed(ours.cache_clear)
    assert removed == n, removed
    ours2 = fill_ours(root / "ours2", n)
    g2 = fill_joblib(root / "joblib2", n)
    t_joblib2, _ = timed(g2.clear)
    t_forget, _ = timed(lambda: [ours2.forget(i) for i in range(n)])
    assert not list(ours2.cache_entries())
    joblib_clear = min(t_joblib, t_joblib2)
    return [
        {"row": f"cache_clear() of {n} results", "ours_s": t_ours, "joblib_clear_s": joblib_clear,
         "raw_rmtree_s": t_raw, "ratio_vs_joblib": t_ours / joblib_clear,
         "ratio_vs_raw": t_ours / t_raw, "target": "<= 1.0x joblib",
         "ok": t_ours <= joblib_clear},
        {"row": f"forget of {n} results, one by one", "ours_s": t_forget,
         "joblib_clear_s": joblib_clear, "raw_rmtree_s": t_raw,
         "ratio_vs_joblib": t_forget / joblib_clear, "ratio_vs_raw": t_forget / t_raw,
         "target": "<= 1.0x joblib", "ok": t_forget <= joblib_clear},
    ]


# -------------------------------------------------------------------------------- map on S3


def bench_map(root: Path, m: int) -> list[dict[str, Any]]:
    """The map rows; each scenario has a bucket of its own (see the module docstring)."""
    import logging

    sys.path.insert(0, str(REPO / "tests"))
    from s3_support import (
        DUMMY_CREDENTIALS,
        S3Calls,
        make_client,
        new_bucket_name,
        start_moto_server,
    )

    from persidict import S3Dict

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    os.environ.update(DUMMY_CREDENTIALS)
    server, url = start_moto_server()
    stored = m * 9 // 10
    rows = []
    try:
        for scenario in ("fresh", "warm"):
            results: dict[str, tuple[float, Counter[str]]] = {}
            for how in ("loop", "map"):
                bucket = new_bucket_name()
                make_client(url).create_bucket(Bucket=bucket)

                def machine(name: str, bucket: str = bucket) -> tuple[Any, S3Calls]:
                    c = make_client(url)
                    store = S3Dict(bucket_name=bucket, root_prefix="team",
                                   base_dir=str(root / f"{bucket}-{name}"), client=c)
                    return persistent_cache(store=store)(square), S3Calls(c)

                author, calls = machine("author")
                progress(f"{scenario} {how}: storing {stored} results on S3 (moto server)")
                author.map(range(stored), n_jobs=8, backend="threading")
                background.flush()
                f, calls = machine("colleague") if scenario == "fresh" else (author, calls)
                items = list(range(m))
                calls.names.clear()
                if how == "loop":
                    seconds, got = timed(lambda f=f, items=items: [f(x) for x in items])
                else:
                    seconds, got = timed(lambda f=f, items=items: f.map(items))
                background.flush()  # the misses' metadata writes are counted too
                assert got == [x * x for x in items]
                results[how] = (seconds, Counter(calls.names))
            (t_loop, loop), (t_map, mapped) = results["loop"], results["map"]
            n_loop, n_map = sum(loop.values()), sum(mapped.values())
            misses = m - stored
            pages = -(-2 * stored // 1000)  # a result and its metadata record per stored call
            floor = pages + (stored if scenario == "fresh" else 0) + 2 * misses
            rows.append({
                "row": f"map over {m} items, {stored} stored, S3, {scenario} local cache",
                "loop_requests": n_loop, "map_requests": n_map,
                "requests_ratio": n_loop / max(n_map, 1), "loop_s": t_loop, "map_s": t_map,
                "loop_by_op": dict(loop), "map_by_op": dict(mapped), "floor_requests": floor,
                "target": ">= 5x fewer requests", "ok": n_loop >= 5 * n_map,
            })
        rows.append(moto_costs(url, make_client, new_bucket_name))
        return rows
    finally:
        server.stop()


def moto_costs(url: str, make_client: Any, new_bucket_name: Any) -> dict[str, Any]:
    """What one GET and one 1,000-key ListObjectsV2 page cost on this moto server (raw boto3)."""
    client = make_client(url)
    bucket = new_bucket_name()
    client.create_bucket(Bucket=bucket)
    for i in range(2000):
        client.put_object(Bucket=bucket, Key=f"k/{i:05d}", Body=b"x" * 100)
    get_s, _ = timed(lambda: [client.get_object(Bucket=bucket, Key=f"k/{i:05d}")["Body"].read()
                              for i in range(200)])
    list_s, _ = timed(lambda: [client.list_objects_v2(Bucket=bucket, Prefix="k/")
                               for _ in range(5)])
    return {"row": "moto server, raw boto3", "get_ms": get_s / 200 * 1e3,
            "list_page_ms": list_s / 5 * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="--n 1000 --map-n 200")
    ap.add_argument("--n", type=int, default=10_000, help="results cleared / forgotten")
    ap.add_argument("--map-n", type=int, default=1000, help="items of the map rows")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    add_json_option(ap)
    args = ap.parse_args()
    if args.quick:
        args.n, args.map_n = 1000, 200
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_toolkit_"))
    try:
        rows = bench_clear(root, args.n) + bench_map(root, args.map_n)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print("\n| row | measured | target | |\n|---|---|---|---|")
    for r in rows:
        if "ours_s" in r:
            measured = (f"{r['ours_s']:.3f} s; joblib clear() {r['joblib_clear_s']:.3f} s "
                        f"({r['ratio_vs_joblib']:.2f}x); raw rmtree {r['raw_rmtree_s']:.3f} s "
                        f"({r['ratio_vs_raw']:.2f}x)")
        elif "map_requests" in r:
            measured = (f"requests: loop {r['loop_requests']}, map {r['map_requests']} "
                        f"({r['requests_ratio']:.2f}x fewer; floor {r['floor_requests']}); "
                        f"wall: loop {r['loop_s']:.2f} s, map {r['map_s']:.2f} s "
                        f"({r['loop_s'] / r['map_s']:.2f}x)")
        else:
            print(f"| {r['row']} | GET {r['get_ms']:.1f} ms, ListObjectsV2 page of 1,000 "
                  f"{r['list_page_ms']:.1f} ms | | info |")
            continue
        print(f"| {r['row']} | {measured} | {r['target']} | {'PASS' if r['ok'] else 'MISS'} |")
    for r in rows:
        if "loop_by_op" in r:
            print(f"  {r['row']}: loop {r['loop_by_op']}; map {r['map_by_op']}")
    shared = []
    for r in rows:
        if "ok" not in r:
            continue
        verdict = "PASS" if r["ok"] else "MISS"
        if "ours_s" in r:
            shared.append(row(r["row"], {"joblib clear()": r["ratio_vs_joblib"],
                                         "raw rmtree": r["ratio_vs_raw"]}, 1.0, verdict))
        else:
            shared.append(row(r["row"], {
                "single calls, requests": r["map_requests"] / max(r["loop_requests"], 1),
                "single calls, wall time": r["map_s"] / r["loop_s"],
                "request floor": r["map_requests"] / r["floor_requests"],
            }, 0.2, verdict))
    write_json(args.json, "bench_toolkit", args.quick, shared)


if __name__ == "__main__":
    main()
