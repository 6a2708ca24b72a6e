"""The file-system backend: one file per item under a base directory.

Layout (byte-compatible with persidict 0.309)::

    <base_dir>/<c1>_<sfx(c1)>/.../<cn>_<sfx(cn)>.<extension>

where ``sfx`` is the digest suffix of :func:`persidict.keys.sign_component` (none when
``digest_len == 0``). Writes go to a temp file ``.__tmp__#<random>`` in the target directory
(the ``#`` is not a safe key character, so no key can ever name such a file), are fsync'ed and
then renamed over the final name, so readers see the old or the new bytes, never a mix.

Guarantees and limits:

* insert-if-absent (``if_match=ITEM_NOT_AVAILABLE``) is atomic on local POSIX file systems:
  the finished temp file is hard-linked to the final name, which fails if the name exists;
* writes and deletes conditional on an ETag are check-then-act (no OS locks, so shared folders
  such as Dropbox keep working);
* nothing is read or written outside ``base_dir``: every directory below the root is opened
  relative to its parent without following links (:mod:`persidict.file_dirs`), so a symbolic
  link planted in the store, or swapped in for a directory by another process mid-operation, is
  refused with a ``BackendError``; so is an item path holding a link, FIFO, socket or device
  (opened without blocking, then checked to be a regular file);
* a key whose file name or path exceeds the file system's limits is a ``ValueError`` before
  anything is written; every other ``OSError`` surfaces as a ``BackendError``;
* scans skip every file that does not parse as a key of this store (wrong extension, missing or
  wrong digest suffix, temp files) and files deleted mid-scan. The digest of each name is
  checked once per directory *state*: a directory whose change time is unchanged since a
  listing (and was already settled then) has the same names, so they are not re-hashed.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from collections.abc import Callable
from typing import Any, BinaryIO, ClassVar, Final

from .errors import BackendError
from .file_dirs import (
    RECHECK_AFTER,
    DirHandle,
    LinkRefused,
    _handles,
    describe_mode,
    forget,
    open_child,
    open_root,
)
from .file_paths import (
    WINDOWS,
    add_long_path_prefix,
    drop_long_path_prefix,
    fs_limits,
)
from .file_scan import STALE_TEMP_AGE, TEMP_PREFIX, FileScans, is_temp_name, stat_of
from .keys import sign_component
from .markers import ITEM_NOT_AVAILABLE
from .storage import NOT_MODIFIED, Backend, IfMatch, Key, NotModified, Stat

__all__ = ["STALE_TEMP_AGE", "TEMP_PREFIX", "FileBackend", "add_long_path_prefix",
           "drop_long_path_prefix", "is_temp_name"]

_TEMP_MARK: Final = TEMP_PREFIX + "#"  # "#" is no safe character: no key yields this name
_LOC_CACHE_MAX: Final = 65536
STREAM_MIN: Final = 1 << 22  # 4 MiB: a bigger pickle is unpickled from the file, not from bytes
_CREATE_ATTEMPTS: Final = 6  # a concurrent delete may prune the directory we just made
_READ_ATTEMPTS: Final = 5  # re-reads when a foreign writer modifies a file in place
_O_NOFOLLOW: Final[int] = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final[int] = getattr(os, "O_CLOEXEC", 0)
_O_BINARY: Final[int] = getattr(os, "O_BINARY", 0)
_O_NONBLOCK: Final[int] = getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS: Final = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY | _O_NONBLOCK
_TEMP_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
# Errors of os.link meaning "this file system has no hard links": fall back to check-then-act.
_NO_LINK_ERRNOS: Final = frozenset(
    e for e in (getattr(errno, n, None) for n in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"))
    if e is not None
)
_S_ISREG = stat_mod.S_ISREG
_S_ISDIR = stat_mod.S_ISDIR
_monotonic = time.monotonic

Loc = tuple[str, tuple[str, ...], str]  # (directory path, directories below the root, file name)


class FileBackend(FileScans, Backend):
    """Bytes in files under ``base_dir`` (an absolute path), one file per key.

    Args:
        base_dir: absolute path of the store's root directory (need not exist yet).
        extension: the file extension without the dot (the serialization format).
        digest_len: length of the digest suffix put on every component (0..26).
        root: for a sub-store, the top store's base_dir (``base_dir`` is below it): emptied
            directories are pruned up to it, and no directory below it is entered through a
            link.
    """

    name: ClassVar[str] = "filesystem"
    atomic_conditional_writes: ClassVar[bool] = False
    atomic_insert: ClassVar[bool] = True

    def __init__(self, base_dir: str, extension: str, digest_len: int, *,
                 root: str | None = None) -> None:
        self._given_base = drop_long_path_prefix(base_dir)
        if root is None:
            root = base_dir
        if WINDOWS:
            base_dir, root = add_long_path_prefix(base_dir), add_long_path_prefix(root)
        self._base = base_dir  # the path handed to the OS
        self._root = root
        below = base_dir[len(root):].lstrip(os.sep) if base_dir.startswith(root) else ""
        self._rel_base: tuple[str, ...] = tuple(below.split(os.sep)) if below else ()
        self._ext = extension
        self._dot_ext = "." + str(extension)
        self._digest_len = digest_len
        self._locs: dict[Key, Loc] = {}
        self._seen = {}
        self._held_names = 0
        # False only for caches whose damaged entries are read as misses (S3Dict's mutable
        # cache): no fsync. Atomicity is unchanged (a killed process never leaves a torn value).
        self.durable = True
        self._limits: tuple[int, int] | None = None

    @property
    def base_dir(self) -> str:
        """The store's directory as given (without a Windows long-path prefix)."""
        return self._given_base

    @property
    def os_base_dir(self) -> str:
        """The store's directory as handed to the OS (long-path prefixed on Windows)."""
        return self._base

    @property
    def root(self) -> str:
        """The top store's directory (``base_dir`` unless this is a sub-store), as given."""
        return drop_long_path_prefix(self._root)

    def describe(self) -> str:
        return f"filesystem:{self._base}"

    # ---------------------------------------------------------------- paths

    def path_for(self, key: Key) -> str:
        """The file path of ``key``. ValueError if a name or the path is over the OS limits."""
        loc = self._loc(key)
        return loc[0] + os.sep + loc[2]

    def _loc(self, key: Key) -> Loc:
        loc = self._locs.get(key)
        if loc is None:
            loc = self._build_loc(key)
            if len(self._locs) >= _LOC_CACHE_MAX:
                self._locs.clear()
            self._locs[key] = loc
        return loc

    def _build_loc(self, key: Key) -> Loc:
        if self._limits is None:
            self._limits = fs_limits(self._base)
        name_max, path_max = self._limits
        n = self._digest_len
        sep = os.sep
        # A lower bound of the path length first, so thousands of components fail at once.
        rough = len(self._base) + len(self._dot_ext) + sum(len(c) + 1 for c in key)
        if rough >= path_max:
            raise ValueError(
                f"Key of {len(key)} components would give a path of at least {rough} bytes, "
                f"over the file system's limit of {path_max - 1} bytes"
            )
        parts = [sign_component(c, n) for c in key]
        parts[-1] += self._dot_ext
        for comp, part in zip(key, parts, strict=True):
            if len(part) > name_max:  # safe characters are ASCII: one byte each
                raise ValueError(
                    f"Key component {comp!r} gives the file name {part[:40]!r}... of "
                    f"{len(part)} bytes, over the file system's limit of {name_max} bytes"
                )
        dirs = parts[:-1]
        dirpath = self._base + sep + sep.join(dirs) if dirs else self._base
        size = len(dirpath.encode("utf-8")) + 1 + len(parts[-1])
        if size >= path_max:
            raise ValueError(
                f"Key {key!r} gives a path of {size} bytes, over the file system's limit of "
                f"{path_max - 1} bytes"
            )
        return dirpath, (*self._rel_base, *dirs), parts[-1]

    # ------------------------------------------------------------- directories

    def _dir(self, loc: Loc, *, create: bool = False, fresh: bool = False) -> DirHandle | None:
        """The open directory of ``loc`` (None if absent and not ``create``).

        A cached handle is re-checked against its path when ``fresh`` (writes, misses) or when
        it was last checked a while ago. LinkRefused for a link on the way.
        """
        h = _handles.get(loc[0])
        if h is not None and h.root == self._root:
            if not fresh and _monotonic() - h.checked < RECHECK_AFTER:
                return h
            if h.still_at_path():
                return h
            forget(loc[0])
        return self._open_chain(loc[1], create=create)

    def _open_chain(self, rel: tuple[str, ...], *, create: bool,
                    remember: bool = True) -> DirHandle | None:
        h = _handles.get(self._root)
        if h is None or h.root != self._root or not h.still_at_path():
            h = open_root(self._root, create=create)
        for name in rel:
            if h is None:
                return None
            h = open_child(h, name, create=create, remember=remember)
        return h

    def _error(self, op: str, key: Key | None, exc: BaseException) -> BackendError:
        if isinstance(exc, LinkRefused):
            return BackendError(
                f"{exc.what.capitalize()} at {exc.path!r} in the store under {self._base!r} "
                f"(key {key!r}): links are not followed inside a store, they could lead outside "
                "base_dir", backend=self.name, operation=op, key=key)
        return BackendError(
            f"File system {op} failed under {self._base!r} for key {key!r}: {exc}",
            backend=self.name, operation=op, key=key,
        )

    def _not_regular(self, op: str, key: Key, path: str, mode: int) -> BackendError:
        return BackendError(
            f"{describe_mode(mode).capitalize()} sits at the item path {path!r} of key {key!r}: "
            "only regular files are items (it was not read or followed)",
            backend=self.name, operation=op, key=key)

    # ---------------------------------------------------------------- reads

    def _lstat_item(self, key: Key, op: str) -> os.stat_result | None:
        """The item's own stat (links not followed); None if absent or a directory;
        BackendError for links, FIFOs, sockets and devices, as reads give."""
        try:
            loc = self._loc(key)
        except ValueError:  # too long to ever have been written
            return None
        fresh = False
        try:
            while True:
                h = self._dir(loc, fresh=fresh)
                if h is None:
                    return None
                try:
                    st = h.stat(loc[2])
                except FileNotFoundError:
                    if fresh:
                        return None
                    fresh = True  # a stale handle (directory deleted and made anew)?
                    continue
                break
        except NotADirectoryError:
            return None
        except (OSError, LinkRefused) as exc:
            raise self._error(op, key, exc) from exc
        if _S_ISREG(st.st_mode):
            return st
        if _S_ISDIR(st.st_mode):
            return None
        raise self._not_regular(op, key, loc[0] + os.sep + loc[2], st.st_mode)

    def exists(self, key: Key) -> bool:
        # The hot path of `in`: a recently checked handle and a regular file, one lstat.
        loc = self._locs.get(key)
        if loc is not None:
            h = _handles.get(loc[0])
            if (h is not None and h.root == self._root
                    and _monotonic() - h.checked < RECHECK_AFTER):
                try:
                    if _S_ISREG(h.stat(loc[2]).st_mode):
                        return True
                except OSError:
                    pass  # absent, or worse: the full path below sorts it out
        return self._lstat_item(key, "stat") is not None

    def stat(self, key: Key) -> Stat | None:
        st = self._lstat_item(key, "stat")
        return None if st is None else stat_of(st)

    def read(
        self, key: Key, *, if_none_match: str | None = None
    ) -> tuple[bytes, Stat] | NotModified | None:
        if if_none_match is not None:
            current = self.stat(key)
            if current is None:
                return None
            if current.etag == if_none_match:
                return NOT_MODIFIED
        return self._read(key, None)  # type: ignore[no-any-return]

    def read_value(self, key: Key, decode_file: Callable[[BinaryIO], Any]
                   ) -> tuple[Any, Stat, bool] | None:
        """Like :meth:`read`, but a file of at least ``STREAM_MIN`` bytes is decoded straight
        from the file by ``decode_file``, so its bytes are never held in memory:
        ``(value, stat, True)``; a smaller file is ``(payload bytes, stat, False)``.

        The file is checked to be unchanged after decoding, as after a plain read.
        """
        return self._read(key, decode_file)  # type: ignore[no-any-return]

    def _read(self, key: Key, decode_file: Callable[[BinaryIO], Any] | None) -> Any:
        try:
            loc = self._loc(key)
        except ValueError:
            return None
        fresh = False
        try:
            while True:
                h = self._dir(loc, fresh=fresh)
                if h is None:
                    return None
                got = self._read_in(h, loc[2], key, decode_file)
                if got is not None or fresh:
                    return got
                fresh = True  # not found through a cached handle: make sure it is current
        except NotADirectoryError:
            return None
        except (OSError, LinkRefused) as exc:
            raise self._error("read", key, exc) from exc

    def _read_in(self, h: DirHandle, name: str, key: Key,
                 decode_file: Callable[[BinaryIO], Any] | None = None) -> Any:
        """One consistent read of file ``name`` in ``h``: (bytes, Stat), or with
        ``decode_file`` and a big file (value, Stat, True); None if absent or a directory."""
        for _ in range(_READ_ATTEMPTS):
            try:
                fd = h.open(name, _READ_FLAGS)
            except FileNotFoundError:
                return None
            failed: Exception | None = None
            try:
                st = os.fstat(fd)
                if not _S_ISREG(st.st_mode):
                    if _S_ISDIR(st.st_mode):
                        return None
                    raise self._not_regular("read", key, h.join(name), st.st_mode)
                if decode_file is not None and st.st_size >= STREAM_MIN:
                    try:
                        data: Any = decode_file(_buffered_file(fd))
                    except Exception as exc:  # damaged, or changed under us: see below
                        data, failed = None, exc
                else:
                    data = self._read_fd(fd, st.st_size)
                after = os.fstat(fd)
            finally:
                os.close(fd)
            if after.st_mtime_ns == st.st_mtime_ns and after.st_size == st.st_size:
                if failed is not None:
                    raise failed
                if decode_file is None:
                    return data, stat_of(st)
                return data, stat_of(st), st.st_size >= STREAM_MIN
        raise BackendError(
            f"File {h.join(name)!r} kept changing while being read (modified in place?)",
            backend=self.name, operation="read", key=key,
        )

    def missing(self, key: Key) -> Exception | None:
        try:
            path = self.path_for(key)
        except ValueError:
            return None
        return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)

    @staticmethod
    def _read_fd(fd: int, size: int) -> bytes:
        data = os.read(fd, size + 1)
        if len(data) == size:
            return data
        chunks = [data]
        while True:  # short read or a file that grew: read up to EOF
            chunk = os.read(fd, max(size, 1 << 16))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    # ---------------------------------------------------------------- writes

    def write(self, key: Key, payload: Any, *, if_match: IfMatch = None) -> Stat | None:
        loc = self._loc(key)  # ValueError before anything touches the disk
        name = loc[2]
        h: DirHandle | None = None
        tmp: str | None = None
        try:
            write_to = getattr(payload, "write_to", None)  # a payload streamed into the file
            view = memoryview(payload) if write_to is None else None  # TypeError: no file yet
            fd = -1
            for attempt in range(_CREATE_ATTEMPTS):
                h = self._dir(loc, create=True, fresh=True)
                assert h is not None
                tmp = _TEMP_MARK + os.urandom(6).hex()
                try:
                    fd = h.open(tmp, _TEMP_FLAGS, 0o666)
                    break
                except FileNotFoundError:  # pruned by a concurrent delete since we opened it
                    tmp = None
                    forget(loc[0])
                    if attempt == _CREATE_ATTEMPTS - 1:
                        raise
                except FileExistsError:  # a random-name collision: try another name
                    tmp = None
            if tmp is None or h is None:
                raise FileExistsError(errno.EEXIST, "could not create a temp file", loc[0])
            try:
                if write_to is not None:
                    import io

                    with io.BufferedWriter(io.FileIO(fd, "wb", closefd=False), 1 << 16) as f:
                        write_to(f)
                else:
                    while view:
                        view = view[os.write(fd, view):]
                if self.durable:
                    os.fsync(fd)
                st = os.fstat(fd)  # rename and link keep mtime, size and inode
            finally:
                os.close(fd)
            # The directory is not fsync'ed: a crash may lose the rename but never leaves a
            # partial file under the final name (and one fsync per write is the budget).
            if if_match is None:
                h.replace(tmp, name)
                tmp = None
            elif if_match is ITEM_NOT_AVAILABLE:
                if not self._link_if_absent(h, tmp, name):
                    return None
            else:
                current = self.stat(key)
                if current is None or current.etag != if_match:
                    return None
                h.replace(tmp, name)
                tmp = None
            return stat_of(st)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise ValueError(f"Key {key!r} gives a file name or path that is too long: "
                                 f"{exc}") from exc
            raise self._error("write", key, exc) from exc
        except LinkRefused as exc:
            raise self._error("write", key, exc) from exc
        finally:
            if tmp is not None and h is not None:
                try:
                    h.unlink(tmp)
                except OSError:
                    pass

    @staticmethod
    def _link_if_absent(h: DirHandle, tmp: str, name: str) -> bool:
        """Give ``tmp``'s inode the name ``name`` only if that name is free (atomic on POSIX)."""
        try:
            h.link(tmp, name)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
        # No hard links on this file system: check-then-act.
        try:
            h.stat(name)
            return False
        except FileNotFoundError:
            pass
        h.replace(tmp, name)
        return True

    def delete(self, key: Key, *, if_match: str | None = None) -> bool:
        try:
            loc = self._loc(key)
        except ValueError:
            return False
        if if_match is not None:
            current = self.stat(key)
            if current is None or current.etag != if_match:
                return False
        try:
            h = self._dir(loc, fresh=True)
            if h is None:
                return False
            h.unlink(loc[2])
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except (OSError, LinkRefused) as exc:
            raise self._error("delete", key, exc) from exc
        self._prune(loc[1])
        return True

    def _prune(self, rel: tuple[str, ...]) -> None:
        """Remove the directory ``rel`` and its ancestors while empty, stopping below the root."""
        sep = os.sep
        for depth in range(len(rel), 0, -1):
            try:
                parent = self._open_chain(rel[:depth - 1], create=False)
                if parent is None:
                    return
                parent.rmdir(rel[depth - 1])
            except (OSError, LinkRefused):
                return
            forget(self._root + sep + sep.join(rel[:depth]))


def _buffered_file(fd: int) -> BinaryIO:
    """A buffered reader over ``fd`` that leaves it open (the caller closes it). Big reads
    (a large array's bytes) go straight into their destination buffer."""
    import io

    return io.BufferedReader(io.FileIO(fd, "rb", closefd=False), buffer_size=1 << 16)
