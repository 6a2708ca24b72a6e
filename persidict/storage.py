"""The storage boundary: a handful of primitives every backend implements.

A backend stores *payloads* (bytes for files and S3; copied Python objects in memory) under keys
that are plain tuples of already-validated safe strings. It knows nothing of values, policies,
jokers or results: :class:`~persidict.backend_dict.BackendDict` writes the rich API once on top.

Conditional primitives take ``if_match``:

* ``None``: unconditional;
* an ETag string: act only if the item exists with exactly that ETag;
* ``ITEM_NOT_AVAILABLE``: act only if the item does not exist (insert-if-absent).

A failed precondition is an ordinary return value (``None`` / ``False``), never an exception.
Infrastructure failures raise :class:`~persidict.errors.BackendError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, ClassVar, Final, NamedTuple

from .markers import ItemNotAvailableFlag

__all__ = ["NOT_MODIFIED", "Backend", "IfMatch", "Key", "NotModified", "Stat"]

Key = tuple[str, ...]
IfMatch = str | ItemNotAvailableFlag | None


class Stat(NamedTuple):
    """What a backend knows about a stored item without reading it."""

    etag: str
    mtime: float  # POSIX seconds of the last write


class NotModified:
    """Answer of :meth:`Backend.read` when ``if_none_match`` matched: nothing was transferred."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED: Final = NotModified()


class Backend(ABC):
    """Byte-level (payload-level) storage under one root.

    Class attributes say what the backend guarantees:

    * ``name``: used in :class:`BackendError` (``"filesystem"``, ``"memory"``, ``"s3"``...);
    * ``atomic_conditional_writes``: ``write``/``delete`` with an ETag ``if_match`` are a single
      atomic decision (S3, memory). When False they are check-then-act.
    * ``atomic_insert``: ``write(if_match=ITEM_NOT_AVAILABLE)`` has exactly one winner.
    * ``insert_before_stat``: an insert-if-absent tries the conditional write first, without a
      ``stat`` (a remote store, where each call is a request, and a refused write leaves
      nothing behind). False where a ``stat`` is cheap.
    """

    name: ClassVar[str] = "backend"
    atomic_conditional_writes: ClassVar[bool] = False
    atomic_insert: ClassVar[bool] = False
    insert_before_stat: ClassVar[bool] = False

    @abstractmethod
    def stat(self, key: Key) -> Stat | None:
        """ETag and mtime of the item, or None if absent."""

    def exists(self, key: Key) -> bool:
        """Whether the item exists (override when cheaper than :meth:`stat`)."""
        return self.stat(key) is not None

    @abstractmethod
    def read(
        self, key: Key, *, if_none_match: str | None = None
    ) -> tuple[Any, Stat] | NotModified | None:
        """One consistent read: the payload and the Stat describing exactly those bytes.

        Returns None if absent, or ``NOT_MODIFIED`` (without transferring the payload) when
        ``if_none_match`` equals the current ETag.
        """

    @abstractmethod
    def write(self, key: Key, payload: Any, *, if_match: IfMatch = None) -> Stat | None:
        """Store ``payload`` atomically (readers see the old or the new payload, never a mix).

        Returns the new Stat, or None when ``if_match`` did not hold.
        """

    @abstractmethod
    def delete(self, key: Key, *, if_match: str | None = None) -> bool:
        """Remove the item. False if it was absent or ``if_match`` did not hold."""

    def missing(self, key: Key) -> Exception | None:
        """The native "not found" error for ``key``, chained as the ``__cause__`` of the
        KeyError a store raises (the file backend's ``FileNotFoundError``, as in 0.309)."""
        return None

    def remove(self, key: Key) -> None:
        """Make sure the item is absent, without reporting whether it existed.

        Backends where finding out costs an extra request (S3) override this with one request.
        """
        self.delete(key)

    @abstractmethod
    def scan(self, *, with_stat: bool = False) -> Iterator[tuple[Key, Stat | None]]:
        """Every key under this root, with its Stat only when asked.

        Items that vanish during the scan are skipped.
        """

    def scan_keys(self) -> Iterator[Key]:
        """Every key, nothing else (backends override when a bare listing is cheaper)."""
        for key, _ in self.scan():
            yield key

    def scan_key_batches(self) -> Iterator[list[Key]]:
        """Every key, in lists (backends override to hand over each listing's keys at once)."""
        keys = self.scan_keys()
        while batch := list(islice(keys, 1024)):
            yield batch

    def scan_mtimes(self) -> Iterator[tuple[Key, float]]:
        """Every key with the time of its last write (backends override when cheaper)."""
        for key, st in self.scan(with_stat=True):
            if st is not None:
                yield key, st.mtime

    def count(self) -> int:
        """Number of items (override when the backend can count faster than a scan)."""
        return sum(1 for _ in self.scan())

    def read_many(self, keys: Iterable[Key]) -> Iterator[tuple[Key, Any, Stat]]:
        """Read several items; those that vanished are skipped. S3 overrides with a thread pool."""
        for key in keys:
            got = self.read(key)
            if got is not None and not isinstance(got, NotModified):
                yield key, got[0], got[1]

    def scan_items(self) -> Iterator[tuple[Key, Any, Stat]]:
        """Every item with its payload (backends override to read each item as it is listed)."""
        return self.read_many(key for key, _ in self.scan())

    def random_key(self) -> Key | None:
        """A uniformly random key, None if empty (backends override to sample as they list)."""
        import random

        listed = list(self.scan_keys())
        return random.choice(listed) if listed else None

    def clear(self) -> None:
        """Delete every item under this root (backends override with a bulk operation)."""
        for key, _ in list(self.scan()):
            self.delete(key)

    def describe(self) -> str:
        """Where the data lives, for error messages and reprs."""
        return self.name
