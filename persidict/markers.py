"""Singleton markers (jokers, conditions, retrieval modes, sentinels) and operation results.

Every marker class has exactly one instance: calling the class again, ``copy``, ``deepcopy`` and
pickling all give back that same object, so markers are always tested with ``is``.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    NewType,
    Protocol,
    TypeVar,
    Union,
    runtime_checkable,
)

__all__ = [
    "ALWAYS_RETRIEVE",
    "ANY_ETAG",
    "DELETE_CURRENT",
    "ETAG_HAS_CHANGED",
    "ETAG_IS_THE_SAME",
    "IF_ETAG_CHANGED",
    "ITEM_NOT_AVAILABLE",
    "KEEP_CURRENT",
    "NEVER_RETRIEVE",
    "VALUE_NOT_RETRIEVED",
    "AlwaysRetrieveFlag",
    "AnyETagFlag",
    "ConditionalOperationResult",
    "DeleteCurrentFlag",
    "ETagConditionFlag",
    "ETagHasChangedFlag",
    "ETagIfExists",
    "ETagIsTheSameFlag",
    "ETagValue",
    "IfETagChangedRetrieveFlag",
    "ItemNotAvailableFlag",
    "Joker",
    "KeepCurrentFlag",
    "NeverRetrieveFlag",
    "OperationResult",
    "RetrieveValueFlag",
    "TransformingFunction",
    "ValueNotRetrievedFlag",
    "ValueType",
]


class _Singleton:
    """Base of all markers: one instance per concrete class, identity kept by copy and pickle."""

    __slots__ = ()
    _instance: ClassVar[Any] = None

    def __new__(cls) -> Any:
        inst = cls.__dict__.get("_instance")
        if inst is None:
            inst = super().__new__(cls)
            cls._instance = inst
        return inst

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Any:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), ())

    def get_params(self) -> dict[str, Any]:
        """Markers have no parameters (kept for API compatibility)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({{}})"

    __str__ = __repr__


class Joker(_Singleton):
    """A command value: assigning it to a key acts on the current value instead of storing it."""

    __slots__ = ()


class KeepCurrentFlag(Joker):
    """``d[k] = KEEP_CURRENT`` leaves the current value (or absence) exactly as it is."""

    __slots__ = ()


class DeleteCurrentFlag(Joker):
    """``d[k] = DELETE_CURRENT`` deletes the item if it exists, like :meth:`PersiDict.discard`."""

    __slots__ = ()


class StatusFlag(_Singleton):
    """Base of the answers of :meth:`PersiDict._process_setitem_args` (the 0.309 subclass hook)."""

    __slots__ = ()


class ContinueNormalExecutionFlag(StatusFlag):
    """The write still has to be done by the caller."""

    __slots__ = ()


class ExecutionIsCompleteFlag(StatusFlag):
    """Nothing more to do: the joker was handled (``KEEP_CURRENT``, ``DELETE_CURRENT``)."""

    __slots__ = ()


class ItemNotAvailableFlag(_Singleton):
    """Stands for "no such item": the ETag and value of an absent key."""

    __slots__ = ()


class ValueNotRetrievedFlag(_Singleton):
    """Stands for a value that exists but was deliberately not fetched."""

    __slots__ = ()


class ETagConditionFlag(_Singleton):
    """Base of the conditions a conditional operation checks before acting."""

    __slots__ = ()


class AnyETagFlag(ETagConditionFlag):
    """Unconditional: the condition always holds."""

    __slots__ = ()


class ETagIsTheSameFlag(ETagConditionFlag):
    """Holds when the actual ETag equals the expected one (IA == IA means "absent")."""

    __slots__ = ()


class ETagHasChangedFlag(ETagConditionFlag):
    """Holds when the actual ETag differs from the expected one."""

    __slots__ = ()


class RetrieveValueFlag(_Singleton):
    """Base of the modes that say whether a conditional operation returns the stored value."""

    __slots__ = ()


class AlwaysRetrieveFlag(RetrieveValueFlag):
    """Always return the stored value."""

    __slots__ = ()


class NeverRetrieveFlag(RetrieveValueFlag):
    """Never fetch or deserialise the stored value (``VALUE_NOT_RETRIEVED`` comes back)."""

    __slots__ = ()


class IfETagChangedRetrieveFlag(RetrieveValueFlag):
    """Return the value only when the actual ETag differs from the expected one."""

    __slots__ = ()


