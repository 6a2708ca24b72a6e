"""Bad input to FileDirDict: a clear error at once, nothing written outside base_dir, no
partial file.

Every case runs inside :func:`harmless`, which snapshots the whole area around the store (the
store, a sibling directory standing for "outside", and their parent) before and after, and
checks that nothing changed and that the call returned quickly (the bound of a few seconds only
catches hangs and retry loops; the calls themselves take microseconds).

A damaged file in the store raises a ``BackendError`` naming the key at once: never a silent
``None``, never a value parsed by some fallback format, never a ``KeyError`` that makes it look
absent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    VALUE_NOT_RETRIEVED,
    BackendError,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
)

HANG_BOUND = 5.0  # seconds; every call here should take well under one


def signed(component: str, n: int = 4) -> str:
    """SPEC 2.5, written out independently of the package."""
    if n == 0:
        return component
    digest = base64.b32encode(hashlib.md5(component.encode()).digest()).decode()
    return f"{component}_{digest[:n].lower()}"


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under root (symlinks not followed): kind, size, mtime, link target."""
    snap: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            target = os.readlink(p) if os.path.islink(p) else None
            snap[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, target)
    return snap


@contextmanager
def harmless(area: Path) -> Iterator[None]:
    """The body changes nothing under ``area`` and does not hang."""
    before = snapshot(area)
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    assert elapsed < HANG_BOUND, f"took {elapsed:.1f} s"
    after = snapshot(area)
    assert after == before, (
        f"new: {sorted(set(after) - set(before))}, gone: {sorted(set(before) - set(after))}, "
        f"changed: {sorted(k for k in before if k in after and before[k] != after[k])}")


