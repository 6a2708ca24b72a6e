"""S3Dict (BasicS3Dict behind a local file cache): the S3 requests each operation sends.

The benchmark rows of issue 4 in test form: a set is one PUT (no HEAD first), a
``DELETE_CURRENT`` one DELETE, ``del`` the HEAD + DELETE needed to raise KeyError, a warm read
of a mutable store one conditional GET (304) and of an append-only store none; ``get_subdict``
sends nothing, shares the client and creates no local directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import DELETE_CURRENT, S3Dict
from tests.s3_support import S3Calls, S3Target

pytestmark = pytest.mark.s3


@pytest.fixture
def calls(s3_target: S3Target) -> Iterator[S3Calls]:
    c = S3Calls(s3_target.client)
    yield c
    c.close()


def test_mutable_s3dict_requests(s3_target: S3Target, calls: S3Calls, tmp_path: Path) -> None:
    d: S3Dict[Any] = s3_target.cached_store(root_prefix="req", base_dir=str(tmp_path))
    d["probe"] = 0
    d.transform_item("probe", transformer=lambda v: v)  # the endpoint probe, once

    assert calls.of(lambda: d.__setitem__("k", {"v": 1})) == ["PutObject"]
    assert calls.of(lambda: d["k"]) == ["GetObject"]  # a 304: the cache holds this ETag
    assert d["k"] == {"v": 1}
    assert calls.of(lambda: d.__setitem__("k", {"v": 2})) == ["PutObject"]
    assert calls.of(lambda: d["k"]) == ["GetObject"]
    assert d["k"] == {"v": 2}
    assert calls.of(lambda: d.__setitem__("k", DELETE_CURRENT)) == ["DeleteObject"]
    assert "k" not in d
    with pytest.raises(KeyError):
        d["k"]
    assert calls.of(lambda: d.__setitem__("gone", DELETE_CURRENT)) == ["DeleteObject"]
    d["k"] = 3
    assert calls.of(lambda: d.__delitem__("k")) == ["HeadObject", "DeleteObject"]
    with pytest.raises(KeyError):
        del d["k"]


def test_s3dict_set_then_outside_change_is_seen(s3_target: S3Target, tmp_path: Path) -> None:
    """The ETag cached by a set is the one S3 gave that write, so later changes are noticed."""
    d: S3Dict[Any] = s3_target.cached_store(root_prefix="heal", base_dir=str(tmp_path / "a"))
    other: S3Dict[Any] = s3_target.cached_store(root_prefix="heal", base_dir=str(tmp_path / "b"))
    d["k"] = 1
    assert d["k"] == 1
    other["k"] = 2
    assert d["k"] == 2
    other["k"] = DELETE_CURRENT
    assert "k" not in d
    with pytest.raises(KeyError):
        d["k"]


def test_append_only_warm_read_sends_nothing(
    s3_target: S3Target, calls: S3Calls, tmp_path: Path
) -> None:
    d: S3Dict[Any] = s3_target.cached_store(root_prefix="ao", base_dir=str(tmp_path),
                                            append_only=True)
    d["k"] = "v"
    assert calls.of(lambda: d["k"]) == []
    assert d["k"] == "v"


def test_s3dict_subdict_sends_nothing_and_makes_no_directory(
    s3_target: S3Target, calls: S3Calls, tmp_path: Path
) -> None:
    d: S3Dict[Any] = s3_target.cached_store(root_prefix="top", base_dir=str(tmp_path))
    before = sorted(p for p, _, _ in os.walk(tmp_path))
    assert calls.of(lambda: d.get_subdict("a")) == []
    assert sorted(p for p, _, _ in os.walk(tmp_path)) == before
    s = d.get_subdict(("a", "b"))
    assert isinstance(s, S3Dict)
    assert s._s3.s3_client is d._s3.s3_client
    assert s.root_prefix == "top/a/b/"
    s["k"] = 1  # through the sub-store, its cache directories appear on the first write
    assert d["a", "b", "k"] == 1
    assert calls.of(lambda: s["k"]) == ["GetObject"]  # warm: one 304
    d["a", "b", "k"] = 2
    assert s["k"] == 2
    assert calls.of(lambda: s["k"]) == ["GetObject"]


def test_mutable_s3dict_cache_writes_skip_fsync_append_only_keep_it(
        s3_target: S3Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 is the durable copy of a mutable S3Dict; its validated cache needs no fsync."""
    import os

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    mutable = s3_target.cached_store(root_prefix="m", base_dir=tmp_path / "m")
    mutable["k"] = {"v": 1}
    assert mutable["k"] == {"v": 1}
    mutable.get_subdict("sub")["k"] = 2  # sub-stores inherit it
    assert mutable["sub", "k"] == 2
    assert synced == []
    frozen = s3_target.cached_store(root_prefix="a", base_dir=tmp_path / "a", append_only=True)
    frozen["k"] = 1
    assert frozen["k"] == 1
    assert synced  # the trusted append-only cache stays durable
