"""LocalDict: an in-memory store with the full PersiDict API (tests, caches, scratch data)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from .backend_dict import BackendDict
from .keys import NonEmptyPersiDictKey, SafeStrTuple, normalize_key
from .markers import ITEM_NOT_AVAILABLE, ValueType
from .serialization import CopySerializer, Pickled
from .storage import NOT_MODIFIED, Backend, IfMatch, Key, NotModified, Stat

__all__ = ["LocalDict", "MemoryStorage"]


class _Entry(NamedTuple):
    payload: Any
    stat: Stat


class _SharedMemory:
    """The data of one family of LocalDicts: every format's items, one ETag counter."""

    __slots__ = ("buckets", "counter", "last_time", "lock")

    def __init__(self) -> None:
        self.buckets: dict[str, dict[Key, _Entry]] = {}
        self.counter = 0
        self.last_time = 0.0
        self.lock = threading.Lock()

    def next_stat(self) -> Stat:
        """The ETag and timestamp of a new write (called under ``lock``).

        Timestamps are strictly increasing within the family even when the wall clock steps
        back (NTP, a VM resumed): each write gets at least the next float after the previous
        one, so ``newest_keys()`` keeps write order.
        """
        self.counter += 1
        now = time.time()
        if now <= self.last_time:
            now = math.nextafter(self.last_time, math.inf)
        self.last_time = now
        return Stat(str(self.counter), now)


class MemoryStorage:
    """A handle on shared in-memory data, at a key prefix.

    Pass the same object as ``backend=`` to several LocalDicts to share their data; sub-stores
    get a handle on the same data at a longer prefix. ETags come from one write counter, so they
    are unique and increasing across the whole family.
    """

    __slots__ = ("prefix", "shared")

    def __init__(self, *, _shared: _SharedMemory | None = None, prefix: Key = ()) -> None:
        self.shared = _shared if _shared is not None else _SharedMemory()
        self.prefix = prefix

    def child(self, prefix: Key) -> MemoryStorage:
        """A handle on the same data under ``self.prefix + prefix``."""
        return self if not prefix else MemoryStorage(_shared=self.shared,
                                                     prefix=self.prefix + prefix)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MemoryStorage) and other.shared is self.shared
                and other.prefix == self.prefix)

    def __hash__(self) -> int:
        return hash((id(self.shared), self.prefix))

    def __repr__(self) -> str:
        where = "/".join(self.prefix)
        return f"<MemoryStorage {id(self.shared):#x}{' at ' + where if where else ''}>"


class MemoryBackend(Backend):
    """One format's items under one prefix of a :class:`MemoryStorage`."""

    name = "memory"
    atomic_conditional_writes = True
    atomic_insert = True

    def __init__(self, storage: MemoryStorage, fmt: str) -> None:
        self.shared = storage.shared
        self.prefix = storage.prefix
        self.items = storage.shared.buckets.setdefault(fmt, {})

    def stat(self, key: Key) -> Stat | None:
        entry = self.items.get(self.prefix + key)
        return None if entry is None else entry.stat

    def exists(self, key: Key) -> bool:
        return (self.prefix + key) in self.items

    def read(self, key: Key, *, if_none_match: str | None = None
             ) -> tuple[Any, Stat] | NotModified | None:
        entry = self.items.get(self.prefix + key)
        if entry is None:
            return None
        if if_none_match is not None and entry.stat.etag == if_none_match:
            return NOT_MODIFIED
        return entry

    def write(self, key: Key, payload: Any, *, if_match: IfMatch = None) -> Stat | None:
        full = self.prefix + key
        with self.shared.lock:
            if if_match is not None:
                entry = self.items.get(full)
                if if_match is ITEM_NOT_AVAILABLE:
                    if entry is not None:
                        return None
                elif entry is None or entry.stat.etag != if_match:
                    return None
            st = self.shared.next_stat()
            self.items[full] = _Entry(payload, st)
            return st

    def delete(self, key: Key, *, if_match: str | None = None) -> bool:
        full = self.prefix + key
        with self.shared.lock:
            entry = self.items.get(full)
            if entry is None or (if_match is not None and entry.stat.etag != if_match):
                return False
            del self.items[full]
            return True

    def _own_keys(self) -> list[Key]:
        if not self.prefix:
            return list(self.items)
        n = len(self.prefix)
        return [k for k in list(self.items) if k[:n] == self.prefix and len(k) > n]

    def scan(self, *, with_stat: bool = False) -> Iterator[tuple[Key, Stat | None]]:
        n = len(self.prefix)
        for full in self._own_keys():
            entry = self.items.get(full)
            if entry is not None:
                yield full[n:], entry.stat if with_stat else None

    def count(self) -> int:
        return len(self.items) if not self.prefix else len(self._own_keys())

    def clear(self) -> None:
        with self.shared.lock:
            if not self.prefix:
                self.items.clear()
            else:
                for full in self._own_keys():
                    self.items.pop(full, None)

    def describe(self) -> str:
        return f"memory{'/' + '/'.join(self.prefix) if self.prefix else ''}"


