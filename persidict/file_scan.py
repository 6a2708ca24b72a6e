"""Listings of the file backend: one pass over each directory, relative to its descriptor.

Kept apart from :mod:`persidict.file_backend` (the per-item primitives); the backend class
inherits these methods. A listing holds one directory's entries at a time. The digest of each
name is checked once per directory *state*: a directory whose change time is the same as at an
earlier listing (when it had already been unchanged for a few seconds, longer than any file
system's timestamp granularity) holds the same names, so only the junk found then is skipped
and nothing is hashed again. Whatever changes a directory (a create, delete or rename in it)
moves that time forward, and the directory is checked name by name once more.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from .errors import BackendError
from .file_dirs import DirHandle, LinkRefused, forget, open_child
from .keys import unsign_component
from .storage import Key, Stat

__all__ = ["STALE_TEMP_AGE", "TEMP_PREFIX", "FileScans", "is_temp_name", "stat_of"]

TEMP_PREFIX: Final = ".__tmp__"
STALE_TEMP_AGE: Final = 600.0  # seconds: a temp file this old has no live writer
_MEMO_MAX: Final = 65536  # directory states remembered by listings
# A directory unchanged this long before a listing will show any later change as a new time:
# longer than a coarse kernel clock tick on fine-grained file systems, and than the 1-2 s
# granularity of file systems whose times are whole seconds (FAT, HFS+, ext3).
_SETTLED_FINE_NS: Final = 100_000_000
_SETTLED_COARSE_NS: Final = 3_000_000_000
_S_ISREG = stat_mod.S_ISREG

# (item file names, their key components or None, subdirectories (component, name), temps)
Listing = tuple[list[str], list[str] | None, list[tuple[str, str]], list[str]]


def is_temp_name(name: str) -> bool:
    """A temp file of any writer (ours, or 0.309's ``mkstemp``): the prefix and no extension,
    so no item of any format can have this name."""
    return name.startswith(TEMP_PREFIX) and "." not in name[len(TEMP_PREFIX):]


def stat_of(st: os.stat_result) -> Stat:
    """The backend's Stat (ETag ``mtime_ns:size:inode``) of an ``os.stat_result``."""
    return Stat(f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}", st.st_mtime)


class FileScans:
    """Scans, counts, sampling and sweeps of :class:`~persidict.file_backend.FileBackend`."""

    _rel_base: tuple[str, ...]
    _dot_ext: str
    _digest_len: int
    _memo: dict[tuple[int, int], tuple[int, frozenset[str], frozenset[str]]]

    if TYPE_CHECKING:
        def _open_chain(self, rel: tuple[str, ...], *, create: bool,
                        remember: bool = True) -> DirHandle | None: ...

        def _error(self, op: str, key: Key | None, exc: BaseException) -> BackendError: ...

        def _read_in(self, h: DirHandle, name: str, key: Key) -> Any: ...

        def _prune(self, rel: tuple[str, ...]) -> None: ...

    def _base_handle(self) -> DirHandle | None:
        """The store's own directory for a listing (None if it does not exist)."""
        try:
            return self._open_chain(self._rel_base, create=False)
        except NotADirectoryError as exc:
            raise self._error("list", None, exc) from exc
        except (OSError, LinkRefused) as exc:
            raise self._error("list", None, exc) from exc

    def _walk(self) -> Iterator[tuple[Key, DirHandle, Listing, tuple[DirHandle, str] | None]]:
        """Depth-first walk: (key prefix, directory, its listing, (parent, name) or None for
        the store's own directory) for every store directory.

        Holds one directory's entries at a time (plus the names of the subdirectories still to
        visit). Directories that vanish mid-walk, links and junk names are skipped.
        """
        base = self._base_handle()
        if base is None:
            return
        stack: list[tuple[Key, DirHandle, str]] = []
        prefix: Key = ()
        h: DirHandle | None = base
        up: tuple[DirHandle, str] | None = None
        while True:
            if h is not None:
                listing = self._list(h, h is base, h is not base)
                yield prefix, h, listing, up
                stack.extend(((*prefix, comp), h, name) for comp, name in reversed(listing[2]))
            if not stack:
                return
            prefix, parent, name = stack.pop()
            up = parent, name
            try:
                h = open_child(parent, name, create=False, remember=False)
            except (OSError, LinkRefused):
                h = None  # vanished, or swapped for a link since it was listed

    def _list(self, h: DirHandle, is_base: bool, just_opened: bool) -> Listing:
        """(item file names, their key components, subdirectories as (component, name), temp
        file names). The components are None when they are the names minus the suffix."""
        started = time.time_ns()
        try:
            if just_opened:
                st = h.opened
            else:
                st = os.fstat(h.fd) if h.fd is not None else os.stat(h.path)
            with h.scandir() as it:
                entries = list(it)
        except FileNotFoundError:
            return [], None, [], []
        except OSError as exc:
            if not is_base and isinstance(exc, NotADirectoryError):
                return [], None, [], []
            raise self._error("list", None, exc) from exc
        ext, n = self._dot_ext, self._digest_len
        names: list[str] = []
        subdirs: list[tuple[str, str]] = []
        temps: list[str] = []
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        ident = (st.st_dev, st.st_ino)
        memo = self._memo.get(ident)
        if memo is not None and memo[0] == changed:
            # The same names as when they were last checked: only the known junk is skipped.
            bad_items, bad_dirs = memo[1], memo[2]
            dcut = -(n + 1) if n else None
            for e in entries:
                name = e.name
                if name.endswith(ext) and e.is_file(follow_symlinks=False):
                    if not bad_items or name not in bad_items:
                        names.append(name)
                elif e.is_dir(follow_symlinks=False):
                    if not bad_dirs or name not in bad_dirs:
                        subdirs.append((name[:dcut], name))
                elif name.startswith(TEMP_PREFIX) and is_temp_name(name):
                    temps.append(name)
            return names, None, subdirs, temps
        comps: list[str] = []
        new_bad_items: list[str] = []
        new_bad_dirs: list[str] = []
        cut_ext = -len(ext)
        for e in entries:
            name = e.name
            if name.endswith(ext) and e.is_file(follow_symlinks=False):
                comp = unsign_component(name[:cut_ext], n)
                if comp is None:
                    new_bad_items.append(name)
                else:
                    names.append(name)
                    comps.append(comp)
            elif e.is_dir(follow_symlinks=False):
                comp = unsign_component(name, n)
                if comp is None:
                    new_bad_dirs.append(name)
                else:
                    subdirs.append((comp, name))
            elif name.startswith(TEMP_PREFIX) and is_temp_name(name):
                temps.append(name)
        settle = _SETTLED_COARSE_NS if changed % 1_000_000_000 == 0 else _SETTLED_FINE_NS
        if started - changed > settle:  # later changes will move its times: remember
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[ident] = (changed, frozenset(new_bad_items), frozenset(new_bad_dirs))
        return names, comps, subdirs, temps

    def _comps(self, listing: Listing) -> list[str]:
        """The key components of a listing's items."""
        comps = listing[1]
        if comps is not None:
            return comps
        cut = -len(self._dot_ext) - (self._digest_len + 1 if self._digest_len else 0)
        return [name[:cut] for name in listing[0]]

    def _stats(self, prefix: Key, h: DirHandle, listing: Listing
               ) -> Iterator[tuple[Key, os.stat_result]]:
        """(key, its lstat) of a listing's items; those deleted since the listing skipped."""
        for name, comp in zip(listing[0], self._comps(listing), strict=True):
            try:
                st = h.stat(name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise self._error("stat", (*prefix, comp), exc) from exc
            yield (*prefix, comp), st

    def scan(self, *, with_stat: bool = False) -> Iterator[tuple[Key, Stat | None]]:
        for prefix, h, listing, _ in self._walk():
            if with_stat:
                for key, st in self._stats(prefix, h, listing):
                    yield key, stat_of(st)
            else:
                yield from [((*prefix, comp), None) for comp in self._comps(listing)]

    def scan_keys(self) -> Iterator[Key]:
        cut = -len(self._dot_ext) - (self._digest_len + 1 if self._digest_len else 0)
        for prefix, _, (names, comps, _, _), _ in self._walk():
            if comps is not None:
                yield from [(*prefix, comp) for comp in comps]
            elif prefix:
                yield from [(*prefix, name[:cut]) for name in names]
            else:
                yield from [(name[:cut],) for name in names]

    def scan_mtimes(self) -> Iterator[tuple[Key, float]]:
        for prefix, h, listing, _ in self._walk():
            for key, st in self._stats(prefix, h, listing):
                yield key, st.st_mtime

    def scan_items(self) -> Iterator[tuple[Key, Any, Stat]]:
        """Every item read as it is listed: opened by name in the directory just listed."""
        for prefix, h, listing, _ in self._walk():
            for name, comp in zip(listing[0], self._comps(listing), strict=True):
                key = (*prefix, comp)
                try:
                    got = self._read_in(h, name, key)
                except OSError as exc:
                    raise self._error("read", key, exc) from exc
                if got is not None:
                    yield key, got[0], got[1]

    def count(self) -> int:
        return sum(len(listing[0]) for _, _, listing, _ in self._walk())

    def random_key(self) -> Key | None:
        """A uniformly random key: one random draw per directory (weighted by its item count),
        and only the winner is turned into a key."""
        import random

        rand = random.random
        total = 0
        won: tuple[Key, Listing, int] | None = None
        for prefix, _, listing, _ in self._walk():
            k = len(listing[0])
            if not k:
                continue
            total += k
            if rand() * total < k:
                won = prefix, listing, random.randrange(k)
        if won is None:
            return None
        prefix, listing, i = won
        comps = listing[1]
        if comps is not None:
            return (*prefix, comps[i])
        name = listing[0][i]
        return (*prefix, name[: -len(self._dot_ext) - (self._digest_len + 1 if self._digest_len
                                                        else 0)])

    def clear(self) -> None:
        """Remove this format's items and stale temp files, then the emptied subdirectories.

        Files of other formats, foreign files and non-empty directories survive (several stores
        may share one base_dir). base_dir itself is never removed. An item that cannot be
        removed (a read-only file system, no permission) is a BackendError.
        """
        self._sweep(remove_items=True, max_temp_age=STALE_TEMP_AGE)

    def remove_stale_temp_files(self, max_age_seconds: float = STALE_TEMP_AGE) -> int:
        """Delete temp files older than ``max_age_seconds`` left by writers that died.

        Returns how many were removed. Emptied directories are removed as well. A file whose
        name parses as an item of any format is never touched.
        """
        if isinstance(max_age_seconds, bool) or not isinstance(max_age_seconds, (int, float)):
            raise TypeError("max_age_seconds must be a number")
        if not max_age_seconds >= 0:
            raise ValueError(f"max_age_seconds must be >= 0, got {max_age_seconds}")
        return self._sweep(remove_items=False, max_temp_age=float(max_age_seconds))

    def _sweep(self, *, remove_items: bool, max_temp_age: float) -> int:
        cutoff = time.time() - max_temp_age
        visited: list[tuple[DirHandle, str, str]] = []  # (parent, name, path), parents first
        removed_temps = 0
        for prefix, h, listing, up in self._walk():
            if up is not None:
                visited.append((up[0], up[1], h.path))
            if remove_items:
                for name in listing[0]:
                    try:
                        h.unlink(name)
                    except FileNotFoundError:
                        pass  # deleted since the listing
                    except OSError as exc:
                        raise self._error("clear", (*prefix, name), exc) from exc
            for name in listing[3]:
                try:
                    st = h.stat(name)
                    if _S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                        h.unlink(name)
                        removed_temps += 1
                except OSError:
                    pass  # a live writer's, or another user's in a shared folder
        for parent, name, path in reversed(visited):  # children first
            try:
                parent.rmdir(name)
            except OSError:
                pass  # not empty (other formats, foreign files) or gone
            forget(path)
        if self._rel_base:  # a sub-store's own directory is part of the parent's tree
            self._prune(self._rel_base)
        return removed_temps
