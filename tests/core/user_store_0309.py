"""An in-memory store written the way a persidict 0.309 user wrote their own PersiDict subclass.

It implements only what 0.309's PersiDict left abstract (item access, ``__len__``,
``_generic_iter``, ``timestamp``) plus its own ``etag`` and ``get_subdict``, and calls 0.309's
hooks (``_process_setitem_args``, ``_process_generic_iter_args``). Everything else — the rest of
the dict protocol, timestamps views, conditional operations, ``transform_item`` — must come from
the base class. The contract matrix (``tests/conftest.py``) runs it alone and inside the cached
wrappers.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

from persidict import (
    EXECUTION_IS_COMPLETE,
    ETagValue,
    MutationPolicyError,
    NonEmptySafeStrTuple,
    PersiDict,
    SafeStrTuple,
)


class _Memory:
    """The shared data of a store and its sub-stores: full key -> (value, time, etag)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, ...], tuple[Any, float, str]] = {}
        self.versions = itertools.count(1)
        self.lock = threading.Lock()


class RamDict(PersiDict):  # type: ignore[type-arg]
    """A dict in memory, with its own ETags ("v1", "v2", ...), values copied in and out."""

    def __init__(self, *, memory: _Memory | None = None, prefix: tuple[str, ...] = (),
                 append_only: bool = False, base_class_for_values: type | None = None,
                 serialization_format: str = "pkl") -> None:
        super().__init__(append_only=append_only, base_class_for_values=base_class_for_values,
                         serialization_format=serialization_format)
        self.memory = memory if memory is not None else _Memory()
        self.prefix = prefix

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.update(memory=self.memory, prefix=self.prefix)
        return dict(sorted(params.items()))

    def _full(self, key: Any) -> tuple[str, ...]:
        return self.prefix + NonEmptySafeStrTuple(key).strings

    def __contains__(self, key: Any) -> bool:
        return self._full(key) in self.memory.items

    def __getitem__(self, key: Any) -> Any:
        key = NonEmptySafeStrTuple(key)
        try:
            value = self.memory.items[self.prefix + key.strings][0]
        except KeyError:
            raise KeyError(key) from None
        cls = self.base_class_for_values
        if cls is not None and not isinstance(value, cls):
            raise TypeError(f"Value must be an instance of {cls}")
        return copy.deepcopy(value)

    def __setitem__(self, key: Any, value: Any) -> None:
        key = NonEmptySafeStrTuple(key)
        if self._process_setitem_args(key, value) is EXECUTION_IS_COMPLETE:
            return
        full = self.prefix + key.strings
        with self.memory.lock:
            if self.append_only and full in self.memory.items:
                raise MutationPolicyError("append-only")
            version = f"v{next(self.memory.versions)}"
            self.memory.items[full] = (copy.deepcopy(value), time.time(), version)

    def __delitem__(self, key: Any) -> None:
        key = NonEmptySafeStrTuple(key)
        if self.append_only:
            raise MutationPolicyError("append-only")
        try:
            del self.memory.items[self.prefix + key.strings]
        except KeyError:
            raise KeyError(key) from None

    def __len__(self) -> int:
        return sum(1 for _ in self._own())

    def _own(self) -> Iterator[tuple[tuple[str, ...], tuple[Any, float, str]]]:
        n = len(self.prefix)
        for full, entry in list(self.memory.items.items()):
            if full[:n] == self.prefix and len(full) > n:
                yield full[n:], entry

    def _generic_iter(self, result_type: set[str]) -> Iterator[Any]:
        self._process_generic_iter_args(result_type)
        for strings, (value, ts, _) in self._own():
            parts: list[Any] = []
            if "keys" in result_type:
                parts.append(SafeStrTuple(strings))
            if "values" in result_type:
                parts.append(copy.deepcopy(value))
            if "timestamps" in result_type:
                parts.append(ts)
            yield parts[0] if len(parts) == 1 else tuple(parts)

    def _entry(self, key: Any) -> tuple[Any, float, str]:
        key = NonEmptySafeStrTuple(key)
        try:
            return self.memory.items[self.prefix + key.strings]
        except KeyError:
            raise KeyError(key) from None

    def timestamp(self, key: Any) -> float:
        return self._entry(key)[1]

    def etag(self, key: Any) -> ETagValue:
        return ETagValue(self._entry(key)[2])

    def get_subdict(self, prefix_key: Any) -> RamDict:
        return RamDict(memory=self.memory, prefix=self.prefix + SafeStrTuple(prefix_key).strings,
                       append_only=self.append_only,
                       base_class_for_values=self.base_class_for_values,
                       serialization_format=self.serialization_format)
