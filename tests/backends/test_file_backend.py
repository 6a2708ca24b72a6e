"""The file-system backend's primitives, checked through a side door (the files themselves)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from persidict import file_backend, file_dirs, file_paths
from persidict.errors import BackendError
from persidict.file_backend import TEMP_PREFIX, FileBackend
from persidict.file_dir_dict import FileDirDict
from persidict.keys import sign_component
from persidict.markers import ITEM_NOT_AVAILABLE
from persidict.storage import NOT_MODIFIED, Stat

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def files(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, names in os.walk(root) for f in names
    )


def dirs(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
        for d, names, _ in os.walk(root) for n in names
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def b(store: Path) -> FileBackend:
    return FileBackend(str(store), "pkl", 4)


def read_ok(b: FileBackend, key: tuple[str, ...]) -> tuple[bytes, Stat]:
    got = b.read(key)
    assert isinstance(got, tuple)
    return got


# ------------------------------------------------------------------------ reads and writes

def test_write_read_round_trip_and_side_door(b: FileBackend, store: Path) -> None:
    st = b.write(("a", "b"), b"payload")
    assert st is not None
    assert (store / "a_btax" / "b_slvv.pkl").read_bytes() == b"payload"
    data, st2 = read_ok(b, ("a", "b"))
    assert data == b"payload"
    assert st2 == st == b.stat(("a", "b"))
    assert b.exists(("a", "b"))
    assert not b.exists(("a",))
    assert b.read(("a",)) is None
    assert b.stat(("nope",)) is None


def test_etag_is_mtime_ns_size_inode(b: FileBackend, store: Path) -> None:
    st = b.write(("k",), b"12345")
    assert st is not None
    os_st = os.stat(store / "k_rtsl.pkl")
    assert st.etag == f"{os_st.st_mtime_ns}:{os_st.st_size}:{os_st.st_ino}"
    assert re.fullmatch(r"\d+:5:\d+", st.etag)
    assert st.mtime == os_st.st_mtime


def test_side_door_write_is_read(b: FileBackend, store: Path) -> None:
    store.mkdir()
    (store / "k_rtsl.pkl").write_bytes(b"x" * 100_000)
    assert read_ok(b, ("k",))[0] == b"x" * 100_000
    Path(b.path_for(("e",))).write_bytes(b"")
    assert read_ok(b, ("e",))[0] == b""


def test_overwrite_changes_etag(b: FileBackend) -> None:
    s1 = b.write(("k",), b"one")
    s2 = b.write(("k",), b"two")
    assert s1 is not None and s2 is not None
    assert s1.etag != s2.etag
    assert read_ok(b, ("k",)) == (b"two", s2)


def test_write_leaves_no_temp_file(b: FileBackend, store: Path) -> None:
    b.write(("a", "b"), b"1")
    b.write(("a", "b"), b"2")
    b.write(("k",), b"3", if_match=ITEM_NOT_AVAILABLE)
    assert files(store) == ["a_btax/b_slvv.pkl", "k_rtsl.pkl"]


def test_failed_write_leaves_nothing(b: FileBackend, store: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    b.write(("k",), b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(file_backend.os, "fsync", broken_fsync)
    with pytest.raises(BackendError) as info:
        b.write(("k",), b"new")
    assert info.value.backend == "filesystem"
    assert info.value.operation == "write"
    assert info.value.key == ("k",)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(BackendError):
        b.write(("other",), b"new")
    monkeypatch.undo()
    assert files(store) == ["k_rtsl.pkl"]
    assert read_ok(b, ("k",))[0] == b"old"


def test_non_bytes_payload_leaves_no_temp_file(b: FileBackend, store: Path) -> None:
    with pytest.raises(TypeError):
        b.write(("k",), object())
    assert files(store) == []


def test_empty_payload(b: FileBackend) -> None:
    b.write(("k",), b"")
    assert read_ok(b, ("k",))[0] == b""


def test_read_if_none_match(b: FileBackend) -> None:
    st = b.write(("k",), b"v")
    assert st is not None
    assert b.read(("k",), if_none_match=st.etag) is NOT_MODIFIED
    assert read_ok(b, ("k",)) == (b"v", st)
    got = b.read(("k",), if_none_match="1:1:1")
    assert got == (b"v", st)
    assert b.read(("absent",), if_none_match=st.etag) is None


def test_read_retries_a_file_modified_in_place(b: FileBackend, store: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    b.write(("k",), b"old")
    real = FileBackend._read_fd
    calls = []

    def modifying_read(fd: int, size: int) -> bytes:
        data = real(fd, size)
        if not calls:
            with open(store / "k_rtsl.pkl", "ab") as f:  # a foreign in-place writer
                f.write(b"+more")
        calls.append(data)
        return data

    monkeypatch.setattr(FileBackend, "_read_fd", staticmethod(modifying_read))
    data, st = read_ok(b, ("k",))
    assert data == b"old+more"
    assert len(calls) == 2
    assert st == b.stat(("k",))


# ---------------------------------------------------------------------- conditional writes

def test_insert_if_absent_wins_once(b: FileBackend, store: Path) -> None:
    st = b.write(("k",), b"first", if_match=ITEM_NOT_AVAILABLE)
    assert st is not None
    assert b.write(("k",), b"second", if_match=ITEM_NOT_AVAILABLE) is None
    assert read_ok(b, ("k",)) == (b"first", st)
    assert files(store) == ["k_rtsl.pkl"]


def test_insert_if_absent_has_one_winner_across_threads(b: FileBackend, store: Path) -> None:
    results: list[Stat | None] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        results.append(b.write(("x", "k"), f"v{i}".encode(), if_match=ITEM_NOT_AVAILABLE))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(results) == 8
    assert len(winners) == 1
    assert read_ok(b, ("x", "k"))[1] == winners[0]
    assert files(store) == ["x_txko/k_rtsl.pkl"]


def test_insert_if_absent_without_hard_links(b: FileBackend, store: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(file_dirs.os, "link", no_link)
    assert b.write(("k",), b"1", if_match=ITEM_NOT_AVAILABLE) is not None
    assert b.write(("k",), b"2", if_match=ITEM_NOT_AVAILABLE) is None
    assert read_ok(b, ("k",))[0] == b"1"
    assert files(store) == ["k_rtsl.pkl"]


def test_write_if_match_etag(b: FileBackend, store: Path) -> None:
    assert b.write(("k",), b"v", if_match="1:1:1") is None
    assert files(store) == []
    s1 = b.write(("k",), b"one")
    assert s1 is not None
    assert b.write(("k",), b"two", if_match="1:1:1") is None
    assert read_ok(b, ("k",))[0] == b"one"
    s2 = b.write(("k",), b"two", if_match=s1.etag)
    assert s2 is not None and s2.etag != s1.etag
    assert b.write(("k",), b"three", if_match=s1.etag) is None
    assert read_ok(b, ("k",)) == (b"two", s2)
    assert files(store) == ["k_rtsl.pkl"]


def test_delete_if_match(b: FileBackend) -> None:
    st = b.write(("k",), b"v")
    assert st is not None
    assert not b.delete(("k",), if_match="1:1:1")
    assert b.exists(("k",))
    assert b.delete(("k",), if_match=st.etag)
    assert not b.exists(("k",))
    assert not b.delete(("k",), if_match=st.etag)
    assert not b.delete(("k",))


# -------------------------------------------------------------------------- directories

def test_delete_removes_emptied_parent_directories(b: FileBackend, store: Path) -> None:
    b.write(("a", "b", "c"), b"1")
    b.write(("a", "x"), b"2")
    assert b.delete(("a", "b", "c"))
    assert dirs(store) == ["a_btax"]
    assert b.delete(("a", "x"))
    assert dirs(store) == []
    assert store.is_dir()  # base_dir itself stays
    assert b.delete(("k",)) is False


def test_write_survives_a_concurrent_prune(b: FileBackend, store: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = file_dirs.DirHandle.mkdir
    pruned = []

    def mkdir_then_pruned(self: file_dirs.DirHandle, name: str) -> None:
        real_mkdir(self, name)
        # Another process deletes the now-empty directory at once.
        if name == "a_btax" and len(pruned) < 2:
            os.rmdir(os.path.join(self.path, name))
            pruned.append(name)

    monkeypatch.setattr(file_dirs.DirHandle, "mkdir", mkdir_then_pruned)
    assert b.write(("a", "k"), b"v") is not None
    assert len(pruned) == 2
    assert files(store) == ["a_btax/k_rtsl.pkl"]


def test_reads_create_no_directories(b: FileBackend, store: Path) -> None:
    assert b.read(("a", "b")) is None
    assert b.stat(("a", "b")) is None
    assert not b.exists(("a", "b"))
    assert list(b.scan()) == []
    assert b.count() == 0
    assert not b.delete(("a", "b"))
    assert not store.exists()


def test_read_of_a_directory_is_absent(tmp_path: Path) -> None:
    b = FileBackend(str(tmp_path), "pkl", 0)
    b.write(("x.pkl", "y"), b"v")  # digest_len=0: the directory "x.pkl" shadows key "x"
    assert b.read(("x",)) is None
    assert b.stat(("x",)) is None
    assert not b.exists(("x",))
    assert not b.delete(("x",))
    assert [k for k, _ in b.scan()] == [("x.pkl", "y")]


# ---------------------------------------------------------------------------------- scans

def test_scan_with_stat(b: FileBackend) -> None:
    written = {("a",): b.write(("a",), b"1"), ("b", "c"): b.write(("b", "c"), b"22")}
    scanned = dict(b.scan(with_stat=True))
    assert scanned == written
    assert dict(b.scan()) == dict.fromkeys(written)
    assert b.count() == 2


def test_scan_skips_files_deleted_mid_scan(b: FileBackend) -> None:
    for i in range(10):
        b.write((f"k{i}",), b"v")
    seen = []
    for key, st in b.scan(with_stat=True):
        seen.append(key)
        assert st is not None
        for i in range(10):
            b.delete((f"k{i}",))
    assert len(seen) == 1


# ---------------------------------------------------------------------- name/path limits

def test_component_too_long_for_a_file_name(b: FileBackend, store: Path) -> None:
    ok = "x" * 246  # 246 + "_xxxx" + ".pkl" = 255 bytes
    assert b.write((ok,), b"v") is not None
    too_long = "y" * 247
    with pytest.raises(ValueError, match="y" * 40):
        b.write((too_long,), b"v")
    b.write(("d" * 250, "k"), b"v")  # a directory name has no extension: 250 + 5 bytes fit
    with pytest.raises(ValueError, match="limit of 255"):
        b.write(("d" * 251, "k"), b"v")
    b.delete(("d" * 250, "k"))
    assert files(store) == [os.path.basename(b.path_for((ok,)))]
    assert len(os.path.basename(b.path_for((ok,)))) == 255
    assert b.read((too_long,)) is None
    assert b.stat((too_long,)) is None
    assert not b.exists((too_long,))
    assert not b.delete((too_long,))


def test_path_too_long(b: FileBackend, store: Path) -> None:
    key = tuple(f"{i:03d}" + "p" * 200 for i in range(25))
    with pytest.raises(ValueError, match="path"):
        b.write(key, b"v")
    assert not store.exists()
    assert b.read(key) is None


def test_thousands_of_components_fail_fast(b: FileBackend, store: Path) -> None:
    key = ("c",) * 5000
    with pytest.raises(ValueError, match="5000 components"):
        b.write(key, b"v")
    assert not store.exists()
    assert not b.exists(key)


def test_os_name_too_long_is_value_error(b: FileBackend, store: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def too_long(*args: Any, **kwargs: Any) -> None:  # a file system stricter than it says
        raise OSError(errno.ENAMETOOLONG, "File name too long")

    monkeypatch.setattr(file_backend.os, "replace", too_long)
    with pytest.raises(ValueError, match="too long"):
        b.write(("k",), b"v")
    monkeypatch.undo()
    assert files(store) == []


# ------------------------------------------------------------------- symlinks and escapes

def test_planted_symlink_directory_cannot_redirect_writes(b: FileBackend, tmp_path: Path,
                                                          store: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.mkdir()
    os.symlink(outside, store / sign_component("evil", 4))
    with pytest.raises(BackendError, match="links are not followed"):
        b.write(("evil", "x"), b"v")
    with pytest.raises(BackendError, match="links are not followed"):
        b.write(("evil", "sub", "x"), b"v", if_match=ITEM_NOT_AVAILABLE)
    assert os.listdir(outside) == []
    victim = FileBackend(str(outside), "pkl", 4)
    victim.write(("x",), b"precious")
    with pytest.raises(BackendError, match="links are not followed") as info:
        b.delete(("evil", "x"))
    assert (info.value.operation, info.value.key) == ("delete", ("evil", "x"))
    for read in (b.read, b.stat, b.exists):  # reads are refused like writes
        with pytest.raises(BackendError, match="links are not followed"):
            read(("evil", "x"))
    assert read_ok(victim, ("x",))[0] == b"precious"
    assert files(tmp_path / "outside") == ["x_txko.pkl"]


def test_symlink_directory_pointing_inside_is_refused_too(b: FileBackend, store: Path) -> None:
    """No link is followed below the root, wherever it points: checking where it leads would
    race with another process changing it."""
    b.write(("real", "k"), b"v")
    real_dir = os.path.dirname(b.path_for(("real", "k")))
    alias_dir = os.path.dirname(b.path_for(("alias", "k")))
    os.symlink(real_dir, alias_dir)
    with pytest.raises(BackendError, match="links are not followed"):
        b.write(("alias", "k"), b"w")
    with pytest.raises(BackendError, match="links are not followed"):
        b.read(("alias", "k"))
    assert read_ok(b, ("real", "k"))[0] == b"v"
    assert [k for k, _ in b.scan()] == [("real", "k")]


def test_root_path_itself_may_go_through_a_link(tmp_path: Path) -> None:
    """The base_dir the user gives is theirs to choose: links above the root are followed."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    b = FileBackend(str(tmp_path / "alias"), "pkl", 4)
    assert b.write(("a", "k"), b"v") is not None
    assert read_ok(b, ("a", "k"))[0] == b"v"
    assert files(tmp_path / "real") == ["a_btax/k_rtsl.pkl"]


