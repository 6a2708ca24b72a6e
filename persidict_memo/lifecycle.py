"""Seeing, sizing and pruning caches: per function and for a whole store.

Everything here starts from one listing of a key prefix (:mod:`persidict_memo.inventory`), which
gives each stored result its size and time of writing without reading it. Metadata records are
read only where their content is shown (:func:`entries`), and by a prune for the records written
within the lease grace, which may be leases.

A call's lease lives in its metadata record (see :mod:`persidict_memo.leases`). Pruning never
touches a call whose record is a live lease (it is being computed, published or refreshed right
now); it removes a result together with its metadata record, the record first, so a caller
arriving in between finds the result and never takes a lease that the prune would then delete.
Records left without a result (a crashed writer's lease, metadata of a vanished result) go once
they are older than the lease grace."""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from . import background, progress
from .call_keys import SCHEME
from .inventory import Item, Layout, layout_of
from .leases import LeaseRecord
from .metadata import parse_metadata
from .stores import ResultStore, open_store

if TYPE_CHECKING:
    from .memoizer import Memoizer

__all__ = [
    "CacheEntry",
    "FunctionSummary",
    "PruneReport",
    "list_functions",
    "prune",
]

# Store-wide tools do not know each function's lease_timeout: a lease written within this many
# seconds is taken for live.
STORE_LEASE_GRACE: Final = 3600.0
_META_THREADS: Final = 16


