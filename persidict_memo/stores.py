"""Where cached results live: resolving ``store=`` and laying out results, metadata and leases.

``store=`` may be

* ``None``: a :class:`~persidict.FileDirDict` in ``$PERSIDICT_MEMO_DIR`` if set, else in
  ``$XDG_CACHE_HOME/persidict_memo`` (``~/.cache/persidict_memo`` without XDG_CACHE_HOME);
* a ``str`` or ``os.PathLike``: a FileDirDict in that directory;
* ``"s3://bucket/prefix"``: an :class:`~persidict.S3Dict` (boto3 finds credentials, region and
  ``AWS_ENDPOINT_URL`` the usual way) whose local file cache is the ``s3`` folder of the
  default directory, so a warm result is read from local disk, not from S3;
* any :class:`~persidict.PersiDict`: used as it is.

Each result has two siblings under the same key, in formats of their own on the same storage
(an :class:`~persidict.OverlappingMultiDict`, so on disk ``<digest>.pkl`` sits next to
``<digest>.meta`` and, while it is being computed, ``<digest>.lease``):

* the result, in the store's own format (pickle by default), published with an atomic
  insert-if-absent into an append-only view: the first result stands;
* ``meta``: a JSON text record (created, compute seconds, host, versions, size, arguments);
* ``lease``: a JSON text lease record (see :mod:`persidict_memo.leases`).

A store that cannot be cloned into such siblings (a wrapper such as ``AppendOnlyDictCached``)
keeps all three itself, metadata and leases under keys whose last component ends in
``~meta`` / ``~lease``; on an append-only store of that kind leases are not used, since a lease
must be deletable.
"""

from __future__ import annotations

import os
from typing import Any, Final
from urllib.parse import urlparse

import persidict
from persidict import PersiDict

__all__ = ["ResultStore", "default_cache_dir", "open_store"]

_KIND_PARAMS: Final = ("serialization_format", "append_only", "base_class_for_values")


def default_cache_dir() -> str:
    """The directory of the default store, read from the environment at each call."""
    explicit = os.environ.get("PERSIDICT_MEMO_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "persidict_memo")


def open_store(store: object) -> PersiDict[Any]:
    """Turn a ``store=`` argument into a PersiDict (see the module docstring)."""
    if isinstance(store, PersiDict):
        return store
    if store is None:
        return persidict.FileDirDict(base_dir=default_cache_dir())
    if isinstance(store, str) and store.startswith("s3://"):
        parsed = urlparse(store)
        if not parsed.netloc:
            raise ValueError(f"an S3 store URL needs a bucket: 's3://bucket/prefix', got {store!r}")
        s3: PersiDict[Any] = persidict.S3Dict(
            bucket_name=parsed.netloc,
            root_prefix=parsed.path.strip("/"),
            base_dir=os.path.join(default_cache_dir(), "s3"),
        )
        return s3
    if isinstance(store, str | os.PathLike):
        return persidict.FileDirDict(base_dir=store)
    raise TypeError(
        "store must be None, a directory (str or os.PathLike), an 's3://bucket/prefix' URL "
        f"or a PersiDict, got {type(store).__name__}"
    )


class ResultStore:
    """The results, metadata and leases of cached functions, over one user store.

    Attributes:
        results: append-only view of the results (publishing and reading).
        admin: mutable view of the same results (``forget``, ``cache_clear``).
        meta: metadata records (JSON text).
        leases: lease records (JSON text), or None when leases cannot be used.
    """

    def __init__(self, base: PersiDict[Any]) -> None:
        self.base = base
        self._suffixed = False
        try:
            self._use_siblings(base)
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            self._use_one_store(base)

    def _use_siblings(self, base: PersiDict[Any]) -> None:
        params = base.get_params()
        if not {"serialization_format", "append_only"} <= set(params):
            raise TypeError("not a directly constructible store")
        shared = {k: v for k, v in params.items() if k not in _KIND_PARAMS}
        fmt = base.serialization_format
        formats: dict[str, dict[str, Any]] = {
            fmt: {"append_only": True, "base_class_for_values": base.base_class_for_values},
            "meta": {"base_class_for_values": str},
            "lease": {"base_class_for_values": str},
        }
        family = persidict.OverlappingMultiDict(
            dict_type=type(base), shared_subdicts_params=shared, **formats
        )
        self.results: PersiDict[Any] = getattr(family, fmt)
        self.admin: PersiDict[Any] = self.results.clone(append_only=False)
        self.meta: PersiDict[Any] = family.meta
        self.leases: PersiDict[Any] | None = family.lease

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
        """Where the lease of the computation of ``key`` is kept."""
        return (*key[:-1], key[-1] + "~lease") if self._suffixed else key

    def clear_prefix(self, prefix: tuple[str, ...]) -> int:
        """Delete every result, metadata record and lease under ``prefix``; count the results."""
        removed = 0
        stores = [self.admin] if self._suffixed else [self.admin, self.meta, self.leases]
        for index, store in enumerate(stores):
            if store is None:
                continue
            for key in _keys_under(store, prefix):
                sibling = self._suffixed and key[-1].endswith(("~meta", "~lease"))
                if store.discard(key) and index == 0 and not sibling:
                    removed += 1
        return removed

    def describe(self) -> str:
        """Where the results are, for messages."""
        return repr(self.base)


def _keys_under(store: PersiDict[Any], prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    try:
        sub = store.get_subdict(prefix)
    except NotImplementedError:
        return [tuple(k) for k in store if tuple(k)[: len(prefix)] == prefix]
    return [(*prefix, *k) for k in sub]
