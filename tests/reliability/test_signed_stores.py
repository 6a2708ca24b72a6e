"""Signed stores: a stranger who can write to the folder or bucket cannot get a value read.

Each attack plants bytes through a side door (the file system, a raw S3 client) that would run
code if unpickled (they create a marker file); a signed store refuses them with
``BackendError(operation="verify")`` naming the key, and the marker never appears.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from typing import Any

import pytest

from persidict import BackendError, FileDirDict
from persidict.signing import ENV_VAR, MAGIC
from tests.s3_support import S3Target

KEY = b"team secret"


class Planted:
    """Unpickling this creates ``marker``: proof that a payload was deserialised."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def expect_refused(action: Any, key: tuple[str, ...], marker: Path) -> None:
    with pytest.raises(BackendError) as info:
        action()
    assert info.value.operation == "verify"
    assert info.value.key == key
    assert repr(key) in str(info.value)
    assert not marker.exists(), "the planted payload was deserialised"


def the_file(d: FileDirDict[Any], key: tuple[str, ...]) -> Path:
    """The item's file, found on disk (a side door, independent of the store's code)."""
    return next(Path(d.base_dir).rglob(f"{key[-1]}_*.{d.serialization_format}"))


def test_file_store_refuses_unsigned_tampered_and_replayed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s", signing_key=KEY)
    d["a"] = {"x": 1}
    d["b"] = "bee"
    assert d["a"] == {"x": 1}
    path_a, path_b = the_file(d, ("a",)), the_file(d, ("b",))
    assert path_a.read_bytes().startswith(MAGIC)

    evil = pickle.dumps(Planted(marker))
    path_a.write_bytes(evil)  # unsigned
    expect_refused(lambda: d["a"], ("a",), marker)
    path_a.write_bytes(MAGIC + b"\0" * 32 + evil)  # a made-up tag
    expect_refused(lambda: d["a"], ("a",), marker)
    signed_b = path_b.read_bytes()
    path_a.write_bytes(signed_b)  # a genuine payload, replayed under another key
    expect_refused(lambda: d["a"], ("a",), marker)
    flipped = bytearray(signed_b)
    flipped[-2] ^= 1  # one bit of a genuine payload
    path_b.write_bytes(bytes(flipped))
    expect_refused(lambda: d["b"], ("b",), marker)
    with pytest.raises(BackendError):
        list(d.values())  # iteration refuses as well
    other: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s", signing_key=b"not it")
    path_b.write_bytes(signed_b)
    expect_refused(lambda: other["b"], ("b",), marker)
    assert d["b"] == "bee"


def test_signed_views_agree_and_the_key_stays_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s", signing_key="team secret")
    d["x", "y"] = 1
    sub = d.get_subdict("x")
    assert sub["y"] == 1
    sub["z"] = 2
    assert d["x", "z"] == 2
    assert "team secret" not in repr(d) and "secret" not in repr(d.get_params())
    clone = d.clone()
    assert clone["x", "y"] == 1  # get_params() carries the (redacted) key
    json_store: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s",
                                               serialization_format="json", signing_key=KEY)
    json_store["j"] = [1, 2]
    assert json_store["j"] == [1, 2]
    monkeypatch.setenv(ENV_VAR, "team secret")
    from_env: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s")
    assert from_env["x", "z"] == 2  # the environment's key is the default
    unsigned: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s", signing_key="")
    with pytest.raises(BackendError):
        unsigned["x", "z"]  # a signed payload is not a valid pickle for an unsigned store


@pytest.mark.s3
def test_s3_store_refuses_unsigned_tampered_and_replayed(
    s3_target: S3Target, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    d = s3_target.basic_store(root_prefix="team", signing_key=KEY)
    d["a"] = 1
    d["b"] = "bee"
    assert d["a"] == 1 and d["b"] == "bee"
    client, bucket = s3_target.client, s3_target.bucket
    body_b = s3_target.get_object("team/b.pkl")["Data"]
    assert body_b.startswith(MAGIC)
    evil = pickle.dumps(Planted(marker))
    for planted in (evil, MAGIC + b"\1" * 32 + evil, body_b):
        client.put_object(Bucket=bucket, Key="team/a.pkl", Body=planted)
        expect_refused(lambda: d["a"], ("a",), marker)
    # The root prefix is part of the signed path: a payload copied to another prefix is refused.
    client.put_object(Bucket=bucket, Key="elsewhere/b.pkl", Body=body_b)
    other = s3_target.basic_store(root_prefix="elsewhere", signing_key=KEY)
    expect_refused(lambda: other["b"], ("b",), marker)
    # Views of one object agree however the store is rooted.
    whole = s3_target.basic_store(signing_key=KEY)
    assert whole["team", "b"] == "bee"
    assert whole.get_subdict("team")["b"] == "bee"


@pytest.mark.s3
def test_s3dict_signed_on_s3_and_in_its_cache(s3_mock: S3Target, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    d = s3_mock.cached_store(base_dir=tmp_path / "cache", signing_key=KEY)
    d["k"] = {"v": 1}
    assert d["k"] == {"v": 1}
    cached = next(p for p in (tmp_path / "cache").rglob("k_*.pkl"))
    assert cached.read_bytes().startswith(MAGIC)
    cached.write_bytes(pickle.dumps(Planted(marker)))  # a planted local cache file: a miss
    assert d["k"] == {"v": 1}
    assert not marker.exists()
    s3_mock.client.put_object(Bucket=s3_mock.bucket, Key="k.pkl",
                              Body=pickle.dumps(Planted(marker)))
    expect_refused(lambda: d["k"], ("k",), marker)


def test_persistent_cache_signs_its_results(tmp_path: Path) -> None:
    import warnings

    from persidict_memo import StoreUnavailableError, persistent_cache

    marker = tmp_path / "ran"
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    options: dict[str, Any] = {"signing_key": KEY, "lease": False, "memory_bytes": 0}
    cached = persistent_cache(store=tmp_path / "memo", **options)(square)
    assert cached(3) == 9
    files = [p for p in (tmp_path / "memo").rglob("*") if p.is_file()]
    assert files and all(p.read_bytes().startswith(MAGIC) for p in files)
    for p in files:  # a stranger replaces every stored result
        p.write_bytes(pickle.dumps(Planted(marker)))
    again = persistent_cache(store=tmp_path / "memo", **options)(square)

    def call_again() -> Any:
        try:
            return again(3)
        except (BackendError, StoreUnavailableError) as exc:
            return exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = call_again()
    # Refused (an error naming the verification), or refused and recomputed: never loaded.
    assert (got == 9 and calls == [3, 3]) or "failed verification" in str(got), got
    assert not marker.exists()
    with pytest.raises(ValueError, match="signing_key"):
        persistent_cache(store=FileDirDict(base_dir=tmp_path / "x"), signing_key=KEY)


def test_big_values_are_signed_too(tmp_path: Path) -> None:
    """Big values, which unsigned stores stream to and from their files, are signed as well."""
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "s", signing_key=KEY)
    big = b"\1" * (5 << 20)
    d["big"] = big
    assert d["big"] == big
    path = the_file(d, ("big",))
    assert path.read_bytes().startswith(MAGIC)
    path.write_bytes(pickle.dumps(Planted(tmp_path / "ran")))
    expect_refused(lambda: d["big"], ("big",), tmp_path / "ran")
