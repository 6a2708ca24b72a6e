"""AppendOnlyDictCached: a trusted read-through cache in front of an append-only store."""

from __future__ import annotations

from typing import Any

from .cache_faults import CACHE_READ_ERRORS, report_cache_failure
from .errors import MutationPolicyError
from .keys import NonEmptyPersiDictKey, PersiDictKey, SafeStrTuple, normalize_key
from .markers import (
    ANY_ETAG,
    DELETE_CURRENT,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    ETagConditionFlag,
    ETagIfExists,
    Joker,
    RetrieveValueFlag,
    ValueType,
)
from .persi_dict import PersiDict, Result, check_retrieve, unchanged_result, wants_value
from .wrapper_dict import CachedWrapperDict, check_store

__all__ = ["AppendOnlyDictCached"]


class AppendOnlyDictCached(CachedWrapperDict[ValueType]):
    """An append-only store (``main_dict``) with a local cache of its values (``data_cache``).

    In an append-only store a key's value never changes once written, so a cached value is
    always right: a warm read is one cache lookup and never touches the main store. Misses read
    the main store and fill the cache; writes insert-if-absent into the main store, then fill
    the cache. Keys, lengths, timestamps and ETags come from the main store.

    Args:
        main_dict: the append-only store of record (e.g. an S3 store).
        data_cache: an append-only store used as the cache (e.g. a FileDirDict or LocalDict),
            with the same ``base_class_for_values``.
    """

    def __init__(self, *, main_dict: PersiDict[ValueType],
                 data_cache: PersiDict[ValueType]) -> None:
        check_store(main_dict, "main_dict")
        check_store(data_cache, "data_cache")
        for name, store in (("main_dict", main_dict), ("data_cache", data_cache)):
            if not store.append_only:
                kind = type(store).__name__
                raise ValueError(
                    f"append_only must be set to True: {name} is a mutable {kind}. "
                    f"AppendOnlyDictCached trusts its cache, so both stores must be "
                    f"append-only, e.g. {name}={kind}(..., append_only=True)")
        if main_dict.base_class_for_values != data_cache.base_class_for_values:
            raise ValueError("main_dict and data_cache must have the same base_class_for_values")
        super().__init__(main_dict=main_dict, data_cache=data_cache, append_only=True)
        self._cache_lookup = data_cache.__getitem__

    def get_params(self) -> dict[str, Any]:
        """``{data_cache, main_dict}``: the constructor arguments."""
        return {"data_cache": self._data_cache, "main_dict": self._main_dict}

    def get_subdict(self, prefix_key: PersiDictKey) -> AppendOnlyDictCached[ValueType]:
        """The same wrapper over the main store's and the cache's sub-stores."""
        return AppendOnlyDictCached(main_dict=self._main_dict.get_subdict(prefix_key),
                                    data_cache=self._data_cache.get_subdict(prefix_key))

    # ---------------------------------------------------------------------------- the cache
    def _fill(self, key: SafeStrTuple, value: Any) -> None:
        """Put a value known to be in the main store into the cache (first filler wins).

        A cache that cannot take it (a full or read-only disk) is reported, never raised: the
        main store already holds the value.
        """
        try:
            self._data_cache[key] = value
        except MutationPolicyError:  # another reader filled it first: same value
            pass
        except Exception as exc:
            report_cache_failure(self._data_cache, "cache", key, exc)

    def _cached(self, key: SafeStrTuple) -> Any:
        """The cached value; KeyError on a miss, and on an entry that cannot be read (which is
        then removed, so that the next fill can replace it)."""
        try:
            return self._cache_lookup(key)
        except CACHE_READ_ERRORS as exc:
            self._invalidate(key, exc)
            raise KeyError(key) from exc

    def _invalidate(self, key: SafeStrTuple, exc: BaseException) -> None:
        report_cache_failure(self._data_cache, "read", key, exc)
        try:  # the cache is append-only by policy; removing a damaged entry bypasses it
            self._data_cache._remove_item(key)
        except Exception as again:
            report_cache_failure(self._data_cache, "invalidate", key, again)

    def _fill_from_result(self, key: SafeStrTuple, r: Result, written: bool) -> None:
        value = r.new_value
        if (value is ITEM_NOT_AVAILABLE or value is VALUE_NOT_RETRIEVED
                or isinstance(value, Joker) or (written and not self._cache_written)):
            return
        try:
            cached = key in self._data_cache
        except CACHE_READ_ERRORS:
            cached = False
        if not cached:
            self._fill(key, value)

    # ---------------------------------------------------------------------------- item access
    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        # The hot path: one cache lookup (which normalises the key), nothing else.
        try:
            return self._cache_lookup(key)
        except KeyError:
            pass
        except CACHE_READ_ERRORS as exc:  # damaged or unreadable: a miss
            self._invalidate(normalize_key(key), exc)
        k = normalize_key(key)
        value = self._main_dict[k]
        self._fill(k, value)
        return value

    def __contains__(self, key: object) -> bool:
        k = normalize_key(key)
        try:
            if k in self._data_cache:
                return True
        except CACHE_READ_ERRORS as exc:
            report_cache_failure(self._data_cache, "look up", k, exc)
        return k in self._main_dict

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        k = normalize_key(key)
        if value is KEEP_CURRENT:
            return
        if value is DELETE_CURRENT:
            self._check_delete_policy()
        r = self.setdefault_if(k, default_value=value, condition=ANY_ETAG,
                               expected_etag=ITEM_NOT_AVAILABLE, retrieve_value=NEVER_RETRIEVE)
        if not r.value_was_mutated:
            raise MutationPolicyError(
                "append-only", f"key {tuple(k)!r} already exists and cannot be overwritten")

    # ------------------------------------------------------------------ conditional operations
    def get_item_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                    expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Conditional read: the ETag from the main store, the value from the cache if there."""
        check_retrieve(retrieve_value)
        k = normalize_key(key)
        if retrieve_value is not NEVER_RETRIEVE:
            try:
                cached = self._cached(k)
            except KeyError:
                pass
            else:
                r = self._main_dict.get_item_if(k, condition=condition,
                                                expected_etag=expected_etag,
                                                retrieve_value=NEVER_RETRIEVE)
                if (r.actual_etag is not ITEM_NOT_AVAILABLE
                        and wants_value(retrieve_value, expected_etag, r.actual_etag)):
                    return unchanged_result(r.condition_was_satisfied, r.actual_etag, cached)
                return r
        r = self._main_dict.get_item_if(k, condition=condition, expected_etag=expected_etag,
                                        retrieve_value=retrieve_value)
        self._fill_from_result(k, r, written=False)
        return r

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Conditional write on the main store (which refuses overwrites); fills the cache."""
        r = self._main_dict.set_item_if(key, value=value, condition=condition,
                                        expected_etag=expected_etag,
                                        retrieve_value=retrieve_value)
        self._fill_from_result(normalize_key(key), r, written=r.value_was_mutated)
        return r

    def setdefault_if(self, key: NonEmptyPersiDictKey, *, default_value: Any,
                      condition: ETagConditionFlag, expected_etag: ETagIfExists,
                      retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Insert-if-absent on the main store; fills the cache with what it learns."""
        r = self._main_dict.setdefault_if(key, default_value=default_value, condition=condition,
                                          expected_etag=expected_etag,
                                          retrieve_value=retrieve_value)
        self._fill_from_result(normalize_key(key), r, written=r.value_was_mutated)
        return r