@dataclass(frozen=True)
class CacheEntry:
    """One stored result, as :meth:`CachedFunction.cache_entries` lists it.

    Attributes:
        key: the store key of the result.
        args_repr: a short rendering of the call's arguments (``""`` when metadata is missing).
        created: POSIX time the result was stored.
        compute_seconds: how long the computation took (None without metadata).
        size_bytes: bytes stored (None when neither the listing nor the metadata tells).
        version: the code-fingerprint component of the key (``src~...``, ``ver~...``).
        host: the machine that computed it (None without metadata).
    """

    key: tuple[str, ...]
    args_repr: str
    created: float
    compute_seconds: float | None
    size_bytes: int | None
    version: str
    host: str | None


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove).

    Attributes:
        removed: results removed.
        freed_bytes: bytes of the removed results, metadata and leases (as far as known).
        kept: results kept.
        dry_run: True when nothing was actually deleted.
    """

    removed: int
    freed_bytes: int
    kept: int
    dry_run: bool


@dataclass(frozen=True)
class FunctionSummary:
    """One cached function found in a store, as :func:`list_functions` lists it.

    Attributes:
        module: the module component of its keys (unsafe characters replaced, see the key layout).
        qualname: the qualified-name component (``<locals>`` appears as ``(locals)``).
        versions: how many code versions have results.
        entries: results stored, all versions together.
        size_bytes: their bytes.
        newest: POSIX time of the newest result (None if there is none).
    """

    module: str
    qualname: str
    versions: int
    entries: int
    size_bytes: int
    newest: float | None


@dataclass
class Call:
    """Everything stored for one call: its result and its metadata record (either may be
    missing; the record is the call's lease while it is being computed or refreshed)."""

    result: Item | None = None
    meta: Item | None = None
    items: list[Item] = field(default_factory=list)


def scan_calls(
    layout: Layout, prefix: tuple[str, ...], bar: progress.Bar | None = None
) -> dict[tuple[str, ...], Call]:
    """The calls stored under ``prefix``, from one listing (each object counted on ``bar``)."""
    calls: dict[tuple[str, ...], Call] = {}
    for item in layout.scan(prefix):
        if bar is not None:
            bar.update()
        call = calls.get(item.key)
        if call is None:
            call = calls[item.key] = Call()
        setattr(call, item.kind, item)
        call.items.append(item)
    return calls


def seconds_of(value: float | datetime.timedelta | None, name: str) -> float | None:
    """A duration option as seconds (None stays None); TypeError/ValueError when invalid."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be seconds or a datetime.timedelta, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return float(value)


def positive_seconds(value: float | datetime.timedelta | None, name: str) -> float | None:
    """Like :func:`seconds_of`, but zero is refused too (ValueError)."""
    seconds = seconds_of(value, name)
    if seconds is not None and not seconds > 0:
        raise ValueError(f"{name} must be a positive duration, got {value!r}")
    return seconds


def _count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return value


# ----------------------------------------------------------------------------- entries


def _read_meta(rs: ResultStore, key: tuple[str, ...]) -> dict[str, Any] | None:
    try:
        return parse_metadata(rs.meta[rs.meta_key(key)])
    except Exception:  # missing or damaged: the entry is listed without it
        return None


def _entry(key: tuple[str, ...], result: Item, meta: dict[str, Any] | None) -> CacheEntry:
    meta = meta or {}
    created = meta.get("created_timestamp")
    seconds = meta.get("compute_seconds")
    size = result.size if result.size is not None else meta.get("result_size")
    host = meta.get("host")
    return CacheEntry(
        key=key,
        args_repr=str(meta.get("arguments", "")),
        created=float(created) if isinstance(created, int | float) else result.mtime,
        compute_seconds=float(seconds) if isinstance(seconds, int | float) else None,
        size_bytes=int(size) if isinstance(size, int) else None,
        version=key[3] if len(key) > 3 else "",
        host=str(host) if host is not None else None,
    )


def entries(rs: ResultStore, calls: dict[tuple[str, ...], Call]) -> Iterator[CacheEntry]:
    """The stored results among ``calls``, oldest first, each with its metadata read."""
    stored = sorted(
        ((key, c.result, c.meta is not None) for key, c in calls.items() if c.result is not None),
        key=lambda t: t[1].mtime,
    )
    if not stored:
        return
    with ThreadPoolExecutor(max_workers=min(_META_THREADS, len(stored))) as pool:
        metas = pool.map(lambda t: _read_meta(rs, t[0]) if t[2] else None, stored)
        for (key, result, _), meta in zip(stored, metas, strict=True):
            yield _entry(key, result, meta)


def size_of(rs: ResultStore, calls: dict[tuple[str, ...], Call]) -> int:
    """Bytes of the stored results among ``calls`` (metadata tells where the listing cannot)."""
    total = 0
    unknown = []
    for key, call in calls.items():
        if call.result is None:
            continue
        if call.result.size is not None:
            total += call.result.size
        else:
            unknown.append((key, call))
    if unknown:
        total += sum(e.size_bytes or 0 for e in entries(rs, dict(unknown)))
    return total


# ------------------------------------------------------------------------------- prune


def prune_calls(
    layout: Layout,
    calls: dict[tuple[str, ...], Call],
    *,
    older_than: float | datetime.timedelta | None = None,
    max_bytes: int | None = None,
    max_entries: int | None = None,
    keep_versions: int | None = None,
    dry_run: bool = False,
    lease_grace: float,
) -> tuple[PruneReport, list[tuple[str, ...]]]:
    """Decide (and unless ``dry_run`` do) a prune of ``calls``; the report and removed keys."""
    age = seconds_of(older_than, "older_than")
    max_bytes = _count(max_bytes, "max_bytes")
    max_entries = _count(max_entries, "max_entries")
    keep_versions = _count(keep_versions, "keep_versions")
    if not isinstance(dry_run, bool):
        raise TypeError(f"dry_run must be a bool, got {dry_run!r}")
    now = time.time()
    # A record younger than the grace may be a live lease; one second more for stores whose
    # timestamps are whole seconds (S3's LastModified), so it never looks older than it is.
    live = now - lease_grace - 1.0
    fill_sizes(layout.rs, calls)

    stored = sorted(
        ((key, c) for key, c in calls.items() if c.result is not None),
        key=lambda kc: kc[1].result.mtime,  # type: ignore[union-attr]
    )
    doomed: set[tuple[str, ...]] = set()
    if age is not None:
        doomed |= {key for key, c in stored if c.result.mtime < now - age}  # type: ignore[union-attr]
    if keep_versions is not None:
        newest: dict[tuple[str, ...], float] = {}
        for key, c in stored:
            version = key[:4]
            newest[version] = max(newest.get(version, 0.0), c.result.mtime)  # type: ignore[union-attr]
        ranked: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for version in sorted(newest, key=newest.__getitem__, reverse=True):
            ranked.setdefault(version[:3], []).append(version)
        kept_versions = {v for versions in ranked.values() for v in versions[:keep_versions]}
        doomed |= {key for key, _ in stored if key[:4] not in kept_versions}
    limits = max_entries is not None or max_bytes is not None
    protected = _live_leases(
        layout.rs, calls, [k for k, _ in stored if limits or k in doomed], live
    )
    doomed -= protected
    if limits:
        rest = [(key, c) for key, c in stored if key not in doomed]
        count = len(rest)
        size = sum(_result_size(c) for _, c in rest)
        for key, c in rest:  # oldest first
            if (max_entries is None or count <= max_entries) and (
                max_bytes is None or size <= max_bytes
            ):
                break
            if key in protected:
                continue
            doomed.add(key)
            count -= 1
            size -= _result_size(c)

    to_remove: list[Item] = []
    for key in doomed:  # the metadata record first: a result never outlives it half-removed
        call = calls[key]
        to_remove.extend(sorted(call.items, key=lambda i: i.kind != "meta"))
    for c in calls.values():  # leftovers of crashed writers: records without a result
        if c.result is None:
            to_remove.extend(i for i in c.items if i.mtime < live)
    freed = sum(_result_size(calls[k]) for k in doomed)
    freed += sum(i.size or 0 for i in to_remove if i.kind != "result")
    if not dry_run and to_remove:
        layout.remove(to_remove)
    report = PruneReport(
        removed=len(doomed), freed_bytes=freed, kept=len(stored) - len(doomed), dry_run=dry_run
    )
    return report, sorted(doomed)


def _live_leases(
    rs: ResultStore,
    calls: dict[tuple[str, ...], Call],
    keys: list[tuple[str, ...]],
    live: float,
) -> set[tuple[str, ...]]:
    """The calls among ``keys`` whose metadata record is a live lease (a refresh, or an S3
    result whose metadata write is pending): only records written since ``live`` are read."""
    suspects = [k for k in keys if (m := calls[k].meta) is not None and m.mtime >= live]
    if not suspects:
        return set()

    def is_lease(key: tuple[str, ...]) -> bool:
        try:
            return LeaseRecord.from_text(rs.meta[rs.meta_key(key)]) is not None
        except KeyError:
            return False
        except Exception:  # cannot tell: keep the call
            return True

    with ThreadPoolExecutor(max_workers=min(_META_THREADS, len(suspects))) as pool:
        leases = pool.map(is_lease, suspects)
        return {k for k, lease in zip(suspects, leases, strict=True) if lease}


def fill_sizes(rs: ResultStore, calls: dict[tuple[str, ...], Call]) -> None:
    """Take the sizes the listing did not tell (generic stores) from the metadata."""
    unknown = {k: c for k, c in calls.items() if c.result is not None and c.result.size is None}
    for entry in entries(rs, unknown) if unknown else ():
        call = unknown[entry.key]
        assert call.result is not None
        call.result = dataclasses.replace(call.result, size=entry.size_bytes)


def _result_size(call: Call) -> int:
    return call.result.size or 0 if call.result is not None else 0


# -------------------------------------------------------------------- one function


def function_prefix(memo: Memoizer, all_versions: bool) -> tuple[str, ...]:
    """The key prefix of a function's results: its current version, or every version."""
    prefix = tuple(memo.keys.prefix)
    return prefix[:3] if all_versions else prefix


def function_calls(memo: Memoizer, all_versions: bool) -> tuple[Layout, dict[Any, Call]]:
    """One listing of a decorated function's results (pending metadata written first)."""
    background.flush()
    layout = layout_of(memo.store)
    return layout, scan_calls(layout, function_prefix(memo, all_versions))


# ------------------------------------------------------------------------ whole store


def _open(store: object) -> ResultStore:
    return ResultStore(open_store(store))


def list_functions(store: object) -> list[FunctionSummary]:
    """The cached functions in a store, from one listing of it.

    Args:
        store: any PersiDict used as a ``persistent_cache`` store, a directory, or an
            ``"s3://bucket/prefix"`` URL.

    Returns:
        One :class:`FunctionSummary` per function, sorted by module and qualified name.
    """
    return functions_in(_open(store))


def functions_in(rs: ResultStore, bar: progress.Bar | None = None) -> list[FunctionSummary]:
    """:func:`list_functions` of an opened store (listed objects counted on ``bar``)."""
    background.flush()
    calls = scan_calls(layout_of(rs), (SCHEME,), bar)
    fill_sizes(rs, calls)
    return summarize(calls)


def summarize(calls: dict[tuple[str, ...], Call]) -> list[FunctionSummary]:
    """Per-function totals of the results among ``calls``."""
    groups: dict[tuple[str, str], list[Item]] = {}
    for key, call in calls.items():
        if call.result is not None and len(key) >= 4:
            groups.setdefault((key[1], key[2]), []).append(call.result)
    return [
        FunctionSummary(
            module=module,
            qualname=qualname,
            versions=len({i.key[3] for i in items}),
            entries=len(items),
            size_bytes=sum(i.size or 0 for i in items),
            newest=max(i.mtime for i in items),
        )
        for (module, qualname), items in sorted(groups.items())
    ]


def prune(
    store: object,
    *,
    older_than: float | datetime.timedelta | None = None,
    max_bytes: int | None = None,
    keep_versions: int | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Prune the results of every cached function in a store.

    Args:
        store: a PersiDict, a directory, or an ``"s3://bucket/prefix"`` URL.
        older_than: seconds (or a timedelta): results stored before now minus this go.
        max_bytes: then the oldest results go until the rest fit in this many bytes.
        keep_versions: keep the results of each function's N most recently written code
            versions, drop the others.
        dry_run: report what would go without deleting anything.

    Returns:
        A :class:`PruneReport`. Calls whose lease was written in the last hour
        (:data:`STORE_LEASE_GRACE`) are being computed: they are kept.

    Raises:
        TypeError, ValueError: for invalid options.
    """
    return prune_store(
        _open(store),
        older_than=older_than,
        max_bytes=max_bytes,
        keep_versions=keep_versions,
        dry_run=dry_run,
    )


def prune_store(
    rs: ResultStore,
    *,
    older_than: float | datetime.timedelta | None = None,
    max_bytes: int | None = None,
    keep_versions: int | None = None,
    dry_run: bool = False,
    bar: progress.Bar | None = None,
) -> PruneReport:
    """:func:`prune` of an opened store (listed objects counted on ``bar``)."""
    background.flush()
    layout = layout_of(rs)
    report, _ = prune_calls(
        layout,
        scan_calls(layout, (SCHEME,), bar),
        older_than=older_than,
        max_bytes=max_bytes,
        keep_versions=keep_versions,
        dry_run=dry_run,
        lease_grace=STORE_LEASE_GRACE,
    )
    return report

