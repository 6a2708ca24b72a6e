"""The file-system backend: one file per item under a base directory.

Layout (byte-compatible with persidict 0.309)::

    <base_dir>/<c1>_<sfx(c1)>/.../<cn>_<sfx(cn)>.<extension>

where ``sfx`` is the digest suffix of :func:`persidict.keys.sign_component` (none when
``digest_len == 0``). Writes go to a temp file ``.__tmp__<random>`` (no extension, so it is never
an item) in the target directory, are fsync'ed and then renamed over the final name, so readers
see the old or the new bytes, never a mix.

Guarantees and limits:

* insert-if-absent (``if_match=ITEM_NOT_AVAILABLE``) is atomic on local POSIX file systems:
  the finished temp file is hard-linked to the final name, which fails if the name exists;
* writes and deletes conditional on an ETag are check-then-act (no OS locks, so shared folders
  such as Dropbox keep working);
* a key whose file name or path exceeds the file system's limits is a ``ValueError`` before
  anything is written; nothing is ever written or deleted outside ``base_dir``, even through a
  symlinked directory planted inside the store;
* scans skip every file that does not parse as a key of this store (wrong extension, missing or
  wrong digest suffix, temp files) and files deleted mid-scan.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from collections.abc import Iterator
from typing import Any, ClassVar, Final

from .errors import BackendError
from .file_paths import (
    WINDOWS,
    add_long_path_prefix,
    drop_long_path_prefix,
    fs_limits,
    retrying,
)
from .keys import sign_component, unsign_component
from .markers import ITEM_NOT_AVAILABLE
from .storage import NOT_MODIFIED, Backend, IfMatch, Key, NotModified, Stat

__all__ = ["TEMP_PREFIX", "FileBackend", "add_long_path_prefix", "drop_long_path_prefix"]

TEMP_PREFIX: Final = ".__tmp__"
STALE_TEMP_AGE: Final = 600.0  # seconds: a temp file this old has no live writer

_PATH_CACHE_MAX: Final = 65536
_NAME_CACHE_MAX: Final = 1 << 17
_MAKEDIRS_ATTEMPTS: Final = 6  # a concurrent delete may prune the directory we just made
_READ_ATTEMPTS: Final = 5  # re-reads when a foreign writer modifies a file in place
_O_NOFOLLOW: Final[int] = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final[int] = getattr(os, "O_CLOEXEC", 0)
_O_BINARY: Final[int] = getattr(os, "O_BINARY", 0)
_READ_FLAGS: Final = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
_TEMP_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
# Errors of os.link meaning "this file system has no hard links": fall back to check-then-act.
_NO_LINK_ERRNOS: Final = frozenset(
    e for e in (getattr(errno, n, None) for n in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"))
    if e is not None
)




def _stat_of(st: os.stat_result) -> Stat:
    return Stat(f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}", st.st_mtime)


class FileBackend(Backend):
    """Bytes in files under ``base_dir`` (an absolute path), one file per key.

    Args:
        base_dir: absolute path of the store's root directory (need not exist yet).
        extension: the file extension without the dot (the serialization format).
        digest_len: length of the digest suffix put on every component (0..26).
        root: for a sub-store, the top store's base_dir (``base_dir`` is below it): emptied
            directories are pruned up to it, and no write or delete may resolve outside it.
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
        self._ext = extension
        self._dot_ext = "." + str(extension)
        self._digest_len = digest_len
        self._paths: dict[Key, str] = {}
        self._item_names: dict[str, str | None] = {}
        # False only for caches whose damaged entries are read as misses (S3Dict's mutable
        # cache): no fsync. Atomicity is unchanged (a killed process never leaves a torn value).
        self.durable = True
        self._limits: tuple[int, int] | None = None
        self._real_base: str | None = None

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
        path = self._paths.get(key)
        if path is None:
            path = self._build_path(key)
            if len(self._paths) >= _PATH_CACHE_MAX:
                self._paths.clear()
            self._paths[key] = path
        return path

    def _build_path(self, key: Key) -> str:
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
            size = len(part.encode("utf-8"))
            if size > name_max:
                raise ValueError(
                    f"Key component {comp!r} gives the file name {part[:40]!r}... of {size} "
                    f"bytes, over the file system's limit of {name_max} bytes"
                )
        path = self._base + sep + sep.join(parts)
        size = len(path.encode("utf-8"))
        if size >= path_max:
            raise ValueError(
                f"Key {key!r} gives a path of {size} bytes, over the file system's limit of "
                f"{path_max - 1} bytes"
            )
        return path

    def _check_inside(self, dirpath: str) -> None:
        """ValueError if ``dirpath`` (a directory below base_dir) resolves outside base_dir.

        Cheap when no directory on the way is a symlink (one lstat per level); realpath only
        when a symlink is found. Levels that do not exist yet will be created as real dirs.
        """
        base = self._root
        if dirpath == base:
            return
        cur = base
        for part in dirpath[len(base) + 1 :].split(os.sep):
            cur = cur + os.sep + part
            try:
                st = os.lstat(cur)
            except OSError:
                return
            if stat_mod.S_ISLNK(st.st_mode):
                break
        else:
            return
        if self._real_base is None:
            self._real_base = os.path.realpath(base)
        root = self._real_base
        real = os.path.realpath(dirpath)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"Directory {dirpath!r} resolves outside base_dir {base!r} (to {real!r})"
            )

    def _error(self, op: str, key: Key | None, exc: OSError) -> BackendError:
        return BackendError(
            f"File system {op} failed under {self._base!r} for key {key!r}: {exc}",
            backend=self.name, operation=op, key=key,
        )

    # ---------------------------------------------------------------- reads

    def exists(self, key: Key) -> bool:
        try:
            path = self.path_for(key)
        except ValueError:  # too long to ever have been written
            return False
        return os.path.isfile(path)

    def stat(self, key: Key) -> Stat | None:
        try:
            path = self.path_for(key)
        except ValueError:
            return None
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error("stat", key, exc) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return _stat_of(st)

    def read(
        self, key: Key, *, if_none_match: str | None = None
    ) -> tuple[bytes, Stat] | NotModified | None:
        if if_none_match is not None:
            current = self.stat(key)
            if current is None:
                return None
            if current.etag == if_none_match:
                return NOT_MODIFIED
        try:
            path = self.path_for(key)
        except ValueError:
            return None
        try:
            for _ in range(_READ_ATTEMPTS):
                fd = retrying(os.open, path, _READ_FLAGS) if WINDOWS else os.open(
                    path, _READ_FLAGS)
                try:
                    st = os.fstat(fd)
                    if not stat_mod.S_ISREG(st.st_mode):
                        return None
                    data = self._read_fd(fd, st.st_size)
                    after = os.fstat(fd)
                finally:
                    os.close(fd)
                if after.st_mtime_ns == st.st_mtime_ns and after.st_size == st.st_size:
                    return data, _stat_of(st)
            raise BackendError(
                f"File {path!r} kept changing while being read (modified in place?)",
                backend=self.name, operation="read", key=key,
            )
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error("read", key, exc) from exc

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
        path = self.path_for(key)  # ValueError before anything touches the disk
        dirpath = os.path.dirname(path)
        self._check_inside(dirpath)
        tmp: str | None = None
        try:
            fd = -1
            for attempt in range(_MAKEDIRS_ATTEMPTS):
                tmp = dirpath + os.sep + TEMP_PREFIX + os.urandom(6).hex()
                try:
                    fd = os.open(tmp, _TEMP_FLAGS, 0o666)
                    break
                except FileNotFoundError:
                    tmp = None
                    if attempt == _MAKEDIRS_ATTEMPTS - 1:
                        raise
                    try:
                        os.makedirs(dirpath, exist_ok=True)
                    except FileNotFoundError:
                        pass  # a concurrent delete pruned a parent we had just made: retry
                except FileExistsError:  # a random-name collision: try another name
                    tmp = None
            if tmp is None:
                raise FileExistsError(errno.EEXIST, "could not create a temp file", dirpath)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                if self.durable:
                    os.fsync(fd)
                st = os.fstat(fd)  # rename and link keep mtime, size and inode
            finally:
                os.close(fd)
            # The directory is not fsync'ed: a crash may lose the rename but never leaves a
            # partial file under the final name (and one fsync per write is the budget).
            if if_match is None:
                retrying(os.replace, tmp, path)
                tmp = None
            elif if_match is ITEM_NOT_AVAILABLE:
                if not self._link_if_absent(tmp, path):
                    return None
            else:
                current = self.stat(key)
                if current is None or current.etag != if_match:
                    return None
                retrying(os.replace, tmp, path)
                tmp = None
            return _stat_of(st)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise ValueError(f"Key {key!r} gives a file name or path that is too long: "
                                 f"{exc}") from exc
            raise self._error("write", key, exc) from exc
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    @staticmethod
    def _link_if_absent(tmp: str, path: str) -> bool:
        """Give ``tmp``'s inode the name ``path`` only if that name is free (atomic on POSIX)."""
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
        # No hard links on this file system: check-then-act.
        if os.path.lexists(path):
            return False
        retrying(os.replace, tmp, path)
        return True

    def delete(self, key: Key, *, if_match: str | None = None) -> bool:
        try:
            path = self.path_for(key)
        except ValueError:
            return False
        if if_match is not None:
            current = self.stat(key)
            if current is None or current.etag != if_match:
                return False
        dirpath = os.path.dirname(path)
        self._check_inside(dirpath)
        try:
            retrying(os.remove, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise self._error("delete", key, exc) from exc
        self._prune_empty_dirs(dirpath)
        return True

    def _prune_empty_dirs(self, dirpath: str) -> None:
        """Remove ``dirpath`` and its ancestors while empty, stopping below the root."""
        prefix = self._root + os.sep
        while dirpath.startswith(prefix):
            try:
                os.rmdir(dirpath)
            except OSError:
                return
            dirpath = os.path.dirname(dirpath)

    # ---------------------------------------------------------------- scans

    def _list_dir(self, dirpath: str) -> list[os.DirEntry[str]]:
        """The entries of one directory of the walk ([] if it vanished); BackendError on
        other OS errors, and for a base_dir that is not a directory."""
        try:
            with os.scandir(dirpath) as it:
                return list(it)
        except FileNotFoundError:
            return []
        except NotADirectoryError as exc:
            if dirpath == self._base:
                raise self._error("list", None, exc) from exc
            return []
        except OSError as exc:
            raise self._error("list", None, exc) from exc

    def _dirs(self) -> Iterator[tuple[str, Key, list[os.DirEntry[str]]]]:
        """Depth-first walk of base_dir: (path, key prefix, entries) for every store directory.

        Directories whose names do not unsign, and symlinks, are not entered. A missing root or
        a directory vanishing mid-walk yields nothing; other OS errors are BackendError.
        """
        n = self._digest_len
        stack: list[tuple[str, Key]] = [(self._base, ())]
        while stack:
            dirpath, prefix = stack.pop()
            entries = self._list_dir(dirpath)
            yield dirpath, prefix, entries
            for entry in reversed(entries):
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    comp = unsign_component(entry.name, n)
                    if comp is not None:
                        stack.append((entry.path, (*prefix, comp)))

    def _item_name(self, name: str) -> str | None:
        """The key component stored under file ``name``, None if it is not an item of ours.

        Remembered per name: listings see the same names again and again, and slicing off the
        extension plus checking the digest costs more than the walk itself.
        """
        try:
            return self._item_names[name]
        except KeyError:
            pass
        comp = None
        if name.endswith(self._dot_ext) and not name.startswith(TEMP_PREFIX):
            comp = unsign_component(name[: -len(self._dot_ext)], self._digest_len)
        if len(self._item_names) >= _NAME_CACHE_MAX:
            self._item_names.clear()
        self._item_names[name] = comp
        return comp

    def _items(self, entries: list[os.DirEntry[str]]) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(unsigned last component, entry) for the entries that are items of this store."""
        item_name = self._item_name
        for entry in entries:
            comp = item_name(entry.name)
            if comp is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            yield comp, entry

    def scan(self, *, with_stat: bool = False) -> Iterator[tuple[Key, Stat | None]]:
        for _, prefix, entries in self._dirs():
            for comp, entry in self._items(entries):
                if not with_stat:
                    yield (*prefix, comp), None
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # deleted since the listing
                except OSError as exc:
                    raise self._error("stat", (*prefix, comp), exc) from exc
                yield (*prefix, comp), _stat_of(st)

    def _walk_items(self) -> Iterator[tuple[Key, str]]:
        """(key prefix, last component) of every item: one pass over each directory, each
        entry looked at once, the item-name cache read inline (the hottest listing loop)."""
        names, item_name, n = self._item_names, self._item_name, self._digest_len
        stack: list[tuple[str, Key]] = [(self._base, ())]
        while stack:
            dirpath, prefix = stack.pop()
            subdirs = []
            for entry in self._list_dir(dirpath):
                name = entry.name
                comp = names[name] if name in names else item_name(name)
                if comp is not None and entry.is_file(follow_symlinks=False):
                    yield prefix, comp
                elif entry.is_dir(follow_symlinks=False):
                    sub = unsign_component(name, n)
                    if sub is not None:
                        subdirs.append((entry.path, (*prefix, sub)))
            stack.extend(reversed(subdirs))

    def scan_keys(self) -> Iterator[Key]:
        for prefix, comp in self._walk_items():
            yield (*prefix, comp) if prefix else (comp,)

    def scan_mtimes(self) -> Iterator[tuple[Key, float]]:
        for _, prefix, entries in self._dirs():
            for comp, entry in self._items(entries):
                try:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except (FileNotFoundError, NotADirectoryError):
                    continue  # deleted since the listing
                except OSError as exc:
                    raise self._error("stat", (*prefix, comp), exc) from exc
                yield (*prefix, comp), mtime

    def count(self) -> int:
        return sum(1 for _ in self._walk_items())

    def clear(self) -> None:
        """Remove this format's items and stale temp files, then the emptied subdirectories.

        Files of other formats, foreign files and non-empty directories survive (several stores
        may share one base_dir). base_dir itself is never removed. OS errors are ignored.
        """
        self._sweep(remove_items=True, max_temp_age=STALE_TEMP_AGE)

    def remove_stale_temp_files(self, max_age_seconds: float = STALE_TEMP_AGE) -> int:
        """Delete temp files older than ``max_age_seconds`` left by writers that died.

        Returns how many were removed. Emptied directories are removed as well.
        """
        if isinstance(max_age_seconds, bool) or not isinstance(max_age_seconds, (int, float)):
            raise TypeError("max_age_seconds must be a number")
        if not max_age_seconds >= 0:
            raise ValueError(f"max_age_seconds must be >= 0, got {max_age_seconds}")
        return self._sweep(remove_items=False, max_temp_age=float(max_age_seconds))

    def _sweep(self, *, remove_items: bool, max_temp_age: float) -> int:
        self._check_inside(self._base)  # a sub-store reached through a planted symlink
        cutoff = time.time() - max_temp_age
        subdirs: list[str] = []
        removed_temps = 0
        for dirpath, _, entries in self._dirs():
            if dirpath != self._base:
                subdirs.append(dirpath)
            if remove_items:
                for _, entry in self._items(entries):
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
            for entry in entries:
                if not entry.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    if stat_mod.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed_temps += 1
                except OSError:
                    pass
        for dirpath in reversed(subdirs):  # children come after their parents in the walk
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        if self._base != self._root:  # a sub-store's own directory is part of the parent's tree
            self._prune_empty_dirs(self._base)
        return removed_temps
