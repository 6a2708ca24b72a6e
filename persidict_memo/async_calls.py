"""The ``async def`` path of a cached function (see :mod:`persidict_memo.memoizer`).

Coroutines of one event loop calling the same uncached call share one computation in process
(the others await its future); store I/O runs in worker threads (``asyncio.to_thread``), and
waiting for another process's lease is ``await asyncio.sleep`` between polls. Imported only by
the first call of an ``async def`` function: importing persidict_memo does not import asyncio.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import publishing
from .memoizer import _COMPUTE, _COMPUTING, _MISSING, _give_up
from .publishing import publish

if TYPE_CHECKING:
    from .memoizer import Memoizer

__all__ = ["call_async"]


async def call_async(
    memo: Memoizer,
    body: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    full_args: tuple[Any, ...],
) -> Any:
    """:meth:`Memoizer.call` for ``async def`` functions; store I/O runs in worker threads."""
    key = memo.keys.key(full_args, kwargs)
    value = memo._memory.get(key, _MISSING)
    if value is not _MISSING and not memo.check_determinism:
        memo.hits += 1
        return value
    loop = asyncio.get_running_loop()
    while key not in _COMPUTING.get():  # join a computation of this loop, if any
        running = memo._inflight.get(key)
        if running is None or running[0] is not loop:
            break
        try:
            value = await asyncio.shield(running[1])
        except Exception:  # it failed: take our turn (the first to get here computes)
            continue
        memo.waits += 1
        return value
    future: asyncio.Future[Any] = loop.create_future()
    mine = (loop, future)
    memo._inflight.setdefault(key, mine)
    try:
        result = await _compute(memo, body, args, kwargs, full_args, key, value)
    except BaseException as exc:
        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
        future.exception()  # retrieved: waiters that were there have it
        raise
    else:
        future.set_result(result)
        return result
    finally:
        if memo._inflight.get(key) is mine:
            del memo._inflight[key]


async def _compute(
    memo: Memoizer,
    body: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    full_args: tuple[Any, ...],
    key: tuple[str, ...],
    remembered: Any,
) -> Any:
    """Take the call's turn (a lease, or wait for another caller), then compute and publish."""
    begun = await asyncio.to_thread(memo._look, key, remembered)
    if begun is None:
        leases = memo._leases
        assert leases is not None
        try:
            lease, waited = await leases.acquire_or_wait_async(
                memo.store.lease_key(key), lambda: memo._exists(key)
            )
        except Exception as exc:  # leases unavailable: compute without one
            memo.report(exc, f"could not take the lease of a {memo.function_name}() call")
            memo.misses += 1
            begun = _COMPUTE
        else:
            begun = await asyncio.to_thread(memo._after_wait, key, lease, waited)
    if begun.found and not begun.verify:
        return begun.value
    lease, pending, token = memo._begin(key, begun)
    try:
        start = time.perf_counter()
        result = await body(*args, **kwargs)
        seconds = time.perf_counter() - start
    except BaseException:
        await asyncio.to_thread(_give_up, lease, pending)
        raise
    finally:
        _COMPUTING.reset(token)
    lease = memo._ended(lease, pending, seconds)
    if begun.verify:
        return publishing.verify(memo, key, begun.value, result)
    return await asyncio.to_thread(
        publish, memo, key, result, seconds, full_args, kwargs, lease, begun.damaged
    )
