"""Publishing a fresh result: insert-if-absent, then the metadata record (which frees the lease).

The first result stands: a late writer gets the stored result back. Over a damaged entry the
result is overwritten atomically instead. The metadata record replaces the call's lease record
in the same write; on S3 that write is done by the housekeeping thread, off the critical path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from persidict import (
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    NEVER_RETRIEVE,
    MutationPolicyError,
    WriteOnceDict,
)

from . import background
from .leases import LeaseRecord
from .metadata import build_metadata, pickled_size

if TYPE_CHECKING:
    from .leases import Lease
    from .memoizer import Memoizer
    from .stores import ResultStore

__all__ = ["describe_call", "publish", "store_result", "verify", "write_metadata"]


def publish(
    memo: Memoizer,
    key: tuple[str, ...],
    result: Any,
    seconds: float,
    full_args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    lease: Lease | None,
    replace: bool = False,
) -> Any:
    """Store a fresh result and its metadata; return the result that stands.

    The first result stands (insert-if-absent), except over a damaged entry (``replace``),
    which is overwritten atomically. A result that cannot be stored is reported
    (``on_store_error``) and returned, its lease given up.
    """
    try:
        size = pickled_size(result)  # an unpicklable result fails here, before any write
        won = store_result(memo.store, key, result, replace)
    except MutationPolicyError:
        if lease is not None:
            lease.abandon()
        raise  # a failed determinism check is the answer, not a storage problem
    except Exception as exc:
        if lease is not None:
            lease.abandon()
        memo.report(exc, f"could not store the result of {memo.function_name}()")
        return result
    stored = result
    if won:
        memo.remember(key, result, size)
    else:  # another caller published first: its result stands
        if memo.check_determinism > 0:
            verify(memo, key, None, result)
        found, value, _ = memo.read(key)
        stored = value if found else result
    text = describe_call(memo, key, result, size, seconds, full_args, kwargs)
    store = memo.store
    if store.remote:  # off the critical path (see ResultStore.remote)
        background.submit(lambda: _write_metadata_quietly(memo, key, text, lease, replace))
        return stored
    try:
        write_metadata(store, key, text, lease, overwrite=replace)
    except Exception as exc:  # the result stands; only its description is missing
        memo.report(exc, f"could not store the metadata of a {memo.function_name}() call")
    return stored


def _write_metadata_quietly(
    memo: Memoizer, key: tuple[str, ...], text: str, lease: Lease | None, overwrite: bool
) -> None:
    try:
        write_metadata(memo.store, key, text, lease, overwrite)
    except Exception:  # logged by the housekeeping thread; the result stands
        memo.store_errors += 1
        raise


def store_result(store: ResultStore, key: tuple[str, ...], result: Any, replace: bool) -> bool:
    """Insert-if-absent (or, over a damaged entry, replace); True if ours was written."""
    if replace:
        store.admin[key] = result  # atomic: a temp file renamed over the damaged one
        return True
    return bool(
        store.results.setdefault_if(
            key,
            default_value=result,
            condition=ANY_ETAG,
            expected_etag=ITEM_NOT_AVAILABLE,
            retrieve_value=NEVER_RETRIEVE,
        ).value_was_mutated
    )


def describe_call(
    memo: Memoizer,
    key: tuple[str, ...],
    result: Any,
    size: int,
    seconds: float,
    full_args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> str:
    """The metadata record of a fresh result."""
    return build_metadata(
        function=memo.function_name,
        key=key,
        arguments=memo.keys.describe(full_args, kwargs),
        compute_seconds=seconds,
        result=result,
        result_size=size,
    )


def write_metadata(
    store: ResultStore, key: tuple[str, ...], text: str, lease: Lease | None, overwrite: bool
) -> None:
    """Record the metadata; with a lease, the same write releases it."""
    if lease is not None:
        lease.finish(text)  # a lease taken over is the new holder's to finish
        return
    meta_key = store.meta_key(key)
    if overwrite:
        store.meta[meta_key] = text
        return
    outcome = store.meta.setdefault_if(
        meta_key,
        default_value=text,
        condition=ANY_ETAG,
        expected_etag=ITEM_NOT_AVAILABLE,
        retrieve_value=NEVER_RETRIEVE,
    )
    if outcome.value_was_mutated or store.meta.append_only:
        return
    got = store.meta.get_with_etag(meta_key)  # another caller's lease: moot now
    if got.resulting_etag is not ITEM_NOT_AVAILABLE and LeaseRecord.from_text(
        got.new_value
    ) is not None:
        store.meta.set_item_if(
            meta_key,
            value=text,
            condition=ETAG_IS_THE_SAME,
            expected_etag=got.resulting_etag,
            retrieve_value=NEVER_RETRIEVE,
        )


def verify(memo: Memoizer, key: tuple[str, ...], stored: Any, fresh: Any) -> Any:
    """Compare a recomputed result with the stored one (WriteOnceDict's consistency check)."""
    checker = memo.checker
    if checker is None:
        checker = memo.checker = WriteOnceDict(
            wrapped_dict=memo.store.results, p_consistency_checks=1.0
        )
    try:
        checker[key] = fresh
    except MutationPolicyError as exc:
        raise MutationPolicyError(
            "write-once",
            f"{memo.function_name}() is not deterministic: a recomputed result differs "
            f"from the cached one ({exc})",
        ) from exc
    return stored
