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
  127.0.0.1): S3 requests (counted with botocore's ``before-call`` events) and wall time of
  ``f.map(items)`` against a loop of single calls ``[f(x) for x in items]``, each on a "machine"
  whose local file cache is empty (a colleague's first run on a team cache) and on the machine
  that computed the stored results (its local cache is warm). Target (issue 11): at least 5x
  fewer requests than the loop.

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


class Requests:
    """S3 API calls made by one client, by operation."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-call.s3.*", self._on)

    def _on(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


def bench_map(root: Path, m: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO / "tests"))
    from s3_support import DUMMY_CREDENTIALS, make_client, new_bucket_name, start_moto_server

    os.environ.update(DUMMY_CREDENTIALS)
    server, url = start_moto_server()
    try:
        client = make_client(url)
        bucket = new_bucket_name()
        client.create_bucket(Bucket=bucket)
        from persidict import S3Dict

        def machine(name: str) -> tuple[Any, Requests]:
            c = make_client(url)
            store = S3Dict(bucket_name=bucket, root_prefix="team", base_dir=str(root / name),
                           client=c)
            return persistent_cache(store=store)(square), Requests(c)

        stored = m * 9 // 10
        sets = {name: list(range(k * m, (k + 1) * m)) for k, name in enumerate(
            ("fresh-loop", "fresh-map", "warm-loop", "warm-map"))}
        author, author_calls = machine("author")
        progress(f"storing {4 * stored} results on S3 (moto server)")
        for items in sets.values():
            author.map(items[:stored], n_jobs=8, backend="threading")
        background.flush()
        author_calls.take()
        rows = []
        for scenario in ("fresh", "warm"):
            results = {}
            for how in ("loop", "map"):
                items = sets[f"{scenario}-{how}"]
                f, calls = (machine(f"{scenario}-{how}") if scenario == "fresh"
                            else (author, author_calls))
                calls.take()
                if how == "loop":
                    seconds, got = timed(lambda f=f, items=items: [f(x) for x in items])
                else:
                    seconds, got = timed(lambda f=f, items=items: f.map(items))
                background.flush()
                assert got == [x * x for x in items]
                results[how] = (seconds, calls.take())
            (t_loop, loop), (t_map, mapped) = results["loop"], results["map"]
            n_loop, n_map = sum(loop.values()), sum(mapped.values())
            rows.append({
                "row": f"map over {m} items, {stored} stored, S3, {scenario} local cache",
                "loop_requests": n_loop, "map_requests": n_map,
                "requests_ratio": n_loop / max(n_map, 1), "loop_s": t_loop, "map_s": t_map,
                "loop_by_op": dict(loop), "map_by_op": dict(mapped),
                "target": ">= 5x fewer requests", "ok": n_loop >= 5 * n_map,
            })
        return rows
    finally:
        server.stop()


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
        else:
            measured = (f"requests: loop {r['loop_requests']}, map {r['map_requests']} "
                        f"({r['requests_ratio']:.1f}x fewer); wall: loop {r['loop_s']:.2f} s, "
                        f"map {r['map_s']:.2f} s ({r['loop_s'] / r['map_s']:.1f}x)")
        print(f"| {r['row']} | {measured} | {r['target']} | {'PASS' if r['ok'] else 'MISS'} |")
    for r in rows:
        if "loop_by_op" in r:
            print(f"  {r['row']}: loop {r['loop_by_op']}; map {r['map_by_op']}")
    shared = []
    for r in rows:
        verdict = "PASS" if r["ok"] else "MISS"
        if "ours_s" in r:
            shared.append(row(r["row"], {"joblib clear()": r["ratio_vs_joblib"],
                                         "raw rmtree": r["ratio_vs_raw"]}, 1.0, verdict))
        else:
            shared.append(row(r["row"], {
                "single calls, requests": r["map_requests"] / max(r["loop_requests"], 1),
                "single calls, wall time": r["map_s"] / r["loop_s"],
            }, 0.2, verdict))
    write_json(args.json, "bench_toolkit", args.quick, shared)


if __name__ == "__main__":
    main()
