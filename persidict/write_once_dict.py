"""WriteOnceDict: the first write of a key wins; later writes are ignored (and spot-checked)."""

from __future__ import annotations

import numbers
import random
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import MutationPolicyError, OutcomeUnknownError
from .keys import NonEmptyPersiDictKey, PersiDictKey, SafeStrTuple, normalize_key
from .markers import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ETagConditionFlag,
    ETagIfExists,
    Joker,
    RetrieveValueFlag,
    ValueType,
)
from .persi_dict import PersiDict, Result
from .wrapper_dict import WrapperDict, reads_back_exactly

__all__ = ["WriteOnceDict"]

# Bound on the "what differs" part of a consistency-failure message.
_MAX_DIFF_CHARS = 500


def _value_hash(value: Any) -> str:
    """joblib's MD5 hash of a value: strict (``1`` and ``1.0``, int64 and int32 arrays differ)."""
    import joblib  # imported only when a consistency check actually runs

    return str(joblib.hash(value, hash_name="md5"))


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_difference(stored: Any, new: Any) -> str:
    """A bounded, human-readable account of how ``new`` differs from ``stored`` (deepdiff)."""
    try:
        from deepdiff import DeepDiff

        diff = DeepDiff(stored, new)
        text = diff.pretty() if diff else ""
    except Exception as exc:  # deepdiff cannot walk some objects; fall back to reprs
        text = f"(deepdiff failed: {type(exc).__name__})"
    if not text:
        text = (f"the values compare alike but hash differently "
                f"(stored {type(stored).__name__} {_short_repr(stored)}, "
                f"new {type(new).__name__} {_short_repr(new)})")
    text = " ".join(text.split())  # one line, however deepdiff formats it
    if len(text) > _MAX_DIFF_CHARS:
        text = text[: _MAX_DIFF_CHARS - 3] + "..."
    return text


