"""S3Dict (alias S3Dict_FileDirCached): an S3 store behind a local file cache.

Composition: a :class:`BasicS3Dict` (the truth) plus a local :class:`FileDirDict` cache of values
(and, for mutable stores, of ETags), joined by :class:`AppendOnlyDictCached` (append-only: the
cache is trusted, a warm read makes no request) or :class:`MutableDictCached` (a warm read costs
one conditional GET that answers 304 without transferring the value).

The cache lives under ``<base_dir>/<bucket>/<root prefix components>/`` (each component signed
like any FileDirDict key component), so stores on different buckets or prefixes never share
cached entries.
"""

from __future__ import annotations

import os
from typing import Any

from .append_only_dict_cached import AppendOnlyDictCached
from .basic_s3_dict import BasicS3Dict
from .file_dir_dict import FileDirDict
from .keys import PersiDictKey, SafeStrTuple, check_digest_len, sign_component
from .markers import ValueType
from .mutable_dict_cached import MutableDictCached
from .persi_dict import PersiDict
from .signing import SigningKey, resolve_signing_key
from .wrapper_dict import WrapperDict

__all__ = ["S3Dict", "S3Dict_FileDirCached"]


class S3Dict_FileDirCached(WrapperDict[ValueType]):
    """A PersiDict on S3 with a local file cache (``S3Dict`` is the same class).

    Args:
        bucket_name: the bucket (created if missing and allowed).
        region: the bucket's region (None: the client's default).
        root_prefix: the object-key prefix under which this store lives (``"a/b"``).
        base_dir: the local cache folder (namespaced inside by bucket and root prefix; ``~``
            is expanded).
        serialization_format: ``"pkl"``, ``"json"`` or, for ``str`` values, any safe name.
        digest_len: digest suffix length of the local cache's file names (``0..26``).
        append_only: if True, items can be added but never changed or deleted; warm reads
            then never touch S3.
        base_class_for_values: if set, every value must be an instance of it.
        endpoint_url: an S3-compatible endpoint (MinIO, Ceph, R2...); ``AWS_ENDPOINT_URL``
            is honoured too.
        client: an existing boto3 S3 client to use (shared by sub-stores).
        session: an existing boto3 session to build the client from.
        signing_key: sign every value, on S3 and in the local cache, and refuse values without
            a valid signature (see :doc:`/reliability`); ``None`` takes
            ``$PERSIDICT_SIGNING_KEY`` if set, ``""`` means unsigned.

    Timestamps are S3's ``LastModified``, whole seconds: ``newest_keys()`` cannot order writes
    made within one second.
    """

    def __init__(self, *, bucket_name: str = "my_bucket", region: str | None = None,
                 root_prefix: str = "", base_dir: str | os.PathLike[str] = "__s3_dict__",
                 serialization_format: str = "pkl", digest_len: int = 8,
                 append_only: bool = False, base_class_for_values: type | None = None,
                 endpoint_url: str | None = None, client: Any = None,
                 session: Any = None,
                 signing_key: bytes | str | SigningKey | None = None) -> None:
        check_digest_len(digest_len)
        key = resolve_signing_key(signing_key)
        sign_with = "" if key is None else key  # the caches follow S3, not the environment
        main: BasicS3Dict[ValueType] = BasicS3Dict(
            bucket_name=bucket_name, region=region, root_prefix=root_prefix,
            serialization_format=serialization_format, append_only=append_only,
            base_class_for_values=base_class_for_values, endpoint_url=endpoint_url,
            client=client, session=session, signing_key=sign_with)
        base = os.path.abspath(os.path.expanduser(os.fspath(base_dir)))
        parts = [bucket_name, *(p for p in main.root_prefix.split("/") if p)]
        cache_dir = os.path.join(base, *(sign_component(p, digest_len) for p in parts))
        data_cache: FileDirDict[ValueType] = FileDirDict(
            base_dir=cache_dir, serialization_format=serialization_format,
            append_only=append_only, digest_len=digest_len,
            base_class_for_values=base_class_for_values, signing_key=sign_with)
        etag_cache: FileDirDict[str] | None = None
        if not append_only:
            etag_cache = FileDirDict(
                base_dir=cache_dir, serialization_format=f"{main.serialization_format}_etag",
                digest_len=digest_len, base_class_for_values=str, signing_key=sign_with)
            # A mutable cache is validated against S3 on every read and MutableDictCached reads
            # a damaged entry as a miss, so its writes need no fsync: S3 is the durable copy.
            data_cache._file_backend.durable = False
            etag_cache._file_backend.durable = False
        self._wire(main, data_cache, etag_cache, base, digest_len)

    def _wire(self, main: BasicS3Dict[ValueType], data_cache: FileDirDict[ValueType],
              etag_cache: FileDirDict[str] | None, base_dir: str, digest_len: int) -> None:
        """Join the S3 store and its local caches (shared by __init__ and get_subdict)."""
        cached: PersiDict[ValueType]
        if etag_cache is None:
            cached = AppendOnlyDictCached(main_dict=main, data_cache=data_cache)
        else:
            cached = MutableDictCached(main_dict=main, data_cache=data_cache,
                                       etag_cache=etag_cache)
        super().__init__(main_dict=cached, append_only=main.append_only)
        self._s3 = main
        self._data_cache = data_cache
        self._etag_cache = etag_cache
        self._base_dir = base_dir
        self._digest_len = digest_len

    @property
    def bucket_name(self) -> str:
        """The S3 bucket."""
        return self._s3.bucket_name

    @property
    def region(self) -> str | None:
        """The region given at construction (None: the client's default)."""
        return self._s3.region

    @property
    def root_prefix(self) -> str:
        """The normalised root prefix (``""`` or ending with ``/``)."""
        return self._s3.root_prefix

    @property
    def base_url(self) -> str:
        """``s3://bucket/root_prefix``."""
        return self._s3.base_url

    @property
    def base_dir(self) -> str:
        """The local cache folder given at construction (absolute)."""
        return self._base_dir

    @property
    def digest_len(self) -> int:
        """Digest suffix length of the local cache's file names."""
        return self._digest_len

    def get_params(self) -> dict[str, Any]:
        """The BasicS3Dict parameters plus ``base_dir`` and ``digest_len``, sorted."""
        params = self._s3.get_params()
        params.update(base_dir=self._base_dir, digest_len=self._digest_len)
        return dict(sorted(params.items()))

    def get_subdict(self, prefix_key: PersiDictKey) -> S3Dict_FileDirCached[ValueType]:
        """The same kind of store on ``root_prefix + prefix``: same client, no bucket request."""
        prefix = SafeStrTuple(prefix_key)
        main = self._s3.get_subdict(prefix)
        data_cache = self._data_cache.get_subdict(prefix)
        assert isinstance(data_cache, FileDirDict)
        etag_cache: FileDirDict[str] | None = None
        if self._etag_cache is not None:  # a sub-store of the cache: no directory is made
            etag_sub = self._etag_cache.get_subdict(prefix)
            assert isinstance(etag_sub, FileDirDict)
            etag_cache = etag_sub
        sub: S3Dict_FileDirCached[ValueType] = object.__new__(type(self))
        sub._wire(main, data_cache, etag_cache, self._base_dir, self._digest_len)
        return sub


S3Dict = S3Dict_FileDirCached
