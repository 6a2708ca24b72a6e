"""The in-process memory tier of one cached function: bounded by entries and by bytes.

A warm hit is one dict lookup in :attr:`MemoryTier.entries`. The tier keeps at most
``max_entries`` results and ``max_bytes`` of them (their pickled size, which the miss path
measures anyway), dropping the oldest first; a result bigger than ``max_bytes / 8`` is not kept
at all, so a function returning large arrays pins none of them (its next hit reads the store).
"""

from __future__ import annotations

import threading
from typing import Any, Final

from .metadata import pickled_size

__all__ = ["DEFAULT_MEMORY_BYTES", "MemoryTier"]

DEFAULT_MEMORY_BYTES: Final = 64 * 2**20
_MAX_ENTRIES: Final = 1024
_LARGEST_KEPT: Final = 8  # a result over max_bytes / 8 is not kept


class MemoryTier:
    """Results seen by this process, oldest out first.

    Args:
        max_bytes: the budget in pickled bytes (0: keep nothing).
        max_entries: the most results kept.
    """

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES, max_entries: int = _MAX_ENTRIES):
        self.entries: dict[tuple[str, ...], Any] = {}
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._sizes: dict[tuple[str, ...], int] = {}
        self._total = 0
        self._lock = threading.Lock()

    def remember(self, key: tuple[str, ...], value: Any, size: int | None = None) -> None:
        """Keep ``value`` (whose pickled size is ``size``, measured if None) if it fits."""
        budget = self.max_bytes
        if budget <= 0:
            return
        if size is None:
            try:
                size = pickled_size(value)
            except Exception:  # not picklable: it was not stored either
                return
        if size > budget // _LARGEST_KEPT:
            return
        entries, sizes = self.entries, self._sizes
        with self._lock:
            if key in entries:
                return
            while entries and (
                len(entries) >= self.max_entries or self._total + size > budget
            ):
                oldest = next(iter(entries))
                del entries[oldest]
                self._total -= sizes.pop(oldest, 0)
            entries[key] = value
            sizes[key] = size
            self._total += size

    def forget(self, key: tuple[str, ...]) -> None:
        """Drop one result."""
        with self._lock:
            if key in self.entries:
                del self.entries[key]
                self._total -= self._sizes.pop(key, 0)

    def clear(self) -> None:
        """Drop every result."""
        with self._lock:
            self.entries.clear()
            self._sizes.clear()
            self._total = 0

    def usage(self) -> tuple[int, int]:
        """``(entries, pickled bytes)`` kept."""
        return len(self.entries), self._total
