"""Where cached results live: resolving ``store=`` and laying out results, metadata and leases.

``store=`` may be

* ``None``: a :class:`~persidict.FileDirDict` in ``$PERSIDICT_MEMO_DIR`` if set, else in
  ``$XDG_CACHE_HOME/persidict_memo`` (``~/.cache/persidict_memo`` without XDG_CACHE_HOME);
* a ``str`` or ``os.PathLike``: a FileDirDict in that directory;
* ``"s3://bucket/prefix"``: an :class:`~persidict.S3Dict` (boto3 finds credentials, region and
  ``AWS_ENDPOINT_URL`` the usual way) whose local file cache is the ``s3`` folder of the
  default directory, so a warm result is read from local disk, not from S3;
* any :class:`~persidict.PersiDict`: used as it is.

A leading ``~`` in a directory is expanded. Anything that looks like a URL of another scheme
(``gs://...``, ``file://...``) or a malformed S3 URL (``s3:/x``, ``s3://``) is a ``ValueError``
at decoration time. A store that cannot be opened at all (boto3 missing, no credentials, a
bucket that cannot be reached, a directory that cannot be created) is a
:class:`StoreUnavailableError` at the first call, saying what to fix.

Each result has a sibling under the same key, in a format of its own on the same storage (an
:class:`~persidict.OverlappingMultiDict`, so on disk ``<digest>.pkl`` sits next to
``<digest>.meta``):

* the result, in the store's own format (pickle by default), published with an atomic
  insert-if-absent into an append-only view: the first result stands;
* ``meta``: a JSON text record: while the result is being computed, the lease of the process
  computing it; once it is published, its metadata (created, compute seconds, host, versions,
  size, arguments). See :mod:`persidict_memo.leases`.

A store that cannot be cloned into such siblings (a wrapper such as ``AppendOnlyDictCached``)
keeps both itself, the records under keys whose last component ends in ``~meta``; on an
append-only store of that kind leases are not used, since a lease record must be replaceable.

Memo files are not fsync'ed unless ``durable=True``: an entry lost or damaged by a power cut is
a miss (a damaged one is reported, recomputed and replaced), never a wrong result.
"""

from __future__ import annotations

import os
import re
from typing import Any, Final
from urllib.parse import urlparse

import persidict
from persidict import PersiDict

__all__ = [
    "ResultStore",
    "StoreUnavailableError",
    "check_store",
    "default_cache_dir",
    "expand_directory",
    "open_store",
]

_KIND_PARAMS: Final = ("serialization_format", "append_only", "base_class_for_values")
# A URL scheme (two characters at least, so that a Windows drive "C:" stays a directory).
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_FORMS: Final = "None, a directory, an 's3://bucket/prefix' URL or a PersiDict"


class StoreUnavailableError(RuntimeError):
    """The cache store could not be opened or never answered; the message says what to fix.

    Raised at the first call of a cached function, whatever ``on_store_error`` says (that
    option governs the failures of a store that worked). Chained from the underlying error.
    """


