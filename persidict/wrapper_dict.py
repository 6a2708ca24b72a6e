"""WrapperDict: the base of every store that wraps another store.

A wrapper is a PersiDict around a PersiDict, kept in one attribute, ``_main_dict``. Every core
operation is delegated to it *explicitly* (there is no ``__getattr__`` forwarding), so the
wrapper's public surface is exactly the PersiDict API and a subclass overrides only what its
policy or cache changes. The ETags a wrapper reports are the wrapped store's own (never a
timestamp-derived stand-in), so ETags read through a wrapper can be used in conditional
operations on the wrapped store and vice versa.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .keys import NonEmptyPersiDictKey, SafeStrTuple, normalize_key
from .local_dict import LocalDict
from .markers import (
    IF_ETAG_CHANGED,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    RetrieveValueFlag,
    ValueType,
)
from .persi_dict import PersiDict, Result

__all__ = ["WrapperDict", "check_store", "reads_back_exactly", "same_round_trip"]


def check_store(store: object, name: str) -> PersiDict[Any]:
    """Return ``store`` if it is a PersiDict, else ``TypeError(f"{name} must be a PersiDict")``."""
    if not isinstance(store, PersiDict):
        raise TypeError(f"{name} must be a PersiDict")
    return store


def _round_trip(store: PersiDict[Any]) -> str:
    """What reading back a value written to ``store`` gives, as a comparable tag.

    Memory stores hand back (a copy of) the very value, and so does pickle; other formats turn
    some values into others (jsonpickle turns int dict keys into strings, text normalises line
    endings), so a value can be served from a cache in place of a read of the main store only if
    both stores transform values the same way.
    """
    if isinstance(store, LocalDict) or store.serialization_format == "pkl":
        return "exact"
    return store.serialization_format


def reads_back_exactly(store: PersiDict[Any]) -> bool:
    """True if ``store`` gives back (a copy of) exactly the value written to it."""
    return _round_trip(store) == "exact"


def same_round_trip(main: PersiDict[Any], cache: PersiDict[Any]) -> bool:
    """True if a value read back from ``cache`` always equals one read back from ``main``."""
    return _round_trip(main) == _round_trip(cache)


class WrapperDict(PersiDict[ValueType]):
    """A PersiDict that delegates its whole core to another PersiDict, ``self._main_dict``.

    Subclasses pass the wrapped store and the policy (``append_only``) they enforce; the value
    type and serialization format are the wrapped store's. Policies stay where the base class
    keeps them (:meth:`PersiDict._check_delete_policy`, :meth:`PersiDict._check_value`), plus the
    one extra refusal a subclass adds.
    """

    _main_dict: PersiDict[ValueType]

    def __init__(self, *, main_dict: PersiDict[ValueType], append_only: bool) -> None:
        super().__init__(append_only=append_only,
                         base_class_for_values=main_dict.base_class_for_values,
                         serialization_format=main_dict.serialization_format)
        self._main_dict = main_dict

    # ------------------------------------------------------------------------ delegated core
    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        return self._main_dict[key]

    def __setitem__(self, key: NonEmptyPersiDictKey, value: Any) -> None:
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