class WriteOnceDict(WrapperDict[ValueType]):
    """A store where each key is written once: the first write wins, later ones are ignored.

    Built for memoisation of deterministic functions: writing the same key again is harmless
    and costs one atomic insert attempt. With probability ``p_consistency_checks`` a repeated
    write is compared (by joblib hash) with the stored value, and a mismatch raises
    ``MutationPolicyError("write-once")`` saying what differs, so a non-deterministic function
    is caught in the act. The stored value never changes.

    The first write goes through the wrapped store's atomic insert-if-absent
    (``setdefault_if``), so on a FileDirDict concurrent writers in several processes have
    exactly one winner.

    Args:
        wrapped_dict: an append-only PersiDict holding the data (default:
            ``FileDirDict(append_only=True)`` in ``./__file_dir_dict__``).
        p_consistency_checks: probability in ``[0, 1]`` that a repeated write is checked
            (None: 0). At 1 every repeated write is checked, reusing the value returned by the
            insert attempt.

    ``set_item_if``, ``del`` and a ``transform_item`` whose transformer returns a new value raise
    ``MutationPolicyError("write-once")``;
    ``discard``, ``pop``, ``popitem`` and ``clear`` raise ``MutationPolicyError("append-only")``.
    ETags are the wrapped store's.
    """

    def __init__(self, *, wrapped_dict: PersiDict[ValueType] | None = None,
                 p_consistency_checks: float | None = None) -> None:
        self._p: float = 0.0
        self._initialised = False
        self.p_consistency_checks = p_consistency_checks  # validated before anything is created
        self._initialised = True
        self._attempted = 0
        self._passed = 0
        if wrapped_dict is None:
            from .file_dir_dict import FileDirDict

            wrapped_dict = FileDirDict(append_only=True)
        if not isinstance(wrapped_dict, PersiDict):
            raise TypeError("wrapped_dict must be a PersiDict instance")
        if wrapped_dict.append_only is not True:
            raise ValueError("wrapped_dict must be append-only")
        super().__init__(main_dict=wrapped_dict, append_only=True)

    # ------------------------------------------------------------------------------ parameters
    @property
    def wrapped_dict(self) -> PersiDict[ValueType]:
        """The append-only store that holds the data."""
        return self._main_dict

    if not TYPE_CHECKING:  # at run time only: type checkers still flag misspelt attributes

        def __getattr__(self, name: str) -> Any:
            # As in 0.309, a public attribute WriteOnceDict lacks is the wrapped store's
            # (``w.base_dir``, ``w.digest_len``...). Private names are never forwarded.
            wrapped = self.__dict__.get("_main_dict")
            if wrapped is None or name.startswith("_"):
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}")
            return getattr(wrapped, name)

    @property
    def p_consistency_checks(self) -> float:
        """Probability that a repeated write is compared with the stored value."""
        return self._p

    @p_consistency_checks.setter
    def p_consistency_checks(self, value: float | None) -> None:
        if value is KEEP_CURRENT:
            if not self._initialised:
                raise ValueError("KEEP_CURRENT cannot be used to initialise p_consistency_checks")
            return
        if value is None:
            value = 0.0
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError("p_consistency_checks must be a number in [0, 1] or None, got "
                            f"{type(value).__name__}")
        if not 0 <= value <= 1:
            raise ValueError(f"p_consistency_checks must be in [0, 1], got {value}.")
        self._p = value

    @property
    def consistency_checks_attempted(self) -> int:
        """How many repeated writes were compared with the stored value."""
        return self._attempted

    @property
    def consistency_checks_passed(self) -> int:
        """How many of those comparisons found the same value."""
        return self._passed

    @property
    def consistency_checks_failed(self) -> int:
        """How many comparisons found a different value (each raised MutationPolicyError)."""
        return self._attempted - self._passed

    def get_params(self) -> dict[str, Any]:
        """``{p_consistency_checks, wrapped_dict}``: the constructor arguments."""
        return {"p_consistency_checks": self._p, "wrapped_dict": self._main_dict}

    def get_subdict(self, prefix_key: PersiDictKey) -> WriteOnceDict[ValueType]:
        """A WriteOnceDict over the wrapped store's sub-store, with the same check probability."""
        return WriteOnceDict(wrapped_dict=self._main_dict.get_subdict(prefix_key),
                             p_consistency_checks=self._p)

    # -------------------------------------------------------------------------------- writes
    def __setitem__(self, key: NonEmptyPersiDictKey, value: ValueType | Joker) -> None:
        k = normalize_key(key)
        if value is KEEP_CURRENT:
            return
        if value is DELETE_CURRENT:
            self._check_delete_policy()
        self._check_value(value)
        p = self._p
        check_all = p >= 1
        try:
            r = self._main_dict.setdefault_if(
                k, default_value=value, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                retrieve_value=ALWAYS_RETRIEVE if check_all else NEVER_RETRIEVE)
        except OutcomeUnknownError:
            # The insert's answer was lost. An append-only key keeps its first value for good,
            # so what it holds now settles it: this value (ours or an identical one), or
            # another writer's, which then goes through the usual consistency check.
            stored = self._main_dict.get(k, ITEM_NOT_AVAILABLE)
            if stored is ITEM_NOT_AVAILABLE:
                raise
            if _value_hash(stored) != _value_hash(value) and (
                    check_all or (p > 0 and random.random() < p)):
                self._check_consistency(k, stored, value)
            return
        if r.value_was_mutated or r.actual_etag is ITEM_NOT_AVAILABLE:
            return  # this write won (or the item vanished, which an append-only store forbids)
        if check_all:
            stored = r.new_value
        elif p > 0 and random.random() < p:
            stored = self._main_dict[k]
        else:
            return
        self._check_consistency(k, stored, value)

    def _check_consistency(self, key: SafeStrTuple, stored: Any, new: Any) -> None:
        self._attempted += 1
        stored_hash = _value_hash(stored)
        if stored_hash == _value_hash(new) or stored_hash == self._hash_as_stored(new):
            self._passed += 1
            return
        raise MutationPolicyError(
            "write-once",
            f"key {tuple(key)!r} already holds a different value, which is kept; "
            f"what differs (stored -> new): {describe_difference(stored, new)}")

    def _hash_as_stored(self, value: Any) -> str | None:
        """Hash of ``value`` as the wrapped store would read it back, if its format changes values.

        json and text files do not give back every value exactly (jsonpickle turns int dict keys
        into strings, text normalises line endings), so a deterministic function's result can
        differ from its stored copy; it is still the same value once stored.
        """
        if reads_back_exactly(self._main_dict):
            return None
        from .serialization import serializer_for

        codec = serializer_for(self.serialization_format)
        try:
            return _value_hash(codec.decode(codec.encode(value)))
        except Exception:  # not representable in this format: cannot be the stored value
            return None

    def _refuse(self, key: NonEmptyPersiDictKey, what: str) -> NoReturn:
        normalize_key(key)  # a bad key is reported as such, before the policy
        raise MutationPolicyError("write-once", f"{what} is not allowed on a WriteOnceDict")

    def set_item_if(self, key: NonEmptyPersiDictKey, *, value: Any,
                    condition: ETagConditionFlag, expected_etag: ETagIfExists,
                    retrieve_value: RetrieveValueFlag = IF_ETAG_CHANGED) -> Result:
        """Always ``MutationPolicyError("write-once")``: items are never overwritten."""
        self._refuse(key, "set_item_if")

    def __delitem__(self, key: NonEmptyPersiDictKey) -> None:
        self._refuse(key, "deleting an item")
