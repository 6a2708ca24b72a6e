"""The file backend under planted files and a hostile neighbour: no hang, no escape, no no-op.

* A FIFO, socket or device at an item path is a ``BackendError`` at once, for every read-like
  operation, in a FileDirDict and inside S3Dict's local cache (a FIFO used to block ``open``
  forever).
* Temp files carry a character no key may contain; a key that looks like a temp file is an
  ordinary item, listed and never swept.
* Another process swapping a store directory for a link to an outside directory, over and over
  for a few seconds, never makes the store read or write anything outside ``base_dir``.
* ``clear()`` that cannot remove an item (no permission, read-only file system) raises.
* A world-writable store directory without the sticky bit is reported once.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import BackendError, FileDirDict
from persidict.keys import SAFE_CHARS_SET, sign_component

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
HANG_BOUND = 10.0  # seconds: every call below takes milliseconds; only a hang gets near this


def finishes(fn: Callable[[], Any]) -> BaseException | Any:
    """Run ``fn`` in a daemon thread; fail if it is still running after HANG_BOUND seconds.
    Returns its result or the exception it raised."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG_BOUND)
    assert not t.is_alive(), f"{fn} hung"
    return out[0]


READS: dict[str, Callable[[Any, Any], Any]] = {
    "getitem": lambda d, k: d[k],
    "get": lambda d, k: d.get(k),
    "in": lambda d, k: k in d,
    "timestamp": lambda d, k: d.timestamp(k),
    "etag": lambda d, k: d.etag(k),
    "get_with_etag": lambda d, k: d.get_with_etag(k),
}


def plant(kind: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        except (PermissionError, AttributeError):
            pytest.skip("creating a device node needs privileges this run does not have")
    elif kind == "symlink":
        target = path.parent.parent / "outside_target.pkl"
        target.write_bytes(pickle.dumps("a stranger's value"))
        os.symlink(target, path)


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "symlink"])
def test_non_regular_item_is_a_backend_error_at_once(tmp_path: Path, kind: str) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "store")
    d["ok"] = 1
    plant(kind, tmp_path / "store" / (sign_component("k", 4) + ".pkl"))
    for name, op in READS.items():
        got = finishes(lambda op=op: op(d, "k"))
        assert isinstance(got, BackendError), (name, got)
        assert got.key == ("k",)
    assert list(d.keys()) == [("ok",)]  # not an item, and listing does not open it
    assert len(d) == 1
    d["k"] = 2  # a write replaces the planted entry by a regular file
    assert d["k"] == 2