KEEP_CURRENT = KeepCurrentFlag()
DELETE_CURRENT = DeleteCurrentFlag()
CONTINUE_NORMAL_EXECUTION = ContinueNormalExecutionFlag()
EXECUTION_IS_COMPLETE = ExecutionIsCompleteFlag()
ITEM_NOT_AVAILABLE = ItemNotAvailableFlag()
VALUE_NOT_RETRIEVED = ValueNotRetrievedFlag()
ANY_ETAG = AnyETagFlag()
ETAG_IS_THE_SAME = ETagIsTheSameFlag()
ETAG_HAS_CHANGED = ETagHasChangedFlag()
ALWAYS_RETRIEVE = AlwaysRetrieveFlag()
NEVER_RETRIEVE = NeverRetrieveFlag()
IF_ETAG_CHANGED = IfETagChangedRetrieveFlag()

ETagValue = NewType("ETagValue", str)
ETagIfExists = Union[ETagValue, ItemNotAvailableFlag]  # noqa: UP007 (a typing.Union, as upstream)
if TYPE_CHECKING:
    from typing_extensions import TypeVar as _TypeVar

    # The default (PEP 696) makes an unannotated ``FileDirDict(base_dir=...)`` a
    # ``FileDirDict[Any]`` under mypy --strict instead of asking for an annotation.
    ValueType = _TypeVar("ValueType", default=Any)
else:
    ValueType = TypeVar("ValueType")
_T_contra = TypeVar("_T_contra", contravariant=True)


@runtime_checkable
class TransformingFunction(Protocol[_T_contra]):
    """A function given to :meth:`PersiDict.transform_item`: current value in, new value out.

    It receives ``ITEM_NOT_AVAILABLE`` for an absent key and may return ``KEEP_CURRENT`` or
    ``DELETE_CURRENT``.
    """

    def __call__(self, current: _T_contra, /) -> Any: ...


class _Result(Generic[ValueType]):
    """A frozen record: equality, hash, pickling and a dataclass-like repr over ``__slots__``.

    (Hand-written instead of ``@dataclass(frozen=True)``: importing ``dataclasses`` costs more
    than the rest of ``import persidict``.)
    """

    __slots__: tuple[str, ...] = ()

    def _astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._astuple()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._astuple())


class OperationResult(_Result[ValueType]):
    """What :meth:`PersiDict.transform_item` did: the resulting ETag and value (IA if deleted)."""

    __slots__ = ("resulting_etag", "new_value")  # noqa: RUF023 (field order = positional order)
    resulting_etag: ETagValue | ItemNotAvailableFlag
    new_value: ValueType | ItemNotAvailableFlag

    def __init__(self, resulting_etag: ETagValue | ItemNotAvailableFlag,
                 new_value: ValueType | ItemNotAvailableFlag) -> None:
        object.__setattr__(self, "resulting_etag", resulting_etag)
        object.__setattr__(self, "new_value", new_value)


class ConditionalOperationResult(_Result[ValueType]):
    """Outcome of a conditional operation.

    Attributes:
        condition_was_satisfied: whether the ETag condition held.
        actual_etag: the ETag the item had when the condition was checked (IA if absent).
        resulting_etag: the ETag after the operation (IA if absent afterwards).
        new_value: the value after the operation, ``VALUE_NOT_RETRIEVED`` when not fetched,
            or ``ITEM_NOT_AVAILABLE`` when there is none.
    """

    __slots__ = ("condition_was_satisfied", "actual_etag", "resulting_etag", "new_value")  # noqa: RUF023
    condition_was_satisfied: bool
    actual_etag: ETagValue | ItemNotAvailableFlag
    resulting_etag: ETagValue | ItemNotAvailableFlag
    new_value: ValueType | ItemNotAvailableFlag | ValueNotRetrievedFlag

    def __init__(self, condition_was_satisfied: bool,
                 actual_etag: ETagValue | ItemNotAvailableFlag,
                 resulting_etag: ETagValue | ItemNotAvailableFlag,
                 new_value: ValueType | ItemNotAvailableFlag | ValueNotRetrievedFlag) -> None:
        object.__setattr__(self, "condition_was_satisfied", condition_was_satisfied)
        object.__setattr__(self, "actual_etag", actual_etag)
        object.__setattr__(self, "resulting_etag", resulting_etag)
        object.__setattr__(self, "new_value", new_value)

    @property
    def value_was_mutated(self) -> bool:
        """True when the operation changed the stored item (its ETag changed)."""
        return self.resulting_etag != self.actual_etag
