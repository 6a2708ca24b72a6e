"""The persidict error tree. Each class also subclasses the builtin users already catch."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError", "ConcurrencyConflictError", "MutationPolicyError", "OutcomeUnknownError",
]


class MutationPolicyError(TypeError):
    """A write the store's policy forbids (``"append-only"``, ``"write-once"``).

    A ``TypeError``, so ``except TypeError`` catches it; ``str(e)`` is the policy name unless a
    longer explanation was given, and ``e.policy`` is always the policy name.
    """

    def __init__(self, policy: str, detail: str | None = None) -> None:
        super().__init__(policy if detail is None else f"{policy}: {detail}")
        self.policy = policy
        self.detail = detail


class ConcurrencyConflictError(RuntimeError):
    """A read-modify-write kept losing races with other writers and gave up."""

    def __init__(self, key: Any, attempts: int) -> None:
        super().__init__(f"operation failed after {attempts} attempt(s) for key {key!r}")
        self.key = key
        self.attempts = attempts


class BackendError(RuntimeError):
    """The storage itself failed: a disk, network or service error, or a damaged stored value.

    Always chained (``raise BackendError(...) from exc``) from the underlying error.

    Attributes:
        backend: ``"filesystem"``, ``"s3"``, ``"memory"``...
        operation: what was being done (``"read"``, ``"write"``, ``"decode"``, ``"list"``...).
        key: the key involved, if any.
    """

    def __init__(
        self, message: str, *, backend: str, operation: str, key: Any = None
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation
        self.key = key


class OutcomeUnknownError(BackendError):
    """A conditional write or delete was sent, but whether it took effect cannot be known.

    Raised when the answer to a conditional request was lost (a reset connection, a timeout, a
    5xx) and what the store holds afterwards cannot tell whether *this* request was applied:
    for example a conditional delete whose key is now absent (deleted by us, or by someone
    else?), or a conditional write whose key now holds another writer's value (written over
    ours, or written instead of ours?). persidict never guesses and never re-sends such a
    request blindly, so an operation is applied at most once and reported only if it happened;
    this error is the third answer besides success and "the condition did not hold".

    The caller decides: re-read and check, retry with a fresh condition, or report it.

    Attributes:
        backend, operation, key: as for :class:`BackendError` (``operation`` is ``"write"`` or
            ``"delete"``; ``key`` the store key).
    """
