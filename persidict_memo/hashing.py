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
* numpy arrays by full dtype (byte order included), shape and raw C-contiguous buffer (hashed
  in place, about 10 ms per 100 MB); object arrays element by element; numpy scalars by dtype
  and bytes.
* pandas ``DataFrame``, ``Series`` and ``Index`` by values, index, columns, names and dtypes.
* dataclasses by type and compared fields; enums by type and member name; ``datetime``,
  ``date``, ``time``, ``timedelta``, ``Decimal``, ``Fraction``, paths (by their text, not the
  file's content), ``UUID``, ``range``, ``slice``.
* functions, classes and modules by module and qualified name; lambdas and nested functions also
  by their code, defaults and closure; ``functools.partial`` and bound methods by their parts.
* objects with a ``__persidict_hash__()`` method by their type and whatever that method returns;
  other objects by their qualified type name and their pickling state (``__reduce_ex__``, which
  covers ``__getstate__``/``__dict__``/``__slots__``).

A dict or list made only of JSON types is encoded as its canonical JSON text instead (see
:mod:`persidict_memo.json_like`): the same distinctions, written by C code.

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
import pathlib
import struct
import types
import uuid
from collections import OrderedDict, defaultdict
from typing import Any, Final

import xxhash

# The encodings of numpy/pandas values and of callables live in their own modules, which join
# the encoder's registry when imported; importing them here makes content_digest complete.
from . import arrays as _arrays  # noqa: F401
from . import callables as _callables  # noqa: F401
from .encoder import Encoder, Handler, register_exact, register_resolver, type_name
from .json_like import encode_json_like

__all__ = ["Encoder", "content_digest", "content_hash", "encode_value", "type_name"]

_digest: Final = xxhash.xxh3_128_digest
_pack_q: Final = struct.Struct("<q").pack
_pack_u: Final = struct.Struct("<Q").pack
_pack_d: Final = struct.Struct("<d").pack
_CANONICAL_NAN: Final = _pack_d(float("nan"))
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def encode_value(enc: Encoder, obj: Any) -> None:
    """Append ``obj``: a JSON-like dict or list as its canonical JSON text (the fast path)."""
    kind = type(obj)
    if kind is dict or kind is list:
        tagged = encode_json_like(obj)
        if tagged is not None:
            enc.out += tagged
            return
    enc.encode(obj)


def content_digest(obj: Any) -> bytes:
    """The 16-byte canonical content digest of ``obj`` (TypeError if it cannot be hashed)."""
    enc = Encoder()
    try:
        encode_value(enc, obj)
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


_EXACT_HANDLERS: dict[type, Handler] = {
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
}
for _path_type in (
    pathlib.PurePath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.Path,
    pathlib.PosixPath,
    pathlib.WindowsPath,
):
    _EXACT_HANDLERS[_path_type] = _path
for _type, _handler in _EXACT_HANDLERS.items():
    register_exact(_type, _handler)

# ------------------------------------------------------------ everything resolved by inspection


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


def _refuse(enc: Encoder, obj: Any) -> None:
    raise TypeError(f"cannot hash a {type_name(type(obj))} object: its content is not a value")


def _resolve_enum(obj: Any, tp: type) -> Handler | None:
    return _enum if isinstance(obj, enum.Enum) else None


def _resolve_standard(obj: Any, tp: type) -> Handler | None:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _dataclass
    if isinstance(obj, pathlib.PurePath):
        return _path
    if isinstance(obj, types.GeneratorType | types.CoroutineType | types.AsyncGeneratorType):
        return _refuse
    return None


# enums first (an IntEnum is an int), numpy/pandas at 20, dataclasses, callables at 40
register_resolver(_resolve_enum, order=10)
register_resolver(_resolve_standard, order=30)
