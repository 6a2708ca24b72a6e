"""Caches shared through S3 (a moto server over real HTTP): results, metadata and leases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import memo_workers
import pytest

from persidict_memo import persistent_cache
from persidict_memo.leases import LeaseRecord

pytestmark = [pytest.mark.s3, pytest.mark.slow]
HERE = Path(__file__).resolve().parent


def machine(store: Any, runs: list[Any], delay: float = 0.0) -> Any:
    """One "machine": its own decoration (own memory, own statistics) of the same function."""

    @persistent_cache(store=store, ignore=("runs",))  # bookkeeping, not an input
    def cube(x: int) -> int:
        runs.append(x)
        time.sleep(delay)
        return x**3

    return cube


@pytest.mark.parametrize("kind", ["basic", "cached"])
def test_two_machines_share_results(s3_http: Any, tmp_path: Path, kind: str) -> None:
    def store(name: str) -> Any:
        if kind == "basic":
            return s3_http.basic_store(root_prefix="memo")
        return s3_http.cached_store(root_prefix="memo", base_dir=str(tmp_path / name))

    runs: list[Any] = []
    first = machine(store("a"), runs)
    second = machine(store("b"), runs)
    assert first(3) == 27
    assert second(3) == 27
    assert runs == [3]
    assert second.cache_info().hits == 1
    assert second.metadata(3)["arguments"] == "x=3"
    keys = s3_http.object_keys()  # everything was written before the calls returned
    assert any(k.endswith(".pkl") for k in keys)
    metas = [k for k in keys if k.endswith(".meta")]
    assert metas
    for k in metas:  # each lease record became the result's metadata
        body = s3_http.client.get_object(Bucket=s3_http.bucket, Key=k)["Body"].read()
        assert LeaseRecord.from_text(body.decode()) is None


def test_stampede_across_machines_computes_once(s3_http: Any) -> None:
    runs: list[Any] = []
    machines = [machine(s3_http.basic_store(root_prefix="memo"), runs, delay=0.5) for _ in range(3)]
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda m=m: results.append(m(2))) for m in machines for _ in (0, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [8] * 6
    assert runs == [2]
    assert sum(m.cache_info().waits for m in machines) >= 1


def test_forget_and_clear_on_s3(s3_http: Any) -> None:
    runs: list[Any] = []
    cube = machine(s3_http.basic_store(root_prefix="memo"), runs)
    cube(1)
    cube(2)
    assert cube.forget(1)
    assert not cube.is_cached(1)
    assert cube.cache_clear() == 1
    assert not any(k.endswith((".pkl", ".meta")) for k in s3_http.object_keys())


_MACHINE = """
import json, memo_workers as m
value = m.shared_cube(3, {runs!r})
print(json.dumps({{"value": value, "info": m.shared_cube.cache_info()._asdict()}}))
"""


def test_two_machines_with_separate_local_caches_share_one_bucket(
    s3_http: Any, tmp_path: Path
) -> None:
    runs = str(tmp_path / "runs")
    url = f"s3://{s3_http.bucket}/team/cache"

    def on_machine(name: str) -> Any:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": s3_http.endpoint_url,
            "MEMO_TEST_S3_URL": url,
            "PERSIDICT_MEMO_DIR": str(tmp_path / name),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])]),
        }
        done = subprocess.run(
            [sys.executable, "-c", _MACHINE.format(runs=runs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = on_machine("machine_a")
    assert first["value"] == 27
    assert first["info"]["misses"] == 1
    second = on_machine("machine_b")
    assert second["value"] == 27
    assert second["info"] == {"hits": 1, "misses": 0, "waits": 0, "store_errors": 0}
    assert memo_workers.count_runs(runs, "cube") == 1
    keys = s3_http.object_keys()
    assert any(k.startswith("team/cache/v2/") and k.endswith(".pkl") for k in keys)
    assert any(k.endswith(".meta") for k in keys)
    assert list((tmp_path / "machine_b" / "s3").rglob("*.pkl"))  # B's own local copy
