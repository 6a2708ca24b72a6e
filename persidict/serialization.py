"""Serialisation strategies: Python value <-> payload, chosen by ``serialization_format``.

* ``"pkl"``: a standard pickle (protocol 5), which persidict 0.309 reads with ``joblib.load``.
  Reading also accepts everything 0.309 writes: LZ4-framed joblib pickles (its FileDirDict) and
  bare joblib pickles with numpy wrapper records (its S3 stores).
* ``"json"``: jsonpickle text, ``indent=4``, numpy/pandas handlers registered on first need.
* any other format: the value is a ``str`` stored as UTF-8 text.
* memory stores keep private deep copies instead of bytes.

Loading ``pkl`` or ``json`` data can execute code: never open a store you do not trust.
"""

from __future__ import annotations

import contextlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = [
    "CopySerializer",
    "JsonSerializer",
    "PickleSerializer",
    "PickleStream",
    "Pickled",
    "Serializer",
    "TextSerializer",
    "serializer_for",
]

LZ4_FRAME_MAGIC: Final = b"\x04\x22\x4d\x18"
PICKLE_PROTOCOL: Final = 5


class Serializer(ABC):
    """Turns values into payloads and back. Errors: TypeError/ValueError on encode."""

    content_type: str = "application/octet-stream"

    @abstractmethod
    def encode(self, value: Any) -> Any:
        """Value -> payload. Raises TypeError when the value cannot be represented."""

    @abstractmethod
    def decode(self, payload: Any) -> Any:
        """Payload -> value. Raises any exception on damaged data (the caller names the key)."""


class _JoblibNeeded(Exception):
    """The pickle refers to joblib's numpy wrapper records: only joblib can read the stream."""


_fast_unpickler: Any = None


def _fast_unpickler_class() -> Any:
    """A ``pickle.Unpickler`` that stops at joblib's numpy wrapper records (_JoblibNeeded)."""
    global _fast_unpickler
    if _fast_unpickler is None:
        import pickle

        class FastUnpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if module.startswith("joblib.numpy_pickle"):
                    raise _JoblibNeeded
                return super().find_class(module, name)

        _fast_unpickler = FastUnpickler
    return _fast_unpickler


def _unpickle(data: bytes) -> Any:
    """``pickle.loads`` that stops at joblib's numpy wrapper records (raises _JoblibNeeded)."""
    import io

    return (_fast_unpickler or _fast_unpickler_class())(io.BytesIO(data)).load()


def _joblib_load(data: bytes) -> Any:
    import io

    import joblib  # only for files written by persidict 0.309

    return joblib.load(io.BytesIO(data))


class PickleSerializer(Serializer):
    """Standard pickles out; standard, joblib and LZ4-framed joblib pickles in."""

    content_type = "application/octet-stream"

    def encode(self, value: Any) -> bytes:
        import pickle

        try:
            return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"value of type {type(value).__name__} cannot be pickled: {exc}"
            ) from exc

    def decode(self, payload: bytes) -> Any:
        if not payload:
            raise ValueError("empty file: no pickle data")
        if payload[:4] == LZ4_FRAME_MAGIC:
            import lz4.frame

            return _joblib_load(lz4.frame.decompress(payload))
        try:
            return _unpickle(payload)
        except _JoblibNeeded:
            return _joblib_load(payload)

    def encode_stream(self, value: Any) -> PickleStream:
        """A payload that pickles ``value`` straight into the file it is written to (a big
        array's bytes are never copied into one ``bytes`` first). Same bytes as :meth:`encode`."""
        return PickleStream(value)

    def decode_file(self, f: Any) -> Any:
        """Like :meth:`decode`, reading from a binary file with ``peek`` and ``seek``: a big
        value (a numpy array's data) is read straight into the object it becomes."""
        head = f.peek(4)[:4]
        if not head:
            raise ValueError("empty file: no pickle data")
        if head == LZ4_FRAME_MAGIC:
            return self.decode(f.read())
        try:
            return _fast_unpickler_class()(f).load()
        except _JoblibNeeded:
            f.seek(0)
            import joblib

            return joblib.load(f)


class PickleStream:
    """A pickle payload written by ``write_to(file)``; errors are TypeError like ``encode``'s."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def write_to(self, f: Any) -> None:
        import pickle

        try:
            pickle.Pickler(f, protocol=PICKLE_PROTOCOL).dump(self.value)
        except OSError:
            raise  # the disk, not the value
        except Exception as exc:
            raise TypeError(
                f"value of type {type(self.value).__name__} cannot be pickled: {exc}"
            ) from exc


_handlers_registered: set[str] = set()


def _register_jsonpickle_handlers(trigger: bool | None = None) -> None:
    """Register jsonpickle's numpy/pandas handlers once, only when those libraries are in use."""
    for lib in ("numpy", "pandas"):
        if lib in _handlers_registered or (lib not in sys.modules and not trigger):
            continue
        try:
            if lib == "numpy":
                import jsonpickle.ext.numpy as ext
            else:
                import jsonpickle.ext.pandas as ext
        except ImportError:  # the library itself is not installed
            _handlers_registered.add(lib)
            continue
        ext.register_handlers()
        _handlers_registered.add(lib)


@contextlib.contextmanager
def _quiet_jsonpickle() -> Iterator[None]:
    """Silence jsonpickle's "keys will default to True" notice, which its own pandas handlers
    trigger by calling jsonpickle without a context (our calls pass one and never trigger it)."""
    if "pandas" not in sys.modules:
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="keys will default to True",
                                category=DeprecationWarning)
        yield


