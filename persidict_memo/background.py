"""Deferred housekeeping: store writes no caller needs to wait for.

A miss must publish its result before returning, but its metadata record and the deletion of
its lease can happen a moment later: waiters in other processes return as soon as the result
exists, whether or not the lease is still there. One daemon thread per process runs these tasks
in order; :func:`flush` waits for them (the inspection methods call it, and so does interpreter
exit, for a bounded time). A task that fails is logged and counted, never raised: what it was
doing is optional by construction.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["flush", "submit"]

_log = logging.getLogger("persidict_memo")
_EXIT_FLUSH_SECONDS: Final = 10.0


class _Worker:
    def __init__(self) -> None:
        self.tasks: queue.Queue[Callable[[], None]] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="persidict_memo housekeeping", daemon=True
                )
                self.thread.start()
        self.tasks.put(task)

    def _run(self) -> None:
        while True:
            task = self.tasks.get()
            try:
                task()
            except Exception:
                _log.exception("persidict_memo: deferred store write failed")
            finally:
                self.tasks.task_done()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted task ran; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.tasks.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            thread = self.thread
            if thread is None or not thread.is_alive():
                return False
            time.sleep(0.001)
        return True


_worker = _Worker()


def submit(task: Callable[[], None]) -> None:
    """Run ``task`` soon, in the housekeeping thread."""
    _worker.submit(task)


def flush(timeout: float | None = None) -> bool:
    """Wait for the pending tasks (all of them, or until ``timeout`` seconds passed)."""
    return _worker.flush(timeout)


def _reset_after_fork() -> None:
    global _worker
    _worker = _Worker()


atexit.register(lambda: _worker.flush(_EXIT_FLUSH_SECONDS))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
