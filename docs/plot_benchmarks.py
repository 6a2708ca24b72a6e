"""Draw the benchmark charts of the docs from the benchmarks' JSON output.

Usage (from the repository root)::

    python tests/benchmarks/bench_file.py --json docs/benchmarks/bench_file.json
    ...                                            # the same for the other bench_*.py scripts
    python docs/plot_benchmarks.py                 # docs/benchmarks/*.json -> *.png

Each chart is one benchmark: a row per case, one bar per baseline the row measured, the length
of a bar being our time (or request count) divided by the baseline's (log scale; left of the 1x
line we are better). A target, where the benchmark sets one, is the black tick on the first
baseline's bar.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TITLES = {
    "bench_file": "FileDirDict vs raw files and diskcache",
    "bench_wrappers": "Cached wrappers vs LocalDict and an uncached FileDirDict",
    "bench_s3": "BasicS3Dict / S3Dict vs raw boto3 (moto server over HTTP)",
    "bench_memo": "persistent_cache vs joblib.Memory, diskcache, lru_cache",
    "bench_toolkit": "Memo toolkit: cache_clear / forget vs joblib, map vs single calls on S3",
}
# One color per baseline: bench_memo has seven, so the palette must not wrap at five.
COLORS = ["#3b6ea5", "#e39c37", "#5aa469", "#b5505a", "#8a6bb1", "#4fa3a5", "#a5763b",
          "#7f7f7f"]


def plot(record: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{**r, "ratios": {k: v for k, v in r["ratios"].items() if v > 0}}
            for r in record["rows"]]
    rows = [r for r in rows if r["ratios"]]
    baselines = list(dict.fromkeys(b for r in rows for b in r["ratios"]))  # fixes the colors
    # A row's bars are packed around its label: rows measure different baselines (bench_memo
    # has seven in all, at most four a row), and a slot for every one would leave gaps.
    per_row = max(len(r["ratios"]) for r in rows)
    height = 0.8 / per_row
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.3 * len(rows) * max(per_row, 1.4)))
    for i, row in enumerate(reversed(rows)):
        present = [name for name in baselines if name in row["ratios"]]
        first = next(iter(row["ratios"]))
        for j, name in enumerate(present):
            ratio = row["ratios"][name]
            y = i + height * ((len(present) - 1) / 2 - j)
            ax.barh(y, ratio, height=height * 0.9,
                    color=COLORS[baselines.index(name) % len(COLORS)], label=name)
            ax.text(ratio * 1.04, y, f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.1e}x",
                    va="center", fontsize=7)
            if name == first and row.get("target"):
                ax.plot([row["target"]] * 2, [y - height / 2, y + height / 2], color="black",
                        linewidth=2)
    ax.axvline(1.0, color="grey", linewidth=1, linestyle="--")
    ax.set_xscale("log")
    targets = [r["target"] for r in rows if r.get("target")]
    lo = min([min(r["ratios"].values()) for r in rows] + targets)
    hi = max([max(r["ratios"].values()) for r in rows] + targets)
    ax.set_xlim(min(0.5, lo / 1.5), max(2.0, hi * 2.2))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(r) for r in reversed(rows)], fontsize=8)
    ax.set_xlabel("ours / baseline (time, or requests where the legend says so; log scale, "
                  "< 1: better)", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    # Below the axes (0.55 inch down, past the x label), so it never covers a bar.
    axes_inches = ax.get_position().height * fig.get_figheight()
    ax.legend([unique[k] for k in baselines], [f"vs {k}" for k in baselines], fontsize=8,
              loc="upper center", bbox_to_anchor=(0.5, -0.55 / axes_inches), ncol=2,
              frameon=False)
    ax.set_title(f"{TITLES.get(record['benchmark'], record['benchmark'])}\n"
                 f"{record['mode']} run, Python {record['python']}, {record['machine']}",
                 fontsize=10)
    fig.savefig(out, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _label(row: dict[str, Any], width: int = 60) -> str:
    case = row["case"] if len(row["case"]) <= width else row["case"][: width - 1] + "…"
    return case if row["verdict"] == "info" else f"{case}  [{row['verdict']}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=HERE / "benchmarks",
                        help="where the JSON files are and the PNGs go")
    args = parser.parse_args()
    files = sorted(args.dir.glob("*.json"))
    if not files:
        raise SystemExit(f"no benchmark JSON in {args.dir}: run the bench scripts with --json")
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        if "benchmark" not in record:  # another format (bench_scale.py draws its own chart)
            continue
        if not any(r["ratios"] for r in record["rows"]):
            continue
        out = path.with_suffix(".png")
        plot(record, out)
        print(f"{path.name} -> {out.name}")


if __name__ == "__main__":
    main()
