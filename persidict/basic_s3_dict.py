"""BasicS3Dict: a persistent dict stored in an S3 bucket (uncached).

Every operation is one or a few S3 requests through :class:`~persidict.s3_backend.S3Backend`;
conditional operations (``set_item_if``, ``setdefault_if``, ``discard_if`` and therefore
``transform_item``, ``pop`` and append-only writes) are decided by S3 itself through
``If-Match`` / ``If-None-Match`` headers, so concurrent writers never lose updates.
"""

from __future__ import annotations

from typing import Any

from .backend_dict import BackendDict
from .errors import BackendError
from .keys import PersiDictKey, SafeStrTuple, unsign_component
from .markers import ValueType
from .s3_backend import S3Backend, make_s3_client
from .signing import SigningKey, resolve_signing_key

__all__ = ["BasicS3Dict", "normalize_root_prefix"]


def normalize_root_prefix(root_prefix: object) -> str:
    """Validate a ``root_prefix``: safe components joined by ``/``, optionally ending in ``/``.

    Returns it with a trailing ``/`` (or ``""``). ``TypeError`` for a non-str, ``ValueError``
    for empty components (``"a//b"``, ``"/a"``) or unsafe characters.
    """
    if not isinstance(root_prefix, str):
        raise TypeError(f"root_prefix must be a str, got {type(root_prefix).__name__}")
    if root_prefix == "":
        return ""
    body = root_prefix[:-1] if root_prefix.endswith("/") else root_prefix
    for part in body.split("/"):
        if unsign_component(part, 0) is None:
            raise ValueError(
                f"root_prefix must be safe key components separated by '/', got {root_prefix!r} "
                f"(bad component {part!r})"
            )
    return body + "/"


