"""The toolkit with several processes sharing a store: prune under writers, expiry, recompute."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import toolkit_workers as tw

from persidict_memo import background, list_functions, persistent_cache
from persidict_memo.leases import LeaseRecord
from persidict_memo.stores import ResultStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.slow


def here(func: object, store: Path | str) -> Any:
    """This process's own decoration of a worker function (same keys), on ``store``."""
    return persistent_cache(store=str(store), ignore=("runs",))(func.__wrapped__)  # type: ignore[attr-defined]


def spawn(code: str, store: Path | str, **env: str) -> subprocess.Popen[str]:
    """A fresh interpreter running ``code`` with the toolkit workers importable."""
    environment = {
        **os.environ,
        "PERSIDICT_MEMO_DIR": str(store),
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


_WRITER = """
import toolkit_workers as tw
for x in range({start}, {stop}):
    assert tw.payload(x, {runs!r}) == [x] * 100
"""


def test_prune_under_concurrent_writers_never_half_removes(tmp_path: Path) -> None:
    store, runs = tmp_path / "cache", str(tmp_path / "runs")
    payload = here(tw.payload, store)
    writers = [
        spawn(_WRITER.format(start=i * 300, stop=(i + 1) * 300, runs=runs), store)
        for i in range(2)
    ]
    reports = []
    while any(w.poll() is None for w in writers):
        reports.append(payload.cache_prune(max_entries=50))
        time.sleep(0.01)
    for w in writers:
        finish(w)
    assert sum(r.removed for r in reports) > 0, "the prunes ran while results were written"
    background.flush()
    rs: ResultStore = payload._self_memo.store
    prefix = payload._self_memo.keys.prefix
    results = {tuple(k) for k in rs.results.get_subdict(prefix)}
    metas = {tuple(k) for k in rs.meta.get_subdict(prefix)}
    sub = rs.meta.get_subdict(prefix)
    assert [k for k in sub if LeaseRecord.from_text(sub[k]) is not None] == []  # none left
    assert results == metas, "every result kept its metadata, no metadata outlived its result"
    for key in results:
        x = rs.results.get_subdict(prefix)[key][0]
        assert rs.results.get_subdict(prefix)[key] == [x] * 100
    assert len(results) >= 50
    final = payload.cache_prune(max_entries=50)
    assert final.kept == 50
    assert list_functions(str(store))[0].entries == 50
