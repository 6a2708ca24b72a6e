"""Stores: misconfiguration is loud (at decoration or the first call), memory is bounded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, S3Dict
from persidict_memo import CacheStoreWarning, StoreUnavailableError, persistent_cache


def body(x: int) -> int:
    return x + 1


@pytest.mark.parametrize(
    "url",
    ["gs://bucket/prefix", "file:///tmp/x", "http://example.com/cache", "s3:/x", "s3:x",
     "s3://", "s3:///prefix", "s3://No_Such_Bucket!/p", "s3://ab/p", "  "],
)
def test_unknown_or_malformed_store_urls_fail_at_decoration(url: str) -> None:
    with pytest.raises(ValueError, match="store"):
        persistent_cache(store=url)(body)


def test_a_store_of_the_wrong_type_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match="store must be"):
        persistent_cache(store=42)(body)  # type: ignore[call-overload]


def test_windows_drive_letters_are_directories_not_schemes(tmp_path: Path) -> None:
    persistent_cache(store="C:/cache")  # decoration only: a path with a drive, not a URL


def test_tilde_is_expanded_in_directory_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cached = persistent_cache(store="~/memo-cache")(body)
    assert cached(1) == 2
    assert list((tmp_path / "memo-cache").rglob("*.pkl"))
    assert not (tmp_path / "~").exists()
    assert FileDirDict(base_dir="~/plain").base_dir == str(tmp_path / "plain")


@pytest.mark.s3
def test_tilde_is_expanded_in_s3dict_base_dir(
    s3_mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    d = S3Dict(bucket_name=s3_mock.bucket, base_dir="~/s3cache", client=s3_mock.client)
    d["k"] = 1
    assert d.get_params()["base_dir"] == str(tmp_path / "s3cache")
    assert not (tmp_path / "~").exists()


def test_a_directory_that_cannot_be_created_fails_at_the_first_call(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    cached = persistent_cache(store=str(blocker / "cache"))(body)  # decoration does no I/O
    for _ in range(2):  # every call, not only the first: nothing to fall back on
        with pytest.raises(StoreUnavailableError, match=r"body\(\).*To fix"):
            cached(1)


def test_on_store_error_warn_does_not_hide_an_unusable_store(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    cached = persistent_cache(store=str(blocker / "c"), on_store_error="warn")(body)
    with pytest.raises(StoreUnavailableError):
        cached(1)


def test_boto3_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # "import boto3" raises ImportError
    cached = persistent_cache(store="s3://memo-bucket/cache")(body)
    with pytest.raises(StoreUnavailableError, match=r"pip install \"persidict\[aws\]\""):
        cached(1)


_NO_CREDENTIALS = """
import sys
from persidict_memo import StoreUnavailableError, persistent_cache
cached = persistent_cache(store="s3://memo-no-credentials/cache", version="1")(lambda x: x)
try:
    cached(1)
except StoreUnavailableError as exc:
    print(exc)
    sys.exit(0)
sys.exit("no StoreUnavailableError")
"""


@pytest.mark.s3
@pytest.mark.slow
def test_missing_credentials_say_so(moto_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto_server,
        PERSIDICT_MEMO_DIR=str(tmp_path / "local"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    done = subprocess.run([sys.executable, "-c", _NO_CREDENTIALS], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "credentials" in done.stdout


def test_a_store_that_worked_and_then_fails_follows_on_store_error(tmp_path: Path) -> None:
    cached = persistent_cache(store=str(tmp_path / "c"))(body)
    assert cached(1) == 2  # the store works
    results = tmp_path / "c"
    shutil.rmtree(results)  # the disk goes away: a file where the store was
    results.write_text("the disk went away")
    with pytest.warns(CacheStoreWarning):
        assert cached(2) == 3
    assert cached.cache_info().store_errors >= 1


# --------------------------------------------------------------------------- memory tier


def test_big_results_are_not_pinned_in_memory(tmp_path: Path) -> None:
    @persistent_cache(store=str(tmp_path / "c"))
    def blob(i: int) -> bytes:
        return bytes([i]) * (16 * 2**20)

    for i in range(30):
        assert len(blob(i)) == 16 * 2**20
    entries, used = blob._self_memo.memory_usage()
    assert entries == 0 and used == 0  # 16 MB is over an eighth of the 64 MiB default
    assert blob(3)[:1] == b"\x03"  # still a hit, from the store
    assert blob.cache_info().hits == 1


def test_memory_tier_stays_within_its_byte_budget(tmp_path: Path) -> None:
    @persistent_cache(store=str(tmp_path / "c"), memory_bytes=200_000)
    def chunk(i: int) -> bytes:
        return bytes([i % 256]) * 20_000

    for i in range(40):
        chunk(i)
    entries, used = chunk._self_memo.memory_usage()
    assert used <= 200_000
    assert 5 <= entries <= 10
    misses = chunk.cache_info().misses
    chunk(39)  # the newest is in memory: a hit, no store read needed
    assert chunk.cache_info().misses == misses


def test_memory_bytes_zero_keeps_nothing(tmp_path: Path) -> None:
    cached = persistent_cache(store=str(tmp_path / "c"), memory_bytes=0)(body)
    cached(1)
    cached(1)
    assert cached._self_memo.memory_usage() == (0, 0)
    assert cached.cache_info().hits == 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64M"])
def test_bad_memory_bytes(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="memory_bytes"):
        persistent_cache(memory_bytes=bad)


def test_bad_durable() -> None:
    with pytest.raises(TypeError, match="durable"):
        persistent_cache(durable=1)  # type: ignore[call-overload]


def test_default_store_expands_tilde_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PERSIDICT_MEMO_DIR", "~/from-env")
    monkeypatch.chdir(tmp_path)
    cached = persistent_cache(body)
    cached(5)
    assert list((tmp_path / "from-env").rglob("*.pkl"))
    assert os.path.isdir(tmp_path / "from-env")
