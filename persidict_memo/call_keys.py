"""Store keys of calls: call normalisation, code fingerprints and the key layout.

A cached call lives under a six-component key::

    ("v2", <module>, <qualname>, <code fingerprint>, <shard>, <argument digest>)

* ``"v2"`` is the key scheme: a future scheme gets a new tag and never misreads old entries.
  (``v1`` keyed byte-swapped numpy arrays like native ones, so a ``v1`` entry of a native array
  may hold the result of a byte-swapped call; ``v2`` never reads ``v1`` entries.)
* ``<module>`` and ``<qualname>`` name the function (``<`` and ``>`` become ``(`` and ``)``, other
  unsafe characters ``_`` plus a short hash of the original, so no two names share a component).
  Scripts run as ``__main__`` (or ``__mp_main__`` in a spawned worker) are named after their file.
* ``<code fingerprint>`` is ``src~`` and a short hash of the function's normalised source
  (comments, docstrings, decorators and formatting do not count), its closure values and the
  helpers and constants of its package it uses (see :mod:`persidict_memo.fingerprint`);
  ``code~`` when the source is unavailable; ``ver~<version>`` for a manual ``version=``
  (``~`` and a hash of the closure values appended when there are any). Results of older
  versions of the code stay in the store, under their own fingerprint.
* ``<shard>`` is the first two hex digits of the digest (it spreads entries over directories).
* ``<argument digest>`` is the 128-bit :func:`~persidict_memo.hashing.content_digest` of the
  normalised call: every parameter, bound through :func:`inspect.signature` with defaults
  applied, so ``f(1)``, ``f(x=1)`` and ``f(1, y=2)`` (``y`` defaulting to 2) are one call.
"""

from __future__ import annotations

import inspect
import os
import reprlib
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import xxhash

from persidict import replace_unsafe_chars

from . import hashing  # noqa: F401  (its handlers, and through it all others, join the registry)
from .call_errors import python_call_error
from .encoder import Encoder, Hashers
from .fingerprint import function_fingerprint
from .json_like import encode_json_like

__all__ = [
    "SCHEME",
    "CallKeyMaker",
    "code_fingerprint",
    "safe_component",
]

SCHEME: Final = "v2"
_MAX_COMPONENT: Final = 200
_ANGLES: Final = str.maketrans("<>", "()")
_EMPTY: Final = inspect.Parameter.empty
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_pack_q: Final = struct.Struct("<q").pack
_pack_u: Final = struct.Struct("<Q").pack
_SHORT_STR: Final = 256  # longer strings are not kept as keys of the known-keys table
_KNOWN_KEYS_MAX: Final = 4096
_POSITIONAL: Final = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _pack_count(n: int) -> bytes:
    enc = Encoder()
    enc.count(n)
    return bytes(enc.out)


def _name_tag(name: str) -> bytes:
    enc = Encoder()
    enc.tag(b"s", name)
    return bytes(enc.out)


def _short_hash(text: str, length: int = 16) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))[:length]


def safe_component(text: str) -> str:
    """Turn any text into a persidict-safe key component, injectively in practice.

    ``<`` and ``>`` become ``(`` and ``)``; when anything else had to change (other unsafe
    characters, excessive length, an empty or dot-only name) the result ends with ``~`` and eight
    hex digits of a hash of the original text, so distinct texts keep distinct components.
    """
    readable = text.translate(_ANGLES)
    safe = replace_unsafe_chars(readable, "_")
    if safe == readable and 0 < len(safe) <= _MAX_COMPONENT and safe.strip(".") != "":
        return safe
    return f"{safe[:_MAX_COMPONENT]}~{_short_hash(text, 8)}"


def _module_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "__unknown__"
    if module in ("__main__", "__mp_main__"):
        path = getattr(sys.modules.get(module), "__file__", None)
        stem = os.path.splitext(os.path.basename(path))[0] if path else ""
        return f"__main__.{stem}" if stem else "__main__"
    return str(module)


# ------------------------------------------------------------------------------ fingerprints


def code_fingerprint(
    func: Callable[..., Any], version: str | None = None, ignore: Iterable[str] = ()
) -> str:
    """The code-fingerprint key component of ``func``.

    ``src~`` and 16 hex digits of :func:`~persidict_memo.fingerprint.function_fingerprint`:
    the normalised source, the closure values and the same-package helpers and constants the
    function refers to (``code~`` when no source is found). A manual ``version`` (a string)
    replaces the code part: ``ver~<version>``, followed by ``~`` and a digest of the closure
    values when the function has any. ``ignore`` names closure variables left out.

    Raises:
        TypeError: a bad ``version``, or a closure variable that cannot be hashed.
    """
    skip = frozenset(ignore)
    if version is not None:
        if not isinstance(version, str) or not version:
            raise TypeError(f"version must be a non-empty str or None, got {version!r}")
        base = safe_component(f"ver~{version}")
        _kind, closure = function_fingerprint(func, ignore=skip, track_code=False)
        return f"{base}~{closure[:16]}" if closure else base
    kind, digest = function_fingerprint(func, ignore=skip)
    return f"{kind}~{digest[:16]}"


