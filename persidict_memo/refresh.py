"""Refreshing stored results: ``recompute`` and the ``max_age=`` expiry of ``persistent_cache``.

A refreshed result *replaces* the stored one with one atomic overwrite (a rename on files, one
PUT on S3), so a concurrent reader sees the old result or the new one, never none. Its metadata
record is then replaced as well.

With ``max_age``, a stored result older than that is a miss. The age is read from the store of
record (an ``S3Dict``'s local copy is not trusted for it), and the refresh runs under the call's
lease, which lives in the call's metadata record (see :mod:`persidict_memo.leases`): the first
process to find the result expired turns that record into its lease with a compare-and-swap on
the record's ETag; the others see the lease and wait for the fresh result, exactly as for a first
computation; the holder publishes the new result, then writes the new metadata over its lease
(one write releases it).

On a local file store a compare-and-swap is check-then-act, so a process that wins it waits a
moment and checks that the record still is its lease; of two processes that swapped at the same
instant, the one that was overwritten goes back to waiting.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from .leases import Lease, Leases
from .memoizer import _MISSING, Memoizer
from .metadata import pickled_size
from .publishing import describe_call

__all__ = ["Expiry", "expire", "expiry_of", "recompute", "replace"]

_MEMORY_ENTRIES: Final = 1024
# How long a process that won a check-then-act compare-and-swap waits before checking that the
# record is still its own (a rival's swap decided in the same instant lands within this).
_SETTLE: Final = 0.05
_EXPIRIES: weakref.WeakKeyDictionary[Memoizer, Expiry] = weakref.WeakKeyDictionary()


def replace(
    memo: Memoizer,
    key: tuple[str, ...],
    result: Any,
    seconds: float,
    full_args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    lease: Lease | None = None,
) -> None:
    """Overwrite the stored result of a call (atomically), then its metadata record.

    With ``lease`` (held on the call's metadata record), writing the metadata releases it.
    """
    store = memo.store
    try:
        size = pickled_size(result)  # an unpicklable result fails here, before any write
        store.admin[key] = result
    except BaseException:
        if lease is not None:
            lease.abandon()
        raise
    memo.drop_remembered([key])
    text = describe_call(memo, key, result, size, seconds, full_args, kwargs)
    if lease is None or not lease.finish(text):  # no lease, or it was taken over meanwhile
        store.meta[store.meta_key(key)] = text
    expiry = _EXPIRIES.get(memo)
    if expiry is not None:
        expiry.remember(key, time.time(), result)


def recompute(wrapper: Any, memo: Memoizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Compute a call with the plain function and replace its stored result; return it.

    For an ``async def`` function this returns a coroutine doing the same.
    """
    full = wrapper._full_args(args)
    key = memo.keys.key(full, kwargs)
    start = time.perf_counter()
    outcome = wrapper.uncached(*args, **kwargs)
    if inspect.isawaitable(outcome):

        async def finish() -> Any:
            import asyncio  # here: importing persidict_memo stays light

            result = await outcome
            seconds = time.perf_counter() - start
            await asyncio.to_thread(replace, memo, key, result, seconds, full, kwargs)
            return result

        return finish()
    replace(memo, key, outcome, time.perf_counter() - start, full, kwargs)
    return outcome


class Expiry:
    """The ``max_age`` policy of one function: its own memory of (stored time, result).

    Args:
        memo: the function's memoizer (the first computation of a call goes through it).
        max_age: seconds after which a stored result is recomputed.
    """

    def __init__(self, memo: Memoizer, max_age: float) -> None:
        self.memo = memo
        self.max_age = max_age
        self._memory: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._leases: Leases | None = None
        self._lock = threading.Lock()

    def remember(self, key: tuple[str, ...], created: float, value: Any) -> None:
        """Keep a result known to be stored at ``created``."""
        memory = self._memory
        if len(memory) >= _MEMORY_ENTRIES:
            try:
                del memory[next(iter(memory))]
            except (StopIteration, KeyError, RuntimeError):
                pass
        memory[key] = (created, value)

    def _fresh(self, created: float | None) -> bool:
        return created is not None and time.time() - created < self.max_age

    def _stored_time(self, key: tuple[str, ...]) -> float | None:
        try:
            return float(self.memo.store.admin.timestamp(key))
        except KeyError:
            return None

    def _is_fresh(self, key: tuple[str, ...]) -> bool:
        try:
            return self._fresh(self._stored_time(key))
        except Exception:  # a passing store error: poll again
            return False

    # The steps of a call, shared by both wrappers (the async one runs them in threads).
    def _lookup(self, key: tuple[str, ...]) -> tuple[str, Any]:
        """("hit", value), ("absent", None) or ("expired", None), from memory or the store."""
        known = self._memory.get(key)
        if known is not None and self._fresh(known[0]):
            return "hit", known[1]
        created = self._stored_time(key)
        if created is None:
            return "absent", None
        if not self._fresh(created):
            return "expired", None
        try:
            value = self.memo.store.admin[key]
        except KeyError:  # removed a moment ago
            return "absent", None
        self.remember(key, created, value)
        return "hit", value

    def _turn(self, key: tuple[str, ...]) -> tuple[Lease | None, Any]:
        """An expired result: ``(our lease, _MISSING)`` to recompute it, or ``(None, result)``
        once another process refreshed it.

        The lease is None when leases are off (``lease=False``, or a store that cannot hold
        them): the caller then recomputes without one.
        """
        memo = self.memo
        store = memo.store
        if not memo.lease or store.leases is None:
            return None, _MISSING
        with self._lock:
            if self._leases is None:
                self._leases = Leases(store.leases, memo.lease_timeout)
        leases = self._leases
        record_key = store.lease_key(key)
        while True:
            lease, _ = leases.acquire_or_wait(record_key, lambda: self._is_fresh(key))
            if lease is None:
                return None, self._after_wait(key)
            if _still_ours(leases, record_key, lease):
                return lease, _MISSING
            lease.abandon()  # overwritten by a rival's swap of the same instant: wait for it

    def _after_wait(self, key: tuple[str, ...]) -> Any:
        value = self.memo.store.admin[key]
        self.remember(key, self._stored_time(key) or time.time(), value)
        self.memo.drop_remembered([key])
        self.memo.waits += 1
        return value

    def sync_wrapper(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """The call of a cached function with ``max_age``: expired results are recomputed once."""
        memo = self.memo
        full = args if instance is None else (instance, *args)
        key = memo.keys.key(full, kwargs)
        state, value = self._lookup(key)
        if state == "hit":
            memo.hits += 1
            return value
        if state == "absent":  # a first computation: the memoizer's own miss path
            value = memo.call(wrapped, args, kwargs, full)
            self.remember(key, time.time(), value)
            return value
        lease, value = self._turn(key)
        if value is not _MISSING:  # refreshed by another process meanwhile
            return value
        try:
            start = time.perf_counter()
            result = wrapped(*args, **kwargs)
        except BaseException:
            if lease is not None:
                lease.abandon()
            raise
        memo.misses += 1
        replace(memo, key, result, time.perf_counter() - start, full, kwargs, lease)
        return result

    async def async_wrapper(
        self,
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """The call of a cached ``async def`` function with ``max_age``."""
        import asyncio  # here: importing persidict_memo stays light

        memo = self.memo
        full = args if instance is None else (instance, *args)
        key = memo.keys.key(full, kwargs)
        state, value = await asyncio.to_thread(self._lookup, key)
        if state == "hit":
            memo.hits += 1
            return value
        if state == "absent":
            value = await memo.call_async(wrapped, args, kwargs, full)
            self.remember(key, time.time(), value)
            return value
        lease, value = await asyncio.to_thread(self._turn, key)
        if value is not _MISSING:
            return value
        try:
            start = time.perf_counter()
            result = await wrapped(*args, **kwargs)
        except BaseException:
            if lease is not None:
                await asyncio.to_thread(lease.abandon)
            raise
        memo.misses += 1
        seconds = time.perf_counter() - start
        await asyncio.to_thread(replace, memo, key, result, seconds, full, kwargs, lease)
        return result


def _still_ours(leases: Leases, record_key: tuple[str, ...], lease: Lease) -> bool:
    """After a check-then-act swap, whether the record still is ``lease`` (see the module)."""
    backend = getattr(leases.store, "_backend", None)
    if getattr(backend, "atomic_conditional_writes", True):
        return True
    time.sleep(_SETTLE)
    try:
        return str(leases.store.get_with_etag(record_key).resulting_etag) == lease.etag
    except Exception:
        return True  # cannot tell: keep it (the heartbeat notices a loss)


def expire(memo: Memoizer, max_age: float) -> Expiry:
    """Give ``memo``'s function the ``max_age`` policy."""
    expiry = _EXPIRIES[memo] = Expiry(memo, max_age)
    return expiry


def expiry_of(memo: Memoizer) -> Expiry | None:
    """The ``max_age`` policy of ``memo``'s function, if it has one."""
    return _EXPIRIES.get(memo)
