"""The cache logic of one decorated function: hits, misses, leases, publishing, inspection.

A call goes through three tiers:

1. this process's memory (a bounded dict of results already seen here): a warm hit is one key
   computation and one dict lookup;
2. the store: a hit is one read, then the result is remembered in memory;
3. a miss: with leases on, exactly one caller across processes and machines computes (the
   others wait for its result, see :mod:`persidict_memo.leases`); the result is pickled once
   to learn its size (so an unpicklable result is found before anything is written), then
   published with an atomic insert-if-absent (the first result stands; a late writer gets the
   stored result back), and its metadata is written beside it.

Warm hits return the very object remembered in memory, as :func:`functools.lru_cache` does:
treat cached results as immutable.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Final, Literal, NamedTuple

from persidict import (
    ANY_ETAG,
    ITEM_NOT_AVAILABLE,
    NEVER_RETRIEVE,
    BackendError,
    MutationPolicyError,
    PersiDict,
    WriteOnceDict,
)

from . import background
from .call_keys import CallKeyMaker
from .inventory import layout_of
from .leases import Lease, Leases
from .metadata import build_metadata, parse_metadata, pickled_size
from .stores import ResultStore, open_store, unavailable

__all__ = ["DEFAULT_MEMORY_BYTES", "CacheInfo", "CacheStoreWarning", "Memoizer"]

_MISSING: Final = object()
# The keys whose computation the current thread or task is running under a lease: a call that
# (recursively) needs its own result must not wait for its own lease.
_COMPUTING: ContextVar[frozenset[tuple[str, ...]]] = ContextVar(
    "persidict_memo_computing", default=frozenset()
)
_MEMORY_ENTRIES: Final = 1024
DEFAULT_MEMORY_BYTES: Final = 64 * 2**20
_LARGEST_KEPT: Final = 8  # a result over memory_bytes / 8 is not kept in memory
StoreErrorPolicy = Literal["warn", "raise"]


class CacheInfo(NamedTuple):
    """Statistics of one cached function in this process.

    Attributes:
        hits: calls answered from memory or the store without running the body.
        misses: calls that ran the body.
        waits: calls that waited for another process's computation and returned its result.
        store_errors: results that could not be stored or read (each one was reported).
    """

    hits: int
    misses: int
    waits: int
    store_errors: int


class CacheStoreWarning(RuntimeWarning):
    """A result could not be stored (or read back); it was returned anyway."""


class _Begun(NamedTuple):
    """What the first half of a call found: a value, or the go-ahead to compute."""

    found: bool
    value: Any
    lease: Lease | None
    verify: bool  # a hit chosen for a determinism check: compute and compare


class Memoizer:
    """Caches the calls of one function in a persidict store.

    Args:
        func: the plain function (for methods, the function in the class body).
        store: see :func:`persidict_memo.stores.open_store`; opened on first use.
        ignore, version, hashers: see :class:`~persidict_memo.call_keys.CallKeyMaker`.
        lease: compute each uncached call once across processes.
        lease_timeout: seconds after which a silent lease holder is presumed dead.
        check_determinism: probability that a hit is recomputed and compared with the stored
            result; a mismatch raises :class:`persidict.MutationPolicyError`.
        on_store_error: ``"warn"`` or ``"raise"`` when a store that worked fails.
        durable: fsync result files before returning.
        memory_bytes: the byte budget of the in-process memory tier.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        store: object,
        ignore: tuple[str, ...],
        version: str | None,
        lease: bool,
        lease_timeout: float,
        check_determinism: float,
        on_store_error: StoreErrorPolicy,
        durable: bool = False,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        hashers: Mapping[type, Callable[[Any], Any]] | None = None,
    ) -> None:
        self.keys = CallKeyMaker(func, ignore=ignore, version=version, hashers=hashers)
        self.function_name = f"{func.__module__}.{self.keys.qualname}"
        self._store_arg = store
        self._store: ResultStore | None = None
        self._checker: WriteOnceDict[Any] | None = None
        self._leases: Leases | None = None
        self._open_lock = threading.Lock()
        self.lease = lease
        self.lease_timeout = lease_timeout
        self.check_determinism = check_determinism
        self.on_store_error = on_store_error
        self.durable = durable
        self._store_worked = False  # until then a store failure means "cannot be used"
        self._memory: dict[tuple[str, ...], Any] = {}
        self._memory_sizes: dict[tuple[str, ...], int] = {}
        self._memory_total = 0
        self._memory_lock = threading.Lock()
        self.memory_bytes = memory_bytes
        self.hits = self.misses = self.waits = self.store_errors = 0

    # ------------------------------------------------------------------------------ the store
    @property
    def store(self) -> ResultStore:
        """The result store, opened (and its directory created) on first use."""
        store = self._store
        if store is None:
            with self._open_lock:
                if self._store is None:
                    try:
                        opened = ResultStore(open_store(self._store_arg), durable=self.durable)
                    except Exception as exc:
                        raise unavailable(self._store_arg, self.function_name, exc) from exc
                    if self.lease and opened.leases is not None:
                        self._leases = Leases(opened.leases, self.lease_timeout)
                    self._store = opened
                store = self._store
        return store

    def info(self) -> CacheInfo:
        """This process's statistics."""
        return CacheInfo(self.hits, self.misses, self.waits, self.store_errors)

    # ------------------------------------------------------------------------------- calls
    def call(
        self,
        body: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        full_args: tuple[Any, ...],
    ) -> Any:
        """Answer ``body(*args, **kwargs)``, whose normalised form is ``full_args, kwargs``."""
        key = self.keys.key(full_args, kwargs)
        value = self._memory.get(key, _MISSING)
        if value is not _MISSING and not self.check_determinism:
            self.hits += 1
            return value
        begun = self._begin(key, value)
        if begun.found and not begun.verify:
            return begun.value
        token = _COMPUTING.set(_COMPUTING.get() | {key}) if begun.lease is not None else None
        try:
            start = time.perf_counter()
            result = body(*args, **kwargs)
            seconds = time.perf_counter() - start
            if begun.verify:
                return self._verify(key, begun.value, result)
            return self._publish(key, result, seconds, full_args, kwargs)
        finally:
            if token is not None:
                _COMPUTING.reset(token)
            if begun.lease is not None:
                self._let_go(key, begun.lease)

    async def call_async(
        self,
        body: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        full_args: tuple[Any, ...],
    ) -> Any:
        """The ``async def`` version of :meth:`call`; store I/O runs in worker threads."""
        import asyncio  # here, not at module level: importing persidict_memo stays light
        key = self.keys.key(full_args, kwargs)
        value = self._memory.get(key, _MISSING)
        if value is not _MISSING and not self.check_determinism:
            self.hits += 1
            return value
        begun = await asyncio.to_thread(self._begin, key, value)
        if begun.found and not begun.verify:
            return begun.value
        token = _COMPUTING.set(_COMPUTING.get() | {key}) if begun.lease is not None else None
        try:
            start = time.perf_counter()
            result = await body(*args, **kwargs)
            seconds = time.perf_counter() - start
            if begun.verify:
                return self._verify(key, begun.value, result)
            return await asyncio.to_thread(self._publish, key, result, seconds, full_args, kwargs)
        finally:
            if token is not None:
                _COMPUTING.reset(token)
            if begun.lease is not None:
                await asyncio.to_thread(self._let_go, key, begun.lease)

    def _begin(self, key: tuple[str, ...], remembered: Any) -> _Begun:
        """Find the result (memory, store, another process's computation) or a lease to compute."""
        verify = self.check_determinism > 0 and random.random() < self.check_determinism
        if remembered is not _MISSING:
            self.hits += 1
            return _Begun(True, remembered, None, verify)
        found, value = self._read(key)
        if found:
            self.hits += 1
            return _Begun(True, value, None, verify)
        leases = self._leases if self.lease else None
        if leases is None or key in _COMPUTING.get():  # a call computing itself: no lease
            self.misses += 1
            return _Begun(False, None, None, False)
        try:
            lease, waited = leases.acquire_or_wait(
                self.store.lease_key(key), lambda: self._exists(key)
            )
        except Exception as exc:  # leases unavailable: compute without one
            self._report(exc, f"could not take the lease of a {self.function_name}() call")
            self.misses += 1
            return _Begun(False, None, None, False)
        if lease is None:
            found, value = self._read(key)
            if found:
                if waited:
                    self.waits += 1
                else:
                    self.hits += 1
                return _Begun(True, value, None, False)
        self.misses += 1
        return _Begun(False, None, lease, False)

    def _let_go(self, key: tuple[str, ...], lease: Lease) -> None:
        """Give a lease up once its computation ended.

        After a published result the record is deleted by the housekeeping thread: waiters
        look for the result before looking at the lease, so nobody waits for the deletion
        (``forget``/``cache_clear`` flush it first). After a failure the record is deleted
        at once, so that the next caller can take its turn without delay.
        """
        lease.stop()
        if key in self._memory:
            background.submit(lease.delete)
        else:
            lease.delete()

    # ------------------------------------------------------------------------ store access
    def _exists(self, key: tuple[str, ...]) -> bool:
        try:
            return key in self.store.results
        except Exception:
            return False

    def _read(self, key: tuple[str, ...]) -> tuple[bool, Any]:
        try:
            value = self.store.results[key]
        except KeyError:
            self._store_worked = True
            return False, None
        except Exception as exc:
            if isinstance(exc, BackendError) and exc.operation == "decode":
                self._store_worked = True
            self._report(exc, f"could not read the cached result {'/'.join(key)}")
            return False, None
        self._store_worked = True
        self._remember(key, value)
        return True, value

    def _remember(self, key: tuple[str, ...], value: Any, size: int | None = None) -> None:
        """Keep a result in memory, within the entry and byte budgets (oldest out first)."""
        budget = self.memory_bytes
        if budget <= 0:
            return
        if size is None:
            try:
                size = pickled_size(value)
            except Exception:
                return
        if size > budget // _LARGEST_KEPT:
            return
        memory, sizes = self._memory, self._memory_sizes
        with self._memory_lock:
            if key in memory:
                return
            while memory and (
                len(memory) >= _MEMORY_ENTRIES or self._memory_total + size > budget
            ):
                oldest = next(iter(memory))
                del memory[oldest]
                self._memory_total -= sizes.pop(oldest, 0)
            memory[key] = value
            sizes[key] = size
            self._memory_total += size

    def _forget_in_memory(self, key: tuple[str, ...] | None = None) -> None:
        with self._memory_lock:
            if key is None:
                self._memory.clear()
                self._memory_sizes.clear()
                self._memory_total = 0
            elif self._memory.pop(key, _MISSING) is not _MISSING:
                self._memory_total -= self._memory_sizes.pop(key, 0)

    def memory_usage(self) -> tuple[int, int]:
        """``(entries, pickled bytes)`` of the results kept in this process's memory."""
        return len(self._memory), self._memory_total

    def _publish(
        self,
        key: tuple[str, ...],
        result: Any,
        seconds: float,
        full_args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        """Store a fresh result (first writer wins); return the result that stands.

        A result that cannot be stored is reported (``on_store_error``) and returned.
        """
        try:
            won = self._insert(key, result, seconds, full_args, kwargs)
        except MutationPolicyError:
            raise  # a failed determinism check is the answer, not a storage problem
        except Exception as exc:
            self._report(exc, f"could not store the result of {self.function_name}()")
            return result
        if won:
            return result
        found, stored = self._read(key)  # another process published first: its result stands
        return stored if found else result

    def _insert(
        self,
        key: tuple[str, ...],
        result: Any,
        seconds: float,
        full_args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> bool:
        """Insert-if-absent ``result`` and its metadata; False if a result was already there."""
        store = self.store
        size = pickled_size(result)  # an unpicklable result fails here, before any write
        outcome = store.results.setdefault_if(
            key,
            default_value=result,
            condition=ANY_ETAG,
            expected_etag=ITEM_NOT_AVAILABLE,
            retrieve_value=NEVER_RETRIEVE,
        )
        if not outcome.value_was_mutated:
            if self.check_determinism > 0:
                self._verify(key, None, result)  # the race loser checks the winner's result
            return False
        self._remember(key, result, size)
        arguments = self.keys.describe(full_args, kwargs)

        def write_metadata() -> None:  # deferred: nobody waits for it
            try:
                text = build_metadata(
                    function=self.function_name,
                    key=key,
                    arguments=arguments,
                    compute_seconds=seconds,
                    result=result,
                    result_size=size,
                )
                store.meta.setdefault_if(
                    store.meta_key(key),
                    default_value=text,
                    condition=ANY_ETAG,
                    expected_etag=ITEM_NOT_AVAILABLE,
                    retrieve_value=NEVER_RETRIEVE,
                )
            except Exception:  # the result stands; only its description is missing
                self.store_errors += 1
                raise

        background.submit(write_metadata)
        return True

    def _verify(self, key: tuple[str, ...], stored: Any, fresh: Any) -> Any:
        """Compare a recomputed result with the stored one (WriteOnceDict's consistency check)."""
        checker = self._checker
        if checker is None:
            checker = self._checker = WriteOnceDict(
                wrapped_dict=self.store.results, p_consistency_checks=1.0
            )
        try:
            checker[key] = fresh
        except MutationPolicyError as exc:
            raise MutationPolicyError(
                "write-once",
                f"{self.function_name}() is not deterministic: a recomputed result differs "
                f"from the cached one ({exc})",
            ) from exc
        return stored

    def _report(self, exc: BaseException, what: str) -> None:
        if not self._store_worked:  # never answered: misconfigured, not a passing failure
            raise unavailable(self._store_arg, self.function_name, exc) from exc
        self.store_errors += 1
        message = f"{what}: {type(exc).__name__}: {exc}"
        if self.on_store_error == "raise":
            exc.add_note(f"persidict_memo: {message}")
            raise exc
        warnings.warn(message, CacheStoreWarning, stacklevel=4)

    # ------------------------------------------------------------------------- inspection
    def lookup(self, key: tuple[str, ...]) -> Any:
        """The cached result under ``key`` (KeyError if there is none); never computes."""
        value = self._memory.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = self.store.results[key]
        self._remember(key, value)
        return value

    def is_cached(self, key: tuple[str, ...]) -> bool:
        """Whether a result is stored under ``key``."""
        return key in self._memory or key in self.store.results

    def inject(
        self,
        key: tuple[str, ...],
        result: Any,
        full_args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> bool:
        """Store a precomputed result; False (and nothing changed) if one was already stored."""
        if self.is_cached(key):
            return False
        return self._insert(key, result, 0.0, full_args, kwargs)

    def forget(self, key: tuple[str, ...]) -> bool:
        """Drop one call's result and metadata; True if a result was stored."""
        background.flush()
        self._forget_in_memory(key)
        store = self.store
        removed = store.admin.discard(key)
        store.meta.discard(store.meta_key(key))
        return bool(removed)

    def clear(self, all_versions: bool) -> int:
        """Drop every result of this function's current code version (or of all versions)."""
        background.flush()
        self._forget_in_memory()
        prefix = self.keys.prefix if not all_versions else self.keys.prefix[:3]
        return layout_of(self.store).clear(prefix)  # one listing, bulk deletes

    def drop_remembered(self, keys: Iterable[tuple[str, ...]]) -> None:
        """Drop these keys from this process's memory (their results left the store)."""
        for key in keys:
            self._forget_in_memory(key)

    def metadata(self, key: tuple[str, ...]) -> dict[str, Any]:
        """The metadata record of the result under ``key`` (KeyError if there is none)."""
        background.flush()
        store = self.store
        return parse_metadata(store.meta[store.meta_key(key)])

    def results_store(self) -> PersiDict[Any]:
        """The (append-only view of the) store holding the results."""
        return self.store.results
