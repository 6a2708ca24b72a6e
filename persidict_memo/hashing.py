"""Canonical content hashing of argument values.

:func:`content_digest` maps a value to a 128-bit XXH3 digest of a canonical byte encoding. The
encoding is type-tagged and length-prefixed (so it is prefix-free and two different values never
encode to the same bytes), independent of ``PYTHONHASHSEED``, of the process and of the machine
(every number is written little-endian), and it never goes through ``repr``.

What is hashed, and how:

* ``None``, ``bool``, ``int``, ``float``, ``complex``: each type has its own tag, so ``1``, ``1.0``
  and ``True`` are three different values. Floats are hashed by their bits, so ``-0.0`` and ``0.0``
  differ (``1/x``, ``atan2`` and ``copysign`` tell them apart), but every NaN is one value.
* ``str`` (UTF-8, lone surrogates allowed), ``bytes``, ``bytearray``, ``memoryview``.
* ``tuple`` and ``list`` (distinguished), ``dict`` (order-free; ``OrderedDict`` keeps its order),
  ``set`` and ``frozenset`` (order-free, distinguished): order-free containers sort the digests of
  their items, so no comparison between the items themselves is ever needed.
* numpy arrays by dtype, shape and raw C-contiguous buffer (hashed in place, about 10 ms per
  100 MB); object arrays element by element; numpy scalars by dtype and bytes.
* pandas ``DataFrame``, ``Series`` and ``Index`` by values, index, columns, names and dtypes.
* dataclasses by type and compared fields; enums by type and member name; ``datetime``,
  ``date``, ``time``, ``timedelta``, ``Decimal``, ``Fraction``, paths (by their text, not the
  file's content), ``UUID``, ``range``, ``slice``.
* functions, classes and modules by module and qualified name; lambdas and nested functions also
  by their code, defaults and closure; ``functools.partial`` and bound methods by their parts.
* objects with a ``__persidict_hash__()`` method by their type and whatever that method returns;
  other objects by their qualified type name and their pickling state (``__reduce_ex__``, which
  covers ``__getstate__``/``__dict__``/``__slots__``).

Anything else (open files, locks, sockets, generators, cyclic structures, ...) raises
:class:`TypeError`: a value that cannot be hashed reliably must never produce a key.

numpy and pandas are never imported here; they are recognised only once the caller has imported
them.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import pathlib
import struct
import sys
import types
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any, Final

import xxhash

from .arrays import encode_numpy_array, encode_numpy_scalar, encode_pandas, pandas_kind
from .callables import (
    encode_builtin,
    encode_class,
    encode_code,
    encode_function,
    encode_method,
    encode_module,
    encode_partial,
)

__all__ = ["Encoder", "content_digest", "content_hash", "type_name"]

_digest: Final = xxhash.xxh3_128_digest
_pack_q: Final = struct.Struct("<q").pack
_pack_u: Final = struct.Struct("<Q").pack
_pack_d: Final = struct.Struct("<d").pack
_CANONICAL_NAN: Final = _pack_d(float("nan"))
_BIG_BYTES: Final = 1 << 16  # longer byte strings are digested in place instead of copied
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

Handler = Callable[["Encoder", Any], None]


def type_name(tp: type) -> str:
    """The qualified name ``module.qualname`` of a type: its identity in a hash."""
    return f"{getattr(tp, '__module__', '?')}.{getattr(tp, '__qualname__', tp.__name__)}"


class Encoder:
    """Writes the canonical encoding of values into one growing buffer.

    One encoder serves one top-level value; ``_active`` holds the ids of the containers being
    encoded, so a cycle raises :class:`TypeError` instead of recursing forever.
    """

    __slots__ = ("_active", "out")

    def __init__(self, out: bytearray | None = None) -> None:
        self.out = bytearray() if out is None else out
        self._active: set[int] = set()

    def encode(self, obj: Any) -> None:
        """Append the encoding of ``obj`` (raises TypeError when it cannot be hashed reliably)."""
        tp = type(obj)
        handler = _EXACT.get(tp)
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


def content_digest(obj: Any) -> bytes:
    """The 16-byte canonical content digest of ``obj`` (TypeError if it cannot be hashed)."""
    enc = Encoder()
    try:
        enc.encode(obj)
    except RecursionError:
        raise TypeError("cannot hash a value nested this deeply") from None
    return _digest(enc.out)


def content_hash(obj: Any) -> str:
    """The canonical content digest of ``obj`` as 32 lowercase hex digits."""
    return content_digest(obj).hex()


# ---------------------------------------------------------------- handlers of exact builtin types


def _none(enc: Encoder, obj: None) -> None:
    enc.out += b"N"


def _bool(enc: Encoder, obj: bool) -> None:
    enc.out += b"T" if obj else b"F"


def _int(enc: Encoder, obj: int) -> None:
    if _INT64_MIN <= obj <= _INT64_MAX:
        enc.out += b"i" + _pack_q(obj)
    else:
        data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        enc.out += b"I" + _pack_u(len(data)) + data


def _float_bits(x: float) -> bytes:
    return _CANONICAL_NAN if x != x else _pack_d(x)


def _float(enc: Encoder, obj: float) -> None:
    enc.out += b"f" + _float_bits(obj)


def _complex(enc: Encoder, obj: complex) -> None:
    enc.out += b"c" + _float_bits(obj.real) + _float_bits(obj.imag)


def _str(enc: Encoder, obj: str) -> None:
    data = obj.encode("utf-8", "surrogatepass")
    enc.out += b"s" + _pack_u(len(data)) + data


def _bytes(enc: Encoder, obj: bytes) -> None:
    enc.raw(b"b", obj)


def _bytearray(enc: Encoder, obj: bytearray) -> None:
    enc.raw(b"y", obj)


def _memoryview(enc: Encoder, obj: memoryview) -> None:
    enc.tag(b"m", obj.format)
    _tuple(enc, tuple(obj.shape or ()))
    enc.raw(b"b", obj.tobytes())


def _tuple(enc: Encoder, obj: tuple[Any, ...]) -> None:
    enc.out += b"t" + _pack_u(len(obj))
    for item in obj:
        enc.encode(item)


def _list(enc: Encoder, obj: list[Any]) -> None:
    enc.sequence(b"l", obj, obj)


def _dict(enc: Encoder, obj: dict[Any, Any]) -> None:
    enc.unordered(b"d", obj, obj.items())


def _set(enc: Encoder, obj: set[Any]) -> None:
    enc.unordered(b"e", obj, obj)


def _frozenset(enc: Encoder, obj: frozenset[Any]) -> None:
    enc.unordered(b"z", obj, obj)


def _ordered_dict(enc: Encoder, obj: OrderedDict[Any, Any]) -> None:
    enc.sequence(b"o", obj, list(obj.items()))


def _default_dict(enc: Encoder, obj: defaultdict[Any, Any]) -> None:
    enc.out += b"D"
    enc.encode(obj.default_factory)
    enc.unordered(b"d", obj, obj.items())


def _singleton(tag: bytes) -> Handler:
    def handler(enc: Encoder, obj: Any) -> None:
        enc.out += tag

    return handler


def _datetime(enc: Encoder, obj: datetime.datetime) -> None:
    enc.out += b"W"
    for part in (obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second):
        enc.out += _pack_q(part)
    enc.out += _pack_q(obj.microsecond) + _pack_q(obj.fold)
    enc.encode(obj.tzinfo)


def _date(enc: Encoder, obj: datetime.date) -> None:
    enc.out += b"A" + _pack_q(obj.year) + _pack_q(obj.month) + _pack_q(obj.day)


def _time(enc: Encoder, obj: datetime.time) -> None:
    enc.out += b"H"
    for part in (obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold):
        enc.out += _pack_q(part)
    enc.encode(obj.tzinfo)


def _timedelta(enc: Encoder, obj: datetime.timedelta) -> None:
    enc.out += b"L" + _pack_q(obj.days) + _pack_q(obj.seconds) + _pack_q(obj.microseconds)


def _decimal(enc: Encoder, obj: decimal.Decimal) -> None:
    enc.tag(b"C", str(obj))


def _fraction(enc: Encoder, obj: fractions.Fraction) -> None:
    enc.out += b"Q"
    _int(enc, obj.numerator)
    _int(enc, obj.denominator)


def _uuid(enc: Encoder, obj: uuid.UUID) -> None:
    enc.out += b"U" + obj.bytes


def _range(enc: Encoder, obj: range) -> None:
    enc.out += b"R"
    _int(enc, obj.start)
    _int(enc, obj.stop)
    _int(enc, obj.step)


def _slice(enc: Encoder, obj: slice) -> None:
    enc.out += b"X"
    enc.encode(obj.start)
    enc.encode(obj.stop)
    enc.encode(obj.step)


def _path(enc: Encoder, obj: pathlib.PurePath) -> None:
    enc.tag(b"P", type_name(type(obj)))
    enc.tag(b"s", str(obj))


_EXACT: dict[type, Handler] = {
    type(None): _none,
    bool: _bool,
    int: _int,
    float: _float,
    complex: _complex,
    str: _str,
    bytes: _bytes,
    bytearray: _bytearray,
    memoryview: _memoryview,
    tuple: _tuple,
    list: _list,
    dict: _dict,
    set: _set,
    frozenset: _frozenset,
    OrderedDict: _ordered_dict,
    defaultdict: _default_dict,
    type(...): _singleton(b"."),
    type(NotImplemented): _singleton(b"!"),
    datetime.datetime: _datetime,
    datetime.date: _date,
    datetime.time: _time,
    datetime.timedelta: _timedelta,
    decimal.Decimal: _decimal,
    fractions.Fraction: _fraction,
    uuid.UUID: _uuid,
    range: _range,
    slice: _slice,
    type: encode_class,
    types.ModuleType: encode_module,
    types.FunctionType: encode_function,
    types.MethodType: encode_method,
    types.BuiltinFunctionType: encode_builtin,
    functools.partial: encode_partial,
}
for _path_type in (
    pathlib.PurePath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.Path,
    pathlib.PosixPath,
    pathlib.WindowsPath,
):
    _EXACT[_path_type] = _path

# ------------------------------------------------------------ everything resolved by inspection


def _hook(enc: Encoder, obj: Any) -> None:
    enc.tag(b"h", type_name(type(obj)))
    enc.guarded(obj, lambda: enc.encode(obj.__persidict_hash__()))


def _enum(enc: Encoder, obj: enum.Enum) -> None:
    enc.tag(b"n", type_name(type(obj)))
    if isinstance(obj.name, str):
        enc.tag(b"s", obj.name)
    else:  # a composite flag without a name (older Pythons): its value identifies it
        enc.encode(obj.value)


def _dataclass(enc: Encoder, obj: Any) -> None:
    enc.tag(b"a", type_name(type(obj)))

    def body() -> None:
        fields = [f for f in dataclasses.fields(obj) if f.compare]
        enc.count(len(fields))
        for field in fields:
            enc.tag(b"s", field.name)
            enc.encode(getattr(obj, field.name))

    enc.guarded(obj, body)


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


def _is_proxy(obj: Any, tp: type) -> bool:
    """True for transparent proxies (wrapt), whose ``__class__`` is not their real type."""
    try:
        return obj.__class__ is not tp
    except Exception:
        return True


_resolved: dict[type, Handler] = {}
_RESOLVED_MAX: Final = 4096


def _resolve(obj: Any, tp: type) -> Handler:
    """Find the handler of a type that is not one of the exact builtins (memoised per type)."""
    handler = _resolved.get(tp)
    if handler is not None:
        return handler
    handler = _inspect(obj, tp)
    if not _is_proxy(obj, tp):
        if len(_resolved) >= _RESOLVED_MAX:
            _resolved.clear()
        _resolved[tp] = handler
    return handler


def _inspect(obj: Any, tp: type) -> Handler:
    if callable(getattr(tp, "__persidict_hash__", None)):
        return _hook
    if isinstance(obj, enum.Enum):
        return _enum
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(obj, numpy.ndarray):
            return encode_numpy_array
        if isinstance(obj, numpy.generic):
            return encode_numpy_scalar
    if sys.modules.get("pandas") is not None and pandas_kind(obj) is not None:
        return encode_pandas
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _dataclass
    if isinstance(obj, type):
        return encode_class
    if isinstance(obj, types.FunctionType):
        return encode_function
    if isinstance(obj, types.MethodType):
        return encode_method
    if isinstance(obj, types.BuiltinFunctionType):
        return encode_builtin
    if isinstance(obj, functools.partial):
        return encode_partial
    if isinstance(obj, pathlib.PurePath):
        return _path
    if isinstance(obj, types.CodeType):
        return encode_code
    if isinstance(obj, types.GeneratorType | types.CoroutineType | types.AsyncGeneratorType):
        return _refuse
    return _by_reduce


def _refuse(enc: Encoder, obj: Any) -> None:
    raise TypeError(f"cannot hash a {type_name(type(obj))} object: its content is not a value")
