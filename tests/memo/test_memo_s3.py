"""Caches shared through S3 (a moto server over real HTTP): results, metadata and leases."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from persidict_memo import persistent_cache

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def machine(store: Any, runs: list[Any], delay: float = 0.0) -> Any:
    """One "machine": its own decoration (own memory, own statistics) of the same function."""

    @persistent_cache(store=store)
    def cube(x: int) -> int:
        runs.append(x)
        time.sleep(delay)
        return x**3

    return cube


def test_two_machines_share_results(s3_http: Any) -> None:
    runs: list[Any] = []
    first = machine(s3_http.basic_store(root_prefix="memo"), runs)
    second = machine(s3_http.basic_store(root_prefix="memo"), runs)
    assert first(3) == 27
    assert second(3) == 27
    assert runs == [3]
    assert second.cache_info().hits == 1
    assert second.metadata(3)["arguments"] == "x=3"
    keys = s3_http.object_keys()
    assert any(k.endswith(".pkl") for k in keys)
    assert any(k.endswith(".meta") for k in keys)
    assert not any(k.endswith(".lease") for k in keys)


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