def test_fifo_in_s3dict_local_cache_does_not_hang(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    from moto import mock_aws

    from persidict import S3Dict

    with mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="fifo-bucket")
        d: S3Dict[Any] = S3Dict(bucket_name="fifo-bucket", base_dir=str(tmp_path / "cache"),
                                region="us-east-1")
        d["k"] = "value"
        cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()
                  and not p.name.endswith("_etag")]
        assert cached, "S3Dict wrote no local copy"
        for p in cached:
            p.unlink()
            os.mkfifo(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a cache failure may be reported as a warning
            got = finishes(lambda: d["k"])
        # Either the cache failure is reported, or S3 serves the value: never a hang.
        assert got == "value" or isinstance(got, BackendError), got


# ------------------------------------------------------------------------- temp namespace

def test_temp_file_names_cannot_be_produced_by_any_key(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    seen: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:  # the temp file exists while it is being synced
        seen.extend(n for n in os.listdir(tmp_path) if n.startswith(".__tmp__"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    d["a"] = 1
    d.set_item_if("b", value=2, condition=d_any(), expected_etag=None)
    monkeypatch.undo()
    assert seen
    for name in seen:
        assert set(name) - SAFE_CHARS_SET, f"temp file {name!r} is a valid key name"


def d_any() -> Any:
    from persidict import ANY_ETAG

    return ANY_ETAG


def test_key_that_looks_like_a_temp_file_is_an_ordinary_item(tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    for key in (".__tmp__x", (".__tmp__dir", ".__tmp__y")):
        d[key] = "kept"
    old = time.time() - 7200
    for p in tmp_path.rglob("*"):
        os.utime(p, (old, old))
    legacy = tmp_path / ".__tmp__k2j3h4x1"  # what 0.309's mkstemp leaves behind
    legacy.write_bytes(b"partial")
    os.utime(legacy, (old, old))
    assert sorted(map(tuple, d.keys())) == [(".__tmp__dir", ".__tmp__y"), (".__tmp__x",)]
    assert len(d) == 2
    assert d.remove_stale_temp_files(max_age_seconds=0) == 1
    assert not legacy.exists()
    assert d[".__tmp__x"] == "kept"
    assert d[".__tmp__dir", ".__tmp__y"] == "kept"
    d.clear()
    assert len(d) == 0


def test_temp_sweep_never_deletes_another_formats_item(tmp_path: Path) -> None:
    pkl: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    js: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    js[".__tmp__j"] = 1
    old = time.time() - 7200
    for p in tmp_path.rglob("*"):
        os.utime(p, (old, old))
    assert pkl.remove_stale_temp_files(max_age_seconds=0) == 0
    pkl.clear()
    assert js[".__tmp__j"] == 1


# ------------------------------------------------------------------------ symlink swap race

SWAPPER = textwrap.dedent("""
    import os, sys, time
    store, outside, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    seconds = float(sys.argv[4])
    end = time.monotonic() + seconds
    swaps = 0
    while time.monotonic() < end:
        for name in names:
            real, moved = os.path.join(store, name), os.path.join(store, ".moved_" + name)
            try:
                os.rename(real, moved)
            except OSError:
                continue
            try:
                os.symlink(outside, real)
                swaps += 1
                time.sleep(0.0005)
                os.unlink(real)
            except OSError:
                pass
            try:
                os.rename(moved, real)
            except OSError:
                pass
    print(swaps)
""")


def tree(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.slow
def test_symlink_swap_race_reads_and_writes_nothing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim: FileDirDict[Any] = FileDirDict(base_dir=outside)
    for i in range(20):  # the names the store's keys would have: bait for a followed link
        victim[f"k{i}"] = "OUTSIDE"
        victim["sub", f"k{i}"] = "OUTSIDE"
    before = tree(outside)
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "store")
    shards = [f"s{j}" for j in range(3)]
    for j in shards:
        for i in range(20):
            d[j, f"k{i}"] = "inside"
    names = ",".join(sign_component(j, 4) for j in shards)
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(tmp_path / "store"), str(outside), names, "3"],
        stdout=subprocess.PIPE, text=True)
    ops = refused = 0
    try:
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            for j in shards:
                for i in range(0, 20, 3):
                    key, deep = (j, f"k{i}"), (j, "sub", f"k{i}")
                    for op in (lambda k=key: d.get(k), lambda k=key: k in d,
                               lambda k=key: d.__setitem__(k, "inside"),
                               lambda k=deep: d.__setitem__(k, "inside"),
                               lambda k=deep: d.discard(k),
                               lambda k=key: d.etag(k) if k in d else None):
                        ops += 1
                        try:
                            got = op()
                        except BackendError:
                            refused += 1
                            continue
                        except KeyError:
                            continue
                        assert got != "OUTSIDE", "read a value from outside base_dir"
            for k, v in d.items():
                assert v != "OUTSIDE", f"items() read {k} from outside base_dir"
    finally:
        swaps = int(swapper.communicate(timeout=60)[0].strip() or 0)
    assert swaps > 10, "the swapper never got to swap"
    assert ops > 100
    assert tree(outside) == before, "something outside base_dir was created or changed"
    assert all(v == "inside" for v in d.values())


# --------------------------------------------------------------------- clear() must not lie

CLEAR_AS_NOBODY = textwrap.dedent("""
    import os, sys
    from persidict import BackendError, FileDirDict
    d = FileDirDict(base_dir=sys.argv[1])
    len(d)  # everything is imported before privileges go (the interpreter may be private)
    os.setgid(65534); os.setuid(65534)
    try:
        d.clear()
    except BackendError as exc:
        print("BackendError", exc.operation)
    else:
        print("returned")
""")


def test_clear_without_permission_raises(tmp_path: Path) -> None:
    if not IS_ROOT:
        d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s")
        d["a", "k"] = 1
        d["k"] = 2
        os.chmod(tmp_path / "s", 0o555)
        os.chmod(tmp_path / "s" / sign_component("a", 4), 0o555)
        try:
            with pytest.raises(BackendError) as info:
                d.clear()
            assert info.value.operation == "clear"
        finally:
            os.chmod(tmp_path / "s", 0o755)
            os.chmod(tmp_path / "s" / sign_component("a", 4), 0o755)
        assert len(d) >= 1
        return
    # Root ignores file modes: clear as an unprivileged user in a child process.
    top = Path(tempfile.mkdtemp(prefix="persidict_perm_"))
    try:
        os.chmod(top, 0o755)
        d = FileDirDict(base_dir=top / "s")
        d["a", "k"] = 1
        d["k"] = 2
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run([sys.executable, "-c", CLEAR_AS_NOBODY, str(top / "s")],
                             capture_output=True, text=True, env=env, timeout=120, cwd="/")
        if "PermissionError" in out.stderr and "setuid" in out.stderr:
            pytest.skip("cannot drop privileges here")
        assert out.stdout.split() == ["BackendError", "clear"], out.stderr
        assert sorted(map(tuple, d.keys())) == [("a", "k"), ("k",)]
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=False)


@contextlib.contextmanager
def read_only_bind(path: Path) -> Iterator[None]:
    """``path`` remounted read-only in place (root with mount privileges only)."""
    if not IS_ROOT or sys.platform != "linux":
        pytest.skip("a read-only mount needs root on Linux")
    ok = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if ok.returncode != 0:
        pytest.skip(f"bind mounts are not allowed here: {ok.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True)
        if ro.returncode != 0:
            pytest.skip(f"read-only remount not allowed: {ro.stderr.decode().strip()}")
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


CLEAR_READ_ONLY = textwrap.dedent("""
    import errno, sys
    from persidict import BackendError, FileDirDict
    d = FileDirDict(base_dir=sys.argv[1])
    for op in (d.clear, lambda: d.__setitem__("j", 3)):
        try:
            op()
        except BackendError as exc:
            print("BackendError", exc.operation, errno.errorcode[exc.__cause__.errno])
        else:
            print("returned")
    print(len(d))
""")


def test_clear_on_a_read_only_file_system_raises(tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s")
    d["a", "k"] = 1
    d["k"] = 2
    with read_only_bind(tmp_path / "s"):
        # A fresh process: this one's open directory handles predate the mount (and, like any
        # descriptor opened before a remount, would still write through the old mount).
        out = subprocess.run([sys.executable, "-c", CLEAR_READ_ONLY, str(tmp_path / "s")],
                             capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["BackendError", "clear", "EROFS",
                                  "BackendError", "write", "EROFS", "2"], out.stderr
    assert sorted(map(tuple, d.keys())) == [("a", "k"), ("k",)]


# ----------------------------------------------------------------- world-writable directory

def test_world_writable_store_without_sticky_bit_warns_once(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.warns(UserWarning, match="world-writable"):
        FileDirDict(base_dir=open_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FileDirDict(base_dir=open_dir)  # once per directory and process
        sticky = tmp_path / "sticky"
        sticky.mkdir()
        os.chmod(sticky, 0o1777)
        FileDirDict(base_dir=sticky)
        FileDirDict(base_dir=tmp_path / "private")
