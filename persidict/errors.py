"""The persidict error tree. Each class also subclasses the builtin users already catch."""

from __future__ import annotations

from typing import Any

__all__ = ["BackendError", "ConcurrencyConflictError", "MutationPolicyError"]


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
