"""Caches never lie: a full, read-only or damaged local cache is never the operation's error.

The disks are real: a small tmpfs mounted for the test (filled to the last byte, or remounted
read-only), so the errors are the kernel's own ENOSPC / EROFS through the real file store.
Mounting needs root (as in CI); elsewhere these tests are skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ITEM_NOT_AVAILABLE,
    AppendOnlyDictCached,
    FileDirDict,
    LocalDict,
    MutableDictCached,
    cache_faults,
)
from tests.s3_support import S3Target


def increment(v: Any) -> Any:
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


class SmallDisk:
    """A 512 KiB tmpfs at ``path`` that can be filled up or made read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        """Take every free block, so the next write gets ENOSPC."""
        with open(self.path / "ballast", "wb", buffering=0) as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0")
        with pytest.raises(OSError), open(self.path / "probe", "wb") as g:
            g.write(b"x" * 8192)
            g.flush()
            os.fsync(g.fileno())

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        with pytest.raises(OSError):
            (self.path / "probe").write_bytes(b"x")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    path = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(autouse=True)
def fresh_reports() -> Iterator[None]:
    cache_faults._reported.clear()
    yield
    cache_faults._reported.clear()


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "persidict.cache"]


BIG = "x" * 200_000  # does not fit in what is left of a full disk


def exercise_mutable(store: Any, outside: Any) -> None:
    """Writes that landed in the main store succeed; reads it can serve are right."""
    store["new"] = BIG
    assert store["new"] == BIG
    store["k"] = "v2"  # overwrite an item the cache holds as "v1"
    assert store["k"] == "v2"
    assert store.transform_item("n", transformer=increment).new_value == 2
    assert store["n"] == 2
    outside["cold"] = "from elsewhere"  # written behind the cache's back
    assert store["cold"] == "from elsewhere"
    outside["k"] = "v3"
    assert store["k"] == "v3"  # never the stale cached value
    assert store.pop("k") == "v3"
    assert "k" not in store
    with pytest.raises(KeyError):
        store["k"]
    assert dict(store.items())[("cold",)] == "from elsewhere"
    store.clear()
    assert len(store) == 0
    with pytest.raises(KeyError):
        store["new"]


@pytest.mark.s3
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_s3dict_cache_on_a_failing_disk(
    disk: SmallDisk, s3_mock: S3Target, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = s3_mock.cached_store(base_dir=disk.path / "cache")
    outside = s3_mock.basic_store()
    store["k"] = "v1"
    store["n"] = 1
    assert store["k"] == "v1" and store["n"] == 1  # cached on the local disk
    disk.fill() if fault == "full" else disk.read_only()
    exercise_mutable(store, outside)
    assert 1 <= len(cache_warnings(caplog)) <= 3  # reported, once per kind of failure


@pytest.mark.s3
def test_append_only_s3dict_cache_on_a_full_disk(
    disk: SmallDisk, s3_mock: S3Target, caplog: pytest.LogCaptureFixture
) -> None:
    store = s3_mock.cached_store(base_dir=disk.path / "cache", append_only=True)
    store["old"] = "cached"
    disk.fill()
    store["big"] = BIG
    assert store["big"] == BIG
    assert store["old"] == "cached"
    s3_mock.basic_store(append_only=True)["cold"] = "c"
    assert store["cold"] == "c"
    assert "cold" in store
    assert cache_warnings(caplog)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_mutable_dict_cached_any_cache(
    disk: SmallDisk, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    main: LocalDict[Any] = LocalDict()
    store: MutableDictCached[Any] = MutableDictCached(
        main_dict=main, data_cache=FileDirDict(base_dir=disk.path / "c"),
        etag_cache=FileDirDict(base_dir=disk.path / "c", serialization_format="etag",
                               base_class_for_values=str))
    store["k"] = "v1"
    store["n"] = 1
    assert store["k"] == "v1"
    disk.fill() if fault == "full" else disk.read_only()
    exercise_mutable(store, main)
    records = cache_warnings(caplog)
    assert records
    kinds = [r.getMessage() for r in records]
    assert len(kinds) == len(set(kinds))  # each kind of failure once, not once per operation


def test_append_only_dict_cached_full_and_damaged_cache(
    disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    main: LocalDict[Any] = LocalDict(append_only=True)
    cache: FileDirDict[Any] = FileDirDict(base_dir=disk.path / "c", append_only=True)
    store: AppendOnlyDictCached[Any] = AppendOnlyDictCached(main_dict=main, data_cache=cache)
    store["a"] = [1, 2]
    assert store["a"] == [1, 2]
    # A damaged cache file (a torn copy, a bad sector): a miss, not an error.
    path = next(p for p in (disk.path / "c").iterdir() if p.suffix == ".pkl")
    path.write_bytes(b"\x80\x05garbage")
    assert store["a"] == [1, 2]
    assert "a" in store
    assert store["a"] == [1, 2]  # the damaged entry was replaced
    disk.fill()
    store["big"] = BIG
    assert store["big"] == BIG
    assert store.setdefault("big2", BIG) == BIG
    assert cache_warnings(caplog)