def expand_directory(path: str | os.PathLike[str]) -> str:
    """A directory store's path with ``~`` expanded, made absolute."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def check_store(store: object) -> None:
    """Reject a ``store=`` argument that can never work (decoration time, no I/O).

    Raises:
        TypeError: not one of the accepted kinds.
        ValueError: a URL of an unknown scheme, or a malformed ``s3://`` URL.
    """
    if store is None or isinstance(store, PersiDict):
        return
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if not isinstance(store, str):
        raise TypeError(f"store must be {_FORMS}, got {type(store).__name__}")
    if not store.strip():
        raise ValueError("store must not be an empty string")
    match = _SCHEME.match(store)
    if match is None:
        return
    scheme = match.group(1).lower()
    if scheme != "s3":
        raise ValueError(
            f"store={store!r}: unknown scheme {scheme!r}; give {_FORMS} "
            "(for other storage, pass a PersiDict built on it)"
        )
    parsed = urlparse(store)
    if not store.startswith("s3://") or not parsed.netloc:
        raise ValueError(f"store={store!r} is not an S3 URL of the form 's3://bucket/prefix'")
    if not _BUCKET.match(parsed.netloc) or ".." in parsed.netloc:
        raise ValueError(f"store={store!r}: {parsed.netloc!r} is not a valid S3 bucket name")


def default_cache_dir() -> str:
    """The directory of the default store, read from the environment at each call."""
    explicit = os.environ.get("PERSIDICT_MEMO_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "persidict_memo")


def open_store(store: object, signing_key: bytes | str | None = None) -> PersiDict[Any]:
    """Turn a ``store=`` argument into a PersiDict (see the module docstring); the stores it
    opens sign their values with ``signing_key`` (None: ``$PERSIDICT_SIGNING_KEY`` if set)."""
    if isinstance(store, PersiDict):
        return store
    check_store(store)
    if store is None:
        return persidict.FileDirDict(base_dir=expand_directory(default_cache_dir()),
                                     signing_key=signing_key)
    if isinstance(store, str) and store.startswith("s3://"):
        parsed = urlparse(store)
        s3: PersiDict[Any] = persidict.S3Dict(
            bucket_name=parsed.netloc,
            root_prefix=parsed.path.strip("/"),
            base_dir=os.path.join(expand_directory(default_cache_dir()), "s3"),
            signing_key=signing_key,
        )
        return s3
    if isinstance(store, str | os.PathLike):
        return persidict.FileDirDict(base_dir=expand_directory(store), signing_key=signing_key)
    raise TypeError(f"store must be {_FORMS}, got {type(store).__name__}")


def unavailable(store: object, function: str, exc: BaseException) -> StoreUnavailableError:
    """The error for a store that cannot be opened or never answered, with what to fix."""
    where = store if isinstance(store, str) else (
        "the default store" if store is None else type(store).__name__)
    text = f"{type(exc).__name__}: {exc}"
    names = {type(e).__name__ for e in _chain(exc)}
    if isinstance(exc, ImportError) and "boto3" in str(exc):
        hint = 'install the S3 support: pip install "persidict[aws]"'
    elif names & {"NoCredentialsError", "PartialCredentialsError", "NoRegionError"}:
        hint = "configure AWS credentials and region (environment, ~/.aws, or an IAM role)"
    elif any(w in text for w in ("AccessDenied", "Forbidden", "403", "PermissionError")) or (
        names & {"PermissionError"}
    ):
        hint = "grant read and write access to it, or choose another store"
    elif any(w in text for w in ("NoSuchBucket", "404", "Not Found")):
        hint = "create the bucket or fix its name"
    elif names & {"EndpointConnectionError", "ConnectionError", "ConnectTimeoutError"}:
        hint = "check the endpoint (AWS_ENDPOINT_URL) and the network"
    else:
        hint = "fix the store= argument (or PERSIDICT_MEMO_DIR) so that it can be opened"
    return StoreUnavailableError(
        f"persidict_memo: the cache store of {function}() ({where}) cannot be used: {text}. "
        f"To fix: {hint}."
    )


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


class ResultStore:
    """The results, metadata and leases of cached functions, over one user store.

    Attributes:
        remote: the store is S3 (metadata is written off the critical path).
        results: append-only view of the results (publishing and reading).
        admin: mutable view of the same results (``forget``, ``cache_clear``, replacing a
            damaged entry).
        meta: metadata and lease records (JSON text).
        leases: ``meta`` when leases can be used (it is mutable), else None.
    """

    def __init__(self, base: PersiDict[Any], *, durable: bool = False) -> None:
        self.base = base
        # On S3 a request costs milliseconds: a miss's metadata write (which also releases its
        # lease) is then done by the housekeeping thread, off the caller's critical path. A
        # lease whose result is published counts as released, so a process that exits before
        # that write loses only the metadata. On local stores everything is written before the
        # call returns.
        self.remote = hasattr(base, "bucket_name")
        self._suffixed = False
        try:
            self._use_siblings(base)
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            self._use_one_store(base)
        if not self._suffixed:
            for store in (self.results, self.admin, self.meta):
                _set_durability(store, durable)
            for store in (self.results, self.meta):
                _insert_without_stat(store)


    def _use_siblings(self, base: PersiDict[Any]) -> None:
        params = base.get_params()
        if not {"serialization_format", "append_only"} <= set(params):
            raise TypeError("not a directly constructible store")
        shared = {k: v for k, v in params.items() if k not in _KIND_PARAMS}
        fmt = base.serialization_format
        formats: dict[str, dict[str, Any]] = {
            fmt: {"append_only": True, "base_class_for_values": base.base_class_for_values},
            "meta": {"base_class_for_values": str},
        }
        family = persidict.OverlappingMultiDict(
            dict_type=type(base), shared_subdicts_params=shared, **formats
        )
        self.results: PersiDict[Any] = getattr(family, fmt)
        self.admin: PersiDict[Any] = self.results.clone(append_only=False)
        self.meta: PersiDict[Any] = family.meta
        self.leases: PersiDict[Any] | None = self.meta

    def _use_one_store(self, base: PersiDict[Any]) -> None:
        self._suffixed = True
        self.results = base
        self.admin = base
        self.meta = base
        self.leases = None if base.append_only else base

    def meta_key(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """Where the metadata of the result under ``key`` is kept."""
        return (*key[:-1], key[-1] + "~meta") if self._suffixed else key

    def lease_key(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """Where the lease of the computation of ``key`` is kept: its metadata record."""
        return self.meta_key(key)

    def clear_prefix(self, prefix: tuple[str, ...]) -> int:
        """Delete every result and metadata (or lease) record under ``prefix``; count results."""
        removed = 0
        stores = [self.admin] if self._suffixed else [self.admin, self.meta]
        for index, store in enumerate(stores):
            for key in _keys_under(store, prefix):
                sibling = self._suffixed and key[-1].endswith("~meta")
                if store.discard(key) and index == 0 and not sibling:
                    removed += 1
        return removed

    def describe(self) -> str:
        """Where the results are, for messages."""
        return repr(self.base)


def _set_durability(store: PersiDict[Any] | None, durable: bool) -> None:
    """fsync (or not) the files of a FileDirDict view; other stores decide for themselves.

    A memo entry lost or damaged by a power cut is only a miss (a damaged one is recomputed
    and replaced), so by default memo files are not fsync'ed: a write costs no disk flush.
    """
    backend = getattr(store, "_file_backend", None)
    if backend is not None and hasattr(backend, "durable"):
        backend.durable = durable


def _insert_without_stat(store: PersiDict[Any]) -> None:
    """Make insert-if-absent try the write first on a memo view of a local file store.

    A memo entry is almost always absent when it is published (the caller just missed it), so
    the stat that a FileDirDict's insert-if-absent does first (to leave the directory untouched
    when the key exists) only costs a miss: the write is an atomic link that fails if the key
    exists, and a refused one only creates and removes a temp file.
    """
    backend: Any = getattr(store, "_file_backend", None)
    the_one_it_uses = getattr(store, "_backend", None) is backend  # (BackendDict reads that)
    if backend is not None and the_one_it_uses:
        backend.insert_before_stat = True


def _keys_under(store: PersiDict[Any], prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    try:
        sub = store.get_subdict(prefix)
    except NotImplementedError:
        return [tuple(k) for k in store if tuple(k)[: len(prefix)] == prefix]
    return [(*prefix, *k) for k in sub]
