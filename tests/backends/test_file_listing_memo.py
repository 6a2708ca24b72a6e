"""What file listings remember between calls (persidict.file_scan): each name's digest is
checked once, and a listing is never stale, whether the directory changed a moment ago or long
ago, by this store object or another one (another process's writes look the same)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from persidict import file_scan
from persidict.file_backend import FileBackend
from persidict.keys import sign_component


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names whose digest suffix a listing checks."""
    seen: list[str] = []
    real = file_scan.unsign_component

    def counting(name: str, n: int) -> Any:
        seen.append(name)
        return real(name, n)

    monkeypatch.setattr(file_scan, "unsign_component", counting)
    return seen


def settled(monkeypatch: pytest.MonkeyPatch, yes: bool) -> None:
    """Every directory counts as settled (yes) or as just changed (no) at the next listing."""
    big = 10**18  # ns: nothing has been unchanged this long
    monkeypatch.setattr(file_scan, "_SETTLED_FINE_NS", -big if yes else big)
    monkeypatch.setattr(file_scan, "_SETTLED_COARSE_NS", -big if yes else big)


def item_name(component: str) -> str:
    return sign_component(component, 4) + ".pkl"


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_a_directory_listed_right_after_writes_is_not_checked_again(
        tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    # bench_file's len() right after writing 2,000 items re-hashed every name at every call
    # until the directory had been unchanged for 100 ms: 3.9x the bare walk instead of 1.1x.
    settled(monkeypatch, False)
    b = FileBackend(str(tmp_path), "pkl", 4)
    keys = [(f"k{i}",) if layout == "flat" else (f"g{i % 3}", f"k{i}") for i in range(30)]
    for k in keys:
        b.write(k, b"v")
    assert b.count() == 30
    first = len(checks)
    assert first >= 30
    assert b.count() == 30 and sorted(b.scan_keys()) == sorted(keys)
    assert len(checks) == first  # every name was judged before
    b.write(("new",), b"v")
    assert b.count() == 31
    assert checks[first:] == [sign_component("new", 4)]  # only the new name


@pytest.mark.parametrize("was_settled", [False, True])
def test_junk_that_appears_later_is_never_listed(
        tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch,
        was_settled: bool) -> None:
    settled(monkeypatch, was_settled)
    b = FileBackend(str(tmp_path), "pkl", 4)
    b.write(("a",), b"v")
    b.write(("d", "x"), b"v")
    assert sorted(b.scan_keys()) == [("a",), ("d", "x")]
    other = FileBackend(str(tmp_path), "pkl", 4)  # another writer: its own memory
    other.write(("b",), b"v")
    (tmp_path / "b_xxxx.pkl").write_bytes(b"junk")  # a wrong digest
    (tmp_path / "junk").mkdir()  # a directory without one
    (tmp_path / "junk" / item_name("y")).write_bytes(b"v")
    sub = tmp_path / sign_component("d", 4)
    (sub / "notes.pkl").write_bytes(b"junk")
    assert sorted(b.scan_keys()) == [("a",), ("b",), ("d", "x")]
    assert b.count() == 3
    # An item swapped for a directory of the same name, and a directory for a file.
    os.remove(tmp_path / item_name("a"))
    (tmp_path / item_name("a")).mkdir()
    (sub / item_name("x")).unlink()
    sub.rename(tmp_path / "moved")
    (tmp_path / sign_component("d", 4)).write_bytes(b"not a directory")
    assert sorted(b.scan_keys()) == [("b",)]
    assert b.count() == 1


def test_a_settled_directory_is_judged_by_its_junk_alone(
        tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    settled(monkeypatch, True)
    b = FileBackend(str(tmp_path), "pkl", 4)
    for i in range(20):
        b.write((f"k{i}",), b"v")
    (tmp_path / "k0_xxxx.pkl").write_bytes(b"junk")
    assert b.count() == 20
    first = len(checks)
    assert b.count() == 20 and len(list(b.scan_keys())) == 20
    assert len(checks) == first
    assert len(b._seen) == 1 and not next(iter(b._seen.values())).good_items  # O(junk)


def test_names_kept_for_changing_directories_are_bounded(
        tmp_path: Path, checks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    settled(monkeypatch, False)
    monkeypatch.setattr(file_scan, "_HELD_NAMES_MAX", 10)
    b = FileBackend(str(tmp_path), "pkl", 4)
    for i in range(25):
        b.write((f"g{i % 5}", f"k{i}"), b"v")
    for _ in range(3):
        assert b.count() == 25
        assert b._held_names <= 10
        assert sum(len(s.good_items) + len(s.good_dirs) for s in b._seen.values()) \
            == b._held_names
    (tmp_path / sign_component("g0", 4) / "junk_xxxx.pkl").write_bytes(b"junk")
    assert b.count() == 25
