"""One listing of everything stored under a key prefix: results and metadata records together.

The cache keeps two siblings per call (see :mod:`persidict_memo.stores`): the result and its
metadata record, which is the call's lease while the result is being computed or refreshed.
Listing each sibling store on its own walks the same directory (or S3 prefix) twice; the
lifecycle tools (``cache_entries``, ``cache_prune``, ``cache_clear``, ``map``'s bulk lookup)
instead read the layout once:

* a :class:`~persidict.FileDirDict` family: one ``os.scandir`` walk of the prefix's directory;
* :class:`~persidict.BasicS3Dict` / :class:`~persidict.S3Dict`: one paginated
  ``ListObjectsV2`` of the prefix (1,000 objects a request), and deletions in batches of 1,000
  (``DeleteObjects``); an ``S3Dict``'s local copies are removed with them;
* any other store: the two sibling stores listed through the PersiDict API.

Each layout also removes items in bulk, so clearing a function costs about what ``rm -r`` of its
folder costs.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import persidict
from persidict.file_backend import STALE_TEMP_AGE, TEMP_PREFIX
from persidict.keys import sign_component, unsign_component

from .stores import ResultStore

__all__ = ["SHARD_LISTINGS", "Item", "Layout", "layout_of"]

Kind = Literal["result", "meta"]
_DELETE_BATCH: Final = 1000
SHARD_LISTINGS: Final = 8  # find(): list single shards up to this many, else the whole prefix
_META: Final = "meta"


@dataclass(frozen=True)
class Item:
    """One stored object under the listed prefix.

    Attributes:
        key: the key of the call it belongs to (the result's key, without any suffix).
        kind: ``"result"`` or ``"meta"`` (a metadata record, or the lease in its place).
        mtime: POSIX time of its last write.
        size: bytes stored, when the listing tells (files and S3 do).
    """

    key: tuple[str, ...]
    kind: Kind
    mtime: float
    size: int | None


class Layout:
    """Lists and removes the results and metadata records under a prefix (generic version)."""

    def __init__(self, rs: ResultStore) -> None:
        self.rs = rs

    def scan(self, prefix: tuple[str, ...]) -> Iterator[Item]:
        """Every item under ``prefix`` (items vanishing during the scan may be left out)."""
        rs = self.rs
        if rs.meta is rs.results:  # one store holds all three, the siblings by key suffix
            for key, mtime in _keys_and_times(rs.results, prefix):
                last = key[-1]
                if last.endswith("~meta"):
                    yield Item((*key[:-1], last[:-5]), "meta", mtime, None)
                else:
                    yield Item(key, "result", mtime, None)
            return
        for kind, store in (("result", rs.results), ("meta", rs.meta)):
            for key, mtime in _keys_and_times(store, prefix):
                yield Item(key, kind, mtime, None)  # type: ignore[arg-type]

    def find(self, prefix: tuple[str, ...], shards: set[str]) -> Iterator[Item]:
        """The items under ``prefix`` whose next key component is in ``shards``, from as few
        listings as this layout can tell (each shard's own, when they are few)."""
        if len(shards) > SHARD_LISTINGS:
            depth = len(prefix)
            yield from (i for i in self.scan(prefix) if i.key[depth] in shards)
            return
        for shard in sorted(shards):
            yield from self.scan((*prefix, shard))

    def remove(self, items: Iterable[Item]) -> int:
        """Delete these items (best effort); return how many results were deleted."""
        rs = self.rs
        removed = 0
        for item in items:
            if item.kind == "result":
                removed += bool(rs.admin.discard(item.key))
            else:
                rs.meta.discard(rs.meta_key(item.key))
        return removed

    def clear(self, prefix: tuple[str, ...]) -> int:
        """Delete everything under ``prefix``; return how many results were deleted."""
        return self.remove(list(self.scan(prefix)))

    def forget(self, key: tuple[str, ...]) -> bool:
        """Delete one call's result and metadata record; whether a result was there."""
        rs = self.rs
        removed = bool(rs.admin.discard(key))
        rs.meta.discard(rs.meta_key(key))
        return removed


def _keys_and_times(store: Any, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    try:
        sub = store.get_subdict(prefix)
    except NotImplementedError:
        for key, mtime in store.keys_and_timestamps():
            if tuple(key)[: len(prefix)] == prefix:
                yield tuple(key), mtime
        return
    for key, mtime in sub.keys_and_timestamps():
        yield (*prefix, *key), mtime


class _FileLayout(Layout):
    """A FileDirDict family: ``<digest>.pkl`` and ``<digest>.meta`` side by side."""

    def __init__(self, rs: ResultStore, base: Any) -> None:
        super().__init__(rs)
        self.kinds: dict[str, Kind] = {
            base.serialization_format: "result", _META: "meta"
        }
        self.digest_len: int = base.digest_len
        self.base_dir: str = base.base_dir
        self._root: str | None = None
        self._checked: dict[str, bool] = {}
        self._folders: dict[tuple[str, ...], str] = {}  # key prefix -> its directory
        self._exts = {kind: ext for ext, kind in self.kinds.items()}

    def _dir(self, prefix: tuple[str, ...]) -> str:
        n = self.digest_len
        return os.path.join(self.base_dir, *(sign_component(c, n) for c in prefix))

    def _inside(self, path: str) -> bool:
        """Whether ``path`` really is under base_dir (no planted symlink leads elsewhere)."""
        root = self._root
        if root is None:
            root = self._root = os.path.realpath(self.base_dir)
        real = os.path.realpath(path)
        return real == root or real.startswith(root + os.sep)

    def _walk(
        self, prefix: tuple[str, ...], dirs: list[str] | None = None, timed: bool = True
    ) -> Iterator[tuple[str, Item | None]]:
        """(path, item) of every file under the prefix; item None: not ours (e.g. a temp file).

        The directories walked are appended to ``dirs``, parents before children. Without
        ``timed`` no file is stat'ed (the items' mtime and size are 0).
        """
        n, kinds = self.digest_len, self.kinds
        start = self._dir(prefix)
        if not self._inside(start):  # walked: directories only, never a symlink below
            return
        stack = [(start, prefix)]
        while stack:
            path, key = stack.pop()
            try:
                with os.scandir(path) as it:
                    entries = list(it)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if dirs is not None:
                dirs.append(path)
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        comp = unsign_component(name, n)
                        if comp is not None:
                            stack.append((entry.path, (*key, comp)))
                        continue
                    st = entry.stat(follow_symlinks=False) if timed else None
                except OSError:
                    continue
                stem, dot, ext = name.rpartition(".")
                kind = kinds.get(ext) if dot and not name.startswith(TEMP_PREFIX) else None
                comp = unsign_component(stem, n) if kind is not None else None
                if kind is None or comp is None:
                    yield entry.path, None
                elif st is None:
                    yield entry.path, Item((*key, comp), kind, 0.0, 0)
                else:
                    yield entry.path, Item((*key, comp), kind, st.st_mtime, st.st_size)

    def scan(self, prefix: tuple[str, ...]) -> Iterator[Item]:
        for _, item in self._walk(prefix):
            if item is not None:
                yield item

    def _folder(self, dirs: tuple[str, ...]) -> str:
        """The directory of the keys under ``dirs`` (remembered: a function has few)."""
        folder = self._folders.get(dirs)
        if folder is None:
            if len(self._folders) >= 4096:
                self._folders.clear()
            folder = self._folders[dirs] = self._dir(dirs)
        return folder

    def _path(self, item: Item) -> str:
        key = item.key
        stem = sign_component(key[-1], self.digest_len)
        return os.path.join(self._folder(key[:-1]), f"{stem}.{self._exts[item.kind]}")

    def remove(self, items: Iterable[Item]) -> int:
        removed = 0
        parents: set[str] = set()
        checked: dict[str, bool] = {}
        for item in items:
            path = self._path(item)
            parent = os.path.dirname(path)
            if parent not in checked:
                checked[parent] = self._inside(parent)
            if not checked[parent]:
                continue
            try:
                os.unlink(path)
            except OSError:
                continue
            removed += item.kind == "result"
            parents.add(os.path.dirname(path))
        for parent in parents:  # emptied shard directories go, as FileDirDict's deletes do
            try:
                os.rmdir(parent)
            except OSError:
                pass
        return removed

    def forget(self, key: tuple[str, ...]) -> bool:
        """Two unlinks (result, metadata) and the shard directory if it emptied; no stat."""
        parent = self._folder(key[:-1])
        stem = os.path.join(parent, sign_component(key[-1], self.digest_len))
        result = f"{stem}.{self._exts['result']}"
        inside = self._checked.get(parent)
        if inside is None:
            if len(self._checked) >= 4096:
                self._checked.clear()
            inside = self._checked[parent] = self._inside(parent)
        if not inside:
            return False
        try:
            os.unlink(result)
            removed = True
        except FileNotFoundError:
            removed = False
        except OSError:
            return super().forget(key)  # let the store report what is wrong
        try:
            os.unlink(f"{stem}.{self._exts['meta']}")
        except OSError:
            pass
        try:
            os.rmdir(parent)  # only if it emptied, as the store's own deletes do
        except OSError:
            pass
        return removed

    def clear(self, prefix: tuple[str, ...]) -> int:
        """One walk unlinking our files (and stale temp files), then the emptied directories.

        Only temp files are stat'ed (a young one may be a writer's, about to be renamed).
        """
        removed = 0
        stale = time.time() - STALE_TEMP_AGE
        dirs: list[str] = []
        for path, item in self._walk(prefix, dirs, timed=False):
            if item is None:
                if not os.path.basename(path).startswith(TEMP_PREFIX):
                    continue
                try:
                    if os.stat(path, follow_symlinks=False).st_mtime >= stale:
                        continue  # a writer may be about to rename it into place
                except OSError:
                    continue
            try:
                os.unlink(path)
            except OSError:
                continue
            removed += item is not None and item.kind == "result"
        for path in reversed(dirs):  # children were seen after their parents
            try:
                os.rmdir(path)
            except OSError:
                pass
        return removed


class _S3Layout(Layout):
    """S3 (``BasicS3Dict`` or ``S3Dict``): ``<root>/<key>.pkl`` and ``<root>/<key>.meta``."""

    def __init__(self, rs: ResultStore, base: Any) -> None:
        super().__init__(rs)
        # An S3Dict wraps the BasicS3Dict that talks to S3 (it shares its client).
        s3 = base if isinstance(base, persidict.BasicS3Dict) else base._s3
        self.client = s3.s3_client
        self.bucket: str = s3.bucket_name
        self.root: str = s3.root_prefix
        self.kinds: dict[str, Kind] = {
            base.serialization_format: "result", _META: "meta"
        }
        self.local: _FileLayout | None = None
        if base is not s3:  # S3Dict: the local copies live under base_dir/bucket/root...
            self.local_dir = os.path.join(
                base.base_dir,
                *(sign_component(p, base.digest_len) for p in (self.bucket, *self.root.split("/"))
                  if p),
            )
            self.local_digest_len: int = base.digest_len
            self.local_exts = [*self.kinds, *(f"{e}_etag" for e in self.kinds)]

    def scan(self, prefix: tuple[str, ...]) -> Iterator[Item]:
        for page in self._pages(prefix):
            yield from self._items(page)

    def _pages(self, prefix: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.root + "/".join(prefix) + "/"
        )
        yield from pages

    def _items(self, page: dict[str, Any]) -> Iterator[Item]:
        kinds = self.kinds
        start = len(self.root)
        for obj in page.get("Contents", ()):
            parts = obj["Key"][start:].split("/")
            stem, dot, ext = parts[-1].rpartition(".")
            kind = kinds.get(ext) if dot else None
            if kind is None or not stem:
                continue
            yield Item(
                (*parts[:-1], stem), kind, obj["LastModified"].timestamp(), int(obj["Size"])
            )

    def find(self, prefix: tuple[str, ...], shards: set[str]) -> Iterator[Item]:
        """The first page of the whole prefix; only if there are more, the shards' own
        listings (when they are few): at most one request more than the cheaper of the two."""
        pages = self._pages(prefix)
        first = next(pages, None)
        if first is None:
            return
        if not first.get("IsTruncated") or len(shards) > SHARD_LISTINGS:
            yield from (i for i in self._items(first) if i.key[len(prefix)] in shards)
            for page in pages:
                yield from (i for i in self._items(page) if i.key[len(prefix)] in shards)
            return
        for shard in sorted(shards):
            yield from self.scan((*prefix, shard))

    def _object_key(self, item: Item) -> str:
        ext = next(e for e, k in self.kinds.items() if k == item.kind)
        return self.root + "/".join(item.key) + "." + ext

    def remove(self, items: Iterable[Item]) -> int:
        batch: list[Item] = []
        removed = 0
        for item in items:
            batch.append(item)
            if len(batch) == _DELETE_BATCH:
                removed += self._delete(batch)
                batch = []
        if batch:
            removed += self._delete(batch)
        return removed

    def _delete(self, items: list[Item]) -> int:
        answer = self.client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": self._object_key(i)} for i in items], "Quiet": True},
        )
        failed = {e.get("Key") for e in answer.get("Errors", ())}
        if failed:
            first = answer["Errors"][0]
            raise persidict.BackendError(
                f"could not delete {len(failed)} objects from s3://{self.bucket}: "
                f"{first.get('Code')}: {first.get('Message')}",
                backend="s3",
                operation="delete",
            )
        if hasattr(self, "local_dir"):
            self._drop_local_copies({i.key for i in items})
        return sum(i.kind == "result" for i in items)

    def _drop_local_copies(self, keys: set[tuple[str, ...]]) -> None:
        n = self.local_digest_len
        for key in keys:
            *dirs, last = key
            folder = os.path.join(self.local_dir, *(sign_component(c, n) for c in dirs))
            stem = sign_component(last, n)
            for ext in self.local_exts:
                try:
                    os.unlink(os.path.join(folder, f"{stem}.{ext}"))
                except OSError:
                    pass


_LAYOUTS: weakref.WeakKeyDictionary[ResultStore, Layout] = weakref.WeakKeyDictionary()


def layout_of(rs: ResultStore) -> Layout:
    """The fastest layout that knows how ``rs`` stores its siblings (one per store)."""
    layout = _LAYOUTS.get(rs)
    if layout is None:
        layout = _LAYOUTS[rs] = _make_layout(rs)
    return layout


def _make_layout(rs: ResultStore) -> Layout:
    base = rs.base
    if rs.meta is not rs.results:
        if isinstance(base, persidict.FileDirDict):
            return _FileLayout(rs, base)
        if isinstance(base, persidict.BasicS3Dict | persidict.S3Dict):
            return _S3Layout(rs, base)
    return Layout(rs)
