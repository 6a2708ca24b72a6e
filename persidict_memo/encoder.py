"""The canonical encoder and the registry of encodings it dispatches to.

An :class:`Encoder` writes the canonical byte encoding of a value into one buffer. It knows no
type itself: every encoding is a *handler* ``(encoder, value) -> None`` registered here by the
module that defines it (:mod:`~persidict_memo.hashing` for the built-in and standard-library
types, :mod:`~persidict_memo.arrays` for numpy and pandas, :mod:`~persidict_memo.callables` for
functions, classes and modules). Those modules import this one, never the other way round.

How a value finds its handler, first match wins:

1. its exact type in the table of exact handlers (the built-in value types; a dict lookup);
2. the hashers given to this encoder (``persistent_cache(hashers={cls: func})``), then the
   hashers registered process-wide with :func:`register_hasher`: instances of ``cls`` and of its
   subclasses are encoded as ``cls``'s name and whatever ``func(value)`` returns;
3. a ``__persidict_hash__()`` method of the value's type;
4. the resolvers, in their ``order`` (enums, numpy, pandas, dataclasses, callables, ...);
5. the pickling state of the value (``__reduce_ex__``).

Steps 2-5 run once per type; the answer is remembered. Registering a hasher forgets the answers.

Type and function names in an encoding are normalised: a script's ``__main__`` and the
``__mp_main__`` it becomes in a ``spawn`` worker are one module, so a class defined in a script
hashes the same in the parent and in its workers.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import xxhash

__all__ = [
    "Encoder",
    "Handler",
    "Hashers",
    "Resolver",
    "module_name",
    "register_exact",
    "register_hasher",
    "register_resolver",
    "type_name",
]

Handler = Callable[["Encoder", Any], None]
Resolver = Callable[[Any, type], Handler | None]
HasherFunc = Callable[[Any], Any]

_digest: Final = xxhash.xxh3_128_digest
_pack_u: Final = struct.Struct("<Q").pack
_BIG_BYTES: Final = 1 << 16  # longer byte strings are digested in place instead of copied
_MAIN_ALIASES: Final = {"__mp_main__": "__main__"}


def module_name(name: str) -> str:
    """A module's name as the encoder writes it (``__mp_main__`` is ``__main__``)."""
    return _MAIN_ALIASES.get(name, name)


def type_name(tp: type) -> str:
    """The qualified name ``module.qualname`` of a type: its identity in a hash."""
    module = getattr(tp, "__module__", None)
    module = module_name(module) if isinstance(module, str) else "?"
    return f"{module}.{getattr(tp, '__qualname__', tp.__name__)}"


# ------------------------------------------------------------------------------ the registry

_exact: dict[type, Handler] = {}
_resolvers: list[tuple[int, Resolver]] = []
_hashers: dict[type, HasherFunc] = {}
_resolved: dict[type, Handler] = {}
_RESOLVED_MAX: Final = 4096
_lock = threading.Lock()


def register_exact(tp: type, handler: Handler) -> None:
    """Encode values whose type is exactly ``tp`` with ``handler`` (for the built-in types)."""
    _exact[tp] = handler


def register_resolver(resolver: Resolver, *, order: int) -> None:
    """Add a resolver: given a value and its type, a handler, or None to pass.

    Resolvers are asked in increasing ``order`` for types without an exact handler.
    """
    with _lock:
        _resolvers.append((order, resolver))
        _resolvers.sort(key=lambda item: item[0])
        _resolved.clear()


def _check_hasher(cls: Any, func: Any, where: str) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"{where}: expected a class, got {cls!r}")
    if cls in _exact or cls is object:
        raise ValueError(
            f"{where}: {cls.__qualname__} values have a built-in canonical encoding that a hasher "
            "cannot replace; register a hasher for your own subclass instead"
        )
    if not callable(func):
        raise TypeError(f"{where}: the hasher of {cls.__qualname__} must be callable, got {func!r}")


