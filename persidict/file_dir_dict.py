"""FileDirDict: a persistent dict stored as one file per item in a local directory tree.

The storage mechanics (layout, atomic writes, scans) live in :mod:`persidict.file_backend`;
this module adds the public constructor, parameters, sub-stores and maintenance helpers.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any

from .backend_dict import BackendDict
from .errors import BackendError
from .file_backend import STALE_TEMP_AGE, STREAM_MIN, FileBackend
from .file_dirs import is_insecure_dir
from .keys import (
    NonEmptyPersiDictKey,
    SafeStrTuple,
    check_digest_len,
    normalize_key,
    sign_component,
)
from .markers import ValueType
from .serialization import PickleSerializer
from .signing import SigningKey, resolve_signing_key

__all__ = ["FileDirDict"]

_warned_insecure: set[str] = set()  # each directory is reported once per process


def _big(value: Any) -> bool:
    """Worth streaming into its file: a large array (numpy, pandas Series...) or bytes."""
    try:
        size = value.nbytes if hasattr(value, "nbytes") else len(value)
    except Exception:
        return False
    return isinstance(size, int) and size >= STREAM_MIN and (
        hasattr(value, "nbytes") or isinstance(value, (bytes, bytearray)))


class FileDirDict(BackendDict[ValueType]):
    """A persistent dict keeping each item in its own file under ``base_dir``.

    Key ``("a", "B", "c.d")`` with the default ``digest_len=4`` lives in
    ``<base_dir>/a_btax/B_tvpn/c.d_4cj6.pkl``: every component gets a short digest suffix (so
    ``"hello"`` and ``"Hello"`` never collide on case-insensitive disks) and the file extension is
    the serialization format. Several stores with different formats may share one ``base_dir``;
    each sees only files with its own extension.

    Writes are atomic (temp file, fsync, rename). Insert-if-absent (append-only writes,
    ``setdefault_if`` with ``ITEM_NOT_AVAILABLE``) is atomic across processes on local POSIX file
    systems; other conditional operations are check-then-act (no locks, so shared folders such
    as Dropbox keep working).

    Args:
        base_dir: the root directory (created if missing; ``~`` is expanded; relative paths
            are resolved against the current directory at construction).
        serialization_format: ``"pkl"``, ``"json"`` or, for ``str`` values, any other safe name.
        append_only: if True, items can be added but never changed or deleted.
        digest_len: length of the digest suffix on every key component, ``0..26``
            (0: no suffix; only safe on case-sensitive file systems).
        base_class_for_values: if set, every value must be an instance of it.
        signing_key: sign every stored value with this key and refuse values without a valid
            signature (see :doc:`/reliability`); ``None`` takes ``$PERSIDICT_SIGNING_KEY``
            if set, ``""`` means unsigned.
    """

    def __init__(self, *, base_dir: str | os.PathLike[str] = "__file_dir_dict__",
                 serialization_format: str = "pkl", append_only: bool = False,
                 digest_len: int = 4, base_class_for_values: type | None = None,
                 signing_key: bytes | str | SigningKey | None = None) -> None:
        self._setup(base_dir, serialization_format, append_only, digest_len,
                    base_class_for_values, root=None)
        self._enable_signing(resolve_signing_key(signing_key))

    def _setup(self, base_dir: str | os.PathLike[str], serialization_format: str,
               append_only: bool, digest_len: int, base_class_for_values: type | None,
               *, root: str | None) -> None:
        """Shared by the constructor (``root=None``: a top store, its directory is created)
        and :meth:`_make_subdict` (``root``: the top store's directory; nothing is created)."""
        path = os.fspath(base_dir)
        if not isinstance(path, str):
            raise TypeError(f"base_dir must be a str or os.PathLike[str], got "
                            f"{type(base_dir).__name__}")
        path = os.path.abspath(os.path.expanduser(path))  # "~/cache" means the home's
        backend = FileBackend(path, serialization_format, check_digest_len(digest_len),
                              root=root)
        super().__init__(backend=backend, append_only=append_only,
                         base_class_for_values=base_class_for_values,
                         serialization_format=serialization_format)
        self._file_backend = backend
        self._digest_len = digest_len
        # Big pickles are unpickled straight from their file (one copy of an array, not two).
        self._stream = (self._serializer.decode_file
                        if type(self._serializer) is PickleSerializer else None)
        if root is not None:
            return
        native = backend.os_base_dir
        if os.path.isfile(native):
            raise ValueError(f"{path} is a file, not a directory.")
        try:
            os.makedirs(native, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"Failed to create or access directory: {path} ({exc})",
                               backend="filesystem", operation="init") from exc
        try:
            st = os.stat(native)
        except OSError as exc:
            raise BackendError(f"Failed to create or access directory: {path} ({exc})",
                               backend="filesystem", operation="init") from exc
        if not stat_mod.S_ISDIR(st.st_mode):
            raise BackendError(f"Failed to create or access directory: {path}",
                               backend="filesystem", operation="init")
        if is_insecure_dir(st) and native not in _warned_insecure:
            _warned_insecure.add(native)
            import warnings

            warnings.warn(
                f"The store directory {path} is world-writable without the sticky bit: any "
                "local user can replace or delete its items (and pkl/json items run code when "
                "read). Restrict it (chmod o-w) or set the sticky bit (chmod +t).",
                UserWarning, stacklevel=3)

    def _encode(self, value: Any, key: SafeStrTuple) -> Any:
        # Signed stores never stream: the tag must cover the bytes before anything is loaded.
        if self._stream is not None and self._signer is None and _big(value):
            self._check_value(value)
            return self._serializer.encode_stream(value)  # type: ignore[attr-defined]
        return super()._encode(value, key)

    def __getitem__(self, key: NonEmptyPersiDictKey) -> ValueType:
        stream = self._stream
        if stream is None or self._signer is not None:
            return super().__getitem__(key)
        k = normalize_key(key)
        try:
            got = self._file_backend.read_value(k.strings, stream)
        except BackendError:
            raise
        except Exception as exc:  # the streamed unpickling failed: a damaged file
            raise self._damaged(k, exc) from exc
        if got is None:
            raise KeyError(k) from self._file_backend.missing(k.strings)
        if got[2]:
            return self._check_read_value(got[0])  # type: ignore[no-any-return]
        return self._decode(k, got[0])  # type: ignore[no-any-return]

    @property
    def base_dir(self) -> str:
        """The absolute path of the store's root directory."""
        return self._file_backend.base_dir

    @property
    def digest_len(self) -> int:
        """Length of the digest suffix put on every key component (0: none)."""
        return self._digest_len

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments that rebuild an equivalent store, sorted by name."""
        params = super().get_params()
        params["base_dir"] = self.base_dir
        params["digest_len"] = self._digest_len
        params.update(self._signing_params())
        return dict(sorted(params.items()))

    def _make_subdict(self, prefix: SafeStrTuple) -> FileDirDict[ValueType]:
        """A FileDirDict rooted at ``prefix``'s directory, which is *not* created on disk.

        It appears with the first write through either store (reads never create directories).
        """
        n = self._digest_len
        path = os.path.join(self.base_dir, *(sign_component(c, n) for c in prefix.strings))
        sub: FileDirDict[ValueType] = FileDirDict.__new__(FileDirDict)
        sub._setup(path, self.serialization_format, self.append_only, n,
                   self.base_class_for_values, root=self._file_backend.root)
        sub._file_backend.durable = self._file_backend.durable
        sub._inherit_signing(self, prefix.strings)
        return sub

    def remove_stale_temp_files(self, max_age_seconds: float = STALE_TEMP_AGE) -> int:
        """Delete temp files older than ``max_age_seconds`` and return how many.

        Temp files are named ``.__tmp__#<random>`` (``.__tmp__*`` without an extension for
        persidict 0.309's): no key can give such a name, and a file that parses as an item is
        never touched. A writer killed between creating its temp file and renaming it leaves
        such a file behind; it is never visible as an item, only wasted space. Files younger
        than the age limit may belong to a live writer and are kept. ``clear()`` does this too.
        """
        return self._file_backend.remove_stale_temp_files(max_age_seconds)
