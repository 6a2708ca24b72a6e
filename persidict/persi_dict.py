"""PersiDict: the abstract base of every store. The whole dict API is written here, once.

A store implements item access, ``_generic_iter`` (or the package's ``_iterate``) and
``timestamp``: exactly the methods a persidict 0.309 subclass implements (SPEC 4). Everything
else — ``get``, ``pop``, ``popitem``, ``setdefault``, ``update``, ``discard``, ``etag``, the four
conditional operations, ``transform_item``, the timestamp-ordered views, ``subdicts``,
``random_key``, equality, ``repr`` — builds on that. The package's own stores override the core
with the storage boundary (:class:`~persidict.backend_dict.BackendDict`) or by delegation
(:class:`~persidict.wrapper_dict.WrapperDict`); a 0.309-style subclass gets the defaults below,
whose longer parts live in :mod:`persidict.subclass_protocol`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, MutableMapping
from functools import cached_property
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

# Re-exported (explicitly, for mypy): the stores import these from here.
from .conditions import Result as Result
from .conditions import check_condition as check_condition
from .conditions import check_retrieve as check_retrieve
from .conditions import deleted_result as deleted_result
from .conditions import ia_result as ia_result
from .conditions import transform
from .conditions import unchanged_result as unchanged_result
from .conditions import wants_value as wants_value
from .conditions import written_result as written_result
from .errors import MutationPolicyError
from .iteration import iterate_via_generic_iter, process_generic_iter_args
from .keys import (
    NonEmptyPersiDictKey,
    PersiDictKey,
    SafeStrTuple,
    normalize_key,
)
from .markers import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ConditionalOperationResult,
    ETagConditionFlag,
    ETagIfExists,
    ETagValue,
    ItemNotAvailableFlag,
    Joker,
    OperationResult,
    RetrieveValueFlag,
    TransformingFunction,
    ValueNotRetrievedFlag,
    ValueType,
)
from .store_params import check_store_params

if TYPE_CHECKING:
    from .subclass_protocol import ConditionalOps

__all__ = ["PersiDict"]

_T = TypeVar("_T")

_Entry = tuple[SafeStrTuple, Any, float | None]


class PersiDict(MutableMapping[SafeStrTuple, ValueType], ABC):
    """A persistent, dict-like store keyed by tuples of safe strings.

    Args:
        append_only: if True, items can be added but never changed or deleted.
        base_class_for_values: if set, every stored and read value must be an instance of it.
        serialization_format: ``"pkl"`` (pickle), ``"json"`` (jsonpickle) or, for ``str``
            values only, any other safe name (plain text, used as the file extension).

    Keys may be given as a ``str``, a sequence of strings (nested allowed) or a
    :class:`SafeStrTuple`; they are normalised to a :class:`NonEmptySafeStrTuple`. Bad keys raise
    ``ValueError`` (unsafe characters, empty, ``.``/``..``, too long) or ``TypeError``.
    """

    def __init__(self, *, append_only: bool = False, base_class_for_values: type | None = None,
                 serialization_format: str = "pkl") -> None:
        check_store_params(append_only, base_class_for_values, serialization_format)
        self._append_only = append_only
        self.base_class_for_values = base_class_for_values
        self.serialization_format = serialization_format

    # ----------------------------------------------------------------- parameters and identity
    @property
    def append_only(self) -> bool:
        """True if items can be added but never changed or deleted."""
        return self._append_only

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments that rebuild an equivalent store, sorted by name."""
        return {"append_only": self._append_only,
                "base_class_for_values": self.base_class_for_values,
                "serialization_format": self.serialization_format}

    def clone(self, **overrides: Any) -> PersiDict[ValueType]:
        """A new store built from :meth:`get_params` with ``overrides`` applied.

        Like ``copy.copy``, the clone is a new handle on the same storage unless an override
        points it elsewhere (e.g. ``d.clone(base_dir="other")``).
        """
        unknown = set(overrides) - set(self.get_params())
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.clone() got unknown parameters {sorted(unknown)}")
        return type(self)(**{**self.get_params(), **overrides})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(self.get_params().items()))
        return f"{type(self).__name__}({params})"

    def __str__(self) -> str:
        return str(dict(self.items()))

    def __copy__(self) -> PersiDict[ValueType]:
        return type(self)(**self.get_params())

    def __getstate__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} instances cannot be pickled. "
                        "To persist configuration, use get_params().")

    def __setstate__(self, state: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} instances cannot be unpickled. "
                        "Recreate from parameters instead.")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self.__getstate__()

    # ---------------------------------------------------------------------- validation helpers
    def _check_value(self, value: Any) -> None:
        """Checks every value must pass before it is written."""
        if isinstance(value, PersiDict):
            raise TypeError("Cannot store a PersiDict instance directly")
        if isinstance(value, (ItemNotAvailableFlag, ValueNotRetrievedFlag)):
            raise TypeError(f"{value!r} is a status marker and cannot be stored as a value")
        cls = self.base_class_for_values
        if cls is not None and not isinstance(value, cls):
            raise TypeError(f"Value must be an instance of {cls.__name__}, "
                            f"but it is {type(value).__name__} instead.")

    def _check_read_value(self, value: Any) -> Any:
        cls = self.base_class_for_values
        if cls is not None and not isinstance(value, cls):
            raise TypeError(f"Value must be an instance of {cls.__name__}, "
                            f"but it is {type(value).__name__} instead.")
        return value

    def _check_delete_policy(self) -> None:
        if self._append_only:
            raise MutationPolicyError("append-only", "items of an append-only store cannot be "
                                      "deleted or changed")

    # ------------------------------------------------------------- the core (abstract, as in 0.309)
    @abstractmethod
    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType: ...

    @abstractmethod
    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None: ...

    @abstractmethod
    def __delitem__(self, key: NonEmptyPersiDictKey) -> None: ...

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _generic_iter(self, result_type: set[str]) -> Iterator[Any]:
        """Iterate over ``result_type`` (a set of ``"keys"``, ``"values"``, ``"timestamps"``).

        Yields a single item when one field is asked for, else a tuple in the order (key,
        value, timestamp). The package's stores derive it from :meth:`_iterate`.
        """

    @abstractmethod
    def timestamp(self, key: NonEmptyPersiDictKey) -> float:
        """POSIX time of the item's last write (KeyError if absent)."""

    # ------------------------------------------ defaults: what a 0.309-style subclass inherits
    # The package's own stores override all of these (with single consistent reads and
    # compare-and-swaps on the storage boundary); a subclass written against persidict 0.309
    # gets them as 0.309 defined them (SPEC 4.4-4.7).
    def _iterate(self, with_values: bool, with_timestamps: bool) -> Iterator[_Entry]:
        """Yield ``(key, value or None, timestamp or None)`` for every item."""
        return iterate_via_generic_iter(self, with_values, with_timestamps)

    def _remove_item(self, key: SafeStrTuple) -> bool:
        """Delete one item without policy checks; False if it was absent."""
        try:
            del self[key]
        except KeyError:
            return False
        return True

    def etag(self, key: NonEmptyPersiDictKey) -> ETagValue:
        """The item's current ETag, an opaque string that changes on every write.

        The default (0.309's) is the formatted timestamp; stores override it with real ETags.
        """
        return ETagValue(f"{self.timestamp(key):.6f}")

    def _actual_etag(self, key: NonEmptyPersiDictKey) -> ETagIfExists:
        """The item's ETag, or ITEM_NOT_AVAILABLE if absent."""
        try:
            return self.etag(key)
        except KeyError:
            absent: ItemNotAvailableFlag = ITEM_NOT_AVAILABLE
            return absent

    def _get_value_and_etag(self, key: NonEmptyPersiDictKey) -> tuple[ValueType, ETagValue]:
        """The value and the ETag describing it (0.309: ETag, value, ETag until they agree)."""
        from .subclass_protocol import get_value_and_etag

        return get_value_and_etag(self, key)

    def _process_setitem_args(self, key: NonEmptyPersiDictKey, value: Any) -> Any:
        """The checks every ``__setitem__`` starts with (0.309's hook for subclasses).

        ``KEEP_CURRENT`` -> ``EXECUTION_IS_COMPLETE``; otherwise validates (append-only and
        ``DELETE_CURRENT``, the value type, the key); ``DELETE_CURRENT`` is carried out
        (``discard``) -> ``EXECUTION_IS_COMPLETE``; anything else ->
        ``CONTINUE_NORMAL_EXECUTION``: the caller writes (and enforces append-only itself).
        """
        from .subclass_protocol import process_setitem_args

        return process_setitem_args(self, key, value)

    @staticmethod
    def _process_generic_iter_args(result_type: object) -> None:
        """Validate ``result_type``: a ``set`` of 1-3 of ``"keys"``, ``"values"``,
        ``"timestamps"`` (TypeError / ValueError)."""
        process_generic_iter_args(result_type)

    @cached_property
    def _conditional_ops(self) -> ConditionalOps:
        from .subclass_protocol import ConditionalOps

        return ConditionalOps(self)

    def get_item_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                    expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Read conditionally; never mutates. The value comes back even if the condition fails."""
        return self._conditional_ops.get_item_if(key, condition=condition,
                                                 expected_etag=expected_etag,
                                                 retrieve_value=retrieve_value)

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Write ``value`` (or a joker) only if the condition holds on the actual ETag."""
        return self._conditional_ops.set_item_if(key, value=value, condition=condition,
                                                 expected_etag=expected_etag,
                                                 retrieve_value=retrieve_value)

    def setdefault_if(self, key: NonEmptyPersiDictKey, *, default_value: Any,
                      condition: ETagConditionFlag, expected_etag: ETagIfExists,
                      retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Insert ``default_value`` if the key is absent and the condition holds."""
        return self._conditional_ops.setdefault_if(key, default_value=default_value,
                                                   condition=condition,
                                                   expected_etag=expected_etag,
                                                   retrieve_value=retrieve_value)

    def discard_if(self, key: NonEmptyPersiDictKey, *, condition: ETagConditionFlag,
                   expected_etag: ETagIfExists) -> Result:
        """Delete the item only if the condition holds on its actual ETag."""
        return self._conditional_ops.discard_if(key, condition=condition,
                                                expected_etag=expected_etag)

    def _write_tagged(self, key: SafeStrTuple, value: Any) -> ETagIfExists:
        """``self[key] = value`` for a regular value, returning the ETag of this very write.

        For caches that record the ETag of what they wrote (``MutableDictCached``). Unlike
        ``set_item_if`` it does not report the previous ETag, so a store may override it with
        a single unconditional write (``BackendDict`` does). ``ITEM_NOT_AVAILABLE``: unknown.
        """
        r = self.set_item_if(key, value=value, condition=ANY_ETAG,
                             expected_etag=ITEM_NOT_AVAILABLE, retrieve_value=NEVER_RETRIEVE)
        return r.resulting_etag

    def get_subdict(self, prefix_key: PersiDictKey) -> PersiDict[ValueType]:
        """A store of the same kind over the keys that start with ``prefix_key``."""
        raise NotImplementedError(f"{type(self).__name__} does not support get_subdict()")

    # -------------------------------------------------------------------------- dict protocol
    def __iter__(self) -> Iterator[SafeStrTuple]:
        return self.keys()

    def keys(self) -> Iterator[SafeStrTuple]:  # type: ignore[override]
        """A generator of every key (a new traversal on each call)."""
        return (k for k, _, _ in self._iterate(False, False))

    def values(self) -> Iterator[ValueType]:  # type: ignore[override]
        """A generator of every value."""
        return (v for _, v, _ in self._iterate(True, False))

    def items(self) -> Iterator[tuple[SafeStrTuple, ValueType]]:  # type: ignore[override]
        """A generator of ``(key, value)`` pairs."""
        return ((k, v) for k, v, _ in self._iterate(True, False))

    def keys_and_timestamps(self) -> Iterator[tuple[SafeStrTuple, float]]:
        """A generator of ``(key, timestamp)`` pairs."""
        return ((k, t) for k, _, t in self._iterate(False, True))  # type: ignore[misc]

    def values_and_timestamps(self) -> Iterator[tuple[ValueType, float]]:
        """A generator of ``(value, timestamp)`` pairs."""
        return ((v, t) for _, v, t in self._iterate(True, True))  # type: ignore[misc]

    def items_and_timestamps(self) -> Iterator[tuple[SafeStrTuple, ValueType, float]]:
        """A generator of ``(key, value, timestamp)`` triples."""
        return ((k, v, t) for k, v, t in self._iterate(True, True))  # type: ignore[misc]

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Mapping):
            return NotImplemented
        if type(self) is type(other) and self.get_params() == other.get_params():
            return True
        try:
            for mine, theirs in zip_longest(self.keys(), other.items(), fillvalue=None):
                if mine is None or theirs is None:
                    return False
                if self[theirs[0]] != theirs[1]:
                    return False
        except (KeyError, TypeError, AttributeError, ValueError):
            return False
        return True

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    def __ior__(self, other: Any) -> PersiDict[ValueType]:
        if not isinstance(other, Mapping):
            raise TypeError(f"Cannot update PersiDict with non-Mapping type: {type(other)}")
        self.update(other)
        return self

    @overload
    def get(self, key: NonEmptyPersiDictKey, /) -> ValueType | None: ...
    @overload
    def get(self, key: NonEmptyPersiDictKey, default: ValueType | _T, /) -> ValueType | _T: ...

    def get(self, key: NonEmptyPersiDictKey, default: Any = None) -> Any:
        """The value of ``key`` (a str or a tuple of str), or ``default`` if it is absent."""
        try:
            return self[key]
        except KeyError:
            return default

    @overload
    def setdefault(self, key: NonEmptyPersiDictKey, default: None = None) -> ValueType | None: ...
    @overload
    def setdefault(self, key: NonEmptyPersiDictKey, default: ValueType) -> ValueType: ...

    def setdefault(self, key: NonEmptyPersiDictKey, default: Any = None) -> Any:
        """Return the value of ``key``, inserting ``default`` first if absent (insert-if-absent)."""
        if isinstance(default, Joker):
            raise TypeError("default must be a regular value, not a Joker command")
        r = self.setdefault_if(key, default_value=default, condition=ANY_ETAG,
                               expected_etag=ITEM_NOT_AVAILABLE, retrieve_value=ALWAYS_RETRIEVE)
        return default if r.value_was_mutated else r.new_value

    @overload
    def pop(self, key: NonEmptyPersiDictKey, /) -> ValueType: ...
    @overload
    def pop(self, key: NonEmptyPersiDictKey, default: ValueType | _T, /) -> ValueType | _T: ...

    def pop(self, key: NonEmptyPersiDictKey, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``); one read + a conditional delete."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {len(default) + 1}")
        self._check_delete_policy()
        k = normalize_key(key)
        grabbed: list[Any] = []

        def grab_and_delete(current: Any) -> Any:
            grabbed[:] = [current]
            return KEEP_CURRENT if current is ITEM_NOT_AVAILABLE else DELETE_CURRENT

        self.transform_item(k, transformer=grab_and_delete)
        if grabbed and grabbed[0] is not ITEM_NOT_AVAILABLE:
            return grabbed[0]
        if default:
            return default[0]
        raise KeyError(k)

    def popitem(self) -> tuple[SafeStrTuple, ValueType]:
        """Remove and return some ``(key, value)`` pair; KeyError if empty."""
        self._check_delete_policy()
        for key in self.keys():
            try:
                return key, self.pop(key)
            except KeyError:
                continue
        raise KeyError("dictionary is empty")

    def clear(self) -> None:
        """Delete every item (MutationPolicyError on append-only stores)."""
        self._check_delete_policy()
        from .subclass_protocol import remove_item

        for key in list(self.keys()):
            remove_item(self, key)

    def discard(self, key: NonEmptyPersiDictKey) -> bool:
        """Delete ``key`` if present; True if something was deleted."""
        self._check_delete_policy()
        k = normalize_key(key)
        try:
            removed = self._remove_item(k)
        except KeyError:  # a 0.309-style _remove_item: ``del self[key]``
            return False
        return removed is not False

    delete_if_exists = discard

    # ---------------------------------------------------------------------- extra operations
    def get_with_etag(self, key: NonEmptyPersiDictKey) -> ConditionalOperationResult[ValueType]:
        """The value and its ETag from one consistent read."""
        return self.get_item_if(key, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                                retrieve_value=ALWAYS_RETRIEVE)

    def transform_item(self, key: NonEmptyPersiDictKey, *,
                       transformer: TransformingFunction[ValueType | ItemNotAvailableFlag],
                       n_retries: int | None = 6) -> OperationResult[ValueType]:
        """Read-modify-write with optimistic concurrency: retried while other writers interfere.

        ``transformer(current)`` gets the current value (ITEM_NOT_AVAILABLE if absent) and returns
        the new value, KEEP_CURRENT or DELETE_CURRENT. It may be called several times. Atomic
        when the backend's conditional writes are (S3, memory; files are check-then-act).
        """
        return transform(self, key, transformer, n_retries)

    def _sorted_keys(self, max_n: int | None, newest: bool) -> list[SafeStrTuple]:
        if max_n is not None and max_n <= 0:
            return []
        pairs = self.keys_and_timestamps()
        if max_n is None:
            return [k for k, _ in sorted(pairs, key=lambda p: p[1], reverse=newest)]
        import heapq

        pick = heapq.nlargest if newest else heapq.nsmallest
        return [k for k, _ in pick(max_n, pairs, key=lambda p: p[1])]

    def oldest_keys(self, *, max_n: int | None = None) -> list[SafeStrTuple]:
        """Keys from the oldest to the newest write (at most ``max_n``)."""
        return self._sorted_keys(max_n, newest=False)

    def newest_keys(self, *, max_n: int | None = None) -> list[SafeStrTuple]:
        """Keys from the newest to the oldest write (at most ``max_n``)."""
        return self._sorted_keys(max_n, newest=True)

    def oldest_values(self, *, max_n: int | None = None) -> list[ValueType]:
        """Values of :meth:`oldest_keys`."""
        return [self[k] for k in self.oldest_keys(max_n=max_n)]

    def newest_values(self, *, max_n: int | None = None) -> list[ValueType]:
        """Values of :meth:`newest_keys`."""
        return [self[k] for k in self.newest_keys(max_n=max_n)]

    def subdicts(self) -> dict[str, PersiDict[ValueType]]:
        """One sub-store per distinct first key component."""
        firsts = dict.fromkeys(k[0] for k in self.keys())
        return {name: self.get_subdict(name) for name in firsts}

    def random_key(self) -> SafeStrTuple | None:
        """A uniformly random key (reservoir sampling over one listing), None if empty."""
        import random

        chosen: SafeStrTuple | None = None
        for i, key in enumerate(self.keys(), start=1):
            if random.random() * i < 1.0:
                chosen = key
        return chosen

