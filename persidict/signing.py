"""Authenticated payloads: an HMAC-SHA256 tag on every stored value of a signed store.

``pkl`` and ``json`` (jsonpickle) payloads run code when they are loaded, so whoever can write to
a shared folder or bucket can run code on every reader. A store opened with a ``signing_key``
(or with ``$PERSIDICT_SIGNING_KEY`` set) stores each payload as::

    b"PDSIG1" + HMAC-SHA256(key, domain + format + key path + payload) + payload

and checks the tag *before* deserialising anything. A payload without a tag, with a wrong tag,
or moved to another key (the key path is signed) is refused with
``BackendError(operation="verify")`` naming the key.

The key path is the item's key under the store's root, sub-store prefixes included (for S3 the
root prefix too), so a store and its :meth:`get_subdict` views agree. Signed stores are not
readable by persidict 0.309 (nor by unsigned stores), and the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["ENV_VAR", "MAGIC", "SigningKey", "Signer", "resolve_signing_key"]

ENV_VAR: Final = "PERSIDICT_SIGNING_KEY"
MAGIC: Final = b"PDSIG1"
_TAG_LEN: Final = 32
_HEADER_LEN: Final = len(MAGIC) + _TAG_LEN
_DOMAIN: Final = b"persidict signed payload v1\0"


class SigningKey:
    """A signing key that never shows itself: ``repr`` and ``str`` are redacted.

    Stores report it in :meth:`~persidict.PersiDict.get_params` (so ``clone()`` and sub-stores
    stay signed) without putting the secret into reprs, logs or tracebacks.
    """

    __slots__ = ("_inner", "_outer", "_secret")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        # HMAC (RFC 2104) with the padded key's hash states computed once: a tag then costs
        # two hash-state copies, far less than hmac.digest()'s per-call key setup.
        block = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def mac(self, header: Any) -> Any:
        """A running HMAC-SHA256 (a hash object) over ``header``; finish with :meth:`tag`."""
        inner = self._inner.copy()
        inner.update(header)
        return inner

    def tag(self, inner: Any) -> bytes:
        """The HMAC of everything fed to ``inner`` (from :meth:`mac`)."""
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __reduce__(self) -> tuple[Any, ...]:
        return (SigningKey, (self._secret,))

    @property
    def secret(self) -> bytes:
        """The key's bytes."""
        return self._secret

    def __repr__(self) -> str:
        return "SigningKey(<redacted>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningKey) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._secret).digest())


def resolve_signing_key(signing_key: bytes | str | SigningKey | None) -> SigningKey | None:
    """The key a store signs with: the argument, else ``$PERSIDICT_SIGNING_KEY``.

    ``None`` takes the environment variable (unset or empty: unsigned); ``""`` / ``b""`` means
    unsigned whatever the environment says. A ``str`` is used as its UTF-8 bytes.
    """
    if signing_key is None:
        signing_key = os.environ.get(ENV_VAR) or ""
    if isinstance(signing_key, SigningKey):
        return signing_key
    if isinstance(signing_key, str):
        signing_key = signing_key.encode("utf-8")
    if not isinstance(signing_key, bytes | bytearray | memoryview):
        raise TypeError(
            f"signing_key must be bytes, str or None, got {type(signing_key).__name__}")
    secret = bytes(signing_key)
    return SigningKey(secret) if secret else None


class Signer:
    """Signs and verifies the payloads of one store view (a key, a format, a key prefix)."""

    __slots__ = ("_format", "_prefix", "_started", "key")

    def __init__(self, key: SigningKey, serialization_format: str, prefix: str = "") -> None:
        self.key = key
        self._format = serialization_format
        self._prefix = prefix  # "" or ends with "/"
        self._started = key.mac(_DOMAIN + serialization_format.encode("utf-8") + b"\0")

    def child(self, prefix: Iterable[str]) -> Signer:
        """The signer of a sub-store under ``prefix``."""
        parts = "/".join(prefix)
        return Signer(self.key, self._format,
                      self._prefix + parts + "/" if parts else self._prefix)

    def _tag(self, key: Iterable[str], payload: bytes) -> bytes:
        mac = self._started.copy()
        mac.update((self._prefix + "/".join(key)).encode("utf-8") + b"\0")
        mac.update(payload)
        return self.key.tag(mac)

    def sign(self, key: Iterable[str], payload: bytes) -> bytes:
        """The stored form of ``payload`` under ``key``: magic, tag, payload."""
        return MAGIC + self._tag(key, payload) + payload

    def verify(self, key: Iterable[str], stored: bytes) -> bytes:
        """The payload inside ``stored`` if its tag is right for ``key``; else ValueError."""
        if stored[: len(MAGIC)] != MAGIC or len(stored) < _HEADER_LEN:
            raise ValueError("the payload is not signed")
        payload = stored[_HEADER_LEN:]
        if not hmac.compare_digest(stored[len(MAGIC):_HEADER_LEN], self._tag(key, payload)):
            raise ValueError("the signature does not match (a wrong key, a tampered payload, "
                             "or a payload copied from another key)")
        return payload
