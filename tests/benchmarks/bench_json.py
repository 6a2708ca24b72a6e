"""What every benchmark script shares: ``--json`` output for the docs' plots, progress lines.

The JSON file (``--json PATH``) holds one record per measured case::

    {"benchmark": "bench_file", "mode": "quick", "python": "3.11.9", "machine": "...",
     "rows": [{"case": "get, 2,000 small values, pkl",
               "ratios": {"raw limit": 1.4, "diskcache": 0.6},   # ours / theirs
               "target": 2.0, "verdict": "PASS"}]}

A ratio is always *our time divided by theirs* (below 1: we are faster). ``target`` is the
largest ratio to the first baseline that passes, when there is one. ``docs/plot_benchmarks.py``
draws the bar charts of the documentation from these files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

_STARTED = time.time()


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results as JSON (for docs/plot_benchmarks.py)")


def progress(message: str) -> None:
    """One line on stderr, so the table on stdout stays clean: ``[  12 s] message``."""
    print(f"[{time.time() - _STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def row(case: str, ratios: dict[str, float | None], target: float | None = None,
        verdict: str = "info") -> dict[str, Any]:
    """One JSON record; baselines without a measurement are left out."""
    return {"case": case, "ratios": {k: v for k, v in ratios.items() if v is not None},
            "target": target, "verdict": verdict}


def write_json(path: Path | None, benchmark: str, quick: bool,
               rows: list[dict[str, Any]]) -> None:
    if path is None:
        return
    record = {"benchmark": benchmark, "mode": "quick" if quick else "full",
              "python": platform.python_version(),
              "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
              "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    progress(f"wrote {path}")