def _strict_pickler() -> Any:
    """A jsonpickle Pickler (``keys=False``) that refuses what it cannot represent.

    jsonpickle silently writes ``null`` for objects it cannot encode (a lambda, say): that would
    lose data, so we raise instead. Passing our own Pickler as ``context`` also keeps jsonpickle
    from warning about its future change of the ``keys`` default on every call.
    """
    global _strict_pickler_class
    if _strict_pickler_class is None:
        from jsonpickle.pickler import Pickler

        class StrictPickler(Pickler):  # type: ignore[misc]
            def _pickle_warning(self, obj: Any) -> None:
                raise TypeError(f"jsonpickle cannot represent {obj!r}")

        _strict_pickler_class = StrictPickler
    return _strict_pickler_class(keys=False, warn=True)


_strict_pickler_class: Any = None


_JSON_SCALARS: Final = frozenset((str, int, float, bool, type(None)))


def _is_plain_json(value: Any) -> bool:
    """Whether ``value`` holds only dicts with str keys (none starting with ``py/``), lists, and
    str / int / float / bool / None, of exactly those types, each dict and list appearing once
    (jsonpickle writes a repeated one as a ``py/id`` reference)."""
    seen: set[int] = set()
    todo = [value]
    while todo:
        v = todo.pop()
        t = type(v)
        if t is dict:
            if id(v) in seen:
                return False
            seen.add(id(v))
            for k in v:
                if type(k) is not str or k.startswith("py/"):
                    return False
            todo.extend(v.values())
        elif t is list:
            if id(v) in seen:
                return False
            seen.add(id(v))
            todo.extend(v)
        elif t not in _JSON_SCALARS:
            return False
    return True


class JsonSerializer(Serializer):
    """jsonpickle text with fixed options, so the bytes do not move with jsonpickle's defaults."""

    content_type = "application/json"

    def encode(self, value: Any) -> bytes:
        if _is_plain_json(value):
            # jsonpickle writes such a value exactly as json.dumps does, only several times
            # slower (tests/core/test_serialization.py compares the bytes).
            import json

            try:
                return json.dumps(value, indent=4).encode("utf-8")
            except (RecursionError, ValueError):
                pass  # too deep for json: jsonpickle says what it makes of it
        import jsonpickle

        _register_jsonpickle_handlers()
        try:
            with _quiet_jsonpickle():
                text: str = jsonpickle.encode(value, context=_strict_pickler(), indent=4)
        except Exception as exc:
            raise TypeError(
                f"value of type {type(value).__name__} cannot be encoded as json: {exc}"
            ) from exc
        return text.encode("utf-8")

    def decode(self, payload: bytes) -> Any:
        text = payload.decode("utf-8")
        if not text.strip():
            raise ValueError("empty file: no json data")
        if b'"py/' not in payload:
            # Every jsonpickle tag starts with "py/": without one, this is plain JSON, which
            # jsonpickle would decode to exactly what json.loads gives, only slower.
            import json

            return json.loads(text)
        import jsonpickle
        from jsonpickle.unpickler import Unpickler

        if b"numpy" in payload or b"pandas" in payload:
            _register_jsonpickle_handlers(trigger=True)
        with _quiet_jsonpickle():
            return jsonpickle.decode(text, context=Unpickler(keys=False))


class TextSerializer(Serializer):
    """Plain UTF-8 text; reading normalises newlines like a text-mode ``open``."""

    content_type = "text/plain"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"text formats store str values, got {type(value).__name__}")
        return value.encode("utf-8")

    def decode(self, payload: bytes) -> str:
        text = payload.decode("utf-8")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text


_ATOMIC_TYPES: Final = frozenset({int, float, bool, str, bytes, complex, type(None)})


class Pickled:
    """A value kept as pickle bytes: unpickling is several times faster than ``deepcopy``."""

    __slots__ = ("data", "loads")

    def __init__(self, data: bytes, loads: Callable[[bytes], Any]) -> None:
        self.data = data
        self.loads = loads  # pickle.loads, kept at hand: no import on the hot read path


class CopySerializer(Serializer):
    """For memory stores: keep a private copy, hand out fresh copies.

    Immutable scalars are shared as they are; other values are kept as pickle bytes (a faithful,
    fast copy); values that cannot be pickled fall back to ``copy.deepcopy``.
    """

    def encode(self, value: Any) -> Any:
        if type(value) in _ATOMIC_TYPES:
            return value
        import pickle

        try:
            return Pickled(pickle.dumps(value, protocol=PICKLE_PROTOCOL), pickle.loads)
        except Exception:
            pass
        import copy

        try:
            return copy.deepcopy(value)
        except Exception as exc:
            raise TypeError(
                f"value of type {type(value).__name__} cannot be copied into memory: {exc}"
            ) from exc

    def decode(self, payload: Any) -> Any:
        if type(payload) in _ATOMIC_TYPES:
            return payload
        if type(payload) is Pickled:
            return payload.loads(payload.data)
        import copy

        return copy.deepcopy(payload)


_PICKLE = PickleSerializer()
_JSON = JsonSerializer()
_TEXT = TextSerializer()


def serializer_for(serialization_format: str) -> Serializer:
    """The byte serializer for a format: ``pkl``, ``json``, or text for anything else."""
    if serialization_format == "pkl":
        return _PICKLE
    if serialization_format == "json":
        return _JSON
    return _TEXT
