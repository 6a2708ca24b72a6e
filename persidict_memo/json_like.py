"""The fast path of the canonical encoding: JSON-like dicts and lists.

Configuration dicts are the commonest argument of cached functions, and the general encoder
walks them item by item (a digest per dict item, to be order-free). A dict or list made only of
exact ``dict`` (with ``str`` keys), ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None`` is
instead flattened, in one pass, into a list of tokens in canonical order (dict items sorted by
key; each container as a marker and its length, then its items), and that list is serialised
by :func:`marshal.dumps` in format version 2, which is written by C code, has no back-references
(so equal values give equal bytes whatever objects they share) and has not changed for these
types since Python 2.5; a test pins known digests.

The tokens decode back to exactly the value, so the encoding is injective on these values:
``1``, ``1.0`` and ``True`` stay three values (marshal tags them apart), ``-0.0`` is not ``0.0``,
and dict order does not matter. A NaN, a tuple, a set, a subclass (``IntEnum``,
``OrderedDict``...) or a non-``str`` key anywhere sends the value to the general path (where
every NaN is one value), whose tags differ from this one's, so the two paths never produce the
same bytes.

Each encoding is remembered for the rest of the process under the value's pickle (pickling is
C code, about as fast as the hashing floor; equal pickles mean equal values of exactly the same
types, while equal values may pickle differently, which only costs a fresh encoding): a repeated
config dict costs a type walk and a pickle instead of a flattening. Those pickles are never
stored or compared across processes.
"""

from __future__ import annotations

import marshal
import pickle
import struct
from typing import Any, Final

__all__ = ["TAG", "encode_json_like"]

TAG: Final = b"E"  # no other encoding starts with it
_pack_u: Final = struct.Struct("<Q").pack
_PLAIN: Final = frozenset({str, int, bool, type(None)})  # floats are checked for NaN
_SCALARS: Final = _PLAIN | {float}
_dumps: Final = pickle.dumps
_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
_DICT: Final = ("d",)  # markers: tuples are never JSON-like values themselves
_LIST: Final = ("l",)


class _NotJsonLike(Exception):
    pass


def _flatten(value: Any, out: list[Any]) -> None:
    # Items are handled inline (no call per item): this is the hit path of config dicts.
    append = out.append
    kind = type(value)
    if kind is dict:
        append(_DICT)
        append(len(value))
        try:
            items: Any = sorted(value.items())  # keys are unique: values are never compared
        except TypeError:  # keys of types that do not compare (str and int...)
            raise _NotJsonLike from None
        for key, item in items:
            if type(key) is not str:
                raise _NotJsonLike
            append(key)
            kind = type(item)
            if kind in _PLAIN:
                append(item)
            elif kind is float:
                if item != item:
                    raise _NotJsonLike  # NaNs differ in their bits: the general path unifies
                append(item)
            else:
                _flatten(item, out)
    elif kind is list:
        append(_LIST)
        append(len(value))
        if _PLAIN.issuperset(map(type, value)):
            out += value
            return
        for item in value:
            kind = type(item)
            if kind in _PLAIN:
                append(item)
            elif kind is float:
                if item != item:
                    raise _NotJsonLike
                append(item)
            else:
                _flatten(item, out)
    else:
        raise _NotJsonLike


def _is_json_like(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _SCALARS and not _is_json_like(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110  (a loop: no generator frame on the hit path)
            if type(item) not in _SCALARS and not _is_json_like(item):
                return False
        return True
    return kind in _SCALARS


# Encodings of values seen in this process, by their pickle: pickling is C code, and equal
# pickles mean equal values (of exactly the same types). The pickles never leave the process.
_SEEN: dict[bytes, bytes] = {}
_SEEN_MAX: Final = 1024
_SEEN_MAX_PICKLE: Final = 8192


def encode_json_like(value: Any) -> bytes | None:
    """The tagged canonical encoding of a JSON-like dict or list, else None."""
    try:
        if not _is_json_like(value):
            return None
    except RecursionError:  # cyclic or too deep
        return None
    exact = _dumps(value, _PROTOCOL)
    tagged = _SEEN.get(exact)
    if tagged is not None:
        return tagged
    out: list[Any] = []
    try:
        _flatten(value, out)
    except (_NotJsonLike, RecursionError):
        return None
    data = marshal.dumps(out, 2)
    tagged = TAG + _pack_u(len(data)) + data
    if len(exact) <= _SEEN_MAX_PICKLE:
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[exact] = tagged
    return tagged
