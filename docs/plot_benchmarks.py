"""Draw the benchmark charts of the docs from the benchmarks' JSON output.

Usage (from the repository root)::

    python tests/benchmarks/bench_file.py --quick --json docs/benchmarks/bench_file.json
    ...                                            # the same for the other bench_*.py scripts
    python docs/plot_benchmarks.py                 # docs/benchmarks/*.json -> *.png

Each chart is one benchmark: a row per case, one bar per baseline, the length of a bar being
our time divided by the baseline's (log scale; left of the 1x line we are faster). A target,
where the benchmark sets one, is the black tick on the first baseline's bar.
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
}
COLORS = ["#3b6ea5", "#e39c37", "#5aa469", "#b5505a", "#8a6bb1"]


def plot(record: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in record["rows"] if r["ratios"]]
    baselines = list(dict.fromkeys(b for r in rows for b in r["ratios"]))
    height = 0.8 / max(len(baselines), 1)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(rows) * max(len(baselines), 1.4)))
    for i, row in enumerate(reversed(rows)):
        for j, name in enumerate(baselines):
            ratio = row["ratios"].get(name)
            if ratio is None or ratio <= 0:
                continue
            y = i + 0.4 - height * (j + 0.5)
            ax.barh(y, ratio, height=height * 0.9, color=COLORS[j % len(COLORS)],
                    label=name if i == 0 or name not in ax.get_legend_handles_labels()[1]
                    else None)
            ax.text(ratio * 1.04, y, f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.1e}x",
                    va="center", fontsize=7)
            first = next(iter(row["ratios"]))
            if name == first and row.get("target"):
                ax.plot([row["target"]] * 2, [y - height / 2, y + height / 2], color="black",
                        linewidth=2)
    ax.axvline(1.0, color="grey", linewidth=1, linestyle="--")
    ax.set_xscale("log")
    lo = min(min(r["ratios"].values()) for r in rows)
    hi = max(max(r["ratios"].values()) for r in rows)
    ax.set_xlim(min(0.5, lo / 1.5), max(2.0, hi * 2.2))
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(r) for r in reversed(rows)], fontsize=8)
    ax.set_xlabel("our time / baseline's time (log scale; < 1: faster)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), [f"vs {k}" for k in unique], fontsize=8, loc="lower right")
    ax.set_title(f"{TITLES.get(record['benchmark'], record['benchmark'])}\n"
                 f"{record['mode']} run, Python {record['python']}, {record['machine']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _label(row: dict[str, Any], width: int = 52) -> str:
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
