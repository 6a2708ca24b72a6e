"""Result shapes, condition checks and the transform loop behind every conditional operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ConcurrencyConflictError
from .keys import normalize_key
from .markers import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    ConditionalOperationResult,
    OperationResult,
    RetrieveValueFlag,
)

if TYPE_CHECKING:
    from .persi_dict import PersiDict

__all__ = [
    "Result",
    "check_condition",
    "check_retrieve",
    "deleted_result",
    "ia_result",
    "transform",
    "unchanged_result",
    "wants_value",
    "written_result",
]

Result = ConditionalOperationResult[Any]


# The four result shapes every conditional operation returns (SPEC 3.4).
def ia_result(satisfied: bool) -> Result:
    """Item not available: absent before and after."""
    return ConditionalOperationResult(satisfied, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE,
                                      ITEM_NOT_AVAILABLE)


def unchanged_result(satisfied: bool, etag: Any, value: Any) -> Result:
    """Nothing written: the item keeps ``etag``; ``value`` may be VALUE_NOT_RETRIEVED."""
    return ConditionalOperationResult(satisfied, etag, etag, value)


def written_result(actual: Any, resulting: Any, value: Any) -> Result:
    """A successful write from ``actual`` (IA or old ETag) to ``resulting``."""
    return ConditionalOperationResult(True, actual, resulting, value)


def deleted_result(actual: Any) -> Result:
    """A successful delete of the item that had ETag ``actual``."""
    return ConditionalOperationResult(True, actual, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)


def check_condition(condition: object, expected: object, actual: object) -> bool:
    """Evaluate an ETag condition; ITEM_NOT_AVAILABLE compares like any other ETag."""
    if condition is ANY_ETAG:
        return True
    if condition is ETAG_IS_THE_SAME:
        return bool(expected == actual)
    if condition is ETAG_HAS_CHANGED:
        return bool(expected != actual)
    raise ValueError(
        f"condition must be ANY_ETAG, ETAG_IS_THE_SAME, or ETAG_HAS_CHANGED, got {condition!r}")


def check_retrieve(retrieve_value: object) -> None:
    """Reject anything that is not a retrieval mode."""
    if not isinstance(retrieve_value, RetrieveValueFlag):
        raise TypeError("retrieve_value must be ALWAYS_RETRIEVE, NEVER_RETRIEVE, or "
                        f"IF_ETAG_CHANGED, got {type(retrieve_value).__name__}")


def wants_value(retrieve_value: object, expected: object, actual: object) -> bool:
    """Whether a result should carry the stored value (SPEC 3.3)."""
    if retrieve_value is ALWAYS_RETRIEVE:
        return True
    if retrieve_value is IF_ETAG_CHANGED:
        return bool(expected != actual)
    return False


def transform(store: PersiDict[Any], key: Any, transformer: Callable[[Any], Any],
              n_retries: int | None) -> OperationResult[Any]:
    """The loop behind :meth:`PersiDict.transform_item` (SPEC 4.6): conditional reads and writes
    on the observed ETag, retried with a growing random pause while other writers interfere."""
    k = normalize_key(key)
    if n_retries is not None:
        try:
            n_retries = int(n_retries)
        except (TypeError, ValueError) as exc:
            raise TypeError("n_retries must be a non-negative int or None") from exc
        if n_retries < 0:
            raise ValueError("n_retries must be a non-negative int or None")
    import random
    import time

    retries = 0
    current: Any  # never VALUE_NOT_RETRIEVED: every read here is ALWAYS_RETRIEVE
    r = store.get_item_if(k, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                          retrieve_value=ALWAYS_RETRIEVE)
    current, etag = r.new_value, r.actual_etag
    while True:
        new = transformer(current)
        if new is KEEP_CURRENT:
            return OperationResult(resulting_etag=etag, new_value=current)
        if new is DELETE_CURRENT:
            d = store.discard_if(k, condition=ETAG_IS_THE_SAME, expected_etag=etag)
            if d.condition_was_satisfied:
                return OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
            reread = True
        else:
            w = store.set_item_if(k, value=new, condition=ETAG_IS_THE_SAME,
                                  expected_etag=etag, retrieve_value=ALWAYS_RETRIEVE)
            if w.condition_was_satisfied:
                return OperationResult(w.resulting_etag, new)
            current, etag, reread = w.new_value, w.actual_etag, False
        if n_retries is not None and retries >= n_retries:
            raise ConcurrencyConflictError(k, retries + 1)
        time.sleep(random.uniform(0.01, 0.2) * 1.75 ** retries)
        retries += 1
        if reread:
            r = store.get_item_if(k, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE,
                                  retrieve_value=ALWAYS_RETRIEVE)
            current, etag = r.new_value, r.actual_etag
