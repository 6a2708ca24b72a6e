"""Module-level cached functions for the multi-process toolkit tests (imported by children).

They use the default store (``PERSIDICT_MEMO_DIR``, or ``MEMO_TEST_STORE`` when set: a
directory or an ``s3://`` URL); every body run leaves a file in ``runs`` (left out of the key) so
a test can count body runs across processes.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from persidict_memo import persistent_cache

STORE = os.environ.get("MEMO_TEST_STORE") or None


def mark(runs: str, label: str) -> None:
    """Leave one file in ``runs`` for one body run."""
    Path(runs).mkdir(parents=True, exist_ok=True)
    (Path(runs) / f"{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()


def count(runs: str, label: str = "") -> int:
    """How many body runs left a mark (optionally only those whose label starts so)."""
    path = Path(runs)
    return sum(1 for p in path.iterdir() if p.name.startswith(label)) if path.exists() else 0


@persistent_cache(store=STORE, ignore=("runs",))
def payload(x: int, runs: str) -> list[int]:
    """A quick body with a recognisable result."""
    mark(runs, f"payload-{x}")
    return [x] * 100


@persistent_cache(store=STORE, ignore=("runs", "delay"), lease_timeout=20.0)
def slow_double(x: int, runs: str, delay: float = 0.0) -> int:
    """A slow body for pools and stampedes."""
    mark(runs, f"double-{x}")
    time.sleep(delay)
    return 2 * x


@persistent_cache(store=STORE, ignore=("runs", "delay"), max_age=2.0, lease_timeout=20.0)
def expiring(x: int, runs: str, delay: float = 0.0) -> float:
    """Results older than 2 s are recomputed (returns the time of its computation)."""
    mark(runs, f"expiring-{x}")
    time.sleep(delay)
    return time.time()


@persistent_cache(store=STORE, ignore=("runs",))
def stamp(x: int, runs: str) -> list[float]:
    """A result that differs at every computation (for recompute)."""
    return [x, time.time(), *range(1000)]


@persistent_cache(store=STORE, ignore=("runs",))
def failing(x: int, runs: str) -> int:
    """Fails for 13."""
    mark(runs, f"failing-{x}")
    if x == 13:
        raise ValueError("thirteen is unlucky")
    return x
