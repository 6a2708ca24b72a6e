"""WrapperDict: the base of every store that wraps another store.

A wrapper is a PersiDict around a PersiDict, kept in one attribute, ``_main_dict``. Every core
operation is delegated to it *explicitly* (there is no ``__getattr__`` forwarding), so the
wrapper's public surface is exactly the PersiDict API and a subclass overrides only what its
policy or cache changes. The ETags a wrapper reports are the wrapped store's own (never a
timestamp-derived stand-in), so ETags read through a wrapper can be used in conditional
operations on the wrapped store and vice versa.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .iteration import generic_iter_via_iterate
from .keys import NonEmptyPersiDictKey, SafeStrTuple, normalize_key
from .local_dict import LocalDict
from .markers import (
    IF_ETAG_CHANGED,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    Joker,
    RetrieveValueFlag,
    ValueType,
)
from .persi_dict import PersiDict, Result

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = [
    "ABSENT",
    "CachedWrapperDict",
    "WrapperDict",
    "check_store",
    "innermost",
    "is_local",
    "read_in_order",
    "reads_back_exactly",
    "same_round_trip",
]

_E = TypeVar("_E")

# Reads of a remote main store during iteration run on a small pool, as BasicS3Dict's own do.
_READ_WORKERS: Final = 8
_READ_WINDOW: Final = 32


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""What a per-key read used during iteration returns for a key that vanished since the listing."""


def check_store(store: object, name: str) -> PersiDict[Any]:
    """Return ``store`` if it is a PersiDict, else ``TypeError(f"{name} must be a PersiDict")``."""
    if not isinstance(store, PersiDict):
        raise TypeError(f"{name} must be a PersiDict")
    return store


def is_local(store: PersiDict[Any]) -> bool:
    """True if reads of ``store`` are local (memory, files), so iteration reads in line."""
    from .empty_dict import EmptyDict
    from .file_dir_dict import FileDirDict

    return isinstance(innermost(store), (LocalDict, FileDirDict, EmptyDict))


def _round_trip(store: PersiDict[Any]) -> str:
    """What reading back a value written to ``store`` gives, as a comparable tag.

    Memory stores hand back (a copy of) the very value, and so does pickle; other formats turn
    some values into others (jsonpickle turns int dict keys into strings, text normalises line
    endings), so a value can be served from a cache in place of a read of the main store only if
    both stores transform values the same way.
    """
    if isinstance(innermost(store), LocalDict) or store.serialization_format == "pkl":
        return "exact"
    return store.serialization_format


def reads_back_exactly(store: PersiDict[Any]) -> bool:
    """True if ``store`` gives back (a copy of) exactly the value written to it."""
    return _round_trip(store) == "exact"


def same_round_trip(main: PersiDict[Any], cache: PersiDict[Any]) -> bool:
    """True if a value read back from ``cache`` always equals one read back from ``main``."""
    return _round_trip(main) == _round_trip(cache)


def innermost(store: PersiDict[Any]) -> PersiDict[Any]:
    """The store at the bottom of a stack of wrappers."""
    while isinstance(store, WrapperDict):
        store = store._main_dict
    return store


def read_in_order(entries: Iterator[_E], read: Callable[[_E], Any], *, parallel: bool
                  ) -> Iterator[tuple[_E, Any]]:
    """``(entry, read(entry))`` for every entry, in order.

    With ``parallel`` the reads run on a bounded thread pool (at most ``_READ_WINDOW`` in
    flight), for main stores where every read is a network round trip; local stores read in
    line, where a pool would cost more than it saves. Abandoning the iterator cancels what has
    not started.
    """
    if not parallel:
        for entry in entries:
            yield entry, read(entry)
        return
    from concurrent.futures import ThreadPoolExecutor  # here: off the import path

    with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
        pending: deque[tuple[_E, Future[Any]]] = deque()
        try:
            for entry in entries:
                pending.append((entry, pool.submit(read, entry)))
                if len(pending) >= _READ_WINDOW:
                    first, fut = pending.popleft()
                    yield first, fut.result()
            while pending:
                first, fut = pending.popleft()
                yield first, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()