class Area:
    """tmp/area/{store, outside}: a store and a sibling directory holding a file of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "area"
        self.store = self.root / "store"
        self.outside = self.root / "outside"
        self.outside.mkdir(parents=True)
        (self.outside / "keep.txt").write_text("outside data")

    def dict(self, **kw: Any) -> FileDirDict[Any]:
        return FileDirDict(base_dir=self.store, **kw)

    @contextmanager
    def harmless(self) -> Iterator[None]:
        with harmless(self.root):
            yield


@pytest.fixture
def area(tmp_path: Path) -> Area:
    return Area(tmp_path)


# --------------------------------------------------------------------------------- keys

# Every item-level operation, applied to one key.
KEY_OPS: dict[str, Callable[[FileDirDict[Any], Any], Any]] = {
    "setitem": lambda d, k: d.__setitem__(k, 1),
    "getitem": lambda d, k: d[k],
    "contains": lambda d, k: k in d,
    "get": lambda d, k: d.get(k),
    "get_default": lambda d, k: d.get(k, "default"),
    "delitem": lambda d, k: d.__delitem__(k),
    "discard": lambda d, k: d.discard(k),
    "pop": lambda d, k: d.pop(k, None),
    "setdefault": lambda d, k: d.setdefault(k, 1),
    "update": lambda d, k: d.update([(k, 1)]),
    "timestamp": lambda d, k: d.timestamp(k),
    "etag": lambda d, k: d.etag(k),
    "get_with_etag": lambda d, k: d.get_with_etag(k),
    "get_item_if": lambda d, k: d.get_item_if(k, condition=ANY_ETAG,
                                              expected_etag=ITEM_NOT_AVAILABLE),
    "set_item_if": lambda d, k: d.set_item_if(k, value=1, condition=ANY_ETAG,
                                              expected_etag=ITEM_NOT_AVAILABLE),
    "setdefault_if": lambda d, k: d.setdefault_if(k, default_value=1, condition=ANY_ETAG,
                                                  expected_etag=ITEM_NOT_AVAILABLE),
    "discard_if": lambda d, k: d.discard_if(k, condition=ANY_ETAG,
                                            expected_etag=ITEM_NOT_AVAILABLE),
    "transform_item": lambda d, k: d.transform_item(k, transformer=lambda v: 1),
}
WRITE_OPS = ("setitem", "setdefault", "update", "set_item_if", "setdefault_if",
             "transform_item")

UNSAFE = ["a b", "a/b", "a\\b", "/etc", "é", "ключ", "a\x00b", "a\nb", "tab\t", "*", "?", ":",
          "<x>", "a|b", '"q"', "%2e%2e", "a'b", "a,b", "a;b", "a&b", "$HOME", "C:x", "#", "@",
          "{}", "[0]", "!", "a+b"]
TRAVERSAL = ["..", ".", "../x", "../../etc/passwd", "./x", "a/../b", ("a", ".."),
             ("..", "x"), ("a", ".", "b"), "..\\x", "\\x", "x\\..\\..", "/abs", "~/../x"]
EMPTY = ["", ("a", ""), ("", "a"), [], (), [[]], [(), []]]
TOO_LONG = ["x" * 254, "x" * 1000, ("a", "y" * 254)]
NON_STRING = [1, 1.5, None, b"a", ("a", 1), ("a", None), ["a", b"b"], object(), {"a": 1},
              {"a"}, KEEP_CURRENT, DELETE_CURRENT, ITEM_NOT_AVAILABLE]

BAD_KEYS = ([pytest.param(k, ValueError, id=f"unsafe-{i}") for i, k in enumerate(UNSAFE)]
            + [pytest.param(k, ValueError, id=f"traversal-{i}") for i, k in enumerate(TRAVERSAL)]
            + [pytest.param(k, ValueError, id=f"empty-{i}") for i, k in enumerate(EMPTY)]
            + [pytest.param(k, ValueError, id=f"too-long-{i}") for i, k in enumerate(TOO_LONG)]
            + [pytest.param(k, TypeError, id=f"non-string-{i}")
               for i, k in enumerate(NON_STRING)])


@pytest.mark.parametrize(("key", "error"), BAD_KEYS)
def test_bad_keys_are_rejected_by_every_operation(area: Area, key: Any,
                                                  error: type[Exception]) -> None:
    d = area.dict()
    d["existing"] = "v"  # a non-empty store, so nothing "matches" by accident
    for name, op in KEY_OPS.items():
        with area.harmless(), pytest.raises(error) as info:
            op(d, key)
        assert str(info.value), f"{name}: an error with no message"
    assert dict(d.items()) == {("existing",): "v"}


def test_lookalike_keys_stay_inside_the_store(area: Area) -> None:
    """Safe components that merely look dangerous are ordinary names inside base_dir."""
    d = area.dict()
    keys = ["~", "...", ".x", "-rf", "=", "(", "x.", "..x", ("a", "..."), ("~", "~")]
    for k in keys:
        d[k] = repr(k)
    assert sorted(os.listdir(area.root)) == ["outside", "store"]
    assert (area.outside / "keep.txt").read_text() == "outside data"
    assert len(d) == len(keys)
    for k in keys:
        assert d[k] == repr(k)
    assert (area.store / (signed("...") + ".pkl")).is_file()


# ---------------------------------------------------------------- file-system name limits

def test_component_whose_signed_file_name_exceeds_255_bytes(area: Area) -> None:
    """250 chars + "_xxxx" + ".pkl" = 259 bytes: a ValueError naming the component."""
    d = area.dict()
    comp = "x" * 250
    for name in WRITE_OPS:
        with area.harmless(), pytest.raises(ValueError) as info:
            KEY_OPS[name](d, comp)
        assert comp in str(info.value), f"{name}: the message does not name the component"
    # Reads of such a key answer "absent": it can never have been written.
    with area.harmless():
        assert comp not in d
        assert d.get(comp, "dflt") == "dflt"
        with pytest.raises(KeyError):
            d[comp]


@pytest.mark.parametrize(("digest_len", "longest_ok"), [(4, 246), (0, 251), (8, 242)])
def test_file_name_limit_boundary(area: Area, digest_len: int, longest_ok: int) -> None:
    """The longest last component whose file name fits in 255 bytes works; one more fails."""
    d = area.dict(digest_len=digest_len)
    ok = "a" * longest_ok
    d[ok] = 1
    assert d[ok] == 1
    assert len(signed(ok, digest_len) + ".pkl") == 255
    with area.harmless(), pytest.raises(ValueError, match="a" * (longest_ok + 1)):
        d["a" * (longest_ok + 1)] = 1


def test_directory_component_may_use_the_whole_name_limit(area: Area) -> None:
    d = area.dict()
    d["x" * 250, "a"] = 1  # directory name: 250 + 5 = 255 bytes, no extension
    assert d["x" * 250, "a"] == 1
    with area.harmless(), pytest.raises(ValueError, match="x" * 251):
        d["x" * 251, "a"] = 1


@pytest.mark.parametrize("key", [
    pytest.param(("x" * 200,) * 25, id="25x200-chars"),
    pytest.param(("d" * 100,) * 45, id="45x100-chars"),
    pytest.param(("a",) * 2000, id="2000-components"),
    pytest.param(("a",) * 5000, id="5000-components"),
    pytest.param(("ab",) * 100_000, id="100000-components"),
    pytest.param([["a", ["b"]]] * 20_000, id="40000-nested"),
])
def test_path_over_the_os_limit(area: Area, key: Any) -> None:
    d = area.dict()
    for name in WRITE_OPS:
        with area.harmless(), pytest.raises(ValueError, match="limit"):
            KEY_OPS[name](d, key)
    with area.harmless():
        assert key not in d
        assert d.get(key) is None
        assert d.discard(key) is False


# ------------------------------------------------------------------------------ symlinks

@pytest.fixture
def planted(area: Area) -> Area:
    """A store holding symlinked directories that point outside it, at two depths."""
    d = area.dict()
    d["a", "real"] = "inside"
    (area.outside / (signed("x") + ".pkl")).write_bytes(pickle.dumps("outside value"))
    (area.outside / ".__tmp__deadbeef").write_bytes(b"not a temp file of the store")
    os.symlink(area.outside, area.store / signed("evil"))
    os.symlink(area.outside, area.store / signed("a") / signed("evil"))
    return area


LINK_REFUSED = "links are not followed"


@pytest.mark.parametrize("key", [("evil", "new"), ("evil", "sub", "new"),
                                 ("a", "evil", "new")])
def test_writes_through_a_planted_symlink_raise(planted: Area, key: tuple[str, ...]) -> None:
    d = planted.dict()
    for name in (*WRITE_OPS, "delitem", "discard"):
        with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
            KEY_OPS[name](d, key)


@pytest.mark.parametrize("key", [("evil", "x"), ("a", "evil", "x")])
def test_reads_writes_and_deletes_through_a_planted_symlink_raise(planted: Area,
                                                                  key: tuple[str, ...]) -> None:
    """``key`` names a file that exists on the far side of the link: reads are refused like
    writes (a planted link must not make the store read, and unpickle, a stranger's file)."""
    d = planted.dict()
    for name in ("setitem", "update", "set_item_if", "transform_item", "delitem", "discard",
                 "discard_if", "pop", "setdefault", "setdefault_if"):
        with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
            KEY_OPS[name](d, key)
    for read in (d.__getitem__, d.get, d.__contains__, d.timestamp, d.etag):
        with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
            read(key)


def test_append_only_and_conditional_writes_through_a_planted_symlink(planted: Area) -> None:
    d = planted.dict(append_only=True)
    with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
        d["evil", "new"] = 1
    d2 = planted.dict()
    with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
        d2.set_item_if(("evil", "x"), value=2, condition=ETAG_IS_THE_SAME, expected_etag="1:1:1")
    with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
        d2.discard_if(("evil", "x"), condition=ETAG_IS_THE_SAME, expected_etag="1:1:1")


def test_listing_and_clear_do_not_follow_a_planted_symlink(planted: Area) -> None:
    d = planted.dict()
    outside = snapshot(planted.outside)
    assert list(d.keys()) == [("a", "real")]
    assert len(d) == 1
    assert [k for k, _ in d.items()] == [("a", "real")]
    assert d.remove_stale_temp_files(max_age_seconds=0) == 0
    d.clear()
    assert snapshot(planted.outside) == outside
    assert len(d) == 0


def test_clear_of_a_substore_under_a_planted_symlink_deletes_nothing_outside(
        planted: Area) -> None:
    d = planted.dict()
    sub = d.get_subdict("evil")
    outside = snapshot(planted.outside)
    try:
        sub.clear()
    except BackendError:
        pass  # refusing is fine too
    assert snapshot(planted.outside) == outside


def test_temp_sweep_of_a_substore_under_a_planted_symlink_deletes_nothing_outside(
        planted: Area) -> None:
    sub = planted.dict().get_subdict("evil")
    outside = snapshot(planted.outside)
    try:
        sub.remove_stale_temp_files(max_age_seconds=0)
    except BackendError:
        pass
    assert snapshot(planted.outside) == outside


def test_substore_under_a_planted_symlink_cannot_write(planted: Area) -> None:
    sub = planted.dict().get_subdict("evil")
    for name in (*WRITE_OPS, "delitem", "discard"):
        with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
            KEY_OPS[name](sub, "new")
    for name in ("setitem", "delitem", "pop"):  # "x" exists on the far side of the link
        with planted.harmless(), pytest.raises(BackendError, match=LINK_REFUSED):
            KEY_OPS[name](sub, "x")


def test_planted_symlink_as_an_item_file(area: Area) -> None:
    """An item file that is a symlink to an outside file: writes replace the link itself,
    deletes remove the link; the outside file is never changed."""
    d = area.dict()
    target = area.outside / "target.pkl"
    target.write_bytes(pickle.dumps("outside value"))
    link = area.store / (signed("f") + ".pkl")
    os.symlink(target, link)
    outside = snapshot(area.outside)
    assert list(d.keys()) == []  # a symlink is not an item
    with pytest.raises(BackendError) as info:  # the link is not followed on read
        d["f"]
    assert "'f'" in str(info.value)
    d["f"] = "new"
    assert snapshot(area.outside) == outside
    assert not link.is_symlink()
    assert d["f"] == "new"
    os.remove(link)
    os.symlink(target, link)
    d.discard("f")
    assert snapshot(area.outside) == outside


# -------------------------------------------------------------------------------- values

class RefusesToPickle:
    def __reduce__(self) -> Any:
        raise RuntimeError("this object refuses to be pickled")


def _generator() -> Iterator[int]:
    yield 1


UNPICKLABLE = {
    "lock": lambda: threading.Lock(),
    "lambda": lambda: (lambda x: x),
    "generator": lambda: _generator(),
    "nested-lock": lambda: {"a": [1, 2, {"b": threading.RLock()}]},
    "refuses": lambda: RefusesToPickle(),
    "memoryview": lambda: memoryview(b"x"),
}


@pytest.mark.parametrize("make", UNPICKLABLE.values(), ids=UNPICKLABLE.keys())
def test_unpicklable_values_leave_nothing_behind(area: Area, make: Callable[[], Any]) -> None:
    d = area.dict()
    d["old"] = "old value"
    etag = d.etag("old")
    writes = (lambda k: d.__setitem__(k, make()),
              lambda k: d.update({k: make()}),
              lambda k: d.set_item_if(k, value=make(), condition=ANY_ETAG,
                                      expected_etag=ITEM_NOT_AVAILABLE),
              lambda k: d.transform_item(k, transformer=lambda v: make()))
    inserts = (lambda k: d.setdefault(k, make()),
               lambda k: d.setdefault_if(k, default_value=make(), condition=ANY_ETAG,
                                         expected_etag=ITEM_NOT_AVAILABLE))
    for key in ("new", "old", ("deep", "er", "new")):
        for op in writes + (inserts if key != "old" else ()):
            with area.harmless(), pytest.raises(TypeError, match="pickle"):
                op(key)
    # A present key's setdefault never writes, so its default is neither checked nor
    # serialised (SPEC 4.3, 4.5): it simply returns the stored value.
    assert d.setdefault("old", make()) == "old value"
    r = d.setdefault_if("old", default_value=make(), condition=ANY_ETAG,
                        expected_etag=ITEM_NOT_AVAILABLE, retrieve_value=ALWAYS_RETRIEVE)
    assert not r.value_was_mutated and r.new_value == "old value"
    assert d["old"] == "old value"
    assert d.etag("old") == etag
    assert list(d.keys()) == [("old",)]


@pytest.mark.parametrize("make", [lambda: (lambda x: x),
                                  lambda: {"f": open(os.devnull)}],  # noqa: SIM115
                         ids=["lambda", "nested-file"])
def test_values_json_cannot_encode(area: Area, make: Callable[[], Any]) -> None:
    d = area.dict(serialization_format="json")
    value = make()
    try:
        with area.harmless(), pytest.raises(TypeError):
            d["k"] = value
    finally:
        if isinstance(value, dict):
            value["f"].close()


@pytest.mark.parametrize("value", [1, b"bytes", None, ["a"], 1.5])
def test_text_store_takes_only_str(area: Area, value: Any) -> None:
    d = area.dict(serialization_format="txt", base_class_for_values=str)
    with area.harmless(), pytest.raises(TypeError):
        d["k"] = value


STATUS_SENTINELS = [ITEM_NOT_AVAILABLE, VALUE_NOT_RETRIEVED]
VALUE_OPS: dict[str, Callable[[FileDirDict[Any], Any], Any]] = {
    "setitem": lambda d, v: d.__setitem__("k", v),
    "setitem-existing": lambda d, v: d.__setitem__("existing", v),
    "setdefault": lambda d, v: d.setdefault("k", v),
    "update": lambda d, v: d.update({"k": v}),
    "update-kw": lambda d, v: d.update(k=v),
    "ior": lambda d, v: d.__ior__({"k": v}),
    "set_item_if": lambda d, v: d.set_item_if("k", value=v, condition=ANY_ETAG,
                                              expected_etag=ITEM_NOT_AVAILABLE),
    "set_item_if-existing": lambda d, v: d.set_item_if(
        "existing", value=v, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
        retrieve_value=ALWAYS_RETRIEVE),
    "setdefault_if": lambda d, v: d.setdefault_if("k", default_value=v, condition=ANY_ETAG,
                                                  expected_etag=ITEM_NOT_AVAILABLE),
    "transform_item": lambda d, v: d.transform_item("k", transformer=lambda cur: v),
    "transform_item-existing": lambda d, v: d.transform_item("existing",
                                                             transformer=lambda cur: v),
}


@pytest.mark.parametrize("fmt", ["pkl", "json"])
@pytest.mark.parametrize("sentinel", STATUS_SENTINELS, ids=["ITEM_NOT_AVAILABLE",
                                                            "VALUE_NOT_RETRIEVED"])
def test_status_sentinels_cannot_be_stored(area: Area, fmt: str, sentinel: Any) -> None:
    d = area.dict(serialization_format=fmt)
    d["existing"] = 1
    for name, op in VALUE_OPS.items():
        with area.harmless(), pytest.raises(TypeError, match=r"marker|sentinel|status") as info:
            op(d, sentinel)
        assert str(info.value), name
    assert dict(d.items()) == {("existing",): 1}


def test_a_persidict_cannot_be_stored(area: Area) -> None:
    d = area.dict()
    for value in (LocalDict(), area.dict()):
        with area.harmless(), pytest.raises(TypeError):
            d["k"] = value


def test_base_class_for_values_violations(area: Area) -> None:
    d = area.dict(base_class_for_values=int)
    d["existing"] = 1
    d["a_bool"] = True  # a subclass is fine
    for name, op in VALUE_OPS.items():
        with area.harmless(), pytest.raises(TypeError, match="int"):
            op(d, "not an int")
        assert d["existing"] == 1, name
    # A value of the wrong type already on disk (written by a plain store over the same
    # directory) is a TypeError on read, not a silent value nor a KeyError.
    area.dict()["wrong"] = "a string"
    with area.harmless(), pytest.raises(TypeError, match="int"):
        d["wrong"]
    with area.harmless(), pytest.raises(TypeError):
        list(d.values())


@pytest.mark.parametrize("joker", [KEEP_CURRENT, DELETE_CURRENT], ids=["KEEP", "DELETE"])
def test_jokers_where_they_make_no_sense(area: Area, joker: Any) -> None:
    d = area.dict()
    d["existing"] = 1
    with area.harmless(), pytest.raises(TypeError, match="Joker"):
        d.setdefault("k", joker)
    with area.harmless(), pytest.raises(TypeError, match="Joker"):
        d.setdefault("existing", joker)
    for key in ("k", "existing"):
        with area.harmless(), pytest.raises(TypeError, match="Joker"):
            d.setdefault_if(key, default_value=joker, condition=ANY_ETAG,
                            expected_etag=ITEM_NOT_AVAILABLE)
    with area.harmless(), pytest.raises(TypeError):  # a joker is not a key
        d[joker] = 1
    with area.harmless(), pytest.raises(ValueError):  # nor a condition
        d.set_item_if("k", value=1, condition=joker, expected_etag=ITEM_NOT_AVAILABLE)
    with area.harmless(), pytest.raises(TypeError):  # nor a retrieval mode
        d.get_item_if("k", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                      retrieve_value=joker)
    assert dict(d.items()) == {("existing",): 1}


def test_delete_joker_on_an_append_only_store(area: Area) -> None:
    d = area.dict(append_only=True)
    d["existing"] = 1
    for key in ("existing", "absent"):
        with area.harmless(), pytest.raises(MutationPolicyError):
            d[key] = DELETE_CURRENT
        with area.harmless(), pytest.raises(MutationPolicyError):
            d.set_item_if(key, value=DELETE_CURRENT, condition=ANY_ETAG,
                          expected_etag=ITEM_NOT_AVAILABLE)
    assert d["existing"] == 1


# --------------------------------------------------------------------------- constructor

BAD_PARAMS = [
    pytest.param({"serialization_format": None}, TypeError, id="format-None"),
    pytest.param({"serialization_format": 5}, TypeError, id="format-5"),
    pytest.param({"serialization_format": b"pkl"}, TypeError, id="format-bytes"),
    pytest.param({"serialization_format": ""}, ValueError, id="format-empty"),
    pytest.param({"serialization_format": "a b"}, ValueError, id="format-space"),
    pytest.param({"serialization_format": "pkl "}, ValueError, id="format-trailing-space"),
    pytest.param({"serialization_format": "../x", "base_class_for_values": str}, ValueError,
                 id="format-traversal"),
    pytest.param({"serialization_format": "a/b", "base_class_for_values": str}, ValueError,
                 id="format-slash"),
    pytest.param({"serialization_format": "txt"}, ValueError, id="text-format-any-value"),
    pytest.param({"serialization_format": "txt", "base_class_for_values": int}, ValueError,
                 id="text-format-int-values"),
    pytest.param({"digest_len": -1}, ValueError, id="digest-minus-1"),
    pytest.param({"digest_len": 27}, ValueError, id="digest-27"),
    pytest.param({"digest_len": 10**9}, ValueError, id="digest-huge"),
    pytest.param({"digest_len": "4"}, TypeError, id="digest-str"),
    pytest.param({"digest_len": True}, TypeError, id="digest-True"),
    pytest.param({"digest_len": 1.5}, TypeError, id="digest-float"),
    pytest.param({"digest_len": None}, TypeError, id="digest-None"),
    pytest.param({"append_only": "yes"}, TypeError, id="append-only-str"),
    pytest.param({"append_only": 1}, TypeError, id="append-only-1"),
    pytest.param({"append_only": None}, TypeError, id="append-only-None"),
    pytest.param({"base_class_for_values": 5}, TypeError, id="base-class-5"),
    pytest.param({"base_class_for_values": "int"}, TypeError, id="base-class-str"),
    pytest.param({"base_dir": 5}, TypeError, id="base-dir-int"),
    pytest.param({"base_dir": None}, TypeError, id="base-dir-None"),
]


@pytest.mark.parametrize(("params", "error"), BAD_PARAMS)
def test_bad_constructor_arguments_create_nothing(area: Area, params: dict[str, Any],
                                                  error: type[Exception]) -> None:
    kw = {"base_dir": area.root / "new_store", **params}
    with area.harmless(), pytest.raises(error) as info:
        FileDirDict(**kw)
    assert str(info.value)


def test_base_dir_that_is_a_file(area: Area) -> None:
    with area.harmless(), pytest.raises(ValueError, match="not a directory"):
        FileDirDict(base_dir=area.outside / "keep.txt")


# -------------------------------------------------------------------------- damaged files

def _lz4_joblib(value: Any) -> bytes:
    joblib = pytest.importorskip("joblib")
    buf = io.BytesIO()
    joblib.dump(value, buf, compress="lz4")
    return buf.getvalue()


BIG = {"numbers": list(range(5000)), "text": "x" * 10_000}

DAMAGED: list[Any] = [
    pytest.param("pkl", lambda: b"", id="pkl-zero-bytes"),
    pytest.param("pkl", lambda: pickle.dumps(BIG, protocol=5)[:777], id="pkl-truncated"),
    pytest.param("pkl", lambda: pickle.dumps(BIG, protocol=5)[:-1], id="pkl-missing-stop"),
    pytest.param("pkl", lambda: pickle.dumps(BIG, protocol=2)[:300], id="pkl-truncated-proto2"),
    pytest.param("pkl", lambda: _lz4_joblib(BIG)[:200], id="pkl-truncated-lz4-frame"),
    pytest.param("pkl", lambda: _lz4_joblib(BIG)[:-7], id="pkl-lz4-frame-cut-at-end"),
    pytest.param("pkl", lambda: b"\x04\x22\x4d\x18" + os.urandom(64), id="pkl-lz4-garbage"),
    pytest.param("pkl", lambda: b"\x00\xffgarbage" + bytes(range(256)), id="pkl-garbage"),
    pytest.param("pkl", lambda: b'{\n    "a": 1\n}', id="pkl-holding-json"),
    pytest.param("pkl", lambda: b'"a string"', id="pkl-holding-json-string"),
    pytest.param("pkl", lambda: b"plain text", id="pkl-holding-text"),
    pytest.param("pkl", lambda: b"cno_such_module_xyz\nThing\n)\x81.", id="pkl-missing-class"),
    pytest.param("json", lambda: b"", id="json-zero-bytes"),
    pytest.param("json", lambda: b"   \n", id="json-whitespace"),
    pytest.param("json", lambda: b'{\n    "py/tuple": [\n        1,\n', id="json-truncated"),
    pytest.param("json", lambda: pickle.dumps({"a": 1}, protocol=5), id="json-holding-pickle"),
    pytest.param("json", lambda: pickle.dumps({"a": 1}, protocol=0),
                 id="json-holding-ascii-pickle"),
    pytest.param("json", lambda: _lz4_joblib({"a": 1}), id="json-holding-lz4-pickle"),
    pytest.param("json", lambda: b"not json at all", id="json-garbage"),
    pytest.param("json", lambda: b'"caf\xe9"', id="json-invalid-utf8"),
    pytest.param("txt", lambda: b"ok then \xff\xfe bad", id="txt-invalid-utf8"),
    pytest.param("txt", lambda: b"\x80", id="txt-lone-continuation-byte"),
]


@pytest.mark.parametrize(("fmt", "make_bytes"), DAMAGED)
def test_damaged_file_raises_a_clear_error_naming_the_key(area: Area, fmt: str,
                                                          make_bytes: Callable[[], bytes]) -> None:
    bcv = str if fmt == "txt" else None
    d = area.dict(serialization_format=fmt, base_class_for_values=bcv)
    d["grp", "fine"] = "a good value"
    data = make_bytes()
    path = area.store / signed("grp") / (signed("k1") + "." + fmt)
    path.write_bytes(data)
    key = ("grp", "k1")

    reads: dict[str, Callable[[], Any]] = {
        "getitem": lambda: d[key],
        "get": lambda: d.get(key),
        "get_default": lambda: d.get(key, "default"),
        "values": lambda: list(d.values()),
        "items": lambda: list(d.items()),
        "values_and_timestamps": lambda: list(d.values_and_timestamps()),
        "items_and_timestamps": lambda: list(d.items_and_timestamps()),
        "newest_values": lambda: d.newest_values(),
        "get_with_etag": lambda: d.get_with_etag(key),
        "get_item_if": lambda: d.get_item_if(key, condition=ANY_ETAG,
                                             expected_etag=ITEM_NOT_AVAILABLE),
        "setdefault": lambda: d.setdefault(key, "x"),
        "pop": lambda: d.pop(key, "default"),
        "subdict": lambda: d.get_subdict("grp")["k1"],
        "eq": lambda: d == {("grp", "fine"): "a good value", key: "x"},
    }
    for name, read in reads.items():
        error: Exception | None = None
        with area.harmless():
            try:
                got = read()
            except Exception as exc:
                error = exc
        if error is None:
            if name == "eq":  # == may answer False (not equal) without raising
                assert got is False
                continue
            pytest.fail(f"{name}: returned {got!r:.100} from a damaged file")
        assert not isinstance(error, KeyError), (
            f"{name}: KeyError makes the damaged item look absent: {error!r}")
        assert isinstance(error, BackendError), f"{name}: {error!r}"
        assert error.operation == "decode", name
        assert tuple(error.key)[-1] == "k1", name
        assert "'k1'" in str(error), f"{name}: the message does not name the key: {error}"
        assert error.__cause__ is not None, name
    # The item is still listed, still present, and its bytes were not touched.
    with area.harmless():
        assert key in d
        assert sorted(tuple(k) for k in d) == [("grp", "fine"), key]
        assert len(d) == 2
    assert path.read_bytes() == data
    # It can be deleted or overwritten without reading it.
    d[key] = "repaired"
    assert d[key] == "repaired"
    del d[key]
    assert key not in d
