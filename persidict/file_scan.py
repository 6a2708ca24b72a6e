"""Listings of the file backend: one pass over each directory, relative to its descriptor.

Kept apart from :mod:`persidict.file_backend` (the per-item primitives); the backend class
inherits these methods. A listing holds one directory's entries at a time.

Every name must carry the digest of its stem to count as an item, and an md5 per name costs as
much as the listing itself, so each name is checked once, not at every listing:

* A directory whose change time (the later of mtime and ctime) is the same as at an earlier
  listing, which began when the directory had already been unchanged for longer than its file
  system's timestamp granularity (100 ms; 3 s where times are whole seconds), holds the same
  names as then: only the junk found then is skipped. A create, delete or rename in it moves
  that time forward, so a change is never missed, by this process or any other.
* A directory listed sooner after a change may change again within the same timestamp, so its
  time proves nothing: the names judged good are kept as well (up to 65,536 names in all) and
  the next listing checks only names it has not judged before. A name's verdict depends on the
  name alone, so this is never stale either.

Memory: a few bytes per directory and its junk, plus that bounded set of recent names.
"""
from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from .errors import BackendError
from .file_dirs import DirHandle, LinkRefused, forget, open_listed
from .keys import unsign_component
from .storage import Key, Stat

__all__ = ["STALE_TEMP_AGE", "TEMP_PREFIX", "FileScans", "is_temp_name", "stat_of"]

TEMP_PREFIX: Final = ".__tmp__"
STALE_TEMP_AGE: Final = 600.0  # seconds: a temp file this old has no live writer
_MEMO_MAX: Final = 65536  # directories remembered by listings
_HELD_NAMES_MAX: Final = 65536  # good names kept for directories changed just before a listing
# A directory unchanged this long before a listing will show any later change as a new time:
# longer than a coarse kernel clock tick on fine-grained file systems, and than the 1-2 s
# granularity of file systems whose times are whole seconds (FAT, HFS+, ext3).
_SETTLED_FINE_NS: Final = 100_000_000
_SETTLED_COARSE_NS: Final = 3_000_000_000
_S_ISREG = stat_mod.S_ISREG

# (item file names, subdirectories as (component, name), temp file names)
Listing = tuple[list[str], list[tuple[str, str]], list[str]]
_EMPTY: Final[frozenset[str]] = frozenset()


class _Seen(NamedTuple):
    """What the last listing of a directory learnt about its names."""

    changed: int  # max(mtime_ns, ctime_ns) of the directory then
    settled: bool  # unchanged long enough before it that any later change moves that time
    bad_items: frozenset[str]  # junk with the item extension
    bad_dirs: frozenset[str]  # subdirectories without a valid digest suffix
    good_items: frozenset[str]  # kept only while not settled (then: every name not junk)
    good_dirs: frozenset[str]


