"""The cache logic of one decorated function: hits, misses, leases, inspection.

A call goes through three tiers:

1. this process's memory (see :mod:`persidict_memo.memory`): a warm hit is one key computation
   and one dict lookup;
2. the store: a hit is one read, then the result is remembered in memory;
3. a miss: with leases on, exactly one caller across processes and machines computes (the
   others wait for its result, see :mod:`persidict_memo.leases`; after a streak of quick
   calls the lease is taken only if a call outlasts a grace period, see
   :mod:`persidict_memo.grace`); the result is then published (see
   :mod:`persidict_memo.publishing`) with an atomic insert-if-absent, the lease record
   replaced by the result's metadata. On local stores everything is written before the call
   returns.

Coroutines of one event loop calling the same uncached call share one computation in process
(the others await its future), and wait for other processes with ``await asyncio.sleep`` (see
:mod:`persidict_memo.async_calls`).

A stored result that cannot be decoded (a damaged file, e.g. after a power cut: result files
are not fsync'ed unless ``durable=True``) is never returned: it reads as a miss with a
:class:`CacheStoreWarning`, is recomputed and replaced atomically.

Warm hits return the very object remembered in memory, as :func:`functools.lru_cache` does:
treat cached results as immutable.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

if TYPE_CHECKING:
    import asyncio

from persidict import BackendError, PersiDict, WriteOnceDict

from . import background, grace, publishing
from .call_keys import CallKeyMaker
from .grace import LEASE_GRACE, QUICK_STREAK
from .leases import Lease, Leases
from .memory import DEFAULT_MEMORY_BYTES, MemoryTier
from .metadata import parse_metadata, pickled_size
from .publishing import describe_call, publish, store_result, write_metadata
from .stores import ResultStore, open_store, unavailable

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "LEASE_GRACE",
    "QUICK_STREAK",
    "CacheInfo",
    "CacheStoreWarning",
    "Memoizer",
]

_MISSING: Final = object()
# The keys whose computation the current thread or task is running under a lease: a call that
# (recursively) needs its own result must not wait for its own lease.
_COMPUTING: ContextVar[frozenset[tuple[str, ...]]] = ContextVar(
    "persidict_memo_computing", default=frozenset()
)
# The key of a call that f.map's bulk listing found without a result or a record (see batch.py):
# neither is looked for again.
LISTED_ABSENT: ContextVar[tuple[str, ...] | None] = ContextVar(
    "persidict_memo_listed_absent", default=None
)
StoreErrorPolicy = Literal["warn", "raise"]


class CacheInfo(NamedTuple):
    """Statistics of one cached function in this process.

    Attributes:
        hits: calls answered from memory or the store without running the body.
        misses: calls that ran the body.
        waits: calls that waited for another caller's computation and returned its result.
        store_errors: results that could not be stored or read (each one was reported).
    """

    hits: int
    misses: int
    waits: int
    store_errors: int


class CacheStoreWarning(RuntimeWarning):
    """A result could not be stored (or read back, or was damaged); it was returned anyway."""


class _Begun(NamedTuple):
    """What the first half of a call found: a value, or the go-ahead to compute."""

    found: bool
    value: Any
    lease: Lease | None
    verify: bool  # a hit chosen for a determinism check: compute and compare
    damaged: bool = False  # the stored result is damaged: compute and replace it
    quick: bool = False  # a quick call: its lease is taken only if it outlasts LEASE_GRACE


_COMPUTE: Final = _Begun(False, None, None, False)
_QUICK: Final = _Begun(False, None, None, False, quick=True)


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
        signing_key: the signing key of the store it opens (see :mod:`persidict.signing`).
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
        signing_key: bytes | str | None = None,
    ) -> None:
        self.keys = CallKeyMaker(func, ignore=ignore, version=version, hashers=hashers)
        self._signing_key = signing_key
        self.function_name = f"{func.__module__}.{self.keys.qualname}"
        self._store_arg = store
        self._store: ResultStore | None = None
        self.checker: WriteOnceDict[Any] | None = None  # (see publishing.verify)
        self._leases: Leases | None = None
        self._open_lock = threading.Lock()
        self.lease = lease
        self.lease_timeout = lease_timeout
        self.check_determinism = check_determinism
        self.on_store_error = on_store_error
        self.durable = durable
        self._store_worked = False  # until then a store failure means "cannot be used"
        self._quick_streak = 0  # consecutive computations that took under LEASE_GRACE
        self._tier = MemoryTier(memory_bytes)
        self._memory = self._tier.entries  # the warm-hit dict, looked up directly
        # key -> (event loop, future) of the coroutine computing it in this process
        self._inflight: dict[tuple[str, ...], tuple[Any, asyncio.Future[Any]]] = {}
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
                        opened = ResultStore(open_store(self._store_arg, self._signing_key),
                                             durable=self.durable)
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
        begun = self._look(key, value)
        if begun is None:
            begun = self._await_turn(key)
        if begun.found and not begun.verify:
            return begun.value
        lease, pending, token = self._begin(key, begun)
        try:
            start = time.perf_counter()
            result = body(*args, **kwargs)
            seconds = time.perf_counter() - start
        except BaseException:
            _give_up(lease, pending)  # the next caller takes its turn at once
            raise
        finally:
            _COMPUTING.reset(token)
        lease = self._ended(lease, pending, seconds)
        if begun.verify:
            return publishing.verify(self, key, begun.value, result)
        return publish(self, key, result, seconds, full_args, kwargs, lease, begun.damaged)

    # The steps around the body, shared with call_async (which runs the others in threads).
    def _begin(
        self, key: tuple[str, ...], begun: _Begun
    ) -> tuple[Lease | None, grace.GraceCall | None, Token[frozenset[tuple[str, ...]]]]:
        """Start computing: the lease it starts with, or its grace period (quick calls), and
        the mark that this thread or task computes ``key`` (reset it when the body ends)."""
        lease, pending = begun.lease, None
        if begun.quick and self._leases is not None:
            lease, pending = None, grace.start(self._leases, self.store.lease_key(key))
        return lease, pending, _COMPUTING.set(_COMPUTING.get() | {key})

    def _ended(
        self, lease: Lease | None, pending: grace.GraceCall | None, seconds: float
    ) -> Lease | None:
        """The body returned: the lease to publish with (taken by the grace watcher if the call
        outlasted the grace period); the streak of quick calls goes on or restarts."""
        if pending is not None:
            lease = grace.finish(pending)
        self._quick_streak = self._quick_streak + 1 if seconds < LEASE_GRACE else 0
        return lease

    def call_async(
        self,
        body: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        full_args: tuple[Any, ...],
    ) -> Coroutine[Any, Any, Any]:
        """The ``async def`` version of :meth:`call` (see :mod:`persidict_memo.async_calls`)."""
        from .async_calls import call_async  # (asyncio only for async functions)

        return call_async(self, body, args, kwargs, full_args)

    def _look(self, key: tuple[str, ...], remembered: Any) -> _Begun | None:
        """Memory, then the store; None when the caller must take its turn (a lease)."""
        verify = self.check_determinism > 0 and random.random() < self.check_determinism
        if remembered is not _MISSING:
            self.hits += 1
            return _Begun(True, remembered, None, verify)
        listed = key == LISTED_ABSENT.get()
        found, value, damaged = (False, None, False) if listed else self.read(key)
        if found:
            self.hits += 1
            return _Begun(True, value, None, verify)
        leases = self._leases
        if damaged or not self.lease or leases is None or key in _COMPUTING.get():
            # a damaged entry is replaced without a lease; a call computing itself takes none
            self.misses += 1
            return _Begun(False, None, None, False, damaged)
        if self._quick_streak >= QUICK_STREAK:  # quick calls: no lease yet, unless one is held
            try:
                held = not listed and self.store.lease_key(key) in leases.store
            except Exception:
                held = True  # let the lease path report it
            if not held:
                self.misses += 1
                return _QUICK
        return None

    def _await_turn(self, key: tuple[str, ...]) -> _Begun:
        """Take the lease of ``key`` or wait for another caller's result."""
        leases = self._leases
        assert leases is not None
        try:
            lease, waited = leases.acquire_or_wait(
                self.store.lease_key(key), lambda: self._exists(key)
            )
        except Exception as exc:  # leases unavailable: compute without one
            self.report(exc, f"could not take the lease of a {self.function_name}() call")
            self.misses += 1
            return _COMPUTE
        return self._after_wait(key, lease, waited)

    def _after_wait(self, key: tuple[str, ...], lease: Lease | None, waited: bool) -> _Begun:
        if lease is None:  # the result is there (published by another caller)
            found, value, damaged = self.read(key)
            if found:
                if waited:
                    self.waits += 1
                else:
                    self.hits += 1
                return _Begun(True, value, None, False)
            self.misses += 1  # forgotten meanwhile, or damaged: compute without a lease
            return _Begun(False, None, None, False, damaged)
        self.misses += 1
        return _Begun(False, None, lease, False)

    # ------------------------------------------------------------------------ store access
    def _exists(self, key: tuple[str, ...]) -> bool:
        try:
            return key in self.store.results
        except Exception:
            return False

    def read(self, key: tuple[str, ...]) -> tuple[bool, Any, bool]:
        """``(found, value, damaged)``: a damaged entry is reported and reads as a miss."""
        try:
            value = self.store.results[key]
        except KeyError:
            self._store_worked = True
            return False, None, False
        except BackendError as exc:
            if exc.operation != "decode":
                self.report(exc, f"could not read the cached result {'/'.join(key)}")
                return False, None, False
            self._store_worked = True
            self.store_errors += 1
            warnings.warn(
                f"the cached result {'/'.join(key)} of {self.function_name}() is damaged; it "
                f"is recomputed and replaced ({exc})",
                CacheStoreWarning,
                stacklevel=5,
            )
            return False, None, True
        except Exception as exc:
            self.report(exc, f"could not read the cached result {'/'.join(key)}")
            return False, None, False
        self._store_worked = True
        self._tier.remember(key, value)
        return True, value, False

    def memory_usage(self) -> tuple[int, int]:
        """``(entries, pickled bytes)`` of the results kept in this process's memory."""
        return self._tier.usage()

    def remember(self, key: tuple[str, ...], value: Any, size: int | None = None) -> None:
        """Keep a result in this process's memory (``size``: its pickled size, if known)."""
        self._tier.remember(key, value, size)

    def report(self, exc: BaseException, what: str) -> None:
        """A store failure: raised while the store never worked, else per ``on_store_error``."""
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
        self._tier.remember(key, value)
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
        size = pickled_size(result)
        if not store_result(self.store, key, result, replace=False):
            return False
        self._tier.remember(key, result, size)
        text = describe_call(self, key, result, size, 0.0, full_args, kwargs)
        write_metadata(self.store, key, text, None, overwrite=False)
        return True

    def forget(self, key: tuple[str, ...]) -> bool:
        """Drop one call's result and metadata; True if a result was stored."""
        background.flush()
        self._tier.forget(key)
        from .inventory import layout_of  # (here: not on the import path of a hit)

        return layout_of(self.store).forget(key)  # on files: two unlinks, no stat

    def clear(self, all_versions: bool) -> int:
        """Drop every result of this function's current code version (or of all versions)."""
        background.flush()
        self._tier.clear()
        prefix = self.keys.prefix if not all_versions else self.keys.prefix[:3]
        from .inventory import layout_of  # (here: not on the import path of a hit)

        return layout_of(self.store).clear(prefix)  # one listing, bulk deletes

    def drop_remembered(self, keys: Iterable[tuple[str, ...]]) -> None:
        """Drop these keys from this process's memory (their results left the store)."""
        for key in keys:
            self._tier.forget(key)

    def metadata(self, key: tuple[str, ...]) -> dict[str, Any]:
        """The metadata record of the result under ``key`` (KeyError if there is none)."""
        background.flush()
        store = self.store
        return parse_metadata(store.meta[store.meta_key(key)])

    def results_store(self) -> PersiDict[Any]:
        """The (append-only view of the) store holding the results."""
        return self.store.results


def _give_up(lease: Lease | None, pending: grace.GraceCall | None) -> None:
    """A computation failed: free its lease (taken upfront or by the grace watcher)."""
    if pending is not None:
        lease = grace.finish(pending)
    if lease is not None:
        lease.abandon()
