"""The grace period of quick calls: their lease is taken only if they outlast it.

Taking a lease costs a store write before the body runs. A process whose recent computations of
a function were all quick (see :data:`QUICK_STREAK`) starts the next one without it, and asks
this module's watcher, one daemon thread per process, to take the lease for it
:data:`LEASE_GRACE` seconds later:

* a call that finishes within the grace period publishes without ever taking a lease (the
  watcher forgets it; registering and finishing it are two short critical sections, no thread
  switch);
* a call that is still running when the grace period ends gets its lease then (at most one
  more grace period later: the watcher looks at its calls once per grace period), from the
  watcher (an atomic insert-if-absent, the same as an upfront lease): any caller that arrives
  after that waits for its result instead of computing it again, and the holder publishes and
  releases as usual. So only callers that started the same call within a grace period or two
  of each other can compute it twice; the first result stands for all of them.

If another caller already holds the lease at the end of the grace period, this call goes on
and publishes insert-if-absent: its result stands only if it is first.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .leases import Lease, Leases

__all__ = ["LEASE_GRACE", "QUICK_STREAK", "GraceCall", "finish", "start"]

# A process calls a function without an upfront lease once its last QUICK_STREAK computations
# each ran under LEASE_GRACE seconds; the first slower computation turns upfront leases back on.
LEASE_GRACE: Final = 0.05
QUICK_STREAK: Final = 3

_PENDING, _ACQUIRING, _LEASED, _UNLEASED, _DONE = range(5)
# The watcher looks at its calls every grace period while calls come in; after this many looks
# in a row found none started since the previous look, it sleeps until notified. (Notifying it
# at every call would cost each quick call a thread switch: in a sweep it wakes by itself.)
_IDLE_AFTER_EMPTY_LOOKS: Final = 20


class GraceCall:
    """One computation running in its grace period."""

    __slots__ = ("deadline", "key", "lease", "leases", "state")

    def __init__(self, leases: Leases, key: tuple[str, ...], deadline: float) -> None:
        self.leases = leases
        self.key = key
        self.deadline = deadline
        self.state = _PENDING
        self.lease: Lease | None = None


class _Watcher:
    """Takes the lease of every call still running at the end of its grace period."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.calls: deque[GraceCall] = deque()  # in deadline order: one grace for all
        self.thread: threading.Thread | None = None
        self.idle = False  # the thread waits for a notification (no call pending)
        self.started = 0  # calls started so far (the thread sees whether calls keep coming)

    def start(self, leases: Leases, record_key: tuple[str, ...]) -> GraceCall:
        call = GraceCall(leases, record_key, time.monotonic() + LEASE_GRACE)
        with self.cond:
            self.calls.append(call)
            self.started += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="persidict_memo grace", daemon=True
                )
                self.thread.start()
            elif self.idle:
                self.cond.notify()
        return call

    def finish(self, call: GraceCall) -> Lease | None:
        with self.cond:
            while call.state == _ACQUIRING:  # the watcher is inserting the lease right now
                self.cond.wait()
            leased = call.state == _LEASED
            call.state = _DONE
        return call.lease if leased else None

    def _next_due(self) -> GraceCall:
        """Wait for the first call whose grace period ended while it still runs."""
        empty_looks = 0
        seen = -1
        with self.cond:
            while True:
                calls = self.calls
                while calls and calls[0].state == _DONE:
                    calls.popleft()
                if not calls:
                    # (calls that came and went since the last look count as activity)
                    empty_looks = 0 if self.started != seen else empty_looks + 1
                    seen = self.started
                    if empty_looks < _IDLE_AFTER_EMPTY_LOOKS:
                        self.cond.wait(LEASE_GRACE)
                        continue
                    self.idle = True
                    self.cond.wait()
                    self.idle = False
                    continue
                empty_looks = 0
                pause = calls[0].deadline - time.monotonic()
                if pause <= 0:
                    call = calls.popleft()
                    call.state = _ACQUIRING
                    return call
                self.cond.wait(pause)

    def _run(self) -> None:
        while True:
            call = self._next_due()
            try:
                lease = call.leases.try_acquire(call.key)
            except Exception:  # leases unavailable now: the call publishes without one
                lease = None
            with self.cond:
                call.lease = lease
                call.state = _LEASED if lease is not None else _UNLEASED
                self.cond.notify_all()


_watcher = _Watcher()


def start(leases: Leases, record_key: tuple[str, ...]) -> GraceCall:
    """A computation of the call whose lease record is ``record_key`` begins, without a lease."""
    return _watcher.start(leases, record_key)


def finish(call: GraceCall) -> Lease | None:
    """The computation ended (returned or raised): the lease taken for it, if any.

    The caller publishes with that lease (which releases it) or abandons it.
    """
    return _watcher.finish(call)


def _reset_after_fork() -> None:
    global _watcher
    _watcher = _Watcher()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
