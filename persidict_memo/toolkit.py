"""The lifecycle and batch methods of a decorated function (bound methods too).

:class:`CacheToolkit` is a base of the wrappers in :mod:`persidict_memo.decorator`; each method
here is a thin front for :mod:`~persidict_memo.lifecycle`, :mod:`~persidict_memo.refresh` or
:mod:`~persidict_memo.batch`, which do the work.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import lifecycle

if TYPE_CHECKING:
    from .memoizer import Memoizer

__all__ = ["CacheToolkit"]


class CacheToolkit:
    """See, size, prune, refresh and batch-run the cache of one function."""

    _self_memo: Memoizer

    def _full_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotImplementedError

    def cache_entries(self, *, all_versions: bool = False) -> Iterator[lifecycle.CacheEntry]:
        """The stored results of this function, oldest first, from one listing of its prefix.

        Args:
            all_versions: include the results of other code versions than the current one.

        Yields:
            :class:`~persidict_memo.CacheEntry` objects (results without metadata too, with
            the fields that only metadata knows set to None).
        """
        layout, calls = lifecycle.function_calls(self._self_memo, all_versions)
        return lifecycle.entries(layout.rs, calls)

    def cache_size(self, *, all_versions: bool = False) -> int:
        """Bytes of this function's stored results (current code version, or all versions)."""
        layout, calls = lifecycle.function_calls(self._self_memo, all_versions)
        return lifecycle.size_of(layout.rs, calls)

    def cache_prune(
        self,
        *,
        older_than: float | datetime.timedelta | None = None,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        keep_versions: int | None = None,
        dry_run: bool = False,
    ) -> lifecycle.PruneReport:
        """Remove some of this function's stored results (of every code version).

        The criteria apply in this order: ``older_than`` (seconds or a timedelta: results
        stored before now minus it go), ``keep_versions`` (keep the results of the N most
        recently written code versions), then ``max_entries`` / ``max_bytes`` (the oldest
        results go until the rest fit). A result goes with its metadata and stale lease; a call
        whose lease is live (being computed right now) is never touched.

        Args:
            older_than: maximum age of the results kept.
            max_bytes: maximum total bytes of the results kept.
            max_entries: maximum number of results kept.
            keep_versions: number of code versions whose results are kept.
            dry_run: only report what would be removed.

        Returns:
            A :class:`~persidict_memo.PruneReport`.

        Raises:
            TypeError, ValueError: for invalid options.
        """
        memo = self._self_memo
        layout, calls = lifecycle.function_calls(memo, all_versions=True)
        report, removed = lifecycle.prune_calls(
            layout,
            calls,
            older_than=older_than,
            max_bytes=max_bytes,
            max_entries=max_entries,
            keep_versions=keep_versions,
            dry_run=dry_run,
            lease_grace=memo.lease_timeout,
        )
        if not dry_run:
            memo.drop_remembered(removed)
        return report