def _normalised_prune_interval(prune_interval: object) -> int | None:
    """0.309's reading of ``prune_interval``: None stays None, ints stay, junk means 64."""
    if prune_interval is None:
        return None
    try:
        return int(prune_interval)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 64


class LocalDict(BackendDict[ValueType]):
    """An in-memory PersiDict. Values are deep-copied in and out, so callers cannot mutate them.

    Args:
        backend: a :class:`MemoryStorage` to share with other LocalDicts (default: a new one).
        serialization_format: a namespace, like a file extension: stores of different formats
            on one backend do not see each other's items. Nothing is serialised.
        append_only, base_class_for_values: as for every PersiDict.
        prune_interval: accepted for compatibility; empty levels are never kept, so there is
            nothing to prune.
    """

    def __init__(self, *, backend: MemoryStorage | None = None,
                 serialization_format: str = "pkl", append_only: bool = False,
                 base_class_for_values: type | None = None,
                 prune_interval: int | None = 64) -> None:
        if backend is not None and not isinstance(backend, MemoryStorage):
            raise TypeError(f"backend must be a MemoryStorage, got {type(backend).__name__}")
        storage = backend if backend is not None else MemoryStorage()
        super().__init__(backend=MemoryBackend(storage, serialization_format),
                         append_only=append_only, base_class_for_values=base_class_for_values,
                         serialization_format=serialization_format)
        self._serializer = CopySerializer()
        self._storage = storage
        self._prefix = storage.prefix
        self.prune_interval = _normalised_prune_interval(prune_interval)
        self._items = self._backend.items  # type: ignore[attr-defined]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments; ``backend`` is the shared :class:`MemoryStorage`."""
        params = super().get_params()
        params.update(backend=self._storage, prune_interval=self.prune_interval)
        return dict(sorted(params.items()))

    def _make_subdict(self, prefix: SafeStrTuple) -> LocalDict[ValueType]:
        return LocalDict(backend=self._storage.child(prefix.strings),
                         serialization_format=self.serialization_format,
                         append_only=self._append_only,
                         base_class_for_values=self.base_class_for_values,
                         prune_interval=self.prune_interval)

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        # The hot path of every cache hit: one dict lookup, one (usually free) copy. A plain
        # tuple found as it is needs no normalising: only valid keys were ever stored, so a
        # hit proves it valid (normalising costs more than the lookup once a store outgrows
        # the key cache).
        entry = None
        if type(key) is tuple and not self._prefix:
            try:
                entry = self._items.get(key)
            except TypeError:  # unhashable parts: normalize_key says what is wrong
                entry = None
        if entry is None:
            k = normalize_key(key)
            entry = self._items.get(self._prefix + k.strings if self._prefix else k.strings)
            if entry is None:
                raise KeyError(k)
        else:
            k = None
        payload = entry.payload
        if type(payload) is Pickled and self.base_class_for_values is None:
            return payload.loads(payload.data)  # type: ignore[no-any-return]
        return self._decode(normalize_key(key) if k is None else k,  # type: ignore[no-any-return]
                            payload)

