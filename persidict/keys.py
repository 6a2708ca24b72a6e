"""Keys: safe strings, SafeStrTuple, normalisation and digest signing.

A key is a non-empty tuple of *safe* strings: ASCII letters, digits and ``()_-~.=``, each component
non-empty, shorter than 254 characters and neither ``.`` nor ``..``. Such a key is a valid relative
path on every common file system and a valid S3 object-key fragment, so it cannot escape a store.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Hashable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, ClassVar, Final, SupportsIndex, Union

__all__ = [
    "SAFE_CHARS_SET",
    "SAFE_STRING_MAX_LENGTH",
    "NonEmptyPersiDictKey",
    "NonEmptySafeStrTuple",
    "PersiDictKey",
    "SafeStrTuple",
    "contains_unsafe_chars",
    "digest_suffix",
    "get_safe_chars",
    "normalize_key",
    "replace_unsafe_chars",
    "sign_component",
    "unsign_component",
    "wrap_valid",
]

SAFE_CHARS_SET: Final[frozenset[str]] = frozenset(string.ascii_letters + string.digits + "()_-~.=")
SAFE_STRING_MAX_LENGTH: Final[int] = 254
MAX_DIGEST_LEN: Final[int] = 26  # 26 base32 letters/digits precede the "=" padding of an md5 digest

# str.translate with this table deletes every safe character, so anything left over is unsafe.
_DELETE_SAFE = str.maketrans("", "", "".join(SAFE_CHARS_SET))


def get_safe_chars() -> set[str]:
    """Return a fresh, mutable copy of the set of characters allowed in key components."""
    return set(SAFE_CHARS_SET)


def contains_unsafe_chars(a_str: str) -> bool:
    """Tell whether ``a_str`` holds any character outside :data:`SAFE_CHARS_SET`."""
    return bool(a_str.translate(_DELETE_SAFE))


def replace_unsafe_chars(a_str: str, replace_with: str) -> str:
    """Replace every unsafe character of ``a_str`` with ``replace_with``.

    >>> replace_unsafe_chars("a b/c.é", "_")
    'a_b_c._'
    """
    if not isinstance(a_str, str):
        raise TypeError(f"a_str must be a str, got {type(a_str).__name__}")
    if not isinstance(replace_with, str):
        raise TypeError(f"replace_with must be a str, got {type(replace_with).__name__}")
    return "".join(c if c in SAFE_CHARS_SET else replace_with for c in a_str)


def _check_component(s: str) -> str:
    if not s:
        raise ValueError("Strings must be non-empty")
    if s == "." or s == "..":
        raise ValueError(f"'{s}' is not allowed as a key component")
    if len(s) >= SAFE_STRING_MAX_LENGTH:
        raise ValueError(f"String length must be < {SAFE_STRING_MAX_LENGTH}, got {len(s)}")
    if s.translate(_DELETE_SAFE):
        bad = sorted(set(s.translate(_DELETE_SAFE)))
        hint = ""
        if "/" in bad:
            levels = tuple(part for part in s.split("/") if part)
            hint = f". Keys with levels are tuples: use {levels!r} instead of {s!r}"
        raise ValueError(f"String contains disallowed characters {bad!r}: {s[:60]!r}{hint}")
    return s


def _is_sequence(a: object) -> bool:
    if isinstance(a, Sequence):
        return not isinstance(a, Mapping)
    if callable(getattr(a, "keys", None)):
        return False
    return all(callable(getattr(a, m, None)) for m in ("__getitem__", "__len__", "__iter__"))


def _flatten(args: Sequence[object], out: list[str]) -> None:
    for a in args:
        if isinstance(a, str):
            out.append(_check_component(a))
        elif isinstance(a, SafeStrTuple):
            out.extend(a.strings)
        elif _is_sequence(a):
            _flatten(a, out)  # type: ignore[arg-type]
        else:
            raise TypeError(f"Invalid argument type: {type(a)}. Keys are str or sequences of "
                            f"str; got {type(a).__name__} {a!r:.60}")


class SafeStrTuple(Sequence[str], Hashable):
    """A flat sequence of safe strings: the shape of every persidict key.

    Accepts strings, other SafeStrTuples and (nested) sequences of those; everything is flattened:
    ``SafeStrTuple("a", ("b", ["c"])).strings == ("a", "b", "c")``. It hashes and compares like
    the plain tuple of its strings, so ``SafeStrTuple("a", "b") == ("a", "b")``.

    Instances of ``SafeStrTuple`` and :class:`NonEmptySafeStrTuple` themselves are immutable and
    compact (one slot, no ``__dict__``). Subclasses are ordinary Python classes, as in persidict
    0.309: their instances keep ``strings`` as a plain instance attribute next to their own
    attributes, may reassign it (``self.strings = ...`` is validated like the constructor's
    arguments), and pickle and copy with default object semantics (unpickling does not call
    ``__init__``; a subclass's own ``__getstate__`` / ``__setstate__`` are honoured).
    """

    __slots__ = ("_strings",)
    _strings: tuple[str, ...]
    _frozen: ClassVar[bool] = True  # True only for SafeStrTuple and NonEmptySafeStrTuple

    def __init_subclass__(cls, *, _frozen: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._frozen = _frozen
        if _frozen:
            return
        # An ordinary subclass keeps its strings in the instance __dict__ (as 0.309 did), so
        # ``vars(obj)``, ``self.__dict__.update(state)`` and default pickling all see them.
        # (A subclass that declares ``__slots__`` all the way down keeps them in the slot.)
        if cls.__dictoffset__ and cls.__dict__.get("_strings", cls._strings) is _SLOT:
            type.__setattr__(cls, "_strings", _DICT_STRINGS)
        if cls.__dictoffset__ and cls.__dict__.get("strings", cls.strings) is _BASE_STRINGS:
            type.__setattr__(cls, "strings", _INSTANCE_STRINGS)
        for name in ("__copy__", "__deepcopy__"):  # the copy module's default: via reduce
            if getattr(cls, name) is getattr(SafeStrTuple, name):
                setattr(cls, name, None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Unexpected keyword arguments: {list(kwargs)}")
        out: list[str] = []
        _flatten(args, out)
        object.__setattr__(self, "_strings", tuple(out))

    @classmethod
    def _from_valid(cls, strings: tuple[str, ...]) -> SafeStrTuple:
        """Build a plain SafeStrTuple without validation: only for strings known to be safe."""
        obj = _new(SafeStrTuple)
        _set_strings(obj, strings)
        return obj

    def _validated(self, value: object) -> tuple[str, ...]:
        """``value`` checked and flattened as the constructor would, for ``self``'s class."""
        out: list[str] = []
        _flatten((value,), out)
        if not out and isinstance(self, NonEmptySafeStrTuple):
            raise ValueError("NonEmptySafeStrTuple must contain at least one string")
        return tuple(out)

    def __setattr__(self, name: str, value: object) -> None:
        if self._frozen:
            if name == "strings" and not _has_strings(self):  # an instance being restored
                _set_strings(self, self._validated(value))  # (e.g. 0.309's jsonpickle data)
                return
            raise AttributeError(f"{type(self).__name__} is immutable")
        if name == "strings":
            value = self._validated(value)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__delattr__(self, name)

    @property
    def strings(self) -> tuple[str, ...]:
        """The underlying tuple of strings (assignable only on instances of subclasses)."""
        return self._strings

    @strings.setter
    def strings(self, value: tuple[str, ...]) -> None:  # reached only through __setattr__
        object.__setattr__(self, "_strings", value)

    @property
    def str_chain(self) -> tuple[str, ...]:
        """Alias of :attr:`strings`, kept for compatibility."""
        return self._strings

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return SafeStrTuple._from_valid(self._strings[i])
        return self._strings[i]

    def __len__(self) -> int:
        return len(self._strings)

    def __iter__(self) -> Iterator[str]:
        return iter(self._strings)

    def __contains__(self, item: object) -> bool:
        return item in self._strings

    def __hash__(self) -> int:
        return hash(self._strings)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SafeStrTuple):
            # A subclass that decides equality its own way has the last word (SPEC 2.2). Only
            # when this class does not override __eq__ itself, so two overriding classes that
            # call super().__eq__ compare strings instead of bouncing between each other.
            if not other._frozen:
                other_eq = type(other).__eq__
                if other_eq is not _base_eq and type(self).__eq__ is _base_eq:
                    return other_eq(other, self)
            return self._strings == other._strings
        if isinstance(other, tuple) and all(type(s) is str for s in other):
            return self._strings == other  # fast path; unsafe strings simply never match
        try:
            other = SafeStrTuple(other)
        except (TypeError, ValueError):
            return NotImplemented
        return self._strings == other._strings

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __add__(self, other: Any) -> SafeStrTuple:
        return SafeStrTuple._from_valid(self._strings + SafeStrTuple(other)._strings)

    def __radd__(self, other: Any) -> SafeStrTuple:
        return SafeStrTuple._from_valid(SafeStrTuple(other)._strings + self._strings)

    def __reversed__(self) -> SafeStrTuple:  # type: ignore[override]
        return SafeStrTuple._from_valid(self._strings[::-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._strings!r})"

    # Copying and pickling. The two frozen classes: copies are the object itself, and a pickle
    # is the constructor call (compact, validated on load). Subclasses: default object
    # semantics, with 0.309's state layout ``{"strings": ..., **other attributes}``.
    def __copy__(self) -> SafeStrTuple:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> SafeStrTuple:
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        if self._frozen:
            return (type(self), self._strings)
        return super().__reduce_ex__(protocol)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(getattr(self, "__dict__", ()))
        for name in _slot_names(type(self)):
            if name != "_strings" and hasattr(self, name):
                state[name] = getattr(self, name)
        if "strings" not in state and _has_strings(self):
            state["strings"] = self._strings
        return state

    def __setstate__(self, state: Any) -> None:
        """Restore ``{"strings": ..., other attributes}`` (also 0.309's pickles of keys)."""
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise TypeError(f"cannot restore a {type(self).__name__} from {type(state)}")
        strings = state.get("strings", state.get("_strings", _MISSING))
        if self._frozen:
            if _has_strings(self):
                raise AttributeError(f"{type(self).__name__} is immutable")
            _set_strings(self, self._validated(() if strings is _MISSING else strings))
            return
        slots = _slot_names(type(self))
        for name, value in state.items():
            if name in ("strings", "_strings"):
                continue
            if name in slots or not hasattr(self, "__dict__"):
                object.__setattr__(self, name, value)
            else:
                self.__dict__[name] = value
        if strings is not _MISSING:
            self.strings = self._validated(strings)


