"""A store's iteration core in its two shapes, and the translation between them.

persidict 0.309's stores (and subclasses written against it) implement
``_generic_iter(result_type)``: ``result_type`` is a set of ``"keys"``, ``"values"``,
``"timestamps"``; one field gives single items, several give tuples in that order. The
package's own stores implement ``_iterate(with_values, with_timestamps)``, which always yields
``(key, value or None, timestamp or None)``. Each shape is derived from the other here, so every
store has both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from .keys import SafeStrTuple

if TYPE_CHECKING:
    from .persi_dict import PersiDict

__all__ = ["generic_iter_via_iterate", "iterate_via_generic_iter", "process_generic_iter_args"]

_FIELDS: Final = ("keys", "values", "timestamps")


def process_generic_iter_args(result_type: object) -> None:
    """Validate ``_generic_iter``'s argument: a set of 1-3 of keys, values, timestamps."""
    if not isinstance(result_type, set):
        raise TypeError("result_type must be a set of strings")
    if not 1 <= len(result_type) <= 3:
        raise ValueError("result_type can only contain between 1 and 3 elements")
    if not result_type <= set(_FIELDS):
        raise ValueError("result_type can only contain 'keys', 'values', 'timestamps'")


def iterate_via_generic_iter(store: PersiDict[Any], with_values: bool, with_timestamps: bool
                             ) -> Iterator[tuple[SafeStrTuple, Any, float | None]]:
    """The package's ``_iterate`` triples from a 0.309 subclass's ``_generic_iter``."""
    if not with_values and not with_timestamps:
        for k in store._generic_iter({"keys"}):
            yield _as_key(k), None, None
    elif not with_timestamps:
        for k, v in store._generic_iter({"keys", "values"}):
            yield _as_key(k), v, None
    elif not with_values:
        for k, t in store._generic_iter({"keys", "timestamps"}):
            yield _as_key(k), None, t
    else:
        for k, v, t in store._generic_iter({"keys", "values", "timestamps"}):
            yield _as_key(k), v, t


def _as_key(k: Any) -> SafeStrTuple:
    return k if isinstance(k, SafeStrTuple) else SafeStrTuple(k)


def generic_iter_via_iterate(self: PersiDict[Any], result_type: set[str]) -> Iterator[Any]:
    """``_generic_iter`` for the package's own stores, from their ``_iterate``.

    Yields one item when one field is asked for, else a tuple in the order (key, value,
    timestamp), as 0.309 did.
    """
    process_generic_iter_args(result_type)
    wanted = tuple(i for i, name in enumerate(_FIELDS) if name in result_type)
    entries = self._iterate("values" in result_type, "timestamps" in result_type)
    if len(wanted) == 1:
        (i,) = wanted
        return (entry[i] for entry in entries)
    return (tuple(entry[i] for i in wanted) for entry in entries)
