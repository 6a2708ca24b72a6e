"""FileDirDict's on-disk layout: byte-identical names (SPEC 2.5, 6.1, 9.1) and junk skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persidict.file_backend import FileBackend
from persidict.file_dir_dict import FileDirDict
from tests.spec_vectors import OTHER_SEEN, SIGNED

VECTORS = [(c, n, names[i]) for c, names in SIGNED.items() for i, n in enumerate((1, 4, 8, 11))]
VECTORS += [(c, 0, c) for c in SIGNED]


def files(root: Path) -> list[str]:
    """Every file under root, as sorted '/'-joined relative paths."""
    return sorted(
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, names in os.walk(root) for f in names
    )


def put(root: Path, relpath: str, data: bytes = b"junk") -> None:
    p = root / relpath
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


@pytest.mark.parametrize(("component", "n", "signed"), VECTORS + OTHER_SEEN)
def test_signed_file_names_are_byte_identical(tmp_path: Path, component: str, n: int,
                                              signed: str) -> None:
    b = FileBackend(str(tmp_path), "pkl", n)
    b.write((component,), b"v")
    assert files(tmp_path) == [signed + ".pkl"]
    assert [k for k, _ in b.scan()] == [(component,)]
    b.write((component, component), b"v")
    assert f"{signed}/{signed}.pkl" in files(tmp_path)


def test_nested_key_path(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path)
    d["a", "B", "c.d"] = 1
    assert files(tmp_path) == ["a_btax/B_tvpn/c.d_4cj6.pkl"]
    assert list(d.keys()) == [("a", "B", "c.d")]


def test_digest_len_zero_uses_plain_names(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path, digest_len=0)
    d["A", "b"] = 1
    assert files(tmp_path) == ["A/b.pkl"]


def test_case_variants_get_different_files(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path)
    d["hello"], d["Hello"] = 1, 2
    assert files(tmp_path) == ["Hello_rmnj.pkl", "hello_lvau.pkl"]
    assert (d["hello"], d["Hello"]) == (1, 2)


@pytest.mark.parametrize("fmt", ["pkl", "json", "txt", "pkl_etag"])
def test_extension_is_the_format(tmp_path: Path, fmt: str) -> None:
    b = FileBackend(str(tmp_path), fmt, 4)
    b.write(("hello",), b"v")
    assert files(tmp_path) == [f"hello_lvau.{fmt}"]
    assert [k for k, _ in b.scan()] == [("hello",)]


@pytest.mark.parametrize("fmt", ["pkl", "txt", "pkl_etag"])
def test_store_extension_is_the_format(tmp_path: Path, fmt: str) -> None:
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format=fmt,
                                      base_class_for_values=str)
    d["hello"] = "v"
    assert files(tmp_path) == [f"hello_lvau.{fmt}"]
    assert d["hello"] == "v"


def test_text_format_bytes(tmp_path: Path) -> None:
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="txt",
                                      base_class_for_values=str)
    d["k"] = "line1\nline2 \u00fc"
    assert (tmp_path / "k_rtsl.txt").read_bytes() == "line1\nline2 \u00fc".encode()


def test_already_signed_looking_key_is_a_different_file(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path)
    d["abc"] = 1
    d["abc_saav"] = 2
    assert len(files(tmp_path)) == 2
    assert "abc_saav.pkl" in files(tmp_path)
    assert (d["abc"], d["abc_saav"]) == (1, 2)
    assert sorted(tuple(k) for k in d) == [("abc",), ("abc_saav",)]


def test_stores_of_different_formats_share_a_directory(tmp_path: Path) -> None:
    p = FileDirDict(base_dir=tmp_path)
    t: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="txt",
                                      base_class_for_values=str)
    p["k"], t["k"] = 1, "2"
    assert files(tmp_path) == ["k_rtsl.pkl", "k_rtsl.txt"]
    assert (p["k"], t["k"], len(p), len(t)) == (1, "2", 1, 1)
    p.clear()
    assert files(tmp_path) == ["k_rtsl.txt"]


JUNK_N4 = [
    ".DS_Store",
    "notes.pkl",              # right extension, no digest suffix
    "hello_xxxx.pkl",         # wrong digest suffix
    "Hello_lvau.pkl",         # the suffix of another component
    "x.json",                 # another format
    "hello_lvau.pkl.bak",     # longer extension
    "hello_lvau.pkl_etag",    # longer extension that starts with ours
    ".__tmp__k2j3h4x1",       # a temp file of a writer
    ".__tmp__abcdef.pkl",     # whatever a temp file is called, it is never an item
    ".pkl",                   # empty stem
    "bad name_xxxx.pkl",      # unsafe characters
    "junk/a_btax.pkl",        # a directory without a digest suffix
    "a_xxxx/a_btax.pkl",      # a directory with a wrong digest suffix
]


def test_junk_files_are_skipped_by_scan_and_count(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path)
    d["hello"] = 1
    d["a", "b"] = 2
    for name in JUNK_N4:
        put(tmp_path, name)
    (tmp_path / "dir_lvau.pkl").mkdir()  # a directory named like an item file
    b = FileBackend(str(tmp_path), "pkl", 4)
    expected = {("hello",), ("a", "b")}
    assert {k for k, _ in b.scan()} == expected
    assert {k for k, _ in b.scan(with_stat=True)} == expected
    assert b.count() == 2
    assert len(d) == len(list(d.keys())) == 2
    assert set(d.keys()) == expected
    assert sorted((tuple(k), v) for k, v in d.items()) == [(("a", "b"), 2), (("hello",), 1)]


def test_junk_files_with_digest_len_zero(tmp_path: Path) -> None:
    b = FileBackend(str(tmp_path), "pkl", 0)
    b.write(("k",), b"v")
    for name in (".DS_Store", "x.json", ".__tmp__k2j3h4x1", ".pkl", "bad name.pkl",
                 "a+b.pkl", "x.pkl.bak", "bad dir/k.pkl"):
        put(tmp_path, name)
    assert [k for k, _ in b.scan()] == [("k",)]
    assert b.count() == 1


def test_gz_store_does_not_see_tar_gz_files(tmp_path: Path) -> None:
    tar_gz = FileBackend(str(tmp_path), "tar.gz", 4)
    gz = FileBackend(str(tmp_path), "gz", 4)
    tar_gz.write(("a",), b"v")
    assert files(tmp_path) == ["a_btax.tar.gz"]
    put(tmp_path, "a_xxxx.tar.gz")
    assert [k for k, _ in tar_gz.scan()] == [("a",)]
    assert list(gz.scan()) == []
    assert gz.count() == 0
    gz.clear()
    assert "a_btax.tar.gz" in files(tmp_path)


def test_symlinks_are_not_items_nor_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    store = tmp_path / "store"
    b_out = FileBackend(str(outside), "pkl", 4)
    b_out.write(("k",), b"v")
    b = FileBackend(str(store), "pkl", 4)
    b.write(("a",), b"v")
    os.symlink(outside, store / "d_txko")
    os.symlink(outside / "k_rtsl.pkl", store / "k_rtsl.pkl")
    assert [k for k, _ in b.scan()] == [("a",)]
    assert b.count() == 1
    b.clear()
    assert files(outside) == ["k_rtsl.pkl"]


def test_subdict_directory_layout(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path)
    sub = d.get_subdict(("p", "q"))
    assert sub.base_dir == str(tmp_path / "p_qody" / "q_o2kp")
    sub["k"] = 1
    assert files(tmp_path) == ["p_qody/q_o2kp/k_rtsl.pkl"]
    assert d["p", "q", "k"] == 1