_new = object.__new__
_SLOT = SafeStrTuple.__dict__["_strings"]
_set_strings = _SLOT.__set__  # the slot's own setter: no lookup
_BASE_STRINGS = SafeStrTuple.__dict__["strings"]
_base_eq = SafeStrTuple.__eq__
_MISSING: Final = object()


def wrap_valid(batch: list[tuple[str, ...]]) -> list[SafeStrTuple]:
    """Plain SafeStrTuples of tuples of strings known to be safe (a listing's keys).

    Made by two C-level ``map`` calls, with no Python call per key: a third of the cost of
    :meth:`SafeStrTuple._from_valid` per key, which matters next to a bare listing.
    """
    made = list(map(_new, repeat(SafeStrTuple, len(batch))))
    deque(map(_set_strings, made, batch), maxlen=0)
    return made


def _has_strings(obj: SafeStrTuple) -> bool:
    try:
        obj._strings  # noqa: B018
    except AttributeError:
        return False
    return True


def _slot_names(cls: type) -> list[str]:
    import copyreg  # the names pickle itself uses; cached on the class

    return copyreg._slotnames(cls)  # type: ignore[attr-defined, no-any-return]


def _dict_strings_get(self: SafeStrTuple) -> tuple[str, ...]:
    try:
        return self.__dict__["strings"]  # type: ignore[no-any-return]
    except KeyError:
        raise AttributeError(f"{type(self).__name__!r} object has no attribute 'strings'") from None


