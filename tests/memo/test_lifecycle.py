"""cache_entries / cache_size / cache_prune / cache_clear, list_functions and prune.

Each test runs on a local FileDirDict, on LocalDict (the generic, three-listing path) and on
S3 over moto's HTTP server (an S3Dict with its local cache, as ``s3://`` URLs open).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest

from persidict import LocalDict
from persidict_memo import (
    CacheEntry,
    FunctionSummary,
    PruneReport,
    background,
    list_functions,
    persistent_cache,
    prune,
)
from persidict_memo.leases import LeaseRecord
from persidict_memo.stores import ResultStore


@pytest.fixture(params=["file", "memory", "s3", "s3basic"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "file":
        return str(tmp_path / "cache")
    if request.param == "memory":
        return LocalDict()
    target = request.getfixturevalue("s3_http")
    if request.param == "s3basic":
        return target.basic_store(root_prefix="memo")
    return target.cached_store(root_prefix="memo", base_dir=str(tmp_path / "local"))


def make(store: Any, version: str | None = None, **options: Any) -> Any:
    @persistent_cache(store=store, version=version, **options)
    def power(x: int, p: int = 2) -> list[int]:
        return [x**p] * 10

    return power


def test_cache_entries_describe_each_result(store: Any) -> None:
    f = make(store)
    before = time.time()
    for x in range(3):
        f(x)
    entries = list(f.cache_entries())
    assert len(entries) == 3
    assert all(isinstance(e, CacheEntry) for e in entries)
    assert sorted(e.args_repr for e in entries) == ["x=0, p=2", "x=1, p=2", "x=2, p=2"]
    assert {e.key for e in entries} == {f.cache_key(x) for x in range(3)}
    for e in entries:
        assert before - 1 <= e.created <= time.time() + 1
        assert e.compute_seconds is not None and e.compute_seconds >= 0
        assert e.version == f.cache_key(0)[3]
        assert e.host
        assert e.size_bytes is not None and e.size_bytes > 0
    with pytest.raises(AttributeError):
        entries[0].host = "x"  # type: ignore[misc]


def test_entries_without_metadata_still_appear(store: Any) -> None:
    f = make(store)
    f(1)
    f(2)
    background.flush()
    rs: ResultStore = f._self_memo.store
    rs.meta.discard(rs.meta_key(f.cache_key(2)))
    by_key = {e.key: e for e in f.cache_entries()}
    bare = by_key[f.cache_key(2)]
    assert bare.args_repr == "" and bare.compute_seconds is None and bare.host is None
    assert bare.created > 0
    assert by_key[f.cache_key(1)].args_repr == "x=1, p=2"


def test_all_versions_and_size(store: Any) -> None:
    old, new = make(store, version="1"), make(store, version="2")
    for x in range(4):
        old(x)
    new(10)
    assert len(list(new.cache_entries())) == 1
    everything = list(new.cache_entries(all_versions=True))
    assert len(everything) == 5
    assert {e.version for e in everything} == {"ver~1", "ver~2"}
    one = new.cache_size()
    assert one > 0
    assert new.cache_size(all_versions=True) == pytest.approx(5 * one, rel=0.5)
    assert old.cache_size() == new.cache_size(all_versions=True) - one


def test_prune_max_entries_drops_the_oldest(store: Any) -> None:
    f = make(store)
    for x in range(5):
        f(x)
        time.sleep(0.02 if not hasattr(store, "bucket_name") else 1.05)  # S3: 1 s times
    dry = f.cache_prune(max_entries=2, dry_run=True)
    assert dry == PruneReport(removed=3, freed_bytes=dry.freed_bytes, kept=2, dry_run=True)
    assert dry.freed_bytes > 0
    assert len(list(f.cache_entries())) == 5
    report = f.cache_prune(max_entries=2)
    assert (report.removed, report.kept, report.dry_run) == (3, 2, False)
    assert report.freed_bytes == dry.freed_bytes
    assert [e.args_repr for e in f.cache_entries()] == ["x=3, p=2", "x=4, p=2"]
    assert not f.is_cached(0)  # gone from this process's memory too
    calls: list[int] = []
    f2 = make(store)
    assert f2(0) == [0] * 10  # recomputed
    del calls


def test_prune_max_bytes_and_older_than(store: Any) -> None:
    f = make(store)
    for x in range(4):
        f(x)
    time.sleep(1.1)
    middle = time.time()
    time.sleep(1.1)
    f(100)
    size = f.cache_size()
    report = f.cache_prune(older_than=datetime.timedelta(seconds=time.time() - middle))
    assert (report.removed, report.kept) == (4, 1)
    assert [e.args_repr for e in f.cache_entries()] == ["x=100, p=2"]
    assert f.cache_prune(max_bytes=size).removed == 0
    assert f.cache_prune(max_bytes=0).removed == 1
    assert list(f.cache_entries()) == []


def test_keep_versions_keeps_the_newest_code(store: Any) -> None:
    v1, v2, v3 = (make(store, version=str(i)) for i in (1, 2, 3))
    v1(1)
    time.sleep(1.05)
    v2(1)
    v2(2)
    time.sleep(1.05)
    v3(1)
    report = v3.cache_prune(keep_versions=2)
    assert (report.removed, report.kept) == (1, 3)
    assert {e.version for e in v3.cache_entries(all_versions=True)} == {"ver~2", "ver~3"}


def test_live_leases_are_never_pruned_stale_ones_go(store: Any) -> None:
    f = make(store, lease_timeout=2.0)
    f(1)
    f(2)
    background.flush()
    rs: ResultStore = f._self_memo.store
    assert rs.leases is not None
    # A call being computed right now: its metadata record is still a lease, no result yet.
    live = rs.lease_key(f.cache_key(3))
    rs.leases[live] = LeaseRecord.fresh("someone").to_text()
    report = f.cache_prune(max_entries=0)
    assert (report.removed, report.kept) == (2, 0)
    assert live in rs.leases
    orphan = (*f.cache_key(3)[:-1], "f" * 32)
    rs.meta[rs.meta_key(orphan)] = "{}"  # metadata of a result that never came
    time.sleep(3.4)  # neither was refreshed: stale now (grace 2 s + 1 s for whole-second stores)
    report = f.cache_prune(max_entries=0)
    assert (report.removed, report.kept) == (0, 0)
    assert live not in rs.leases
    assert rs.meta_key(orphan) not in rs.meta


def test_prune_validates_options(store: Any) -> None:
    f = make(store)
    with pytest.raises(TypeError):
        f.cache_prune(older_than="30d")
    with pytest.raises(ValueError):
        f.cache_prune(max_entries=-1)
    with pytest.raises(TypeError):
        f.cache_prune(max_bytes=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        f.cache_prune(dry_run=1)  # type: ignore[arg-type]


def test_cache_clear_removes_results_metadata_and_leases(store: Any) -> None:
    old, new = make(store, version="a"), make(store, version="b")
    for x in range(5):
        new(x)
    old(1)
    background.flush()
    rs: ResultStore = new._self_memo.store
    stale = rs.lease_key(new.cache_key(99))
    assert rs.leases is not None
    rs.leases[stale] = "{}"
    assert new.cache_clear() == 5
    assert list(new.cache_entries()) == []
    assert stale not in rs.leases
    assert not any(k[3] == "ver~b" for k in rs.meta)
    assert old.is_cached(1)
    assert new.cache_clear(all_versions=True) == 1
    assert not make(store, version="a").is_cached(1)  # (old's own memory still holds it)


def test_list_functions_and_store_prune(store: Any) -> None:
    f = make(store, version="1")
    g = make(store, version="2")

    @persistent_cache(store=store)
    def other(s: str) -> str:
        return s * 100

    for x in range(3):
        f(x)
    g(7)
    other("a")
    summaries = list_functions(store)
    assert all(isinstance(s, FunctionSummary) for s in summaries)
    by_name = {s.qualname: s for s in summaries}
    power = by_name["make.(locals).power"]
    assert (power.versions, power.entries) == (2, 4)
    assert power.size_bytes > 0 and power.newest is not None
    assert power.module == __name__
    assert by_name["test_list_functions_and_store_prune.(locals).other"].entries == 1

    assert prune(store, keep_versions=1, dry_run=True).removed in (1, 3)
    report = prune(store, max_bytes=0)
    assert (report.removed, report.kept) == (5, 0)
    assert list_functions(store) == []
    with pytest.raises(TypeError):
        prune(store, older_than=[1])  # type: ignore[arg-type]


def test_bound_methods_have_the_toolkit(tmp_path: Path) -> None:
    class Model:
        def __init__(self, w: int) -> None:
            self.w = w

        @persistent_cache(store=str(tmp_path / "c"), ignore=("self",))
        def predict(self, x: int) -> int:
            return self.w * x

    m = Model(3)
    assert m.predict(2) == 6
    assert [e.args_repr for e in m.predict.cache_entries()] == ["x=2"]
    assert m.predict.cache_size() > 0
    assert m.predict.cache_prune(max_entries=0).removed == 1
    assert Model.predict.cache_entries is not None


def test_clear_and_prune_never_follow_a_planted_symlink(tmp_path: Path) -> None:
    import os
    import shutil

    from persidict_memo.inventory import layout_of

    f = make(str(tmp_path / "cache"))
    f(1)
    f(2)
    background.flush()
    layout: Any = layout_of(f._self_memo.store)
    version_dir = layout._dir(f._self_memo.keys.prefix)
    outside = tmp_path / "outside"
    shutil.move(version_dir, outside)  # the results now live outside the store...
    os.symlink(outside, version_dir)  # ...reached through a symlink planted in it
    before = sorted(p.name for p in outside.rglob("*") if p.is_file())
    assert len(before) == 4
    assert f.cache_clear() == 0
    assert f.cache_prune(max_entries=0).removed == 0
    assert not f.forget(1)
    assert sorted(p.name for p in outside.rglob("*") if p.is_file()) == before


def test_forget_removes_result_and_metadata(store: Any) -> None:
    f = make(store)
    f(1)
    f(2)
    background.flush()
    assert f.forget(1)
    assert not f.forget(1)
    assert [e.args_repr for e in make(store).cache_entries()] == ["x=2, p=2"]
    rs: ResultStore = f._self_memo.store
    assert rs.meta_key(f.cache_key(1)) not in rs.meta


def test_a_live_lease_over_a_stored_result_is_never_pruned(store: Any) -> None:
    # A result being refreshed (max_age, or an S3 result whose metadata write is pending): its
    # metadata record is a live lease while the old result is still stored.
    f = make(store, lease_timeout=30.0)
    f(1)
    f(2)
    background.flush()
    rs: ResultStore = f._self_memo.store
    assert rs.leases is not None
    busy = rs.lease_key(f.cache_key(1))
    rs.leases[busy] = LeaseRecord.fresh("refresher").to_text()
    assert f.cache_prune(max_entries=0, dry_run=True).removed == 1
    for options in ({"max_entries": 0}, {"older_than": 0}, {"keep_versions": 0}):
        report = f.cache_prune(**options)
        assert report.kept == 1, options
        assert f.is_cached(1) and busy in rs.leases
        assert LeaseRecord.from_text(rs.leases[busy]) is not None
    assert not make(store).is_cached(2)
    assert prune(store, max_bytes=0).kept == 1  # the store-wide prune too



_S3_WRITER = """
import json, sys, toolkit_workers as tw
xs = json.loads(sys.argv[1])
print(json.dumps([tw.slow_double(x, {runs!r}, delay=0.06) for x in xs]))
"""


@pytest.mark.slow
def test_prune_under_concurrent_writers_on_s3(
    s3_http: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On S3 a result's metadata (which releases its lease) is written just after the result, by
    # a housekeeping thread: a prune often sees a published result whose record is still a live
    # lease. It must keep it, and leave every kept result with its metadata.
    import json
    import os
    import subprocess
    import sys

    import toolkit_workers as tw

    url = f"s3://{s3_http.bucket}/memo"
    runs = str(tmp_path / "runs")
    here = Path(__file__).resolve().parent
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_http.endpoint_url)
    monkeypatch.setenv("PERSIDICT_MEMO_DIR", str(tmp_path / "pruner"))
    xs = list(range(40))
    orders = (xs, xs[::-1])
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _S3_WRITER.format(runs=runs), json.dumps(order)],
            env={**os.environ, "MEMO_TEST_STORE": url,
                 "PERSIDICT_MEMO_DIR": str(tmp_path / f"writer{i}"),
                 "PYTHONPATH": os.pathsep.join([str(here), str(here.parents[1])])},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, order in enumerate(orders)
    ]
    mine = persistent_cache(store=url, ignore=("runs", "delay"), lease_timeout=20.0)(
        tw.slow_double.__wrapped__
    )
    prunes = removed = 0
    while any(w.poll() is None for w in writers):
        removed += mine.cache_prune(max_entries=5).removed
        prunes += 1
    for w, order in zip(writers, orders, strict=True):
        out, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == [2 * x for x in order]
    assert prunes > 2 and removed > 0
    rs: ResultStore = mine._self_memo.store
    stored = {tuple(k) for k in rs.results}
    records = {tuple(k): rs.meta[k] for k in rs.meta}
    assert len(stored) >= 5
    for key in stored:  # whole results, each with its metadata (no lease was pruned away)
        assert rs.results[key] in [2 * x for x in xs]
        assert key in records and LeaseRecord.from_text(records[key]) is None
    assert all(LeaseRecord.from_text(text) is None for text in records.values())
