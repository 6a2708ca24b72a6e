"""Per-entry metadata: what is recorded beside each cached result, as JSON text."""

from __future__ import annotations

import datetime
import io
import json
import os
import pickle
import sys
import time
from functools import lru_cache
from typing import Any

from .hashing import type_name
from .leases import HOST

__all__ = ["build_metadata", "parse_metadata", "pickled_size"]

_TRACKED_PACKAGES = ("numpy", "pandas", "joblib", "xxhash", "wrapt")


class _CountingSink(io.RawIOBase):
    """A write-only file that keeps only the number of bytes written to it."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self.size += n
        return n


def pickled_size(value: Any) -> int:
    """Bytes of ``value`` pickled (protocol 5), without keeping them.

    Raises whatever pickling raises: the caller learns that a result cannot be stored before a
    single byte of it is written.
    """
    sink = _CountingSink()
    pickle.Pickler(sink, protocol=5).dump(value)
    return sink.size


@lru_cache(maxsize=1)
def _persidict_version() -> str:
    import persidict

    return str(getattr(persidict, "__version__", "unknown"))


def _package_versions() -> dict[str, str]:
    versions = {"persidict": _persidict_version()}
    for name in _TRACKED_PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if isinstance(version, str):
            versions[name] = version
    return versions


@lru_cache(maxsize=1)
def _interpreter() -> dict[str, str]:
    # platform.platform() reads the interpreter's binary to find the libc: once per process,
    # at its first miss (the module is not imported on the way to a hit).
    import platform

    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
    }


_quote = json.encoder.encode_basestring_ascii  # (the C escaper json.dumps uses)
_packages_cache: tuple[int, str] = (-1, "")


def _packages_json() -> str:
    """The JSON of :func:`_package_versions`, recomputed only when modules were imported."""
    global _packages_cache
    count, text = _packages_cache
    if count != len(sys.modules):
        text = json.dumps(_package_versions(), sort_keys=True)
        _packages_cache = (len(sys.modules), text)
    return text


def build_metadata(
    *,
    function: str,
    key: tuple[str, ...],
    arguments: str,
    compute_seconds: float,
    result: Any,
    result_size: int,
) -> str:
    """The JSON text stored beside a freshly computed result.

    The same text as ``json.dumps(record, sort_keys=True)``, assembled directly (it is on
    every miss's critical path: the generic encoder took about half of a quick miss's Python
    time).
    """
    now = time.time()
    interpreter = _interpreter()
    return "".join((
        '{"arguments": ', _quote(arguments),
        ', "compute_seconds": ', float.__repr__(float(compute_seconds)),
        ', "created": ',
        _quote(datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat()),
        ', "created_timestamp": ', float.__repr__(now),
        ', "function": ', _quote(function),
        ', "host": ', _quote(HOST),
        ', "key": ', _quote("/".join(key)),
        ', "packages": ', _packages_json(),
        ', "pid": ', str(os.getpid()),
        ', "platform": ', _quote(interpreter["platform"]),
        ', "python": ', _quote(interpreter["python"]),
        ', "python_implementation": ', _quote(interpreter["python_implementation"]),
        ', "result_size": ', str(int(result_size)),
        ', "result_type": ', _quote(type_name(type(result))),
        "}",
    ))


def parse_metadata(text: str) -> dict[str, Any]:
    """The metadata dict from its stored JSON text.

    Raises:
        KeyError: the record is still a lease (the result is being computed).
        ValueError: the text is not a metadata record.
    """
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError("a metadata record must be a JSON object")
    if "lease" in record:
        raise KeyError("no metadata yet: the result is being computed (the record is a lease)")
    return record
