"""Keys: safe characters, SafeStrTuple, normalisation and digest signing (SPEC 2)."""

from __future__ import annotations

import copy
import pickle

import pytest

import persidict
from persidict import NonEmptySafeStrTuple, SafeStrTuple, get_safe_chars, replace_unsafe_chars
from persidict.keys import (
    check_digest_len,
    digest_suffix,
    normalize_key,
    sign_component,
    unsign_component,
)
from tests.spec_vectors import OTHER_SEEN, SIGNED


@pytest.mark.parametrize("component", sorted(SIGNED))
@pytest.mark.parametrize(("n", "col"), [(1, 0), (4, 1), (8, 2), (11, 3)])
def test_sign_vectors_round_trip(component: str, n: int, col: int) -> None:
    signed = SIGNED[component][col]
    assert sign_component(component, n) == signed
    assert unsign_component(signed, n) == component


def test_sign_zero_and_other_seen_names() -> None:
    assert sign_component("A", 0) == "A"
    for raw, n, signed in OTHER_SEEN:
        assert sign_component(raw, n) == signed


def test_always_sign_no_aliasing() -> None:
    assert sign_component("abc_saav", 4) != "abc_saav"
    assert sign_component("abc_saav", 4) != sign_component("abc", 4)


def test_remembered_signatures_are_bounded_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from persidict import keys

    monkeypatch.setattr(keys, "_SIGNED", {})
    names = [f"c{i}" for i in range(keys._SIGNED_MAX + 10)]
    for n in (1, 4):
        assert [sign_component(c, n) for c in names] == [
            c + digest_suffix(c, n) for c in names  # (digest_suffix: always computed)
        ]
        assert [sign_component(c, n) for c in reversed(names)] == [
            c + digest_suffix(c, n) for c in reversed(names)
        ]
    assert set(keys._SIGNED) == {1, 4}
    assert all(0 < len(table) <= keys._SIGNED_MAX for table in keys._SIGNED.values())

    class Loud(str):
        pass

    assert sign_component(Loud("zz"), 4) == "zz" + digest_suffix("zz", 4)
    assert "zz" not in keys._SIGNED[4]  # a str subclass is signed, not remembered


@pytest.mark.parametrize("name", ["abc", "abc_saax", "abc_", "_saav", "a b_xxxx", ".._xxxx"])
def test_unsign_rejects_junk(name: str) -> None:
    assert unsign_component(name, 4) is None


@pytest.mark.parametrize("bad", [-1, 27, 1.5, "4", True, None])
def test_digest_len_validation(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        check_digest_len(bad)
    assert check_digest_len(26) == 26


def test_safe_chars() -> None:
    chars = get_safe_chars()
    assert len(chars) == 69  # the SPEC says 68, but its own sorted list has 69 characters
    assert "".join(sorted(chars)) == (
        "()-.0123456789=ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~")
    chars.add("/")
    assert "/" not in get_safe_chars()
    assert replace_unsafe_chars("a b/c.é", "_") == "a_b_c._"
    assert replace_unsafe_chars("a b", "--") == "a--b"
    assert persidict.SAFE_STRING_MAX_LENGTH == 254
    assert persidict.contains_unsafe_chars("a b") and not persidict.contains_unsafe_chars("ab")


def test_safe_str_tuple_construction_and_flattening() -> None:
    s = SafeStrTuple("a", ("b", ["c"]), SafeStrTuple("d"))
    assert s.strings == ("a", "b", "c", "d") == s.str_chain
    assert SafeStrTuple().strings == () and not SafeStrTuple()
    assert SafeStrTuple([], ()).strings == ()
    for ok in (".hidden", "a.", "...", "x..y", "a" * 253):
        assert SafeStrTuple(ok).strings == (ok,)


@pytest.mark.parametrize(("bad", "exc", "msg"), [
    ("", ValueError, "non-empty"),
    (".", ValueError, "not allowed"),
    ("..", ValueError, "not allowed"),
    ("a" * 254, ValueError, "254"),
    ("a b", ValueError, "disallowed"),
    ("a/b", ValueError, "disallowed"),
    (None, TypeError, "Invalid argument type"),
    (5, TypeError, "Invalid argument type"),
    ({"a": 1}, TypeError, "Invalid argument type"),
    ({"a"}, TypeError, "Invalid argument type"),
    (b"ab", TypeError, "int"),
])
def test_safe_str_tuple_rejects(bad: object, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        SafeStrTuple(bad)


def test_keyword_arguments_rejected() -> None:
    with pytest.raises(TypeError, match="Unexpected keyword"):
        SafeStrTuple(a="b")


def test_non_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        NonEmptySafeStrTuple()
    with pytest.raises(ValueError, match="at least one"):
        NonEmptySafeStrTuple([[]])


def test_equality_hash_and_operators() -> None:
    s = SafeStrTuple("a", "b")
    assert s == ("a", "b") and hash(s) == hash(("a", "b"))
    assert {("a", "b"): 1}[s] == 1 and {s: 1}[("a", "b")] == 1
    assert SafeStrTuple("a") == "a" and SafeStrTuple("a") == ["a"]
    assert SafeStrTuple("a") != ("a b",)
    assert SafeStrTuple("a") == NonEmptySafeStrTuple("a")
    assert (s + "e").strings == ("a", "b", "e") and type(s + "e") is SafeStrTuple
    assert ("z",) + s == SafeStrTuple("z", "a", "b")
    assert "z" + s == SafeStrTuple("z", "a", "b")
    assert type(NonEmptySafeStrTuple("a") + "b") is SafeStrTuple
    assert reversed(s) == SafeStrTuple("b", "a") and isinstance(reversed(s), SafeStrTuple)
    assert s[1:] == SafeStrTuple("b") and isinstance(s[1:], SafeStrTuple)
    assert s[0] == "a" and len(s) == 2 and "a" in s and list(s) == ["a", "b"]
    assert s.index("b") == 1 and s.count("a") == 1
    with pytest.raises(TypeError):
        _ = s < s  # type: ignore[operator]


def test_immutable_copy_pickle_repr() -> None:
    s = NonEmptySafeStrTuple("a", "b")
    with pytest.raises(AttributeError):
        s.strings = ("x",)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s._strings = ("x",)  # type: ignore[misc]
    assert copy.copy(s) is s and copy.deepcopy(s) is s
    back = pickle.loads(pickle.dumps(s))
    assert back == s and type(back) is NonEmptySafeStrTuple
    assert repr(s) == "NonEmptySafeStrTuple(('a', 'b'))"
    assert repr(SafeStrTuple("a")) == "SafeStrTuple(('a',))"


def test_normalize_key_forms_agree() -> None:
    forms = ["a", ("a",), ["a"], SafeStrTuple("a"), NonEmptySafeStrTuple("a"), (("a",),)]
    assert {normalize_key(f) for f in forms} == {NonEmptySafeStrTuple("a")}
    assert all(type(normalize_key(f)) is NonEmptySafeStrTuple for f in forms)
    assert normalize_key(("a", ("b",))) == ("a", "b")
    with pytest.raises(ValueError):
        normalize_key(())
    with pytest.raises(TypeError):
        normalize_key(("a", ["unhashable"], 3))