def register_hasher(cls: type, func: Callable[[Any], Any] | None) -> None:
    """Key instances of ``cls`` (and of its subclasses) by ``func(instance)``.

    For third-party types you cannot give a ``__persidict_hash__()`` method: ``func`` returns
    something the canonical encoder handles (a tuple of numbers and strings, a numpy array, ...)
    that captures everything the cached results depend on. The encoding is ``cls``'s qualified
    name followed by the encoding of ``func(instance)``. A hasher registered here applies to
    every cached function of the process (``persistent_cache(hashers=...)`` to one function
    only, and takes precedence); registering ``cls`` again replaces its hasher, and
    ``func=None`` removes it. The most specific registered class of a value's type wins.

    Register hashers at import time, before the first call: results already stored were keyed
    the old way, and calls keyed before the registration are not re-keyed.

    Raises:
        TypeError: ``cls`` is not a class or ``func`` is not callable.
        ValueError: ``cls`` is a built-in value type (``int``, ``str``, ``dict``, ...) or
            ``object``, whose encoding is fixed by the key scheme.
    """
    with _lock:
        if func is None:
            _hashers.pop(cls, None)
        else:
            _check_hasher(cls, func, "register_hasher")
            _hashers[cls] = func
        _resolved.clear()


def _most_specific(tp: type, table: Mapping[type, HasherFunc]) -> type | None:
    """The registered class ``tp`` is a subclass of, nearest in ``tp``'s MRO (ABCs last)."""
    for base in tp.__mro__:
        if base in table:
            return base
    for cls in list(table):  # virtual subclasses of registered ABCs (a copy: see register)
        if issubclass(tp, cls):
            return cls
    return None


