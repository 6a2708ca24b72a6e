"""``python -m persidict``: a short tour of a FileDirDict on the local disk, with timings.

Usage: ``python -m persidict [--dir PATH] [--n N]`` (also ``persidict demo``). By default the
store lives in a fresh temporary directory that is removed afterwards; with ``--dir`` it is kept
for inspection. With a command, ``python -m persidict ls|du|get|cleanup ...`` is the
``persidict`` command line (:mod:`persidict.cli`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import ETAG_IS_THE_SAME, FileDirDict


def _timed(label: str, n: int, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<34} {elapsed * 1e6 / max(n, 1):9.1f} us/op   ({n} ops)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persidict", description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="keep the store in this folder")
    parser.add_argument("--n", type=int, default=1000, help="number of items (default 1000)")
    args = parser.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="persidict_demo_"))
    n = max(1, args.n)
    try:
        store: FileDirDict[dict[str, int]] = FileDirDict(base_dir=base / "demo")
        print(f"persidict demo: {store!r}\n")
        keys = [("experiments", f"run{i // 100}", f"result{i}") for i in range(n)]
        def write_all() -> None:
            for i, k in enumerate(keys):
                store[k] = {"i": i}

        _timed("write (atomic, fsync'ed)", n, write_all)
        _timed("read", n, lambda: [store[k] for k in keys])
        _timed("membership test", n, lambda: [k in store for k in keys])
        listed = _timed("list all keys", n, lambda: list(store.keys()))
        newest = _timed("newest_keys(max_n=3)", n, lambda: store.newest_keys(max_n=3))
        runs = store.get_subdict(("experiments", "run0"))
        print(f"\n  {len(listed)} keys listed; {len(runs)} under experiments/run0; newest: "
              f"{[tuple(k) for k in newest]}")
        etag = store.etag(keys[0])
        r = store.set_item_if(keys[0], value={"i": -1}, condition=ETAG_IS_THE_SAME,
                              expected_etag=etag)
        print(f"  compare-and-swap on an unchanged ETag: satisfied={r.condition_was_satisfied}")
        example = sorted(p.relative_to(base) for p in (base / "demo").rglob("*.pkl"))[0]
        print(f"  one item per file, e.g. {example}")
        return 0
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    from persidict.cli import main as cli_main  # no command (or only --dir/--n): this demo

    raise SystemExit(cli_main())
