"""Directory handles for the file backend: paths below a store's root, resolved safely and cheaply.

Every directory below the root is opened one component at a time, relative to its parent's
descriptor, with ``O_DIRECTORY | O_NOFOLLOW``; items are then opened, stated, renamed and
deleted relative to the directory's descriptor (``dir_fd=``). A symbolic link anywhere below the
root is therefore never followed, even if another process swaps a directory for one mid-way:
at worst the operation acts on the real directory it had opened, wherever that was moved.

Opening the chain on every call would cost more than the call itself, so open handles are kept
in one process-wide table (bounded, so a process never holds more than a few hundred
descriptors). A cached handle is trusted for reads that find their item; before a write, after
a miss, and when it was last checked more than a second ago, it is re-checked with one
``stat`` of its path (the directory must still be the one the path names: a directory deleted
and made anew by another process, or a store moved away, is noticed and reopened).

On Windows (no ``dir_fd``, no ``O_NOFOLLOW``) a handle is just a path, and links are refused by
an ``lstat`` of each component before it is entered (not race-free there).
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from typing import Any, Final

from . import file_paths
from .file_paths import retrying

__all__ = ["DirHandle", "LinkRefused", "PathHandle", "forget", "handle_for", "open_child",
           "open_listed", "open_root"]

_O_NOFOLLOW: Final[int] = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final[int] = getattr(os, "O_CLOEXEC", 0)
_O_DIR: Final[int] = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC
_O_DIR_NOFOLLOW: Final[int] = _O_DIR | _O_NOFOLLOW
_CREATE_ATTEMPTS: Final = 6  # a concurrent delete may prune the directory we just made
RECHECK_AFTER: Final = 1.0  # seconds a cached handle is trusted for reads that find their item


def _max_handles() -> int:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 64
    if soft == resource.RLIM_INFINITY:
        return 512
    return max(16, min(512, soft // 8))


class LinkRefused(Exception):
    """A symbolic link (or another non-directory) sits where a store directory should be."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(path, what)
        self.path = path
        self.what = what