def _hasher_handler(cls: type, func: HasherFunc) -> Handler:
    name = type_name(cls)

    def handler(enc: Encoder, obj: Any) -> None:
        try:
            value = func(obj)
        except Exception as exc:
            raise TypeError(
                f"the hasher registered for {name} failed on a {type_name(type(obj))}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(value, cls):
            raise TypeError(
                f"the hasher registered for {name} returned a {name} itself; it must return "
                "a value the encoder handles (numbers, strings, tuples, arrays, ...)"
            )
        enc.tag(b"u", name)
        enc.guarded(obj, lambda: enc.encode(value))

    return handler


class Hashers:
    """A per-function table of hashers (``persistent_cache(hashers={cls: func})``)."""

    __slots__ = ("_resolved", "table")

    def __init__(self, table: Mapping[type, HasherFunc]) -> None:
        if not isinstance(table, Mapping):
            raise TypeError(f"hashers must be a mapping {{class: function}}, got {table!r}")
        for cls, func in table.items():
            _check_hasher(cls, func, "hashers")
        self.table: dict[type, HasherFunc] = dict(table)
        self._resolved: dict[type, Handler | None] = {}

    def handler(self, tp: type) -> Handler | None:
        """The handler of ``tp`` from this table, or None (memoised per type)."""
        try:
            return self._resolved[tp]
        except KeyError:
            pass
        cls = None if tp in _exact else _most_specific(tp, self.table)
        handler = None if cls is None else _hasher_handler(cls, self.table[cls])
        self._resolved[tp] = handler
        return handler


def _hook(enc: Encoder, obj: Any) -> None:
    enc.tag(b"h", type_name(type(obj)))
    enc.guarded(obj, lambda: enc.encode(obj.__persidict_hash__()))


def _is_proxy(obj: Any, tp: type) -> bool:
    """True for transparent proxies (wrapt), whose ``__class__`` is not their real type."""
    try:
        return obj.__class__ is not tp
    except Exception:
        return True


def _inspect(obj: Any, tp: type) -> Handler:
    if _hashers:
        cls = _most_specific(tp, _hashers)
        if cls is not None:
            return _hasher_handler(cls, _hashers[cls])
    if callable(getattr(tp, "__persidict_hash__", None)):
        return _hook
    for _order, resolver in _resolvers:
        handler = resolver(obj, tp)
        if handler is not None:
            return handler
    return _by_reduce


def _resolve(obj: Any, tp: type) -> Handler:
    """The handler of a type that has no exact handler (memoised per type)."""
    handler = _resolved.get(tp)
    if handler is not None:
        return handler
    handler = _inspect(obj, tp)
    if not _is_proxy(obj, tp):
        if len(_resolved) >= _RESOLVED_MAX:
            _resolved.clear()
        _resolved[tp] = handler
    return handler


def _by_reduce(enc: Encoder, obj: Any) -> None:
    """Plain objects: qualified type name plus what pickling would save of them."""
    tp = type(obj)
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception as exc:
        raise TypeError(f"cannot hash a {type_name(tp)} object reliably: {exc}") from None
    enc.tag(b"r", type_name(tp))
    if isinstance(reduced, str):  # a module-level singleton, pickled by name
        enc.tag(b"s", reduced)
        return
    if not isinstance(reduced, tuple) or not 2 <= len(reduced) <= 6:
        raise TypeError(f"cannot hash a {type_name(tp)} object: unexpected __reduce_ex__ result")
    parts = list(reduced) + [None] * (6 - len(reduced))
    constructor, args, state, list_items, dict_items, _setter = parts

    def body() -> None:
        enc.encode(constructor)
        enc.encode(args)
        enc.encode(state)
        enc.encode(None if list_items is None else list(list_items))
        enc.encode(None if dict_items is None else dict(dict_items))

    enc.guarded(obj, body)


# ------------------------------------------------------------------------------- the encoder


class Encoder:
    """Writes the canonical encoding of values into one growing buffer.

    One encoder serves one top-level value; ``_active`` holds the ids of the containers being
    encoded, so a cycle raises :class:`TypeError` instead of recursing forever.

    Args:
        out: the buffer to append to (a new one by default).
        hashers: per-function hashers, consulted before everything but the built-in types.
    """

    __slots__ = ("_active", "hashers", "out")

    def __init__(self, out: bytearray | None = None, hashers: Hashers | None = None) -> None:
        self.out = bytearray() if out is None else out
        self.hashers = hashers
        self._active: set[int] = set()

    def encode(self, obj: Any) -> None:
        """Append the encoding of ``obj`` (raises TypeError when it cannot be hashed reliably)."""
        tp = type(obj)
        handler = _exact.get(tp)
        if handler is None:
            local = self.hashers
            if local is not None:
                handler = local.handler(tp)
            if handler is None:
                handler = _resolve(obj, tp)
        handler(self, obj)

    def digest_of(self, obj: Any) -> bytes:
        """The 16-byte digest of ``obj`` on its own (sharing this encoder's cycle guard)."""
        saved = self.out
        self.out = bytearray()
        try:
            self.encode(obj)
            return _digest(self.out)
        finally:
            self.out = saved

    def tag(self, tag: bytes, text: str) -> None:
        """Append a tag followed by a length-prefixed UTF-8 string."""
        data = text.encode("utf-8", "surrogatepass")
        self.out += tag + _pack_u(len(data)) + data

    def raw(self, tag: bytes, data: Any) -> None:
        """Append a tag and a length-prefixed byte string (large ones by their digest)."""
        if not isinstance(data, bytes | bytearray):
            data = memoryview(data).cast("B")
        n = len(data)
        if n > _BIG_BYTES:
            self.out += b"#" + tag + _digest(data)
        else:
            self.out += tag + _pack_u(n)
            self.out += data

    def type_tag(self, tag: bytes, tp: type) -> None:
        """Append a tag followed by the qualified name of a type."""
        self.tag(tag, type_name(tp))

    def count(self, n: int) -> None:
        """Append a length."""
        self.out += _pack_u(n)

    def is_active(self, obj: Any) -> bool:
        """Whether ``obj`` is being encoded further up (a back-reference would be a cycle)."""
        return id(obj) in self._active

    def _enter(self, obj: Any) -> int:
        key = id(obj)
        if key in self._active:
            raise TypeError(
                f"cannot hash a cyclic structure: a {type(obj).__name__} contains itself"
            )
        self._active.add(key)
        return key

    def sequence(self, tag: bytes, obj: Any, items: Any) -> None:
        """Append an ordered container: tag, length, then each item."""
        key = self._enter(obj)
        try:
            self.out += tag + _pack_u(len(items))
            for item in items:
                self.encode(item)
        finally:
            self._active.discard(key)

    def unordered(self, tag: bytes, obj: Any, items: Any) -> None:
        """Append an order-free container: tag, length, then the sorted digests of its items."""
        key = self._enter(obj)
        try:
            digests = sorted(self.digest_of(item) for item in items)
        finally:
            self._active.discard(key)
        self.out += tag + _pack_u(len(digests)) + b"".join(digests)

    def guarded(self, obj: Any, body: Callable[[], None]) -> None:
        """Run ``body`` with ``obj`` marked active (cycle detection for arbitrary objects)."""
        key = self._enter(obj)
        try:
            body()
        finally:
            self._active.discard(key)