class WrapperDict(PersiDict[ValueType]):
    """A PersiDict that delegates its whole core to another PersiDict, ``self._main_dict``.

    Subclasses pass the wrapped store and the policy (``append_only``) they enforce; the value
    type and serialization format are the wrapped store's. Policies stay where the base class
    keeps them (:meth:`PersiDict._check_delete_policy`, :meth:`PersiDict._check_value`), plus the
    one extra refusal a subclass adds.
    """

    _main_dict: PersiDict[ValueType]
    _generic_iter = generic_iter_via_iterate  # 0.309's iteration hook, from _iterate

    def __init__(self, *, main_dict: PersiDict[ValueType], append_only: bool) -> None:
        super().__init__(append_only=append_only,
                         base_class_for_values=main_dict.base_class_for_values,
                         serialization_format=main_dict.serialization_format)
        self._main_dict = main_dict

    # ------------------------------------------------------------------------ delegated core
    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        return self._main_dict[key]

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        self._main_dict[key] = value

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        k = normalize_key(key)
        self._check_delete_policy()
        del self._main_dict[k]

    def __contains__(self, key: object) -> bool:
        return key in self._main_dict

    def __len__(self) -> int:
        return len(self._main_dict)

    def _iterate(self, with_values: bool, with_timestamps: bool
                 ) -> Iterator[tuple[SafeStrTuple, Any, float | None]]:
        return self._main_dict._iterate(with_values, with_timestamps)

    def _remove_item(self, key: SafeStrTuple) -> bool:
        return self._main_dict._remove_item(key)

    def clear(self) -> None:
        """Delete every item (MutationPolicyError if append-only); one bulk call on the store."""
        self._check_delete_policy()
        self._main_dict.clear()

    def timestamp(self, key: NonEmptyPersiDictKey) -> float:
        """POSIX time of the item's last write in the wrapped store (KeyError if absent)."""
        return self._main_dict.timestamp(key)

    def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """The wrapped store's ETag of the item (KeyError if absent)."""
        return self._main_dict.etag(key)

    def random_key(self) -> SafeStrTuple | None:
        """A uniformly random key of the wrapped store, None if empty."""
        return self._main_dict.random_key()

    def get_item_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                    expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Conditional read on the wrapped store."""
        return self._main_dict.get_item_if(key, condition=condition, expected_etag=expected_etag,
                                           retrieve_value=retrieve_value)

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Conditional write on the wrapped store."""
        return self._main_dict.set_item_if(key, value=value, condition=condition,
                                           expected_etag=expected_etag,
                                           retrieve_value=retrieve_value)

    def setdefault_if(self, key: NonEmptyPersiDictKey, *, default_value: Any,
                      condition: ETagConditionFlag, expected_etag: ETagIfExists,
                      retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Insert-if-absent on the wrapped store (atomic where its insert is)."""
        return self._main_dict.setdefault_if(key, default_value=default_value,
                                             condition=condition, expected_etag=expected_etag,
                                             retrieve_value=retrieve_value)

    def discard_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                   expected_etag: ETagIfExists) -> Result:
        """Conditional delete on the wrapped store."""
        return self._main_dict.discard_if(key, condition=condition, expected_etag=expected_etag)


class CachedWrapperDict(WrapperDict[ValueType]):
    """Base of the caching wrappers: a main store plus a cache of its values.

    Holds what both caching wrappers share: the data cache, whether written values may go
    straight into it, and the listing-then-read iteration that uses and fills it.
    """

    def __init__(self, *, main_dict: PersiDict[ValueType], data_cache: PersiDict[ValueType],
                 append_only: bool) -> None:
        super().__init__(main_dict=main_dict, append_only=append_only)
        self._data_cache = data_cache
        # Written values may go straight into the cache only if reading them back from the
        # cache gives what reading them back from the main store would.
        self._cache_written = same_round_trip(main_dict, data_cache)
        self._parallel_reads = not is_local(main_dict)

    @property
    def main_dict(self) -> PersiDict[ValueType]:
        """The store of record."""
        return self._main_dict

    @property
    def data_cache(self) -> PersiDict[ValueType]:
        """The local cache of values."""
        return self._data_cache

    def _iterate(self, with_values: bool, with_timestamps: bool
                 ) -> Iterator[tuple[SafeStrTuple, Any, float | None]]:
        """Keys (and timestamps) from the main store's listing, each value through ``self[k]``:
        the wrapper's own read serves unchanged values from the cache and refreshes changed
        ones (on a thread pool when the main store is remote). Items deleted since the listing
        are skipped."""
        listing = self._main_dict._iterate(False, with_timestamps)
        if not with_values:
            yield from listing
            return

        def read_or_absent(entry: tuple[SafeStrTuple, Any, float | None]) -> Any:
            try:
                return self[entry[0]]
            except KeyError:  # deleted since the listing
                return ABSENT

        for (k, _, ts), value in read_in_order(listing, read_or_absent,
                                               parallel=self._parallel_reads):
            if value is not ABSENT:
                yield k, value, ts
