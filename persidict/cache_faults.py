"""A failing local cache never becomes the operation's error.

The cached wrappers (:class:`~persidict.mutable_dict_cached.MutableDictCached`,
:class:`~persidict.append_only_dict_cached.AppendOnlyDictCached`, and so ``S3Dict``) keep a
copy of the main store's values in a cache, usually on the local disk. That disk can fill up,
turn read-only or hold a damaged file; none of that changes what the main store holds. So:

* a read from the cache that fails is a miss (the main store answers);
* a write to the cache that fails leaves the entry invalidated (never a stale pairing of value
  and ETag), and the operation, whose main-store part already happened, succeeds;
* each kind of failure is logged once per process (logger ``persidict.cache``), so a full disk
  is noticed without flooding the log.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from .errors import BackendError

__all__ = ["CACHE_READ_ERRORS", "report_cache_failure"]

_log = logging.getLogger("persidict.cache")

#: What a cache read may raise that means "cannot use this entry" (a damaged value, an I/O
#: error): the read is then a miss.
CACHE_READ_ERRORS: Final = (BackendError, OSError)

_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _kind(exc: BaseException) -> str:
    """A short name for a failure: the errno of the OS error behind it, else its type."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            import errno

            return errno.errorcode.get(seen.errno, str(seen.errno))
        seen = seen.__cause__
    return type(exc).__name__


def report_cache_failure(cache: Any, operation: str, key: Any, exc: BaseException) -> None:
    """Log a cache failure once per process for each (kind of cache, kind of failure)."""
    from .wrapper_dict import innermost

    where = type(innermost(cache)).__name__
    kind = _kind(exc)
    with _reported_lock:
        if (where, kind) in _reported:
            return
        _reported.add((where, kind))
    _log.warning(
        "local cache (%s) failed to %s key %r: %s: %s; the entry is invalidated and the main "
        "store serves the operation (further %s failures of this cache are not reported)",
        where, operation, tuple(key) if key is not None else None, type(exc).__name__, exc,
        kind,
    )
