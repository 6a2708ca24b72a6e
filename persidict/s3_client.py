"""Talking to one S3 endpoint: the client, the error table and what the endpoint enforces.

:class:`~persidict.s3_backend.S3Backend` builds its requests; this module holds what does not
depend on a bucket or prefix:

* :func:`make_s3_client`: a boto3 client with bounded timeouts and retries, from one
  process-wide session; boto3/botocore are imported here, when an S3 store is first made, never
  at ``import persidict``;
* the one error table, :func:`translate`: a botocore exception becomes an expected outcome
  (not-found, precondition failed, not modified) or a chained
  :class:`~persidict.errors.BackendError`;
* :func:`endpoint_capabilities`: which preconditions an endpoint enforces, probed once per
  endpoint URL and process (see the ``s3_backend`` module docstring for the probe and the
  documented fallback).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .errors import BackendError
from .storage import Key

__all__ = [
    "BOTO3_MISSING_MESSAGE",
    "CONNECT_TIMEOUT",
    "MAX_ATTEMPTS",
    "NOT_FOUND",
    "NOT_FOUND_CODES",
    "PRECONDITION_FAILED",
    "READ_MANY_WORKERS",
    "READ_TIMEOUT",
    "UNCHANGED",
    "S3Capabilities",
    "body_errors",
    "botocore_errors",
    "endpoint_capabilities",
    "endpoint_of",
    "forbid_conditional_retries",
    "is_access_denied",
    "is_unsent",
    "make_s3_client",
    "may_have_landed",
    "retry_attempts",
    "translate",
]

_log = logging.getLogger("persidict.s3_backend")  # one logger for the S3 backend's warnings

BOTO3_MISSING_MESSAGE: Final = 'S3 stores need boto3: pip install "persidict[aws]"'

#: botocore settings for clients persidict creates: bounded retries of transient failures and
#: bounded waits, so an unreachable endpoint gives BackendError in seconds rather than hanging.
CONNECT_TIMEOUT: Final = 3.0
READ_TIMEOUT: Final = 10.0
MAX_ATTEMPTS: Final = 3  # in total, the first attempt included
READ_MANY_WORKERS: Final = 8

# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - exercised only without the aws extra
        raise ImportError(BOTO3_MISSING_MESSAGE) from exc
    return boto3


_session_lock = threading.Lock()
_shared_session: Any = None


def make_s3_client(
    *, region: str | None = None, endpoint_url: str | None = None, session: Any = None
) -> Any:
    """A boto3 S3 client with persidict's timeouts and retry policy.

    ``endpoint_url=None`` lets boto3 apply its own configuration (including the standard
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` environment variables). Without a
    ``session``, clients come from one process-wide boto3 session: building a session loads
    the service models again (about half a second), a client from a warm session takes
    milliseconds. Client creation is serialised, as botocore sessions are not thread-safe.
    """
    global _shared_session
    boto3 = _import_boto3()
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=max(10, READ_MANY_WORKERS * 2),
    )
    with _session_lock:
        if session is None:
            if _shared_session is None:
                _shared_session = boto3.session.Session()
            session = _shared_session
        return session.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


def _no_retry_if_conditional(request_dict: Any = None, **_: Any) -> bool | None:
    """botocore ``needs-retry`` hook: never re-send a request that carries a precondition.

    Returning ``False`` (a non-None answer, seen first) stops botocore's retry handler for this
    attempt; ``None`` lets it decide as usual.
    """
    headers = (request_dict or {}).get("headers") or {}
    if "If-Match" in headers or "If-None-Match" in headers:
        return False
    return None


def forbid_conditional_retries(client: Any) -> None:
    """Make ``client`` send conditional PUTs and DELETEs exactly once per call.

    botocore re-sends a request whose answer was lost; for a conditional request whose first
    attempt did land, the re-sent one fails against our own change, and a 412 or 404 then
    hides what happened. :class:`~persidict.s3_backend.S3Backend` decides itself, from what
    the object holds afterwards, whether to send again (see its module docstring). The hook is
    registered once per client (idempotent) and touches no other request.
    """
    events = client.meta.events
    for operation in ("PutObject", "DeleteObject"):
        events.register_first(f"needs-retry.s3.{operation}", _no_retry_if_conditional,
                              unique_id=f"persidict-no-conditional-retry-{operation}")


def endpoint_of(client: Any) -> str:
    """The endpoint URL a client talks to (``""`` if unknown)."""
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")


def botocore_errors() -> tuple[type[BaseException], ...]:
    """What a request can raise: a ClientError (an answer) or a BotoCoreError (none)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def body_errors() -> tuple[type[BaseException], ...]:
    """What reading a response body cut off mid-stream raises."""
    from botocore.exceptions import IncompleteReadError, ResponseStreamingError

    return (IncompleteReadError, ResponseStreamingError)


# --------------------------------------------------------------------------------------------
# The one error table
# --------------------------------------------------------------------------------------------

NOT_FOUND: Final = "not-found"
PRECONDITION_FAILED: Final = "precondition-failed"
UNCHANGED: Final = "not-modified"  # a 304

NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION_CODES: Final = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
_NOT_MODIFIED_CODES: Final = frozenset({"304", "NotModified"})


def _classify_client_error(exc: Any) -> str | None:
    """not-found / precondition-failed / not-modified, or None for a real failure."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    code = str(error.get("Code", ""))
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return None
    if code in NOT_FOUND_CODES or (status == 404 and code in ("", "NoSuchVersion")):
        return NOT_FOUND
    if code in _PRECONDITION_CODES or status == 412:
        return PRECONDITION_FAILED
    if code in _NOT_MODIFIED_CODES or status == 304:
        return UNCHANGED
    return None


def retry_attempts(exc: BaseException) -> int:
    """How many times botocore re-sent the request before this answer (0 if unknown)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int((response.get("ResponseMetadata") or {}).get("RetryAttempts") or 0)


def is_unsent(exc: BaseException) -> bool:
    """True when the request certainly never reached the endpoint (no connection was made)."""
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
    )

    return isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, NoCredentialsError,
                            ParamValidationError))


def may_have_landed(exc: BaseException) -> bool:
    """True when a request failed without a definitive answer: it may or may not have been
    applied (a connection reset or closed mid-answer, a read timeout, a 5xx or throttling
    answer, for which S3 does not promise that nothing happened)."""
    if is_unsent(exc):
        return False
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return isinstance(status, int) and (status >= 500 or status == 429)
    return True  # no answer at all


def is_access_denied(exc: BaseException | None) -> bool:
    """True for a 403 / AccessDenied answer."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str((response.get("Error") or {}).get("Code", ""))
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code in ("AccessDenied", "403", "Forbidden") or status == 403


def _describe_error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return f"{error.get('Code', '?')} (HTTP {status}): {error.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


def translate(
    exc: BaseException, *, operation: str, key: Key | None, where: str, expected: frozenset[str]
) -> str:
    """Map a botocore exception to an expected outcome, or raise BackendError from it.

    ``expected`` lists the outcomes the caller turns into return values; anything else —
    including a not-found where none is expected — is an infrastructure failure.
    """
    kind = None
    if hasattr(exc, "response"):
        kind = _classify_client_error(exc)
    if kind is not None and kind in expected:
        return kind
    raise BackendError(
        f"S3 {operation} failed for {where}: {_describe_error(exc)}",
        backend="s3",
        operation=operation,
        key=key,
    ) from exc


# --------------------------------------------------------------------------------------------
# Capabilities, per endpoint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Capabilities:
    """Which preconditions an endpoint enforces (checked once per endpoint URL)."""

    put_if_none_match_star: bool
    put_if_match: bool
    delete_if_match: bool


_capabilities: dict[str, S3Capabilities] = {}
_capabilities_lock = threading.Lock()


def endpoint_capabilities(client: Any, bucket: str, root_prefix: str) -> S3Capabilities:
    """Which preconditions ``client``'s endpoint enforces; probed once per endpoint URL.

    The probe writes an object in ``bucket`` under ``root_prefix`` (see :func:`_probe`). An
    unreachable endpoint raises BackendError and is probed again next time; credentials that
    may not write the probe object (403) make it assume an enforcing endpoint, with a warning.
    """
    endpoint = endpoint_of(client)
    caps = _capabilities.get(endpoint)
    if caps is not None:
        return caps
    with _capabilities_lock:
        caps = _capabilities.get(endpoint)
        if caps is None:
            try:
                caps = _probe(client, bucket, root_prefix)
            except BackendError as exc:
                if not is_access_denied(exc.__cause__):
                    raise  # the endpoint is unreachable: so is the operation; probe later
                # Credentials that may not write/delete probe objects (a narrow policy):
                # trust the endpoint, as every current S3 implementation enforces them.
                _log.warning(
                    "cannot probe S3 endpoint %s for conditional requests (%s); assuming "
                    "it enforces If-Match / If-None-Match", endpoint or "<default>", exc,
                )
                caps = S3Capabilities(True, True, True)
            _capabilities[endpoint] = caps
            if not (caps.put_if_none_match_star and caps.put_if_match and caps.delete_if_match):
                _log.warning(
                    "S3 endpoint %s does not enforce every precondition (%s); persidict "
                    "falls back to check-then-act for those operations, which is not atomic",
                    endpoint or "<default>",
                    caps,
                )
    return caps


def _probe(client: Any, bucket: str, root_prefix: str) -> S3Capabilities:
    """Write a probe object, then write/delete it with wrong preconditions (five requests)."""
    probe_key = f"{root_prefix}__persidict_probe_{uuid.uuid4().hex}__"
    where = f"s3://{bucket}/{probe_key}"
    errors = botocore_errors()

    def refused(call: Callable[[], Any]) -> bool:
        """True when the endpoint refused the request with a precondition failure."""
        try:
            call()
        except errors as exc:
            kind = translate(exc, operation="probe", key=None, where=where,
                             expected=frozenset({PRECONDITION_FAILED, NOT_FOUND}))
            return kind == PRECONDITION_FAILED
        return False

    try:
        try:
            client.put_object(Bucket=bucket, Key=probe_key, Body=b"probe")
        except errors as exc:
            translate(exc, operation="probe", key=None, where=f"s3://{bucket}/{root_prefix}",
                      expected=frozenset())
        star = refused(lambda: client.put_object(
            Bucket=bucket, Key=probe_key, Body=b"probe2", IfNoneMatch="*"))
        match = refused(lambda: client.put_object(
            Bucket=bucket, Key=probe_key, Body=b"probe3", IfMatch='"__wrong_etag__"'))
        delete = refused(lambda: client.delete_object(
            Bucket=bucket, Key=probe_key, IfMatch='"__wrong_etag__"'))
    finally:
        try:
            client.delete_object(Bucket=bucket, Key=probe_key)
        except errors:
            pass  # best effort; a leftover probe object is never listed as an item
    return S3Capabilities(star, match, delete)