_NOTHING: Final = _Seen(0, False, _EMPTY, _EMPTY, _EMPTY, _EMPTY)


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
    _seen: dict[tuple[int, int], _Seen]  # (st_dev, st_ino) of a directory -> its last listing
    _held_names: int  # good names kept in _seen (bounded by _HELD_NAMES_MAX)

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
        started = time.time_ns()  # before every directory's listing (see _remember)
        base = self._base_handle()
        if base is None:
            return
        stack: list[tuple[Key, DirHandle, str]] = []
        prefix: Key = ()
        h: DirHandle | None = base
        up: tuple[DirHandle, str] | None = None
        while True:
            if h is not None:
                listing = self._list(h, h is base, h is not base, started)
                yield prefix, h, listing, up
                if listing[1]:
                    stack.extend(((*prefix, comp), h, name)
                                 for comp, name in reversed(listing[1]))
            if not stack:
                return
            prefix, parent, name = stack.pop()
            up = parent, name
            h = open_listed(parent, name)  # None: vanished, or swapped for a link since

    def _list(self, h: DirHandle, is_base: bool, just_opened: bool, started: int) -> Listing:
        """(item file names, subdirectories as (component, name), temp file names).

        ``started``: a clock reading taken before the directory was stated and read.
        """
        try:
            if just_opened:
                st = h.opened
            else:
                st = os.fstat(h.fd) if h.fd is not None else os.stat(h.path)
            # Read to the end, which closes it (no context manager: this runs per directory).
            entries = list(os.scandir(h.fd) if h.fd is not None else h.scandir())
        except FileNotFoundError:
            return [], [], []
        except OSError as exc:
            if not is_base and isinstance(exc, NotADirectoryError):
                return [], [], []
            raise self._error("list", None, exc) from exc
        ext = self._dot_ext
        files = [name for e in entries
                 if (name := e.name).endswith(ext) and e.is_file(follow_symlinks=False)]
        dirs: list[str] = []
        temps: list[str] = []
        if len(files) < len(entries):  # not only items (an item name is never a temp's)
            for e in entries:
                name = e.name
                if e.is_dir(follow_symlinks=False):
                    dirs.append(name)
                elif name.startswith(TEMP_PREFIX) and is_temp_name(name):
                    temps.append(name)
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        ident = (st.st_dev, st.st_ino)
        seen = self._seen.get(ident)
        if seen is not None and seen.changed == changed and seen.settled:
            # The very names of that listing, all checked then: only its junk is skipped.
            if seen.bad_items:
                bad = seen.bad_items
                files = [name for name in files if name not in bad]
            if dirs and seen.bad_dirs:
                bad = seen.bad_dirs
                dirs = [name for name in dirs if name not in bad]
        else:
            known = _NOTHING if seen is None else seen
            files, bad_items = self._verdicts(files, -len(ext), known.good_items,
                                              known.bad_items)
            dirs, bad_dirs = self._verdicts(dirs, None, known.good_dirs, known.bad_dirs)
            self._remember(ident, seen, changed, started, files, bad_items, dirs, bad_dirs)
        if not dirs:
            return files, [], temps
        n = self._digest_len
        dcut = -(n + 1) if n else None
        return files, [(name[:dcut], name) for name in dirs], temps

    def _verdicts(self, names: list[str], cut: int | None, good: frozenset[str],
                  bad: frozenset[str]) -> tuple[list[str], list[str]]:
        """(names that are signed components once ``cut`` is cut off, the others); names
        judged at an earlier listing are not checked again (a name's verdict never changes)."""
        n = self._digest_len
        ok: list[str] = []
        junk: list[str] = []
        for name in names:
            if name in good or (name not in bad and
                                unsign_component(name[:cut], n) is not None):
                ok.append(name)
            else:
                junk.append(name)
        return ok, junk

    def _remember(self, ident: tuple[int, int], old: _Seen | None, changed: int, started: int,
                  good_items: list[str], bad_items: list[str], good_dirs: list[str],
                  bad_dirs: list[str]) -> None:
        """Keep what this listing learnt about a directory, in O(its junk) once it is settled.

        A directory unchanged for longer than its file system's timestamp granularity before
        the walk began shows any later change as a new time: then only its junk is kept.
        Otherwise a change may yet come with the same time, so the names judged good are kept
        too (within a budget) and only new names are checked at the next listing.
        """
        memo = self._seen
        if len(memo) >= _MEMO_MAX:
            memo.clear()
            self._held_names = 0
            old = None
        if old is not None:
            self._held_names -= len(old.good_items) + len(old.good_dirs)
        settle = _SETTLED_COARSE_NS if changed % 1_000_000_000 == 0 else _SETTLED_FINE_NS
        settled = started - changed > settle
        held = 0 if settled else len(good_items) + len(good_dirs)
        if self._held_names + held > _HELD_NAMES_MAX:
            held = 0
        memo[ident] = _Seen(changed, settled, frozenset(bad_items), frozenset(bad_dirs),
                            frozenset(good_items) if held else _EMPTY,
                            frozenset(good_dirs) if held else _EMPTY)
        self._held_names += held

    def _comps(self, names: list[str]) -> list[str]:
        """The key components of a listing's item names."""
        cut = -len(self._dot_ext) - (self._digest_len + 1 if self._digest_len else 0)
        return [name[:cut] for name in names]

    def _stats(self, prefix: Key, h: DirHandle, listing: Listing
               ) -> Iterator[tuple[Key, os.stat_result]]:
        """(key, its lstat) of a listing's items; those deleted since the listing skipped."""
        for name, comp in zip(listing[0], self._comps(listing[0]), strict=True):
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
                yield from [((*prefix, comp), None) for comp in self._comps(listing[0])]

    def scan_keys(self) -> Iterator[Key]:
        return chain.from_iterable(self.scan_key_batches())

    def scan_key_batches(self) -> Iterator[list[Key]]:
        """The keys of one or more directories at a time (at least 512 a batch, or a whole
        directory's): a Python step per batch, not per key."""
        cut = -len(self._dot_ext) - (self._digest_len + 1 if self._digest_len else 0)
        batch: list[Key] = []
        for prefix, _, (names, _, _), _ in self._walk():
            if len(prefix) == 1:  # the common shape, built without unpacking
                first = prefix[0]
                batch += [(first, name[:cut]) for name in names]
            elif prefix:
                batch += [(*prefix, name[:cut]) for name in names]
            else:
                batch += [(name[:cut],) for name in names]
            if len(batch) >= 512:
                yield batch
                batch = []
        if batch:
            yield batch

    def scan_mtimes(self) -> Iterator[tuple[Key, float]]:
        for prefix, h, listing, _ in self._walk():
            for key, st in self._stats(prefix, h, listing):
                yield key, st.st_mtime

    def scan_items(self) -> Iterator[tuple[Key, Any, Stat]]:
        """Every item read as it is listed: opened by name in the directory just listed."""
        for prefix, h, listing, _ in self._walk():
            for name, comp in zip(listing[0], self._comps(listing[0]), strict=True):
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
        return (*prefix, *self._comps([listing[0][i]]))

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
            for name in listing[2]:
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
