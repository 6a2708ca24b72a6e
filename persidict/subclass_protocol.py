"""The persidict 0.309 subclass protocol: a user's own PersiDict subclass gets the whole API.

Code written against 0.309 extends persidict by subclassing :class:`~persidict.PersiDict` and
implementing item access (``__getitem__``, ``__setitem__``, ``__delitem__``, ``__contains__``,
``__len__``), ``_generic_iter(result_type)`` and ``timestamp`` (usually ``etag`` too). The rest of
the API comes from the base class; this module supplies the parts that need more than a few lines:

* :class:`ItemBackend` presents such a subclass's item methods as a
  :class:`~persidict.storage.Backend` (every conditional primitive is check-then-act on
  ``etag()``, exactly SPEC 4.5's algorithms);
* :class:`ConditionalOps` runs :class:`~persidict.backend_dict.BackendDict`'s conditional
  operations over it, so they are written once, for every store;
* the 0.309 hooks such subclasses call (``_process_setitem_args``, ``_get_value_and_etag``)
  and a ``_remove_item`` that 0.309 overrides may implement either way.

(The translation between 0.309's ``_generic_iter`` and the package's ``_iterate`` is in
:mod:`persidict.iteration`.)

The package's own stores never go through this module: they implement the storage boundary
(see ``docs/writing-a-backend.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from .backend_dict import BackendDict
from .errors import ConcurrencyConflictError, MutationPolicyError
from .keys import SafeStrTuple, normalize_key
from .markers import (
    CONTINUE_NORMAL_EXECUTION,
    DELETE_CURRENT,
    EXECUTION_IS_COMPLETE,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    ETagValue,
    ItemNotAvailableFlag,
    Joker,
)
from .serialization import Serializer
from .storage import NOT_MODIFIED, Backend, IfMatch, Key, NotModified, Stat

if TYPE_CHECKING:
    from .persi_dict import PersiDict

__all__ = [
    "ConditionalOps",
    "ItemBackend",
    "get_value_and_etag",
    "process_setitem_args",
    "remove_item",
]

_VALUE_AND_ETAG_ATTEMPTS: Final = 3
_NO_TIME: Final = float("nan")  # conditional operations look at ETags only, never at mtimes


# ------------------------------------------------------------------------------ 0.309 hooks
def process_setitem_args(store: PersiDict[Any], key: Any, value: Any) -> Any:
    """``_process_setitem_args`` with 0.309's meaning (SPEC 4.7); see :class:`PersiDict`."""
    if value is KEEP_CURRENT:
        return EXECUTION_IS_COMPLETE
    if value is DELETE_CURRENT:
        store._check_delete_policy()
    elif not isinstance(value, Joker):
        store._check_value(value)
    k = normalize_key(key)
    if value is DELETE_CURRENT:
        store.discard(k)
        return EXECUTION_IS_COMPLETE
    return CONTINUE_NORMAL_EXECUTION


def remove_item(store: PersiDict[Any], key: SafeStrTuple) -> bool:
    """``store._remove_item(key)`` as a bool, whichever convention the store follows.

    The package's stores return False for an absent key; a 0.309 subclass's override (like
    0.309's own default, ``del self[key]``) raises KeyError and returns None.
    """
    try:
        removed = store._remove_item(key)
    except KeyError:
        return False
    return removed is not False


def get_value_and_etag(store: PersiDict[Any], key: Any) -> tuple[Any, ETagValue]:
    """0.309's consistent read: ETag, value, ETag again, until both ETags agree (3 tries)."""
    for _ in range(_VALUE_AND_ETAG_ATTEMPTS):
        before = store.etag(key)
        value = store[key]
        if store.etag(key) == before:
            return value, before
    raise ConcurrencyConflictError(normalize_key(key), _VALUE_AND_ETAG_ATTEMPTS)


# ------------------------------------------------------------------- the storage boundary
class ItemBackend(Backend):
    """A PersiDict's own item methods seen through the storage boundary.

    Payloads are the values themselves. Conditional writes and deletes check ``etag()`` and
    then act through the store's ``__setitem__`` / ``_remove_item`` (not atomic, as in 0.309);
    reads use the store's ``_get_value_and_etag``. Stats carry the ETag only.
    """

    name = "subclass"

    def __init__(self, store: PersiDict[Any]) -> None:
        self.store = store

    def stat(self, key: Key) -> Stat | None:
        etag = self.store._actual_etag(key)
        return None if isinstance(etag, ItemNotAvailableFlag) else Stat(etag, _NO_TIME)

    def exists(self, key: Key) -> bool:
        return key in self.store

    def read(self, key: Key, *, if_none_match: str | None = None
             ) -> tuple[Any, Stat] | NotModified | None:
        if if_none_match is not None and self.store._actual_etag(key) == if_none_match:
            return NOT_MODIFIED
        try:
            value, etag = self.store._get_value_and_etag(key)
        except KeyError:
            return None
        return value, Stat(etag, _NO_TIME)

    def _precondition_holds(self, key: Key, if_match: IfMatch) -> bool:
        if if_match is None:
            return True
        actual = self.store._actual_etag(key)
        if if_match is ITEM_NOT_AVAILABLE:
            return actual is ITEM_NOT_AVAILABLE
        return actual is not ITEM_NOT_AVAILABLE and actual == if_match

    def write(self, key: Key, payload: Any, *, if_match: IfMatch = None) -> Stat | None:
        if not self._precondition_holds(key, if_match):
            return None
        try:
            self.store[key] = payload
        except MutationPolicyError:
            if if_match is ITEM_NOT_AVAILABLE:  # an append-only store: someone else won
                return None
            raise
        return Stat(self.store._actual_etag(key), _NO_TIME)  # type: ignore[arg-type]

    def delete(self, key: Key, *, if_match: str | None = None) -> bool:
        if not self._precondition_holds(key, if_match):
            return False
        return remove_item(self.store, SafeStrTuple._from_valid(key))

    def scan(self, *, with_stat: bool = False) -> Iterator[tuple[Key, Stat | None]]:
        for k in self.store:
            if not with_stat:
                yield k.strings, None
                continue
            st = self.stat(k.strings)
            if st is not None:
                yield k.strings, st

    def count(self) -> int:
        return len(self.store)

    def describe(self) -> str:
        return f"{type(self.store).__name__} (a PersiDict subclass)"


class _AsIs(Serializer):
    """Values stay values: the store's own ``__setitem__`` / ``__getitem__`` handle them."""

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, payload: Any) -> Any:
        return payload


_AS_IS: Final = _AsIs()


class ConditionalOps(BackendDict[Any]):
    """The package's conditional operations over a store's own item methods.

    :class:`PersiDict`'s default ``get_item_if``, ``set_item_if``, ``setdefault_if`` and
    ``discard_if`` delegate to one of these, built on first use. Policies (append-only, the
    value type) are the store's.
    """

    def __init__(self, store: PersiDict[Any]) -> None:
        super().__init__(backend=ItemBackend(store), append_only=store.append_only,
                         base_class_for_values=store.base_class_for_values,
                         serialization_format=store.serialization_format)
        self._serializer = _AS_IS

    def _make_subdict(self, prefix: SafeStrTuple) -> BackendDict[Any]:
        raise NotImplementedError("ConditionalOps is a view, not a store")