def _dict_strings_set(self: SafeStrTuple, value: tuple[str, ...]) -> None:
    self.__dict__["strings"] = value


class _InstanceStrings:
    """``strings`` of a subclass instance: the plain instance attribute (a non-data descriptor,
    so the instance ``__dict__`` wins; this runs only when ``strings`` was never set)."""

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute 'strings'")


# Subclass instances: ``_strings`` (what every method reads) is the ``strings`` entry of __dict__.
_DICT_STRINGS = property(_dict_strings_get, _dict_strings_set)
_INSTANCE_STRINGS = _InstanceStrings()


class NonEmptySafeStrTuple(SafeStrTuple, _frozen=True):
    """A :class:`SafeStrTuple` holding at least one string: the type of a store key."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self._strings:
            raise ValueError("NonEmptySafeStrTuple must contain at least one string")


# typing.Union objects (not X | Y) so they are usable at run time on every supported Python.
PersiDictKey = Union[SafeStrTuple, Sequence[str], str]  # noqa: UP007
NonEmptyPersiDictKey = Union[NonEmptySafeStrTuple, Sequence[str], str]  # noqa: UP007

# Normalising the same key again is the common case (a hot loop over d[k]); remember the result
# for plain str and tuple-of-str keys, which are immutable and hashable.
_KEY_CACHE: dict[object, NonEmptySafeStrTuple] = {}
_KEY_CACHE_MAX = 65536


def normalize_key(key: object) -> NonEmptySafeStrTuple:
    """Turn any accepted key form into a :class:`NonEmptySafeStrTuple` (ValueError/TypeError)."""
    if type(key) is NonEmptySafeStrTuple:
        return key
    cacheable = type(key) is str or type(key) is tuple
    if cacheable:
        try:
            hit = _KEY_CACHE.get(key)
        except TypeError:  # a tuple holding something unhashable
            cacheable = False
        else:
            if hit is not None:
                return hit
    result = NonEmptySafeStrTuple(key)
    if cacheable:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = result
    return result


def check_digest_len(digest_len: object) -> int:
    """Validate a ``digest_len`` argument: an int in ``0..26``."""
    if isinstance(digest_len, bool) or not isinstance(digest_len, int):
        raise TypeError(f"digest_len must be an int, got {type(digest_len).__name__}")
    if not 0 <= digest_len <= MAX_DIGEST_LEN:
        raise ValueError(f"digest_len must be between 0 and {MAX_DIGEST_LEN}, got {digest_len}")
    return digest_len


_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower-cased
_B32_PAIRS: Final = tuple(a + b for a in _B32 for b in _B32)  # 10 bits -> two letters
_md5: Any = None


def _b32_md5(s: str, n: int = MAX_DIGEST_LEN) -> str:
    """The first ``n`` letters of ``base32(md5(s)).lower()``.

    Computed from the digest's integer value, two letters per table lookup: several times
    faster than ``base64.b32encode`` of the whole digest. Checking names (listings) uses it
    uncached: a bounded cache stops covering a large store, and every listing re-checks every
    name; only :func:`sign_component` remembers its recent results.
    """
    global _md5
    if _md5 is None:
        import hashlib  # imported here: only file-backed stores sign keys

        _md5 = hashlib.md5
    x = int.from_bytes(_md5(s.encode("utf-8")).digest(), "big") << 2  # 130 bits = 26 letters
    if n == 4:  # the default digest_len: the hot case
        x >>= 110
        return _B32_PAIRS[x >> 10] + _B32_PAIRS[x & 1023]
    x >>= 130 - 5 * n
    pairs = _B32_PAIRS
    out = [] if n % 2 == 0 else [_B32[x & 31]]
    if n % 2:
        x >>= 5
    for _ in range(n // 2):
        out.append(pairs[x & 1023])
        x >>= 10
    return "".join(reversed(out))


def digest_suffix(s: str, digest_len: int) -> str:
    """The case-collision-proof suffix ``"_" + base32(md5(s))[:n].lower()`` (empty for n=0)."""
    if digest_len == 0:
        return ""
    return "_" + _b32_md5(s, digest_len)


# The keys of one store share their leading components (all calls of a memoized function share
# five), and sibling stores (a result and its metadata record) sign the same key one after the
# other: remember the signed forms of recent components, per digest length, in a bounded table.
_SIGNED: dict[int, dict[str, str]] = {}
_SIGNED_MAX: Final = 4096


def sign_component(s: str, digest_len: int) -> str:
    """Append the digest suffix to one key component (always: there is no "already signed")."""
    if digest_len == 0:
        return s
    if type(s) is not str or type(digest_len) is not int:  # (subclasses compare their own way)
        return s + "_" + _b32_md5(s, digest_len)
    table = _SIGNED.get(digest_len)
    signed = table.get(s) if table is not None else None
    if signed is None:
        signed = s + "_" + _b32_md5(s, digest_len)  # (a bad digest_len raises here)
        if table is None:
            table = _SIGNED.setdefault(digest_len, {})
        elif len(table) >= _SIGNED_MAX:
            table.clear()
        table[s] = signed
    return signed


def unsign_component(s: str, digest_len: int) -> str | None:
    """Strip a valid digest suffix from a stored name; None if the name is not a signed component.

    Also checks that what remains is a safe component, so junk names never become keys.
    """
    if digest_len == 0:
        stem = s
    else:
        if len(s) <= digest_len + 1:
            return None
        stem = s[: -(digest_len + 1)]
        if s[-(digest_len + 1)] != "_" or s[-digest_len:] != _b32_md5(stem, digest_len):
            return None
    try:
        return _check_component(stem)
    except ValueError:
        return None
