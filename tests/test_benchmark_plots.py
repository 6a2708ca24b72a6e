"""The docs' benchmark charts come from the benchmark scripts' JSON, through a script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DATA = ROOT / "docs" / "benchmarks"
SCRIPTS = sorted((ROOT / "tests" / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name != "bench_json.py"],
                         ids=lambda p: p.name)
def test_every_benchmark_script_writes_json(script: Path) -> None:
    source = script.read_text(encoding="utf-8")
    shared = "add_json_option(" in source and "write_json(" in source
    own = "json.dumps(" in source and ".png" in source  # e.g. bench_scale: own JSON and chart
    assert shared or own


def _shared_schema_files() -> list[Path]:
    """Results in bench_json's schema (a script with its own format draws its own chart)."""
    return [p for p in sorted(DATA.glob("*.json"))
            if "benchmark" in json.loads(p.read_text(encoding="utf-8"))]


def test_committed_results_have_the_plot_schema() -> None:
    files = _shared_schema_files()
    assert {f.stem for f in files} >= {"bench_file", "bench_wrappers", "bench_s3", "bench_memo"}
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert record["benchmark"] == path.stem and record["mode"] in ("quick", "full")
        assert record["rows"], path.name
        for row in record["rows"]:
            assert isinstance(row["case"], str) and row["verdict"] in ("PASS", "MISS", "info")
            assert all(isinstance(v, float) and v > 0 for v in row["ratios"].values())
        assert path.with_suffix(".png").exists(), f"run docs/plot_benchmarks.py for {path.name}"


def test_plot_script_draws_every_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for path in _shared_schema_files():
        shutil.copy(path, tmp_path / path.name)
    subprocess.run([sys.executable, str(ROOT / "docs" / "plot_benchmarks.py"),
                    "--dir", str(tmp_path)], check=True, capture_output=True)
    for path in tmp_path.glob("*.json"):
        png = path.with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
