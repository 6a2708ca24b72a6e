"""``f.map``: run a cached function over many inputs, computing only what is not stored yet.

1. Every item's key is computed here (hashing errors surface at once, naming the item).
2. Items whose results this process holds in memory are hits at once, without a request.
3. What is stored of the others is found **in bulk**: one listing of the key prefixes they fall
   in (the function's whole prefix once they cover more than a few of its 256 shards; on S3 one
   paginated ``ListObjectsV2``, 1,000 keys a request) instead of one request per item. The hits
   are then read, several at a time (on S3 one ``GET`` each: there is no multi-object read).
4. Only the misses are computed: in this process, or in parallel on loky (joblib's process
   pool), threads, a ``dask.distributed.Client`` or ray. Each miss is an ordinary call of the
   cached function, except that its result is not looked for again (the listing found none), so
   workers share the store and its leases: a call already being computed elsewhere is waited
   for, not computed twice, and one published since the listing is read, not recomputed.

A failing item does not stop the others; once all finished, the first failure (in input order)
is raised again with a note naming the item.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from . import background, progress
from .inventory import layout_of

__all__ = ["run_map"]

_MISSING: Final = object()
_READ_THREADS: Final = 16
Call = tuple[tuple[Any, ...], dict[str, Any]]
Job = tuple[tuple[str, ...] | None, tuple[Any, ...], dict[str, Any]]  # (key, args, kwargs)


def _calls(items: list[Any], unpack: bool) -> list[Call]:
    if not unpack:
        return [((item,), {}) for item in items]
    calls: list[Call] = []
    for index, item in enumerate(items):
        if (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], tuple | list)
            and isinstance(item[1], dict)
        ):
            calls.append((tuple(item[0]), dict(item[1])))
        elif isinstance(item, tuple | list):
            calls.append((tuple(item), {}))
        else:
            raise TypeError(
                f"map(unpack=True): item {index} ({item!r}) is not an argument tuple or an "
                "(args, kwargs) pair"
            )
    return calls


def _stored(
    memo: Any, keys: Iterable[tuple[str, ...]]
) -> tuple[dict[tuple[str, ...], float], set[tuple[str, ...]]]:
    """The stored results among ``keys`` with their times, and the keys with a metadata record
    (or lease), from as few listings as possible."""
    background.flush()
    layout = layout_of(memo.store)
    prefix = tuple(memo.keys.prefix)
    depth = len(prefix)
    wanted = {key for key in keys if key[:depth] == prefix and len(key) > depth}
    found: dict[tuple[str, ...], float] = {}
    records: set[tuple[str, ...]] = set()
    if wanted:
        for item in layout.find(prefix, {key[depth] for key in wanted}):
            if item.key in wanted:
                if item.kind == "result":
                    found[item.key] = item.mtime
                else:
                    records.add(item.key)
    return found, records


def _read_hits(memo: Any, keys: list[tuple[str, ...]]) -> Iterator[tuple[int, bool, Any]]:
    """(position, found, value) for each key (found False: it vanished since the listing)."""

    def read(position: int) -> tuple[int, bool, Any]:
        try:
            return position, True, memo.lookup(keys[position])
        except KeyError:
            return position, False, None

    if len(keys) <= 1:
        yield from (read(i) for i in range(len(keys)))
        return
    with ThreadPoolExecutor(max_workers=min(_READ_THREADS, len(keys))) as pool:
        yield from pool.map(read, range(len(keys)))


def _call_one(
    func: Any, key: tuple[str, ...] | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """Run one call where the engine put it: (True, result) or (False, exception).

    ``key``: the call's key if the listing found neither its result nor its record (so the
    memoizer does not look for them again), else None.
    """
    from .memoizer import LISTED_ABSENT

    token = LISTED_ABSENT.set(key)
    try:
        return True, func(*args, **kwargs)
    except Exception as exc:
        failure: Exception = exc
    finally:
        LISTED_ABSENT.reset(token)
    try:
        pickle.dumps(failure)  # it must travel back from a worker process
    except Exception:
        failure = RuntimeError(f"{type(failure).__name__}: {failure}")
    return False, failure


def _jobs(n_jobs: int) -> int:
    return max(1, os.cpu_count() or 1) if n_jobs < 0 else n_jobs


def _run_local(func: Any, jobs: list[Job], bar: progress.Bar) -> Iterator[tuple[bool, Any]]:
    for key, args, kwargs in jobs:
        outcome = _call_one(func, key, args, kwargs)
        bar.update()
        yield outcome


def _run_threads(
    func: Any, jobs: list[Job], n_jobs: int, bar: progress.Bar
) -> Iterator[tuple[bool, Any]]:
    with ThreadPoolExecutor(max_workers=_jobs(n_jobs)) as pool:
        for outcome in pool.map(lambda job: _call_one(func, *job), jobs):
            bar.update()
            yield outcome


def _run_loky(
    func: Any, jobs: list[Job], n_jobs: int, bar: progress.Bar
) -> Iterator[tuple[bool, Any]]:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
    for outcome in parallel(delayed(_call_one)(func, *job) for job in jobs):
        bar.update()
        yield outcome


def _run_dask(client: Any, func: Any, jobs: list[Job], bar: progress.Bar) -> list[Any]:
    from distributed import as_completed

    futures = [client.submit(_call_one, func, *job, pure=False) for job in jobs]
    for _ in as_completed(futures):  # type: ignore[no-untyped-call]
        bar.update()
    return list(client.gather(futures))


def _run_ray(func: Any, jobs: list[Job], n_jobs: int, bar: progress.Bar) -> list[Any]:
    try:
        import ray
    except ImportError as exc:
        raise ImportError('map(backend="ray") needs ray: pip install ray') from exc
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):  # a job on a ray cluster: join it (ray sizes it)
            ray.init(log_to_driver=False)
        else:  # a private runtime of n_jobs CPUs, kept for later maps, never a stray cluster
            ray.init(address="local", num_cpus=_jobs(n_jobs), include_dashboard=False,
                     log_to_driver=False)
    remote = ray.remote(_call_one)
    shared = ray.put(func)  # serialised once, not once a task
    limit = len(jobs) if n_jobs < 0 else n_jobs  # n_jobs tasks at a time, even on a big cluster
    refs: list[Any] = []
    pending: list[Any] = []
    for job in jobs:
        if len(pending) >= limit:
            done, pending = ray.wait(pending, num_returns=1)
            bar.update(len(done))
        refs.append(remote.remote(shared, *job))
        pending.append(refs[-1])
    while pending:  # whatever finished each half second: no pass over the list per item
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        bar.update(len(done))
    return list(ray.get(refs))


def _is_dask_client(backend: Any) -> bool:
    return all(hasattr(backend, name) for name in ("submit", "gather", "scheduler_info"))


def _compute(
    func: Any, jobs: list[Job], n_jobs: int | None, backend: Any, bar: progress.Bar
) -> list[tuple[bool, Any]]:
    if _is_dask_client(backend):
        return _run_dask(backend, func, jobs, bar)
    if backend is not None and backend not in ("loky", "threading", "ray"):
        raise ValueError(
            "backend must be 'loky', 'threading', 'ray' or a dask.distributed.Client, "
            f"got {backend!r}"
        )
    if n_jobs is None or n_jobs == 1 or len(jobs) <= 1:
        return list(_run_local(func, jobs, bar))
    if backend == "threading":
        return list(_run_threads(func, jobs, n_jobs, bar))
    if backend == "ray":
        return _run_ray(func, jobs, n_jobs, bar)
    return list(_run_loky(func, jobs, n_jobs, bar))


def run_map(
    func: Any,
    iterable: Iterable[Any],
    *,
    n_jobs: int | None,
    backend: Any,
    progress: bool | None,
    unpack: bool,
) -> list[Any]:
    """The body of :meth:`CachedFunction.map` (``func`` is the cached function or method)."""
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}")
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0 (None or 1: this process; -1: every core)")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool or None, got {progress!r}")
    memo = func._self_memo
    items = list(iterable)
    calls = _calls(items, unpack)
    keys: list[tuple[str, ...]] = []
    for index, (args, kwargs) in enumerate(calls):
        try:
            keys.append(memo.keys.key(func._full_args(args), kwargs))
        except TypeError as exc:
            exc.add_note(f"persidict_memo map: item {index} ({_short(items[index])})")
            raise
    results: list[Any] = [None] * len(items)
    unknown = _from_memory(memo, keys, results)
    stored, records = _stored(memo, (keys[i] for i in unknown)) if unknown else ({}, set())
    oldest = _oldest_fresh(memo)
    hits = [i for i in unknown if stored.get(keys[i], -1.0) >= oldest]
    todo = sorted(set(unknown) - set(hits))
    for position, found, value in _read_hits(memo, [keys[i] for i in hits]):
        if found:
            results[hits[position]] = value
            memo.hits += 1
        else:
            todo.append(hits[position])
    firsts: dict[tuple[str, ...], int] = {}  # each distinct call computed once
    for index in sorted(todo):
        firsts.setdefault(keys[index], index)
    failures: list[tuple[int, BaseException]] = []
    if firsts:
        name = getattr(func, "__qualname__", "map")
        # a call listed with neither a result nor a record is not looked for again
        jobs = [(key if key not in records and key not in stored else None, *calls[index])
                for key, index in firsts.items()]
        with _bar(len(jobs), name, progress) as bar:
            outcomes = _compute(func, jobs, n_jobs, backend, bar)
        done = dict(zip(firsts, outcomes, strict=True))
        for index in sorted(todo):
            ok, value = done[keys[index]]
            if ok:
                results[index] = value
            else:
                failures.append((index, value))
    if failures:
        index, first = failures[0]
        more = f" ({len(failures) - 1} other items failed too)" if len(failures) > 1 else ""
        first.add_note(f"persidict_memo map: item {index} ({_short(items[index])}) failed{more}")
        raise first
    return results


def _bar(total: int, name: str, enabled: bool | None) -> progress.Bar:
    # Forced on, the bar shows at once; automatic, only once the work took about a second.
    return progress.bar(total, f"{name} (computing {total})", enabled, delay=enabled is None)


def _from_memory(memo: Any, keys: list[tuple[str, ...]], results: list[Any]) -> list[int]:
    """Fill in the results this process holds in memory; the positions of the others.

    Not with ``max_age`` (whose expiry keeps its own memory) or ``check_determinism`` (whose
    hits may be recomputed): then every item is looked up in the store.
    """
    from .refresh import expiry_of

    memory = getattr(memo, "_memory", None)
    if memory is None or memo.check_determinism or expiry_of(memo) is not None:
        return list(range(len(keys)))
    unknown = []
    for index, key in enumerate(keys):
        value = memory.get(key, _MISSING)
        if value is _MISSING:
            unknown.append(index)
        else:
            results[index] = value
            memo.hits += 1
    return unknown


def _oldest_fresh(memo: Any) -> float:
    """The oldest time of a stored result that is a hit (with ``max_age``, older ones expired)."""
    from .refresh import expiry_of

    expiry = expiry_of(memo)
    return 0.0 if expiry is None else time.time() - expiry.max_age


def _short(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."
