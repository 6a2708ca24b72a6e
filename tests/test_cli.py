"""The command lines, run as subprocesses: persidict-memo and persidict (--json parsed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict
from persidict_memo import background, persistent_cache
from tests.s3_support import DUMMY_CREDENTIALS, S3Target, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def run(*args: str, module: str = "persidict_memo", env: dict[str, str] | None = None,
        ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def run_json(*args: str, **kw: Any) -> Any:
    return json.loads(run(*args, "--json", **kw).stdout)


def populate(store: Any, pause: float = 0.0) -> tuple[Any, Any]:
    """Two code versions of one function; ``pause`` between them (S3 times are in seconds)."""
    def make(version: str) -> Any:
        @persistent_cache(store=store, version=version)
        def simulate(n: int) -> list[int]:
            return list(range(n))

        return simulate

    old, new = make("1"), make("2")
    for n in range(4):
        old(n)
    time.sleep(pause)
    for n in range(3):
        new(n * 100)
    background.flush()
    return old, new


FUNC = "populate.(locals).make.(locals).simulate"


def test_ls_show_prune_clear_on_a_directory(tmp_path: Path) -> None:
    store = str(tmp_path / "cache")
    populate(store)
    [summary] = run_json("ls", store)
    assert summary["qualname"] == FUNC and summary["module"] == "test_cli"
    assert (summary["versions"], summary["entries"]) == (2, 7)
    assert summary["size_bytes"] > 0
    table = run("ls", store).stdout
    assert "FUNCTION" in table and "test_cli." + FUNC in table

    entries = run_json("show", store, "simulate")
    assert len(entries) == 7
    assert {e["args_repr"] for e in entries} >= {"n=0", "n=200"}
    assert all(e["compute_seconds"] is not None for e in entries)
    assert "ARGUMENTS" in run("show", store, f"test_cli.{FUNC}").stdout

    dry = run_json("prune", store, "--keep-versions", "1", "--dry-run")
    assert dry == {"removed": 4, "kept": 3, "dry_run": True, "freed_bytes": dry["freed_bytes"]}
    assert run_json("ls", store)[0]["entries"] == 7
    assert run_json("prune", store, "--max-size", "1GB")["removed"] == 0
    assert run_json("prune", store, "--keep-versions", "1")["removed"] == 4
    assert run_json("ls", store)[0]["versions"] == 1

    assert run_json("clear", store, "simulate")["removed"] == 3
    assert run_json("ls", store) == []
    populate(str(tmp_path / "again"))
    assert run_json("clear", str(tmp_path / "again"), "simulate", "--all-versions")["removed"] == 7
    assert "removed" in run("prune", str(tmp_path / "again"), "--older-than", "0s").stdout


def test_bad_arguments_and_missing_stores_exit_2_with_one_line(tmp_path: Path) -> None:
    populate(str(tmp_path / "c"))
    cases = [
        ("ls", str(tmp_path / "nowhere")),
        ("prune", str(tmp_path / "c"), "--older-than", "3 fortnights"),
        ("prune", str(tmp_path / "c"), "--max-size", "lots"),
        ("prune", str(tmp_path / "c")),
        ("show", str(tmp_path / "c"), "no_such_function"),
        ("ls", "gs://bucket/x"),
        ("frobnicate", str(tmp_path / "c")),
    ]
    for args in cases:
        done = run(*args, ok=False)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert done.stdout == ""


def test_an_unreachable_s3_store_exits_2(tmp_path: Path) -> None:
    done = run("ls", "s3://bucket/cache", "--endpoint-url", f"http://127.0.0.1:{free_port()}",
               env=DUMMY_CREDENTIALS, ok=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot reach" in done.stderr


@pytest.mark.s3
def test_memo_cli_on_s3(s3_http: S3Target, tmp_path: Path) -> None:
    store = s3_http.basic_store(root_prefix="team/cache")
    populate(store, pause=1.1)
    url = f"s3://{s3_http.bucket}/team/cache"
    env = {**DUMMY_CREDENTIALS, "PERSIDICT_MEMO_DIR": str(tmp_path / "local")}
    endpoint = ("--endpoint-url", str(s3_http.endpoint_url))
    [summary] = run_json("ls", url, *endpoint, env=env)
    assert summary["entries"] == 7
    assert len(run_json("show", url, "simulate", *endpoint, env=env)) == 7
    report = run_json("prune", url, "--keep-versions", "1", *endpoint, env=env)
    assert (report["removed"], report["kept"]) == (4, 3)
    assert run_json("clear", url, "simulate", "--all-versions", *endpoint, env=env)["removed"] == 3
    assert not [k for k in s3_http.object_keys() if k.endswith((".pkl", ".meta"))]


def test_console_scripts_are_installed() -> None:
    for name in ("persidict-memo", "persidict"):
        script = BIN / name
        assert script.exists(), f"{name} is not installed (pip install -e .)"
        done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "usage" in done.stdout


def test_persidict_cli_ls_du_get_cleanup(tmp_path: Path) -> None:
    base = tmp_path / "store"
    d: FileDirDict[Any] = FileDirDict(base_dir=base)
    d["a", "x"] = {"v": 1}
    d["a", "y"] = [1, 2]
    d["b"] = "text"
    (base / ".__tmp__stale").write_text("junk")
    os.utime(base / ".__tmp__stale", (1, 1))
    assert run_json("ls", str(base), module="persidict") == ["a/x", "a/y", "b"]
    assert run_json("ls", str(base), "a", module="persidict") == ["x", "y"]
    du = run_json("du", str(base), module="persidict")
    assert du["items"] == 3 and du["bytes"] > 0
    assert run_json("get", str(base), "a/x", "b", module="persidict") == {
        "a/x": {"v": 1}, "b": "text"
    }
    assert run("get", str(base), "a/y", module="persidict").stdout.strip() == "[1, 2]"
    assert run_json("cleanup", str(base), module="persidict") == {"removed": 1}
    missing = run("get", str(base), "nope", module="persidict", ok=False)
    assert missing.returncode == 2 and "no such key" in missing.stderr
    assert run("ls", str(tmp_path / "none"), module="persidict", ok=False).returncode == 2


@pytest.mark.s3
def test_persidict_cli_on_s3(s3_http: S3Target) -> None:
    store = s3_http.basic_store(root_prefix="data")
    store["k1"] = 1
    store["sub", "k2"] = 2
    args = ("--endpoint-url", str(s3_http.endpoint_url))
    url = f"s3://{s3_http.bucket}/data"
    env = dict(DUMMY_CREDENTIALS)
    assert run_json("ls", url, *args, module="persidict", env=env) == ["k1", "sub/k2"]
    assert run_json("get", url, "sub/k2", *args, module="persidict", env=env) == {"sub/k2": 2}
    assert run_json("du", url, *args, module="persidict", env=env)["objects"] == 2


def test_python_dash_m_persidict_still_runs_the_demo(tmp_path: Path) -> None:
    out = run("--n", "20", module="persidict").stdout
    assert "persidict demo" in out
    assert "persidict demo" in run("demo", "--n", "5", module="persidict").stdout
