"""BackendDict: a PersiDict over a :class:`~persidict.storage.Backend` and a serializer.

Every conditional operation is a compare-and-swap on the ETag that was observed
(``backend.write(if_match=...)`` / ``backend.delete(if_match=...)``), so it is exactly as atomic
as the backend's conditional primitives: one server-side decision on S3, one locked step in
memory, check-then-act on plain files (whose insert-if-absent is still atomic via ``os.link``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from itertools import chain
from typing import Any

from .errors import BackendError, ConcurrencyConflictError, MutationPolicyError
from .iteration import generic_iter_via_iterate
from .keys import (
    NonEmptyPersiDictKey,
    NonEmptySafeStrTuple,
    PersiDictKey,
    SafeStrTuple,
    normalize_key,
    wrap_valid,
)
from .markers import (
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
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
    deleted_result,
    ia_result,
    unchanged_result,
    wants_value,
    written_result,
)
from .serialization import Serializer, serializer_for
from .signing import Signer, SigningKey
from .storage import Backend, NotModified, Stat

__all__ = ["BackendDict"]

# How often a compare-and-swap that lost a race is re-evaluated before giving up.
_CAS_ATTEMPTS = 16
_UNENCODED: Any = object()


class BackendDict(PersiDict[ValueType]):
    """The dict API over backend primitives. Subclasses build the backend and name themselves."""

    _backend: Backend
    _serializer: Serializer
    _generic_iter = generic_iter_via_iterate  # 0.309's iteration hook, from _iterate

    def __init__(self, *, backend: Backend, append_only: bool = False,
                 base_class_for_values: type | None = None,
                 serialization_format: str = "pkl") -> None:
        super().__init__(append_only=append_only, base_class_for_values=base_class_for_values,
                         serialization_format=serialization_format)
        self._backend = backend
        self._serializer = serializer_for(serialization_format)

    @abstractmethod
    def _make_subdict(self, prefix: SafeStrTuple) -> BackendDict[ValueType]:
        """The same kind of store rooted at ``prefix`` (empty: the same root)."""

    def get_subdict(self, prefix_key: PersiDictKey) -> BackendDict[ValueType]:
        """A store of the same kind over the keys under ``prefix_key``; shares the storage."""
        return self._make_subdict(SafeStrTuple(prefix_key))

    # -------------------------------------------------------------------------------- codecs
    _signer: Signer | None = None  # set by stores opened with a signing key

    def _enable_signing(self, key: SigningKey | None) -> None:
        """Sign every payload this store writes and verify every one it reads (see
        :mod:`persidict.signing`); ``None`` leaves the store unsigned."""
        self._signer = None if key is None else Signer(key, self.serialization_format)

    def _inherit_signing(self, parent: BackendDict[Any], prefix: tuple[str, ...]) -> None:
        """A sub-store under ``prefix`` signs like its parent (the same key paths)."""
        self._signer = None if parent._signer is None else parent._signer.child(prefix)

    def _signing_params(self) -> dict[str, Any]:
        """``{"signing_key": <redacted key>}`` for signed stores' get_params(), else ``{}``."""
        return {} if self._signer is None else {"signing_key": self._signer.key}

    def _encode(self, value: Any, key: SafeStrTuple) -> Any:
        self._check_value(value)
        payload = self._serializer.encode(value)
        if self._signer is not None:
            return self._signer.sign(key.strings, payload)
        return payload

    def _decode(self, key: SafeStrTuple, payload: Any) -> Any:
        if self._signer is not None:
            try:
                payload = self._signer.verify(key.strings, payload)
            except ValueError as exc:
                raise BackendError(
                    f"the stored value of key {tuple(key)!r} in {self._backend.describe()} "
                    f"failed verification: {exc}; nothing was deserialised",
                    backend=self._backend.name, operation="verify", key=key) from exc
        try:
            value = self._serializer.decode(payload)
        except Exception as exc:
            raise self._damaged(key, exc) from exc
        return self._check_read_value(value)

    def _damaged(self, key: SafeStrTuple, exc: Exception) -> BackendError:
        return BackendError(
            f"the stored value of key {tuple(key)!r} in {self._backend.describe()} is damaged "
            f"or not valid {self.serialization_format!r} data ({type(exc).__name__}: {exc}); "
            "delete or rewrite it", backend=self._backend.name, operation="decode", key=key)

    # --------------------------------------------------------------------------- item access
    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        k = normalize_key(key)
        got = self._backend.read(k.strings)
        if got is None or isinstance(got, NotModified):
            raise KeyError(k) from self._backend.missing(k.strings)
        return self._decode(k, got[0])  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return self._backend.exists(normalize_key(key).strings)

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        k = normalize_key(key)
        if value is KEEP_CURRENT:
            return
        if value is DELETE_CURRENT:
            self._check_delete_policy()
            self._backend.remove(k.strings)
            return
        payload = self._encode(value, k)
        if self._append_only:
            if self._backend.write(k.strings, payload, if_match=ITEM_NOT_AVAILABLE) is None:
                raise MutationPolicyError(
                    "append-only", f"key {tuple(k)!r} already exists and cannot be overwritten")
        else:
            self._backend.write(k.strings, payload)

    def _write_tagged(self, key: SafeStrTuple, value: Any) -> ETagIfExists:
        """One unconditional write (no stat first: the previous ETag is not needed)."""
        if self._append_only:
            return super()._write_tagged(key, value)
        st = self._backend.write(key.strings, self._encode(value, key))
        return ITEM_NOT_AVAILABLE if st is None else ETagValue(st.etag)

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        k = normalize_key(key)
        self._check_delete_policy()
        if not self._backend.delete(k.strings):
            raise KeyError(k)

    def _remove_item(self, key: SafeStrTuple) -> bool:
        return self._backend.delete(key.strings)

    def __len__(self) -> int:
        return self._backend.count()

    def clear(self) -> None:
        """Delete every item of this store's format (one bulk operation where possible)."""
        self._check_delete_policy()
        self._backend.clear()

    def _iterate(self, with_values: bool, with_timestamps: bool
                 ) -> Iterator[tuple[SafeStrTuple, Any, float | None]]:
        make = SafeStrTuple._from_valid
        if not with_values:
            for key, st in self._backend.scan(with_stat=with_timestamps):
                yield make(key), None, (st.mtime if st is not None else None)
            return
        for key, payload, st in self._backend.scan_items():
            k = make(key)
            yield k, self._decode(k, payload), st.mtime

    # Listings: work on the backend's plain tuples and wrap only what is returned.
    def keys(self) -> Iterator[SafeStrTuple]:  # type: ignore[override]
        """A generator of every key (a new traversal on each call)."""
        # Iterated in C from end to end: one Python call per batch of keys, none per key.
        return chain.from_iterable(map(wrap_valid, self._backend.scan_key_batches()))

    def random_key(self) -> SafeStrTuple | None:
        """A uniformly random key from one listing, None if empty."""
        key = self._backend.random_key()
        return None if key is None else SafeStrTuple._from_valid(key)

    def _sorted_keys(self, max_n: int | None, newest: bool) -> list[SafeStrTuple]:
        if max_n is not None and max_n <= 0:
            return []
        import heapq
        from operator import itemgetter

        pairs = self._backend.scan_mtimes()
        by_time = itemgetter(1)
        if max_n is None:
            chosen = sorted(pairs, key=by_time, reverse=newest)
        else:
            chosen = (heapq.nlargest if newest else heapq.nsmallest)(max_n, pairs, key=by_time)
        make = SafeStrTuple._from_valid
        return [make(key) for key, _ in chosen]

    def _stat(self, key: NonEmptyPersiDictKey) -> Stat:
        k = normalize_key(key)
        st = self._backend.stat(k.strings)
        if st is None:
            raise KeyError(k)
        return st

    def timestamp(self, key: NonEmptyPersiDictKey) -> float:
        """POSIX time of the item's last write (KeyError if absent)."""
        return self._stat(key).mtime

    def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """The item's current ETag (KeyError if absent)."""
        return ETagValue(self._stat(key).etag)

    # ----------------------------------------------------------------- conditional operations
    def _actual(self, key: tuple[str, ...]) -> Any:
        st = self._backend.stat(key)
        return ITEM_NOT_AVAILABLE if st is None else ETagValue(st.etag)

    def _read_result(self, k: NonEmptySafeStrTuple, satisfied: Any, expected: Any,
                     retrieve_value: RetrieveValueFlag) -> Result:
        """One consistent read shaped as a result; ``satisfied`` may be a bool or a condition
        to evaluate on the ETag actually read."""
        if retrieve_value is NEVER_RETRIEVE:
            actual = self._actual(k.strings)
            s = satisfied if isinstance(satisfied, bool) else check_condition(
                satisfied, expected, actual)
            return ia_result(s) if actual is ITEM_NOT_AVAILABLE else unchanged_result(
                s, actual, VALUE_NOT_RETRIEVED)
        inm = expected if retrieve_value is IF_ETAG_CHANGED and isinstance(expected, str) else None
        got = self._backend.read(k.strings, if_none_match=inm)
        if got is None:
            s = satisfied if isinstance(satisfied, bool) else check_condition(
                satisfied, expected, ITEM_NOT_AVAILABLE)
            return ia_result(s)
        if isinstance(got, NotModified):
            s = satisfied if isinstance(satisfied, bool) else check_condition(
                satisfied, expected, expected)
            return unchanged_result(s, expected, VALUE_NOT_RETRIEVED)
        actual = ETagValue(got[1].etag)
        s = satisfied if isinstance(satisfied, bool) else check_condition(
            satisfied, expected, actual)
        return unchanged_result(s, actual, self._decode(k, got[0]))

    def _existing_result(self, k: NonEmptySafeStrTuple, satisfied: bool, actual: Any,
                         expected: Any, retrieve_value: RetrieveValueFlag) -> Result:
        """Result for an item seen with ETag ``actual`` that is left unchanged."""
        if actual is ITEM_NOT_AVAILABLE:
            return ia_result(satisfied)
        if not wants_value(retrieve_value, expected, actual):
            return unchanged_result(satisfied, actual, VALUE_NOT_RETRIEVED)
        got = self._backend.read(k.strings)
        if got is None or isinstance(got, NotModified):
            return ia_result(satisfied)
        return unchanged_result(satisfied, ETagValue(got[1].etag), self._decode(k, got[0]))

    def get_item_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                    expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Read conditionally; with IF_ETAG_CHANGED an unchanged item is not transferred."""
        check_retrieve(retrieve_value)
        k = normalize_key(key)
        check_condition(condition, expected_etag, expected_etag)  # reject bad conditions early
        return self._read_result(k, condition, expected_etag, retrieve_value)

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Write (or apply a joker) only if the condition holds; a compare-and-swap."""
        check_retrieve(retrieve_value)
        k = normalize_key(key)
        check_condition(condition, expected_etag, expected_etag)
        is_joker = isinstance(value, Joker)
        if value is DELETE_CURRENT:
            self._check_delete_policy()
        payload = None if is_joker else self._encode(value, k)
        if (condition is ETAG_IS_THE_SAME and not is_joker
                and (not self._append_only or expected_etag is ITEM_NOT_AVAILABLE)):
            # The condition *is* the precondition: one conditional write, no prior stat.
            st = self._backend.write(k.strings, payload, if_match=expected_etag)
            if st is not None:
                return written_result(expected_etag, ETagValue(st.etag), value)
            return self._read_result(k, False, expected_etag, retrieve_value)
        for _ in range(_CAS_ATTEMPTS):
            actual = self._actual(k.strings)
            satisfied = check_condition(condition, expected_etag, actual)
            if not satisfied or value is KEEP_CURRENT:
                return self._existing_result(k, satisfied, actual, expected_etag, retrieve_value)
            if value is DELETE_CURRENT:
                if actual is ITEM_NOT_AVAILABLE:
                    return ia_result(True)
                if self._backend.delete(k.strings, if_match=actual):
                    return deleted_result(actual)
                continue
            if self._append_only and actual is not ITEM_NOT_AVAILABLE:
                raise MutationPolicyError("append-only", f"key {tuple(k)!r} already exists")
            if_match = None if condition is ANY_ETAG and not self._append_only else actual
            st = self._backend.write(k.strings, payload, if_match=if_match)
            if st is not None:
                return written_result(actual, ETagValue(st.etag), value)
        raise ConcurrencyConflictError(k, _CAS_ATTEMPTS)

    def setdefault_if(self, key: NonEmptyPersiDictKey, *, default_value: Any,
                      condition: ETagConditionFlag, expected_etag: ETagIfExists,
                      retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Insert-if-absent (atomic where the backend's insert is); never overwrites."""
        if isinstance(default_value, Joker):
            raise TypeError("default_value must be a regular value, not a Joker command")
        check_retrieve(retrieve_value)
        k = normalize_key(key)
        check_condition(condition, expected_etag, expected_etag)
        payload: Any = _UNENCODED  # the default is checked and encoded only if it is written
        # On a remote store, when absence satisfies the condition, try the atomic insert first:
        # one request (S3: a PUT with If-None-Match) instead of a HEAD and a PUT.
        if self._backend.insert_before_stat and check_condition(
                condition, expected_etag, ITEM_NOT_AVAILABLE):
            try:
                payload = self._encode(default_value, k)
            except Exception:  # checked again (and raised) below only if the key is absent
                payload = _UNENCODED
            else:
                st = self._backend.write(k.strings, payload, if_match=ITEM_NOT_AVAILABLE)
                if st is not None:
                    return written_result(ITEM_NOT_AVAILABLE, ETagValue(st.etag), default_value)
        for _ in range(_CAS_ATTEMPTS):
            actual = self._actual(k.strings)
            satisfied = check_condition(condition, expected_etag, actual)
            if actual is not ITEM_NOT_AVAILABLE:
                return self._existing_result(k, satisfied, actual, expected_etag, retrieve_value)
            if not satisfied:
                return ia_result(False)
            if payload is _UNENCODED:
                payload = self._encode(default_value, k)
            st = self._backend.write(k.strings, payload, if_match=ITEM_NOT_AVAILABLE)
            if st is not None:
                return written_result(ITEM_NOT_AVAILABLE, ETagValue(st.etag), default_value)
        raise ConcurrencyConflictError(k, _CAS_ATTEMPTS)

    def discard_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                   expected_etag: ETagIfExists) -> Result:
        """Delete only if the condition holds on the actual ETag."""
        k = normalize_key(key)
        check_condition(condition, expected_etag, expected_etag)
        if (condition is ETAG_IS_THE_SAME and isinstance(expected_etag, str)
                and not self._append_only):
            if self._backend.delete(k.strings, if_match=expected_etag):
                return deleted_result(expected_etag)
            return self._read_result(k, False, expected_etag, NEVER_RETRIEVE)
        for _ in range(_CAS_ATTEMPTS):
            actual = self._actual(k.strings)
            satisfied = check_condition(condition, expected_etag, actual)
            if actual is ITEM_NOT_AVAILABLE:
                return ia_result(satisfied)
            if not satisfied:
                return unchanged_result(False, actual, VALUE_NOT_RETRIEVED)
            self._check_delete_policy()
            if self._backend.delete(k.strings, if_match=actual):
                return deleted_result(actual)
        raise ConcurrencyConflictError(k, _CAS_ATTEMPTS)