# ------------------------------------------------------------------------------ call keys


class CallKeyMaker:
    """Normalises calls of one function and turns them into store keys.

    Args:
        func: the plain function whose calls are keyed (for a method, the function defined in
            the class body: ``self``/``cls`` is its first parameter).
        ignore: names of parameters (or closure variables) left out of the key; a name the
            function does not have raises :class:`ValueError`.
        version: a manual code version replacing the source fingerprint.
        hashers: ``{class: function}``: arguments that are instances of ``class`` are keyed by
            ``function(argument)`` (see :func:`~persidict_memo.encoder.register_hasher`).

    The code fingerprint (and with it :attr:`prefix`) is computed at the first key, once: by
    then a closure's cells are bound.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        ignore: Iterable[str] = (),
        version: str | None = None,
        hashers: Mapping[type, Callable[[Any], Any]] | None = None,
    ) -> None:
        if isinstance(ignore, str):
            ignore = (ignore,)
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        names = {p.name for p in params}
        code = getattr(inspect.unwrap(func), "__code__", None)
        free = frozenset(code.co_freevars) if code is not None else frozenset()
        self.ignore: frozenset[str] = frozenset(ignore)
        unknown = sorted(self.ignore - names - free)
        if unknown:
            raise ValueError(
                f"ignore= names {unknown} are neither parameters nor closure variables of "
                f"{func.__qualname__}{self.signature}"
            )
        self._hashers = None if not hashers else Hashers(hashers)
        self._func = func
        self._version = version
        if version is not None and (not isinstance(version, str) or not version):
            raise TypeError(f"version must be a non-empty str or None, got {version!r}")
        self.qualname: str = getattr(func, "__qualname__", repr(func))
        self.name: str = getattr(func, "__name__", self.qualname)
        self._positional = tuple(p.name for p in params if p.kind in _POSITIONAL)
        self._keywordable = frozenset(
            p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY
        ) - {p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        self._var_positional = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
        self._var_keyword = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        self._order = tuple(p.name for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not _EMPTY}
        self._kept = tuple(n for n in self._order if n not in self.ignore)
        # Precomputed for the fast path: a call with positional arguments only, of a function
        # without *args/**kwargs, binds to ``args + tails[len(args)]`` (None: a required
        # parameter is missing, let the slow path raise).
        self._simple = self._var_positional is None and self._var_keyword is None
        self._tails: list[tuple[Any, ...] | None] = []
        for start in range(len(self._positional) + 1):
            rest = self._order[start:]
            ok = all(name in self._defaults for name in rest)
            self._tails.append(tuple(self._defaults[n] for n in rest) if ok else None)
        self._kept_positions = (
            None if not self.ignore else tuple(self._order.index(n) for n in self._kept)
        )
        self._header = _pack_count(len(self._kept))
        self._name_tags = tuple(_name_tag(n) for n in self._kept)
        self._name = (SCHEME, safe_component(_module_name(func)), safe_component(self.qualname))
        self._prefix: tuple[str, str, str, str] | None = None
        self._prefix_lock = threading.Lock()  # concurrent first calls agree on one snapshot
        self._known_keys: dict[tuple[Any, ...], tuple[str, ...]] = {}

    @property
    def prefix(self) -> tuple[str, str, str, str]:
        """``(scheme, module, qualname, code fingerprint)``: the key of every call but two parts.

        Raises:
            TypeError: a closure variable cannot be hashed (at the first call, naming it).
        """
        prefix = self._prefix
        if prefix is None:
            with self._prefix_lock:
                prefix = self._prefix
                if prefix is None:
                    fingerprint = code_fingerprint(self._func, self._version, self.ignore)
                    prefix = self._prefix = (*self._name, fingerprint)
        return prefix

    @prefix.setter
    def prefix(self, prefix: tuple[str, str, str, str]) -> None:
        # An engine worker files results under the prefix computed where the function was
        # decorated (its closure and helpers may not be reproducible there).
        self._prefix = prefix
        self._known_keys.clear()

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """All parameters of the call in signature order, defaults applied, nothing ignored yet.

        ``*args`` becomes a tuple and ``**kwargs`` a dict. A call the signature does not accept
        raises the same :class:`TypeError` the function itself would.
        """
        positional = self._positional
        if len(args) > len(positional) and self._var_positional is None:
            return self._slow_bind(args, kwargs)
        values = dict(zip(positional, args, strict=False))
        extra_kwargs: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name in self._keywordable and name not in values:
                values[name] = value
            elif self._var_keyword is not None and name not in self._keywordable:
                extra_kwargs[name] = value
            else:
                return self._slow_bind(args, kwargs)
        if self._var_positional is not None:
            values[self._var_positional] = tuple(args[len(positional) :])
        if self._var_keyword is not None:
            values[self._var_keyword] = extra_kwargs
        if len(values) < len(self._order):
            defaults = self._defaults
            for name in self._order:
                if name not in values:
                    if name not in defaults:
                        return self._slow_bind(args, kwargs)
                    values[name] = defaults[name]
        return {name: values[name] for name in self._order}

    def _slow_bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            bound = None  # a bad call: raised below, outside this handler, in Python's words
        if bound is None:
            raise python_call_error(self.name, self.qualname, self.signature, args, kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def digest(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """The argument digest (32 hex digits) of a call.

        Raises :class:`TypeError` naming the parameter whose value cannot be hashed reliably.
        """
        values: Sequence[Any] | None = None
        if not kwargs and self._simple and len(args) < len(self._tails):
            tail = self._tails[len(args)]
            if tail is not None:
                values = args + tail if tail else args
                if self._kept_positions is not None:
                    values = [values[i] for i in self._kept_positions]
        if values is None:
            bound = self.bind(args, kwargs)
            values = [bound[name] for name in self._kept]
        out = bytearray(self._header)
        enc: Encoder | None = None
        for name_tag, value in zip(self._name_tags, values, strict=True):
            out += name_tag
            kind = type(value)
            if kind is int and _INT64_MIN <= value <= _INT64_MAX:
                out += b"i" + _pack_q(value)  # the commonest cases inline, as hashing does them
                continue
            if kind is str:
                data = value.encode("utf-8", "surrogatepass")
                out += b"s" + _pack_u(len(data)) + data
                continue
            if kind is dict or kind is list:
                tagged = encode_json_like(value)  # the fast path of config dicts
                if tagged is not None:
                    out += tagged
                    continue
            if enc is None:
                enc = Encoder(out, self._hashers)
            try:
                enc.encode(value)
            except (TypeError, RecursionError) as exc:
                name = self._kept[self._name_tags.index(name_tag)]
                raise TypeError(self._unhashable(name, value, exc)) from exc
        return xxhash.xxh3_128_hexdigest(out)

    def _unhashable(self, name: str, value: Any, exc: BaseException) -> str:
        where = repr(name)
        hashers = self._hashers
        if name == self._var_keyword and isinstance(value, dict):
            where = next((f"{name}[{k!r}]" for k, v in value.items() if _fails(v, hashers)), where)
        elif name == self._var_positional and isinstance(value, tuple):
            where = next((f"{name}[{i}]" for i, v in enumerate(value) if _fails(v, hashers)), where)
        reason = "value nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return (
            f"{self.qualname}(): argument {where} cannot be hashed for the cache key: {reason}. "
            f"Pass a hashable value, give its type a __persidict_hash__() method or register "
            f"a hasher for it (persidict_memo.register_hasher, or hashers= here), "
            f"or leave the parameter out of the key with ignore=({name!r},)."
        )

    def key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """The full store key of a call.

        Keys of calls whose positional arguments are all exact short ``str`` or ``int`` (and
        no keywords) are remembered by their argument tuple: for those types, tuple equality
        is exactly canonical equality (no ``True == 1``, no ``1 == 1.0``), so a repeated call
        costs one dict lookup instead of a digest.
        """
        if not kwargs:
            for arg in args:
                kind = type(arg)
                if kind is not int and (kind is not str or len(arg) > _SHORT_STR):
                    break
            else:
                known = self._known_keys
                key = known.get(args)
                if key is None:
                    key = self._key(args, kwargs)
                    if len(known) >= _KNOWN_KEYS_MAX:
                        known.clear()
                    known[args] = key
                return key
        return self._key(args, kwargs)

    def _key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        digest = self.digest(args, kwargs)
        prefix = self._prefix or self.prefix
        return (*prefix, digest[:2], digest)

    def describe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int = 200) -> str:
        """A short, human-readable rendering of the call's arguments (for metadata)."""
        values = self.bind(args, kwargs)
        text = ", ".join(f"{n}={_short_repr(values[n])}" for n in self._kept)
        return text if len(text) <= limit else text[: limit - 3] + "..."


_SHORTENER = reprlib.Repr()
_SHORTENER.maxstring = _SHORTENER.maxother = 40


def _short_repr(value: Any) -> str:
    """A bounded repr; arrays and frames by type, shape and dtype (never their full repr)."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and not isinstance(value, type):
        dtype = getattr(value, "dtype", None)
        dtypes = getattr(value, "dtypes", None)
        kind = dtype if dtype is not None else ("mixed" if dtypes is not None else "?")
        return f"<{type(value).__name__} shape={shape} dtype={kind}>"
    try:
        return _SHORTENER.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _fails(value: Any, hashers: Hashers | None = None) -> bool:
    try:
        Encoder(hashers=hashers).encode(value)
    except (TypeError, RecursionError):
        return True
    return False