class DirHandle:
    """An open directory: its descriptor (None on Windows), path, identity and root.

    ``opened`` is its stat when it was opened (a listing right after uses it as current).
    """

    __slots__ = ("checked", "dev", "fd", "ino", "opened", "path", "root")

    def __init__(self, fd: int | None, path: str, root: str, st: os.stat_result) -> None:
        self.fd = fd
        self.path = path
        self.root = root
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.opened = st
        self.checked = time.monotonic()

    def __del__(self) -> None:
        fd = self.fd
        if fd is not None:
            self.fd = None
            try:
                os.close(fd)
            except OSError:
                pass

    def still_at_path(self) -> bool:
        """Whether the path still names this very directory (one ``stat``)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        if st.st_ino != self.ino or st.st_dev != self.dev:
            return False
        self.checked = time.monotonic()
        return True

    # Operations relative to the directory.
    def join(self, name: str) -> str:
        return self.path + os.sep + name

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        return os.open(name, flags, mode, dir_fd=self.fd)

    def stat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def link(self, src: str, dst: str) -> None:
        os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        os.remove(name, dir_fd=self.fd)

    def rmdir(self, name: str) -> None:
        os.rmdir(name, dir_fd=self.fd)

    def mkdir(self, name: str) -> None:
        os.mkdir(name, 0o777, dir_fd=self.fd)

    def scandir(self) -> Any:
        return os.scandir(self.fd)


class PathHandle(DirHandle):
    """Windows: no descriptors for directories; names are joined to the path, and sharing
    violations (another process holding the file open) are retried briefly."""

    __slots__ = ()

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        return retrying(os.open, self.join(name), flags, mode)

    def stat(self, name: str) -> os.stat_result:
        return os.stat(self.join(name), follow_symlinks=False)

    def replace(self, src: str, dst: str) -> None:
        retrying(os.replace, self.join(src), self.join(dst))

    def link(self, src: str, dst: str) -> None:
        os.link(self.join(src), self.join(dst))

    def unlink(self, name: str) -> None:
        retrying(os.remove, self.join(name))

    def rmdir(self, name: str) -> None:
        os.rmdir(self.join(name))

    def mkdir(self, name: str) -> None:
        os.mkdir(self.join(name))

    def scandir(self) -> Any:
        return os.scandir(self.path)


# ------------------------------------------------------------------------ the handle table

_handles: dict[str, DirHandle] = {}
_MAX_HANDLES: Final = _max_handles()


def handle_for(path: str, root: str) -> DirHandle | None:
    """The cached handle of directory ``path`` opened under ``root``, if any."""
    h = _handles.get(path)
    return h if h is not None and h.root == root else None


def _remember(h: DirHandle) -> DirHandle:
    if len(_handles) >= _MAX_HANDLES:
        # Drop the oldest quarter (insertion order). Handles in use elsewhere stay open until
        # their last user lets go (the descriptor is closed when the object is freed).
        for path in list(_handles)[: _MAX_HANDLES // 4]:
            _handles.pop(path, None)
    _handles[h.path] = h
    return h


def forget(path: str) -> None:
    """Drop the cached handle of ``path`` (the directory was removed or replaced)."""
    _handles.pop(path, None)


def open_root(root: str, *, create: bool) -> DirHandle | None:
    """The root directory (its own path may go through links: that is the user's choice).

    None if it does not exist and ``create`` is False; NotADirectoryError if it is a file.
    """
    for _ in range(_CREATE_ATTEMPTS):
        try:
            if file_paths.WINDOWS:
                st = os.stat(root)
                if not stat_mod.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(root)
                return _remember(PathHandle(None, root, root, st))
            fd = os.open(root, _O_DIR)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.makedirs(root, exist_ok=True)
            except FileNotFoundError:
                pass  # a concurrent delete pruned a parent we had just made: retry
            continue
        try:
            return _remember(DirHandle(fd, root, root, os.fstat(fd)))
        except BaseException:
            os.close(fd)
            raise
    raise FileNotFoundError(root)


def open_child(parent: DirHandle, name: str, *, create: bool,
               remember: bool = True) -> DirHandle | None:
    """Subdirectory ``name`` of ``parent``, never through a link (LinkRefused).

    None if it does not exist (or is a plain file) and ``create`` is False. Listings pass
    ``remember=False``: they visit every directory once and would flush the table.
    """
    keep = _remember if remember else _same
    path = parent.path + os.sep + name
    for _ in range(_CREATE_ATTEMPTS):
        try:
            if file_paths.WINDOWS:
                st = os.stat(path, follow_symlinks=False)
                if bool(getattr(st, "st_reparse_tag", 0)) or not stat_mod.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(path)
                return keep(PathHandle(None, path, parent.root, st))
            fd = os.open(name, _O_DIR_NOFOLLOW, dir_fd=parent.fd)
        except FileNotFoundError:
            if not create:
                return None
            try:
                parent.mkdir(name)
            except FileExistsError:
                pass
            continue  # a concurrent delete may prune it again before we open it: retry
        except NotADirectoryError:
            _refuse_link(parent, name, path)
            if not create:
                return None
            raise
        try:
            return keep(DirHandle(fd, path, parent.root, os.fstat(fd)))
        except BaseException:
            os.close(fd)
            raise
    raise FileNotFoundError(path)


def open_listed(parent: DirHandle, name: str) -> DirHandle | None:
    """Subdirectory ``name`` of ``parent`` for a listing, which visits each directory once:
    not remembered, and None if it has vanished, cannot be opened, or is no longer a directory
    (a link swapped in is never entered). :func:`open_child`'s work without its retries."""
    if parent.fd is None:  # Windows
        try:
            return open_child(parent, name, create=False, remember=False)
        except (OSError, LinkRefused):
            return None
    try:
        fd = os.open(name, _O_DIR_NOFOLLOW, dir_fd=parent.fd)
    except OSError:
        return None
    try:
        return DirHandle(fd, parent.path + os.sep + name, parent.root, os.fstat(fd))
    except OSError:
        os.close(fd)
        return None


def _same(h: DirHandle) -> DirHandle:
    return h


def _refuse_link(parent: DirHandle, name: str, path: str) -> None:
    try:
        st = parent.stat(name)
    except OSError:
        return
    if stat_mod.S_ISLNK(st.st_mode) or bool(getattr(st, "st_reparse_tag", 0)):
        raise LinkRefused(path, "a symbolic link")


def describe_mode(mode: int) -> str:
    """What kind of file system object ``mode`` is, in words (for error messages)."""
    for test, what in ((stat_mod.S_ISLNK, "a symbolic link"), (stat_mod.S_ISFIFO, "a FIFO"),
                       (stat_mod.S_ISSOCK, "a socket"), (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device"), (stat_mod.S_ISDIR, "a directory")):
        if test(mode):
            return what
    return "not a regular file"


def is_insecure_dir(st: Any) -> bool:
    """World-writable without the sticky bit: anyone may replace anyone's files in it."""
    mode = st.st_mode
    return bool(mode & stat_mod.S_IWOTH) and not mode & stat_mod.S_ISVTX
