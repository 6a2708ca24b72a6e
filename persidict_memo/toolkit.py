"""The lifecycle and batch methods of a decorated function (bound methods too).

:class:`CacheToolkit` is a base of the wrappers in :mod:`persidict_memo.decorator`; each method
here is a thin front for :mod:`~persidict_memo.lifecycle`, :mod:`~persidict_memo.refresh` or
:mod:`~persidict_memo.batch`, which do the work.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

if TYPE_CHECKING:
    from . import lifecycle
    from .memoizer import Memoizer

__all__ = ["CacheToolkit"]

P = ParamSpec("P")
R = TypeVar("R")


class CacheToolkit(Generic[P, R]):
    """See, size, prune, refresh and batch-run the cache of one function.

    Generic like the cached function: ``P`` its parameters, ``R`` its result type.
    """

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
        from . import lifecycle  # here: off the import path of a hit

        layout, calls = lifecycle.function_calls(self._self_memo, all_versions)
        return lifecycle.entries(layout.rs, calls)

    def cache_size(self, *, all_versions: bool = False) -> int:
        """Bytes of this function's stored results (current code version, or all versions)."""
        from . import lifecycle  # here: off the import path of a hit

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
        from . import lifecycle  # here: off the import path of a hit

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

    def recompute(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Compute a call now and replace its stored result; return the new result.

        The replacement is atomic: other readers see the old result or the new one, never
        none. The metadata is replaced too. Of an ``async def`` function, this returns the
        coroutine to await, as calling it does.
        """
        from . import refresh

        result: R = refresh.recompute(self, self._self_memo, args, kwargs)
        return result

    def map(
        self,
        iterable: Iterable[Any],
        *,
        n_jobs: int | None = None,
        backend: Literal["loky", "threading", "ray"] | Any = None,
        progress: bool | None = None,
        unpack: bool = False,
    ) -> list[R]:
        """Call the function on every item; results in input order.

        What is already stored is found first, in bulk (one listing of the function's prefix,
        not a request per item); only the misses are computed: in this process when ``n_jobs``
        is None or 1, else in parallel on ``backend``. Workers share the store and its leases,
        so each call is still computed once across processes and machines.

        Args:
            iterable: the items. Each is one argument, or with ``unpack=True`` a tuple of
                positional arguments or an ``(args, kwargs)`` pair (a 2-tuple of a tuple or
                list and a dict is read as such a pair).
            n_jobs: parallel workers for the misses (``-1``: one per core).
            backend: ``"loky"`` (the default: joblib's process pool), ``"threading"``, a
                ``dask.distributed.Client`` (its workers run the misses, whatever ``n_jobs``
                says), or ``"ray"``: the runtime this process started or joined, else the
                cluster named by ``RAY_ADDRESS``, else a private local one of ``n_jobs`` CPUs;
                ``n_jobs`` tasks run at a time.
            progress: a progress bar over the misses (tqdm): None shows it on a terminal or in a
                notebook when the work takes more than about a second; True / False force it.
            unpack: see ``iterable``.

        Returns:
            The results, in the order of the items.

        Raises:
            Exception: when items failed, once the others finished: the exception of the first
                failing item (in input order), with a note naming the item.
            TypeError: for an item whose arguments cannot be hashed (before anything runs).
        """
        from . import batch

        results: list[R] = batch.run_map(
            self, iterable, n_jobs=n_jobs, backend=backend, progress=progress, unpack=unpack
        )
        return results
