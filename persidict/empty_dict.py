"""EmptyDict: the "/dev/null" of stores. Writes are validated, then thrown away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .iteration import generic_iter_via_iterate
from .keys import (
    NonEmptyPersiDictKey,
    PersiDictKey,
    SafeStrTuple,
    normalize_key,
)
from .markers import (
    DELETE_CURRENT,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    Joker,
    OperationResult,
    RetrieveValueFlag,
    TransformingFunction,
    ValueType,
)
from .persi_dict import PersiDict, Result, check_condition, check_retrieve, ia_result

__all__ = ["EmptyDict"]


class EmptyDict(PersiDict[ValueType]):
    """A store that accepts every valid write and keeps nothing: always empty.

    Useful to switch caching off or to measure the cost of everything but storage.
    """

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        raise KeyError(key)

    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        normalize_key(key)
        if isinstance(value, Joker):
            if value is DELETE_CURRENT:
                self._check_delete_policy()
            return
        self._check_value(value)

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def _iterate(self, with_values: bool, with_timestamps: bool
                 ) -> Iterator[tuple[SafeStrTuple, Any, float | None]]:
        return iter(())

    _generic_iter = generic_iter_via_iterate  # 0.309's iteration hook, from _iterate

    def _remove_item(self, key: SafeStrTuple) -> bool:
        return False

    def discard(self, key: NonEmptyPersiDictKey) -> bool:
        """Nothing is ever stored, so nothing is discarded."""
        return False

    delete_if_exists = discard

    def clear(self) -> None:
        """Nothing to clear."""

    def setdefault(self, key: NonEmptyPersiDictKey, default: Any = None) -> Any:
        """Returns ``default``; nothing is stored."""
        return default

    def timestamp(self, key: NonEmptyPersiDictKey) -> float:
        """Always KeyError: there are no items."""
        raise KeyError(key)

    def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """Always KeyError: there are no items."""
        raise KeyError(key)

    def random_key(self) -> SafeStrTuple | None:
        """Always None."""
        return None

    def get_subdict(self, prefix_key: PersiDictKey) -> EmptyDict[ValueType]:
        """Another EmptyDict with the same parameters."""
        SafeStrTuple(prefix_key)
        return EmptyDict(**self.get_params())

    def get_item_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                    expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """The key is always absent."""
        check_retrieve(retrieve_value)
        normalize_key(key)
        return ia_result(check_condition(condition, expected_etag, ITEM_NOT_AVAILABLE))

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Validates like a write, stores nothing; the key stays absent."""
        check_retrieve(retrieve_value)
        self[key] = value
        return ia_result(check_condition(condition, expected_etag, ITEM_NOT_AVAILABLE))

    def setdefault_if(self, key: NonEmptyPersiDictKey, *, default_value: Any,
                      condition: ETagConditionFlag, expected_etag: ETagIfExists,
                      retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Validates the default, stores nothing; the key stays absent."""
        if isinstance(default_value, Joker):
            raise TypeError("default_value must be a regular value, not a Joker command")
        check_retrieve(retrieve_value)
        normalize_key(key)
        self._check_value(default_value)
        return ia_result(check_condition(condition, expected_etag, ITEM_NOT_AVAILABLE))

    def discard_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                   expected_etag: ETagIfExists) -> Result:
        """The key is always absent."""
        normalize_key(key)
        return ia_result(check_condition(condition, expected_etag, ITEM_NOT_AVAILABLE))

    def transform_item(self, key: NonEmptyPersiDictKey, *,
                       transformer: TransformingFunction[Any],
                       n_retries: int | None = 6) -> OperationResult[Any]:
        """Nothing to transform: the transformer is not called."""
        return OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
