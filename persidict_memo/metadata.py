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


def build_metadata(
    *,
    function: str,
    key: tuple[str, ...],
    arguments: str,
    compute_seconds: float,
    result: Any,
    result_size: int,
) -> str:
    """The JSON text stored beside a freshly computed result."""
    now = time.time()
    record = {
        "function": function,
        "key": "/".join(key),
        "created": datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(),
        "created_timestamp": now,
        "compute_seconds": compute_seconds,
        "host": HOST,
        "pid": os.getpid(),
        **_interpreter(),
        "packages": _package_versions(),
        "result_type": type_name(type(result)),
        "result_size": result_size,
        "arguments": arguments,
    }
    return json.dumps(record, sort_keys=True)


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
