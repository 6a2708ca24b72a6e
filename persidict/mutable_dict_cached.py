"""MutableDictCached: an ETag-validated cache in front of a mutable store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cache_faults import CACHE_READ_ERRORS, report_cache_failure
from .keys import NonEmptyPersiDictKey, PersiDictKey, SafeStrTuple, normalize_key
from .markers import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    Joker,
    RetrieveValueFlag,
    ValueType,
)
from .persi_dict import (
    PersiDict,
    Result,
    check_condition,
    check_retrieve,
    ia_result,
    unchanged_result,
    wants_value,
)
from .wrapper_dict import CachedWrapperDict, check_store

__all__ = ["MutableDictCached"]


class MutableDictCached(CachedWrapperDict[ValueType]):
    """A mutable store (``main_dict``) with a local cache of values validated by ETag.

    The cache keeps, per key, the value (``data_cache``) and the main store's ETag of that value
    (``etag_cache``, ETag strings). A warm read asks the main store one conditional question,
    "has the ETag changed?" (``get_item_if(..., retrieve_value=IF_ETAG_CHANGED)``): if not, the
    value comes from the cache and nothing is transferred or deserialised; if it has, the new
    value comes back in the same call and refreshes the cache; if the item is gone, the cache
    entry is dropped. So reads heal themselves after changes made behind the wrapper's back.
    Writes go to the main store and record the value with the ETag of exactly that write.

    Args:
        main_dict: the store of record (e.g. an S3 store); not append-only.
        data_cache: the cache of values (e.g. a FileDirDict or LocalDict); not append-only.
        etag_cache: the cache of ETags, a store of ``str`` values; not append-only.
    """

    def __init__(self, *, main_dict: PersiDict[ValueType], data_cache: PersiDict[ValueType],
                 etag_cache: PersiDict[str]) -> None:
        for name, store in (("main_dict", main_dict), ("data_cache", data_cache),
                            ("etag_cache", etag_cache)):
            check_store(store, name)
            if store.append_only:
                raise ValueError(f"{name} can't be append-only.")
        super().__init__(main_dict=main_dict, data_cache=data_cache,
                         append_only=main_dict.append_only)
        self._etag_cache = etag_cache
        self._etag_entry: Callable[[SafeStrTuple], str] = etag_cache.__getitem__

    @property
    def etag_cache(self) -> PersiDict[str]:
        """The local cache of the main store's ETags."""
        return self._etag_cache

    def get_params(self) -> dict[str, Any]:
        """``{data_cache, etag_cache, main_dict}``: the constructor arguments."""
        return {"data_cache": self._data_cache, "etag_cache": self._etag_cache,
                "main_dict": self._main_dict}

    def get_subdict(self, prefix_key: PersiDictKey) -> MutableDictCached[ValueType]:
        """The same wrapper over the sub-stores of the main store and of both caches."""
        return MutableDictCached(main_dict=self._main_dict.get_subdict(prefix_key),
                                 data_cache=self._data_cache.get_subdict(prefix_key),
                                 etag_cache=self._etag_cache.get_subdict(prefix_key))

    # ---------------------------------------------------------------------------- the caches
    def _forget(self, key: SafeStrTuple) -> None:
        """Drop the key from both caches (the ETag first, so no reader trusts a lone value).

        A cache that cannot even delete (a read-only disk) is reported, not raised: what it
        keeps is still validated by the main store's ETag on every read.
        """
        for cache in (self._etag_cache, self._data_cache):
            try:
                cache.discard(key)
            except Exception as exc:
                report_cache_failure(cache, "invalidate", key, exc)

    # The ETag cache entry of a key is "<main store's ETag>\n<data cache's ETag>": the second
    # line names the very version of the cached value that the main ETag describes. Processes
    # (or threads) sharing the caches may interleave their two writes; a reader trusts a cached
    # value only if the data cache still holds that exact version, so a value can never be
    # paired with another value's ETag.
    def _remember(self, key: SafeStrTuple, value: Any, etag: Any) -> None:
        """Cache ``value`` as the main store's value with ETag ``etag``."""
        if not isinstance(etag, str):
            self._forget(key)
            return
        try:
            local = self._data_cache._write_tagged(key, value)
            if isinstance(local, str):
                self._etag_cache[key] = f"{etag}\n{local}"
                return
        except Exception as exc:  # a full or read-only disk: the main store is unaffected
            report_cache_failure(self._data_cache, "cache", key, exc)
        self._forget(key)

    def _cached_etags(self, key: SafeStrTuple) -> tuple[ETagValue, str]:
        """(main ETag, data cache ETag) recorded for ``key``; KeyError if none (or unreadable)."""
        try:
            entry = self._etag_entry(key)
        except CACHE_READ_ERRORS as exc:  # a damaged or unreadable entry is a miss
            raise KeyError(key) from exc
        main, sep, local = entry.partition("\n")
        if not sep or not main or not local:
            raise KeyError(key)  # e.g. an entry in another layout: ignore it, re-read
        return ETagValue(main), local

    def _cached_etag(self, key: SafeStrTuple) -> ETagValue:
        return self._cached_etags(key)[0]

    def _cached_value(self, key: SafeStrTuple, local: str) -> Any:
        """The cached value, if the data cache still holds the version ``local``; else KeyError."""
        try:
            r = self._data_cache.get_with_etag(key)
        except CACHE_READ_ERRORS as exc:  # a damaged or unreadable entry is a miss
            raise KeyError(key) from exc
        if r.actual_etag != local or r.new_value is ITEM_NOT_AVAILABLE:
            raise KeyError(key)
        return r.new_value

    def _sync(self, key: SafeStrTuple, r: Result) -> None:
        """Bring the caches in line with what a result on the main store says."""
        value, resulting = r.new_value, r.resulting_etag
        if value is ITEM_NOT_AVAILABLE or resulting is ITEM_NOT_AVAILABLE:
            self._forget(key)
        elif value is VALUE_NOT_RETRIEVED or isinstance(value, Joker):
            # No value came back: the cache is still right only if it holds this very ETag.
            try:
                cached = self._cached_etag(key)
            except KeyError:
                return
            if cached != resulting:
                self._forget(key)
        elif r.actual_etag != resulting and not self._cache_written:
            self._forget(key)  # a written value the main store may read back differently
        else:
            self._remember(key, value, resulting)

    def _full_read(self, key: SafeStrTuple) -> ValueType:
        r = self._main_dict.get_item_if(key, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                                        retrieve_value=ALWAYS_RETRIEVE)
        value = r.new_value
        if value is ITEM_NOT_AVAILABLE:
            self._forget(key)
            raise KeyError(key)
        self._remember(key, value, r.actual_etag)
        return value  # type: ignore[return-value]

    # ---------------------------------------------------------------------------- item access
    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        k = normalize_key(key)
        try:
            cached_etag, local = self._cached_etags(k)
            cached_value = self._cached_value(k, local)
        except KeyError:  # not cached; read outside the handler so that a missing key is a
            cached_etag = None  # plain KeyError, not one chained to the cache's own miss
        if cached_etag is None:
            return self._full_read(k)
        r = self._main_dict.get_item_if(k, condition=ANY_ETAG, expected_etag=cached_etag,
                                        retrieve_value=IF_ETAG_CHANGED)
        value = r.new_value
        if value is VALUE_NOT_RETRIEVED:  # unchanged: nothing was transferred
            return cached_value  # type: ignore[no-any-return]
        if value is ITEM_NOT_AVAILABLE:
            self._forget(k)
            raise KeyError(k)
        self._remember(k, value, r.actual_etag)
        return value  # type: ignore[return-value]

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        k = normalize_key(key)
        if value is KEEP_CURRENT:
            return
        if value is DELETE_CURRENT:
            # The main store's own DELETE_CURRENT: no need to find out whether it existed
            # (one DELETE on S3, where discard() needs a HEAD first).
            self._check_delete_policy()
            try:
                self._main_dict[k] = DELETE_CURRENT
            finally:
                self._forget(k)
            return
        # One write that reports its own ETag (no stat of the previous version first).
        etag = self._main_dict._write_tagged(k, value)
        if self._cache_written:
            self._remember(k, value, etag)
        else:
            self._forget(k)  # the main store may read the written value back differently

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        k = normalize_key(key)
        self._check_delete_policy()
        try:
            del self._main_dict[k]
        finally:
            self._forget(k)

    def _remove_item(self, key: SafeStrTuple) -> bool:
        try:
            return self._main_dict._remove_item(key)
        finally:
            self._forget(key)

    def clear(self) -> None:
        """Delete every item of the main store and empty both caches."""
        self._check_delete_policy()
        self._main_dict.clear()
        for cache in (self._etag_cache, self._data_cache):
            try:
                cache.clear()
            except Exception as exc:  # what is left is validated by ETag on every read
                report_cache_failure(cache, "clear", None, exc)

    def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """The main store's current ETag (a cached value with another ETag is dropped)."""
        k = normalize_key(key)
        try:
            actual = self._main_dict.etag(k)
        except KeyError:
            self._forget(k)
            raise
        try:
            cached = self._cached_etag(k)
        except KeyError:
            return actual
        if cached != actual:
            self._forget(k)
        return actual

    # ------------------------------------------------------------------ conditional operations
    def get_item_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                    expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Conditional read; a value the cache holds under the current ETag is not transferred."""
        check_retrieve(retrieve_value)
        k = normalize_key(key)
        check_condition(condition, expected_etag, expected_etag)  # reject bad conditions early
        cached_etag: Any = ITEM_NOT_AVAILABLE
        cached_value: Any = ITEM_NOT_AVAILABLE
        if retrieve_value is not NEVER_RETRIEVE:
            try:
                cached_etag, local = self._cached_etags(k)
                cached_value = self._cached_value(k, local)
            except KeyError:
                cached_etag = ITEM_NOT_AVAILABLE
        if cached_etag is ITEM_NOT_AVAILABLE:
            r = self._main_dict.get_item_if(k, condition=condition, expected_etag=expected_etag,
                                            retrieve_value=retrieve_value)
            self._sync(k, r)
            return r
        # Ask the main store about *our* ETag, then evaluate the caller's condition locally.
        r = self._main_dict.get_item_if(k, condition=ANY_ETAG, expected_etag=cached_etag,
                                        retrieve_value=IF_ETAG_CHANGED)
        actual, value = r.actual_etag, r.new_value
        if actual is ITEM_NOT_AVAILABLE:
            self._forget(k)
            return ia_result(check_condition(condition, expected_etag, ITEM_NOT_AVAILABLE))
        if not wants_value(retrieve_value, expected_etag, actual):
            if value is not VALUE_NOT_RETRIEVED:
                self._remember(k, value, actual)
            value = VALUE_NOT_RETRIEVED
        elif value is VALUE_NOT_RETRIEVED:
            value = cached_value
        else:
            self._remember(k, value, actual)
        return unchanged_result(check_condition(condition, expected_etag, actual), actual, value)

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Conditional write on the main store; the caches follow the result."""
        r = self._main_dict.set_item_if(key, value=value, condition=condition,
                                        expected_etag=expected_etag,
                                        retrieve_value=retrieve_value)
        self._sync(normalize_key(key), r)
        return r

    def setdefault_if(self, key: NonEmptyPersiDictKey, *, default_value: Any,
                      condition: ETagConditionFlag, expected_etag: ETagIfExists,
                      retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Insert-if-absent on the main store; the caches follow the result."""
        r = self._main_dict.setdefault_if(key, default_value=default_value, condition=condition,
                                          expected_etag=expected_etag,
                                          retrieve_value=retrieve_value)
        self._sync(normalize_key(key), r)
        return r

    def discard_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                   expected_etag: ETagIfExists) -> Result:
        """Conditional delete on the main store; the caches follow the result."""
        r = self._main_dict.discard_if(key, condition=condition, expected_etag=expected_etag)
        self._sync(normalize_key(key), r)
        return r
