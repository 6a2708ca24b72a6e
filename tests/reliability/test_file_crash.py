"""Crash consistency of FileDirDict: a writer killed with SIGKILL at random moments.

A child process overwrites the values of a handful of keys in a tight loop and is killed at a
random moment, many times over. After every kill each key must still be readable and hold a
complete value that some writer wrote (the values check themselves with a sha256), no temp file
may show up as a key, and the temp files that killed writers leave behind must be removable:
``remove_stale_temp_files(max_age_seconds=0)`` takes them all, ``clear()`` takes the stale ones.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict
from persidict.file_backend import TEMP_PREFIX

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

REPO = Path(__file__).resolve().parents[2]
KEYS = [("k0",), ("k1",), ("grp", "k2"), ("grp", "sub", "k3"), ("k4",)]
N_KILLS = 20

# The child: overwrite every key over and over with self-checking values of varied sizes
# (up to ~1 MB, so kills land inside writes and fsyncs, not only between them). It prints
# "ready" once every key holds a value, so a kill always interrupts the overwrite loop.
CHILD = textwrap.dedent(
    """
    import hashlib, os, random, sys
    sys.path.insert(0, sys.argv[3])
    from persidict import FileDirDict

    base_dir, fmt = sys.argv[1], sys.argv[2]
    run_id = int(sys.argv[4])
    keys = [("k0",), ("k1",), ("grp", "k2"), ("grp", "sub", "k3"), ("k4",)]
    d = FileDirDict(base_dir=base_dir, serialization_format=fmt)
    rng = random.Random(run_id)

    def value(seq):
        size = rng.choice((10, 1000, 70_000, 300_000, 1_000_000))
        payload = os.urandom(size)
        if fmt == "json":
            payload = payload.hex()
            digest = hashlib.sha256(payload.encode()).hexdigest()
        else:
            digest = hashlib.sha256(payload).hexdigest()
        return {"run": run_id, "seq": seq, "payload": payload, "sha256": digest}

    seq = 0
    for k in keys:
        d[k] = value(seq)
        seq += 1
    print("ready", flush=True)
    while True:
        d[keys[seq % len(keys)]] = value(seq)
        seq += 1
    """
)


def check_value(value: Any, fmt: str, runs: set[int]) -> None:
    """A complete value written by one of the children started so far."""
    assert isinstance(value, dict), f"not a value the child wrote: {value!r:.200}"
    assert set(value) == {"run", "seq", "payload", "sha256"}
    assert value["run"] in runs
    payload = value["payload"]
    data = payload.encode() if fmt == "json" else payload
    assert hashlib.sha256(data).hexdigest() == value["sha256"], "torn or mixed value"


def temp_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names
            if f.startswith(TEMP_PREFIX)]


def kill_child_at_random(base_dir: Path, fmt: str, run_id: int, rng: random.Random,
                         while_alive: Callable[[], None] | None = None) -> None:
    """Start a writer, let it run 5-100 ms past its first round of writes, SIGKILL it.

    ``while_alive`` is called in a loop while the writer runs (concurrent reads).
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base_dir), fmt, str(REPO), str(run_id)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != b"ready\n":
            proc.kill()
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"child did not start: {line!r} {err.decode(errors='replace')}")
        deadline = time.perf_counter() + rng.uniform(0.005, 0.100)
        if while_alive is None:
            time.sleep(deadline - time.perf_counter())
        else:
            while time.perf_counter() < deadline:
                while_alive()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the child died before it was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("fmt", ["pkl", "json"])
def test_sigkilled_writer_leaves_every_key_complete(tmp_path: Path, fmt: str) -> None:
    base = tmp_path / "store"
    d: FileDirDict[Any] = FileDirDict(base_dir=base, serialization_format=fmt)
    expected = {tuple(k) for k in KEYS}
    rng = random.Random(20261127)
    runs: set[int] = set()
    max_temps = 0

    def read_concurrently() -> None:  # readers never see a torn value, nor a missing key
        check_value(d[rng.choice(KEYS)], fmt, runs)

    for run_id in range(N_KILLS):
        runs.add(run_id)
        kill_child_at_random(base, fmt, run_id, rng, read_concurrently)

        keys = list(d.keys())
        assert {tuple(k) for k in keys} == expected, "a temp file or junk showed up as a key"
        assert len(keys) == len(expected)
        assert len(d) == len(keys)
        for k in KEYS:
            assert k in d
            check_value(d[k], fmt, runs)
        for k, v in d.items():
            assert tuple(k) in expected
            check_value(v, fmt, runs)
        # One writer holds at most one temp file: killed writers leave at most one each.
        temps = temp_files(base)
        assert len(temps) <= run_id + 1
        max_temps = max(max_temps, len(temps))
        assert all(os.path.basename(t).startswith(TEMP_PREFIX) and "." not in
                   os.path.basename(t)[len(TEMP_PREFIX):] for t in temps)

    # Fresh temp files may belong to a live writer: the default age limit keeps them...
    temps = temp_files(base)
    assert d.remove_stale_temp_files() == 0
    assert sorted(temp_files(base)) == sorted(temps)
    # ...an explicit zero age removes every one of them, and the items survive.
    assert d.remove_stale_temp_files(max_age_seconds=0) == len(temps)
    assert temp_files(base) == []
    assert {tuple(k) for k in d} == expected
    for k in KEYS:
        check_value(d[k], fmt, runs)


def test_clear_removes_temp_files_left_by_killed_writers(tmp_path: Path) -> None:
    base = tmp_path / "store"
    d: FileDirDict[Any] = FileDirDict(base_dir=base)
    rng = random.Random(7)
    temps: list[Path] = []
    run_id = 0
    # Kill until at least a few temp files were left behind (almost always on the first kills).
    while len(temps) < 3 and run_id < 60:
        kill_child_at_random(base, "pkl", run_id, rng)
        run_id += 1
        temps = temp_files(base)
    if not temps:
        pytest.skip("no kill landed inside a write (extremely unlikely)")
    assert len(d) == len(KEYS)
    # Age the leftovers past the staleness limit, as if the writers died long ago.
    old = time.time() - 3600
    for t in temps:
        os.utime(t, (old, old))
    d.clear()
    assert temp_files(base) == []
    assert len(d) == 0
    assert list(d.keys()) == []
    # clear() also removes the emptied directories, so nothing at all is left.
    assert list(base.rglob("*")) == []