class BasicS3Dict(BackendDict[ValueType]):
    """A dict-like store of values in ``s3://bucket_name/root_prefix`` (no local cache).

    Args:
        bucket_name: the bucket; created if it does not exist (403 on the check is ignored,
            for buckets of another account).
        region: the client's region (also the bucket's LocationConstraint when created).
        root_prefix: safe components joined by ``/``; a trailing ``/`` is added.
        serialization_format: ``"pkl"``, ``"json"`` or any text extension.
        append_only: forbid overwriting and deleting items.
        base_class_for_values: if given, every value must be an instance of it.
        endpoint_url: an S3-compatible endpoint (MinIO, Ceph, R2, moto...). Without it boto3's
            own configuration applies, including the ``AWS_ENDPOINT_URL`` environment variable.
        client: an existing boto3 S3 client to use as is (no new client is made).
        session: a boto3 ``Session`` to make the client from.
        signing_key: sign every stored value with this key (over its object path inside the
            bucket) and refuse values without a valid signature (see :doc:`/reliability`);
            ``None`` takes ``$PERSIDICT_SIGNING_KEY`` if set, ``""`` means unsigned.

    Timestamps are S3's ``LastModified``, whole seconds: ``newest_keys()`` cannot order writes
    made within one second.

    Sub-stores (:meth:`get_subdict`) share this store's client and make no request.
    """

    def __init__(
        self,
        *,
        bucket_name: str = "my_bucket",
        region: str | None = None,
        root_prefix: str = "",
        serialization_format: str = "pkl",
        append_only: bool = False,
        base_class_for_values: type | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        session: Any = None,
        signing_key: bytes | str | SigningKey | None = None,
    ) -> None:
        if not isinstance(bucket_name, str) or not bucket_name:
            raise ValueError(f"bucket_name must be a non-empty str, got {bucket_name!r}")
        if region is not None and not isinstance(region, str):
            raise TypeError(f"region must be a str or None, got {type(region).__name__}")
        if endpoint_url is not None and not isinstance(endpoint_url, str):
            raise TypeError(
                f"endpoint_url must be a str or None, got {type(endpoint_url).__name__}"
            )
        prefix = normalize_root_prefix(root_prefix)
        client_was_passed = client is not None
        if client is None:
            client = make_s3_client(region=region, endpoint_url=endpoint_url, session=session)
        backend = self._make_backend(client, bucket_name, prefix, serialization_format)
        super().__init__(
            backend=backend,
            append_only=append_only,
            base_class_for_values=base_class_for_values,
            serialization_format=serialization_format,
        )
        self._set_s3_attributes(bucket_name, region, endpoint_url, client, session, backend)
        self._client_was_passed = client_was_passed
        self._enable_signing(resolve_signing_key(signing_key))
        if self._signer is not None and prefix:  # sign the object path inside the bucket
            self._signer = self._signer.child(tuple(prefix[:-1].split("/")))
        self._ensure_bucket()

    @staticmethod
    def _make_backend(
        client: Any, bucket: str, prefix: str, serialization_format: object
    ) -> S3Backend:
        fmt = serialization_format if isinstance(serialization_format, str) else ""
        return S3Backend(
            client=client, bucket=bucket, root_prefix=prefix, serialization_format=fmt
        )

    def _set_s3_attributes(
        self,
        bucket_name: str,
        region: str | None,
        endpoint_url: str | None,
        client: Any,
        session: Any,
        backend: S3Backend,
    ) -> None:
        self.bucket_name = bucket_name
        self.region = region
        self.endpoint_url = endpoint_url
        self._client = client
        self._session = session
        self._s3 = backend

    # -- bucket ---------------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        """HEAD the bucket; create it when missing; ignore 403 (another account's bucket)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client
        try:
            client.head_bucket(Bucket=self.bucket_name)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("403", "Forbidden", "AccessDenied"):
                return
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise self._init_error("check bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._init_error("check bucket", exc) from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket_name}
        client_region = self.region or getattr(client.meta, "region_name", None)
        if client_region and client_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": client_region}
        try:
            client.create_bucket(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._init_error("create bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._init_error("create bucket", exc) from exc

    def _init_error(self, what: str, exc: Exception) -> BackendError:
        return BackendError(
            f"cannot {what} s3://{self.bucket_name}: {exc}", backend="s3", operation="init"
        )

    # -- parameters and structure ---------------------------------------------------------

    @property
    def root_prefix(self) -> str:
        """The normalised root prefix (``""`` or ending with ``/``)."""
        return self._s3.root_prefix

    @property
    def base_url(self) -> str:
        """``s3://bucket/root_prefix``."""
        return f"s3://{self.bucket_name}/{self._s3.root_prefix}"

    @property
    def s3_client(self) -> Any:
        """The boto3 client shared by this store and its sub-stores."""
        return self._client

    def get_params(self) -> dict[str, Any]:
        """Enough to rebuild an equivalent store (the client/session objects when given)."""
        params = super().get_params()
        params["bucket_name"] = self.bucket_name
        params["region"] = self.region
        params["root_prefix"] = self._s3.root_prefix
        if self.endpoint_url is not None:
            params["endpoint_url"] = self.endpoint_url
        if self._client_was_passed:
            params["client"] = self._client
        if self._session is not None:
            params["session"] = self._session
        params.update(self._signing_params())
        return dict(sorted(params.items()))

    def get_subdict(self, prefix_key: PersiDictKey) -> BasicS3Dict[ValueType]:
        """The store of the keys under ``prefix_key``: same client and bucket, no request."""
        return self._make_subdict(SafeStrTuple(prefix_key))

    def _make_subdict(self, prefix: SafeStrTuple) -> BasicS3Dict[ValueType]:
        """A store on ``root_prefix + prefix``: same client, no new client, no bucket request."""
        sub: BasicS3Dict[ValueType] = object.__new__(type(self))
        backend = self._s3.child(prefix.strings)
        BackendDict.__init__(
            sub,
            backend=backend,
            append_only=self.append_only,
            base_class_for_values=self.base_class_for_values,
            serialization_format=self.serialization_format,
        )
        sub._set_s3_attributes(
            self.bucket_name, self.region, self.endpoint_url, self._client, self._session, backend
        )
        sub._client_was_passed = self._client_was_passed
        sub._inherit_signing(self, prefix.strings)
        return sub
