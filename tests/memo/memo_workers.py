"""Module-level cached functions for the multi-process memo tests (imported by child processes).

Every function uses the default store, so a child process finds it through
``PERSIDICT_MEMO_DIR``; every body run leaves one file in the ``runs`` directory it is given
(left out of the key), so a test can count body runs across processes.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from persidict_memo import persistent_cache


def _mark(runs: str, label: str) -> None:
    Path(runs).mkdir(parents=True, exist_ok=True)
    (Path(runs) / f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()


def lease_records(store: str | os.PathLike[str]) -> list[Path]:
    """The metadata records under ``store`` that still hold a lease (a computation running)."""
    from persidict_memo.leases import LeaseRecord

    return [p for p in Path(store).rglob("*.meta")
            if LeaseRecord.from_text(p.read_text()) is not None]


def count_runs(runs: str, label: str = "") -> int:
    """How many body runs left a mark (optionally only those with ``label``)."""
    path = Path(runs)
    if not path.exists():
        return 0
    return sum(1 for p in path.iterdir() if p.name.startswith(label))


@persistent_cache(ignore=("runs",))
def structured(params: dict[str, Any], tags: set[str], runs: str) -> list[Any]:
    """A function of order-free arguments (sets of strings iterate in hash-seed order)."""
    _mark(runs, "structured")
    return [sorted(params.items()), sorted(tags)]


@persistent_cache(ignore=("runs",), lease_timeout=30.0)
def slow_square(x: int, delay: float, runs: str) -> int:
    """A slow body: a stampede of callers must run it once."""
    _mark(runs, "slow")
    time.sleep(delay)
    return x * x


@persistent_cache(ignore=("runs", "control"), lease_timeout=3.0)
def may_hang(x: int, runs: str, control: str) -> int:
    """Hangs while the file ``<control>/hang`` exists (to be killed mid-computation)."""
    _mark(runs, "hang")
    while (Path(control) / "hang").exists():
        time.sleep(0.05)
    return x + 1000


@persistent_cache(ignore=("runs",))
def square(x: int, runs: str) -> int:
    """A quick body for process pools."""
    _mark(runs, "square")
    return x * x


@persistent_cache(store=os.environ.get("MEMO_TEST_S3_URL"), ignore=("runs",))
def shared_cube(x: int, runs: str) -> int:
    """Cached in the S3 store named by ``MEMO_TEST_S3_URL`` (the default store without it)."""
    _mark(runs, "cube")
    return x**3
