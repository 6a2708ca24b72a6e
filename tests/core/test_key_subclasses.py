"""SafeStrTuple subclasses are ordinary Python subclasses; the two base classes stay frozen."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from persidict import NonEmptySafeStrTuple, SafeStrTuple
from persidict.serialization import serializer_for
from tests.core.key_types import Addr, CaseFreeKey, PortalAddr, Slim

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------- subclass instances
def test_subclass_sets_attributes_before_and_after_base_init() -> None:
    a = Addr("abcdef")
    assert a.strings == ("abc", "def") and a == ("abc", "def")
    assert a.portals == set() and a.label == "addr-abcdef"
    a.portals.add("n")
    a.extra = 5  # type: ignore[attr-defined]
    assert vars(a) == {"portals": {"n"}, "strings": ("abc", "def"), "label": "addr-abcdef",
                       "extra": 5}
    del a.extra  # type: ignore[attr-defined]
    assert not hasattr(a, "extra")
    assert hash(a) == hash(("abc", "def")) and {a: 1}[("abc", "def")] == 1


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_subclass_pickles_without_calling_init(protocol: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    a = Addr("abcdef")
    a.portals.add("north")
    data = pickle.dumps(a, protocol)
    calls: list[Any] = []
    monkeypatch.setattr(Addr, "__init__", lambda self, *args: calls.append(args))
    back = pickle.loads(data)
    assert calls == []
    assert type(back) is Addr and back == a and vars(back) == vars(a)
    assert back.portals is not a.portals


def test_subclass_custom_getstate_setstate_are_honoured() -> None:
    p = PortalAddr("xyz123")
    p.portals.add("east")
    data = pickle.dumps(p)
    assert b"sig" in data  # the subclass's own state, not the default one
    back = pickle.loads(data)
    assert type(back) is PortalAddr and back.strings == ("xyz", "123")
    assert back.portals == {"east"} and back.label == "addr-xyz123"


def test_dict_update_in_setstate_keeps_strings() -> None:
    class Cached(SafeStrTuple):  # the common "copy __dict__, drop a cache" idiom
        def __init__(self, *parts: str) -> None:
            super().__init__(*parts)
            self.cache = object()

        def __getstate__(self) -> dict[str, Any]:
            state = self.__dict__.copy()
            del state["cache"]
            return state

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.__dict__.update(state)
            self.cache = None

    back = copy.deepcopy(Cached("a", "b"))
    assert back.strings == ("a", "b") and back.cache is None and hash(back) == hash(("a", "b"))


def test_subclass_copy_and_deepcopy_are_ordinary() -> None:
    a = Addr("abcdef")
    a.portals.add("north")
    shallow, deep = copy.copy(a), copy.deepcopy(a)
    assert shallow is not a and shallow == a and shallow.portals is a.portals
    assert deep is not a and deep == a and deep.portals == a.portals
    assert deep.portals is not a.portals


def test_strings_assignment_is_validated() -> None:
    a = Addr("abcdef")
    a.strings = ("x", ("y",))  # flattened like the constructor's arguments
    assert a.strings == ("x", "y") and hash(a) == hash(("x", "y"))
    a.strings = SafeStrTuple("q")
    assert a.strings == ("q",)
    with pytest.raises(ValueError, match="disallowed characters"):
        a.strings = ("a b",)
    with pytest.raises(ValueError, match="not allowed"):
        a.strings = ("..",)
    with pytest.raises(TypeError, match="Invalid argument type"):
        a.strings = (1,)  # type: ignore[assignment]
    assert a.strings == ("q",)  # a refused assignment changes nothing
    k = CaseFreeKey("a")
    with pytest.raises(ValueError, match="at least one string"):
        k.strings = ()


def test_slotted_subclass_still_assignable_and_picklable() -> None:
    s = Slim("a")
    s.note = "n"
    s.strings = ("b", "c")
    assert not hasattr(s, "__dict__")
    back = pickle.loads(pickle.dumps(s))
    assert type(back) is Slim and back.strings == ("b", "c") and back.note == "n"
    with pytest.raises(ValueError, match="at least one string"):
        s.strings = ()


# --------------------------------------------------------------------------- base classes
@pytest.mark.parametrize("cls", [SafeStrTuple, NonEmptySafeStrTuple])
def test_base_classes_stay_immutable_hashable_and_compact(cls: type[SafeStrTuple]) -> None:
    s = cls("a", "b")
    for name in ("strings", "_strings", "other"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(s, name, ("x",))
    with pytest.raises(AttributeError, match="immutable"):
        del s.strings  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        s.__setstate__({"strings": ("x",)})
    assert s.strings == ("a", "b")
    assert not hasattr(s, "__dict__") and cls.__slots__ is not None
    assert s == ("a", "b") and hash(s) == hash(("a", "b")) and {s: 1}[("a", "b")] == 1
    assert copy.copy(s) is s and copy.deepcopy(s) is s
    back = pickle.loads(pickle.dumps(s))
    assert type(back) is cls and back == s
    assert len(pickle.dumps(s)) < 100


def test_values_written_by_0309_load() -> None:
    # persidict 0.309 kept its key classes in persidict.safe_str_tuple and pickled them with
    # default object semantics: state {"strings": (...)}; jsonpickle wrote the same attribute.
    # (Made by pickling a stand-in class registered as persidict.safe_str_tuple, protocol 2.)
    pkl = (b"\x80\x02cpersidict.safe_str_tuple\nNonEmptySafeStrTuple\nq\x00)\x81q\x01}q\x02X"
           b"\x07\x00\x00\x00stringsq\x03X\x01\x00\x00\x00aq\x04X\x01\x00\x00\x00bq\x05"
           b"\x86q\x06sb.")
    back = pickle.loads(pkl)
    assert type(back) is NonEmptySafeStrTuple and back.strings == ("a", "b")
    js = ('{"py/object": "persidict.safe_str_tuple.SafeStrTuple", '
          '"strings": {"py/tuple": ["a", "b"]}}')
    json_format = serializer_for("json")
    back = json_format.decode(js.encode())
    assert type(back) is SafeStrTuple and back.strings == ("a", "b")
    bad = js.replace('"b"', '"b c"')
    with pytest.raises(ValueError, match="disallowed"):
        json_format.decode(bad.encode())


# -------------------------------------------------------------------------------- equality
def test_eq_delegates_to_an_overriding_subclass() -> None:
    k = CaseFreeKey("ABC")
    assert k == SafeStrTuple("abc") and SafeStrTuple("abc") == k
    assert NonEmptySafeStrTuple("abc") == k  # a sibling class: delegation, not the reflection
    assert SafeStrTuple("abd") != k and k != SafeStrTuple("abd")

    class NeverEqual(SafeStrTuple):
        def __eq__(self, other: object) -> bool:
            return False

        __hash__ = SafeStrTuple.__hash__

    n = NeverEqual("a")
    assert SafeStrTuple("a") != n and (NonEmptySafeStrTuple("a") == n) is False
    assert n != n and (n == ("a",)) is False
    assert (CaseFreeKey("a") == n) is True  # each overriding class answers for itself
    assert Addr("abcdef") == NonEmptySafeStrTuple("abc", "def")  # no override: strings decide


# ------------------------------------------------------------------ hashing across processes
def _hash_in_fresh_process(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.strip()


@pytest.mark.slow
def test_joblib_hash_is_the_same_in_every_process() -> None:
    code = ("import joblib; from tests.core.key_types import sample_values; "
            "print(joblib.hash(sample_values()))")
    first, second = _hash_in_fresh_process(code), _hash_in_fresh_process(code)
    import joblib

    from tests.core.key_types import sample_values

    assert first == second == joblib.hash(sample_values())
    a, b = Addr("abcdef"), Addr("abcdef")
    assert joblib.hash(a) == joblib.hash(b) != joblib.hash(Addr("abcdeg"))
