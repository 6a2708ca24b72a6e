"""Multi-process contention on FileDirDict: insert-if-absent has exactly one winner.

Eight worker processes open the same store. For every round the test hands them all a fresh key
and a start time a few milliseconds ahead; they spin until that moment and then race:

* ``setdefault_if(k, default_value=<pid>, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)``:
  exactly one reports ``value_was_mutated``, the stored value is the winner's pid, and every loser
  is handed that value;
* ``d[k] = <pid>`` on an ``append_only`` store: exactly one succeeds, the others get
  ``MutationPolicyError``, and the stored value is the winner's pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict
from persidict.file_backend import TEMP_PREFIX

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="atomic link-based insert is POSIX-only"),
]

REPO = Path(__file__).resolve().parents[2]
N_WORKERS = 8
N_ROUNDS = 25

# A worker: build the store once, then for every line "<mode> <key> <start_time>" on stdin spin
# until start_time, do the operation and print one JSON line with the outcome.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, sys.argv[2])
    from persidict import (ANY_ETAG, ITEM_NOT_AVAILABLE, FileDirDict, MutationPolicyError)

    base_dir = sys.argv[1]
    pid = os.getpid()
    stores = {"setdefault_if": FileDirDict(base_dir=base_dir),
              "append_only": FileDirDict(base_dir=base_dir, append_only=True),
              "naive": FileDirDict(base_dir=base_dir)}
    print(json.dumps({"ready": pid}), flush=True)
    for line in sys.stdin:
        mode, key, start = line.split()
        d = stores[mode]
        while time.time() < float(start):
            pass
        out = {"pid": pid}
        try:
            if mode == "setdefault_if":
                r = d.setdefault_if(key, default_value=pid, condition=ANY_ETAG,
                                    expected_etag=ITEM_NOT_AVAILABLE)
                out["won"] = r.value_was_mutated
                out["new_value"] = r.new_value if isinstance(r.new_value, int) else None
            elif mode == "append_only":
                d[key] = pid
                out["won"] = True
            else:  # "naive": a check-then-act insert, to show that the harness catches it
                if key in d:
                    raise MutationPolicyError("append-only")
                d[key] = pid
                out["won"] = True
        except MutationPolicyError:
            out["won"] = False
            out["policy"] = True
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(out), flush=True)
    """
)


class Workers:
    """N long-lived worker processes fed over their stdin."""

    def __init__(self, base_dir: Path, n: int) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(base_dir), str(REPO)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]
        self.pids = {json.loads(self._line(p))["ready"] for p in self.procs}
        assert len(self.pids) == n

    @staticmethod
    def _line(p: subprocess.Popen[str]) -> str:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {p.pid} died (exit code {p.wait(timeout=30)})")
        return line

    def race(self, mode: str, key: str, lead_time: float = 0.05) -> list[dict[str, Any]]:
        start = time.time() + lead_time
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(f"{mode} {key} {start!r}\n")
            p.stdin.flush()
        return [json.loads(self._line(p)) for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)
            if p.stdout is not None:
                p.stdout.close()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contention") / "store"


@pytest.fixture(scope="module")
def workers(store_dir: Path) -> Iterator[Workers]:
    FileDirDict(base_dir=store_dir)
    w = Workers(store_dir, N_WORKERS)
    try:
        yield w
    finally:
        w.close()


def no_temp_files(root: Path) -> bool:
    return not [f for _, _, names in os.walk(root) for f in names if f.startswith(TEMP_PREFIX)]


def test_insert_if_absent_has_exactly_one_winner(workers: Workers, store_dir: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=store_dir)
    for r in range(N_ROUNDS):
        key = f"sdi{r}"
        results = workers.race("setdefault_if", key)
        errors = [o["error"] for o in results if "error" in o]
        assert not errors, errors
        winners = [o["pid"] for o in results if o["won"]]
        assert len(winners) == 1, f"round {r}: winners {winners}"
        assert d[key] == winners[0]
        # Every loser saw the winner's value (insert-if-absent never overwrote it).
        assert {o["new_value"] for o in results if not o["won"]} == {winners[0]}
    assert len(d) >= N_ROUNDS
    assert no_temp_files(store_dir)


def test_append_only_write_has_exactly_one_winner(workers: Workers, store_dir: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=store_dir)
    for r in range(N_ROUNDS):
        key = f"ao{r}"
        results = workers.race("append_only", key)
        errors = [o["error"] for o in results if "error" in o]
        assert not errors, errors
        winners = [o["pid"] for o in results if o["won"]]
        assert len(winners) == 1, f"round {r}: winners {winners}"
        assert sum(1 for o in results if o.get("policy")) == N_WORKERS - 1
        assert d[key] == winners[0]
    assert no_temp_files(store_dir)


def test_the_races_were_real(workers: Workers) -> None:
    """Different processes win different rounds: the start line really makes them race."""
    winners = set()
    for r in range(N_ROUNDS):
        results = workers.race("setdefault_if", f"spread{r}")
        winners.update(o["pid"] for o in results if o["won"])
    assert len(winners) >= 2, "one worker always won: the workers did not run concurrently"


def test_the_harness_catches_a_check_then_act_insert(workers: Workers) -> None:
    """A naive ``if k not in d: d[k] = v`` gets several winners here, so the one-winner results
    above come from the store's atomic insert, not from workers that never overlapped."""
    doubled = 0
    for r in range(10):
        results = workers.race("naive", f"naive{r}")
        doubled += sum(1 for o in results if o.get("won")) > 1
    assert doubled >= 1