def test_symlink_item_file_is_not_followed_on_read(b: FileBackend, tmp_path: Path,
                                                   store: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    store.mkdir()
    os.symlink(secret, b.path_for(("k",)))
    with pytest.raises(BackendError) as info:
        b.read(("k",))
    assert info.value.operation == "read"
    assert isinstance(info.value.__cause__, OSError)


# -------------------------------------------------------------- temp files and clear()

def make_temp(directory: Path, name: str, age: float) -> Path:
    p = directory / (TEMP_PREFIX + name)
    p.write_bytes(b"partial")
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def test_clear_removes_items_stale_temps_and_empty_dirs(b: FileBackend, store: Path) -> None:
    b.write(("a", "b"), b"1")
    b.write(("k",), b"2")
    sub = store / "a_btax"
    stale = make_temp(sub, "stale1", 3600)
    fresh = make_temp(store, "fresh1", 0)
    (store / "other.json").write_bytes(b"{}")
    (store / "keep_dir").mkdir()
    (store / "keep_dir" / "a_btax.pkl").write_bytes(b"not ours")
    b.clear()
    assert not stale.exists()
    assert fresh.exists()
    assert files(store) == [".__tmp__fresh1", "keep_dir/a_btax.pkl", "other.json"]
    assert dirs(store) == ["keep_dir"]
    assert b.count() == 0


def test_remove_stale_temp_files(b: FileBackend, store: Path) -> None:
    b.write(("a", "b"), b"1")
    make_temp(store / "a_btax", "old", 3600)
    make_temp(store, "old2", 700)
    fresh = make_temp(store, "new", 10)
    assert b.remove_stale_temp_files() == 2
    assert files(store) == [".__tmp__new", "a_btax/b_slvv.pkl"]
    assert b.remove_stale_temp_files(max_age_seconds=0) == 1
    assert not fresh.exists()
    with pytest.raises(ValueError):
        b.remove_stale_temp_files(-1)
    with pytest.raises(TypeError):
        b.remove_stale_temp_files("600")  # type: ignore[arg-type]


def test_file_dir_dict_remove_stale_temp_files(store: Path) -> None:
    d = FileDirDict(base_dir=store)
    make_temp(store, "old", 3600)
    assert d.remove_stale_temp_files() == 1
    assert files(store) == []


# ------------------------------------------------------------------------ infrastructure

def test_vanished_base_dir(b: FileBackend, store: Path) -> None:
    b.write(("k",), b"v")
    shutil.rmtree(store)
    assert b.read(("k",)) is None
    assert not b.exists(("k",))
    assert list(b.scan()) == []
    assert b.count() == 0
    b.clear()
    assert b.write(("k",), b"again") is not None  # directories are created on demand
    assert read_ok(b, ("k",))[0] == b"again"


def test_base_dir_replaced_by_a_file(b: FileBackend, store: Path) -> None:
    b.write(("k",), b"v")
    shutil.rmtree(store)
    store.write_bytes(b"not a directory")
    assert b.read(("k",)) is None
    with pytest.raises(BackendError) as info:
        b.write(("k",), b"v")
    assert (info.value.backend, info.value.operation) == ("filesystem", "write")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(BackendError) as info2:
        list(b.scan())
    assert info2.value.operation == "list"
    assert store.read_bytes() == b"not a directory"


@pytest.mark.skipif(IS_ROOT, reason="root ignores file modes")
def test_unreadable_file_is_backend_error(b: FileBackend, store: Path) -> None:
    b.write(("k",), b"v")
    path = b.path_for(("k",))
    os.chmod(path, 0)
    try:
        with pytest.raises(BackendError) as info:
            b.read(("k",))
        assert info.value.key == ("k",)
        assert isinstance(info.value.__cause__, PermissionError)
    finally:
        os.chmod(path, 0o644)


@pytest.mark.skipif(IS_ROOT, reason="root ignores file modes")
def test_unwritable_directory_is_backend_error(b: FileBackend, store: Path) -> None:
    b.write(("k",), b"v")
    os.chmod(store, 0o500)
    try:
        with pytest.raises(BackendError) as info:
            b.write(("j",), b"v")
        assert isinstance(info.value.__cause__, PermissionError)
        with pytest.raises(BackendError):
            b.delete(("k",))
    finally:
        os.chmod(store, 0o755)
    assert files(store) == ["k_rtsl.pkl"]


# ------------------------------------------------------------------------- FileDirDict

def test_file_dir_dict_constructor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = FileDirDict()
    assert d.base_dir == str(tmp_path / "__file_dir_dict__")
    assert os.path.isdir(d.base_dir)
    assert d.digest_len == 4
    assert d.get_params() == {"append_only": False, "base_class_for_values": None,
                              "base_dir": d.base_dir, "digest_len": 4,
                              "serialization_format": "pkl"}
    assert list(d.get_params()) == sorted(d.get_params())
    d2 = FileDirDict(base_dir=Path("rel") / "x", digest_len=0)
    assert d2.base_dir == str(tmp_path / "rel" / "x")
    assert d2.digest_len == 0


@pytest.mark.parametrize(("digest_len", "error"),
                         [(-1, ValueError), (27, ValueError), (True, TypeError),
                          ("4", TypeError), (4.0, TypeError)])
def test_file_dir_dict_rejects_bad_digest_len(tmp_path: Path, digest_len: Any,
                                              error: type[Exception]) -> None:
    with pytest.raises(error):
        FileDirDict(base_dir=tmp_path / "s", digest_len=digest_len)
    assert not (tmp_path / "s").exists()


def test_file_dir_dict_on_a_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        FileDirDict(base_dir=f)


def test_file_dir_dict_base_dir_not_creatable(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(BackendError) as info:
        FileDirDict(base_dir=f / "sub")
    assert (info.value.backend, info.value.operation) == ("filesystem", "init")


def test_get_subdict_creates_no_directory(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path / "s", digest_len=8)
    sub = d.get_subdict(("p", "q"))
    assert isinstance(sub, FileDirDict)
    assert sub.digest_len == 8
    assert len(sub) == 0
    assert "k" not in sub
    assert list(sub.keys()) == []
    assert dirs(tmp_path / "s") == []
    sub["k"] = 1
    assert d["p", "q", "k"] == 1
    del sub["k"]
    assert dirs(tmp_path / "s") == []  # pruned up to (not including) the top store's dir
    sub["k"] = 2
    sub.clear()
    assert dirs(tmp_path / "s") == []
    assert os.path.isdir(d.base_dir)
    assert d.get_subdict(()).base_dir == d.base_dir


def test_subdict_cannot_escape_through_a_planted_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    d = FileDirDict(base_dir=tmp_path / "s")
    sub = d.get_subdict("p")
    os.symlink(outside, sub.base_dir)
    with pytest.raises(BackendError, match="links are not followed"):
        sub["q", "k"] = 1
    with pytest.raises(BackendError, match="links are not followed"):
        sub["k"] = 1
    with pytest.raises(BackendError, match="links are not followed"):
        len(sub)
    assert os.listdir(outside) == []


def test_file_dir_dict_clone_and_equality_of_params(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path, serialization_format="json", digest_len=2)
    c = d.clone()
    assert isinstance(c, FileDirDict)
    assert c.get_params() == d.get_params()


# ------------------------------------------------------------ Windows sharing violations

def flaky(real: Any, failures: int) -> Any:
    calls = []

    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) <= failures:
            raise PermissionError(errno.EACCES, "sharing violation")
        return real(*args, **kwargs)

    return call


def on_windows(monkeypatch: pytest.MonkeyPatch, windows: bool) -> None:
    """Pretend to run on Windows (or not) for the backend and its path helpers."""
    monkeypatch.setattr(file_backend, "WINDOWS", windows)
    monkeypatch.setattr(file_paths, "WINDOWS", windows)


def test_sharing_violations_are_retried_on_windows(b: FileBackend, store: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    on_windows(monkeypatch, True)
    monkeypatch.setattr(file_backend.time, "sleep", sleeps.append)
    monkeypatch.setattr(file_backend.os, "replace", flaky(os.replace, 2))
    assert b.write(("k",), b"v") is not None
    assert len(sleeps) == 2
    monkeypatch.setattr(file_backend.os, "open", flaky(os.open, 3))
    assert read_ok(b, ("k",))[0] == b"v"
    monkeypatch.setattr(file_backend.os, "remove", flaky(os.remove, 1))
    assert b.delete(("k",))
    monkeypatch.setattr(file_backend.os, "replace", flaky(os.replace, 100))
    with pytest.raises(BackendError) as info:
        b.write(("j",), b"v")
    assert isinstance(info.value.__cause__, PermissionError)
    monkeypatch.undo()
    assert files(store) == []


def test_permission_errors_are_not_retried_on_posix(b: FileBackend,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    on_windows(monkeypatch, False)
    monkeypatch.setattr(file_backend.time, "sleep", sleeps.append)
    monkeypatch.setattr(file_backend.os, "replace", flaky(os.replace, 1))
    with pytest.raises(BackendError):
        b.write(("k",), b"v")
    assert sleeps == []


@pytest.mark.parametrize(("plain", "prefixed"), [
    ("C:\\data\\store", "\\\\?\\C:\\data\\store"),
    ("\\\\server\\share\\store", "\\\\?\\UNC\\server\\share\\store"),
])
def test_windows_long_path_prefix(plain: str, prefixed: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert file_backend.add_long_path_prefix(plain) == prefixed
    assert file_backend.add_long_path_prefix(prefixed) == prefixed
    assert file_backend.drop_long_path_prefix(prefixed) == plain
    assert file_backend.drop_long_path_prefix(plain) == plain
    on_windows(monkeypatch, True)
    b = FileBackend(prefixed, "pkl", 4)
    assert b.base_dir == b.root == plain
    assert b.os_base_dir == prefixed
    sub = FileBackend(plain + "\\p_qody", "pkl", 4, root=plain)
    assert sub.os_base_dir == prefixed + "\\p_qody"
    assert sub.root == plain
