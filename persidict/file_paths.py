"""File-system details that are not about items: OS path limits and Windows quirks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = [
    "DEFAULT_NAME_MAX",
    "DEFAULT_PATH_MAX",
    "WINDOWS",
    "add_long_path_prefix",
    "drop_long_path_prefix",
    "fs_limits",
    "retrying",
]

DEFAULT_NAME_MAX: Final = 255
DEFAULT_PATH_MAX: Final = 4096
WINDOWS: Final = os.name == "nt"
_SHARING_RETRIES: Final = 8  # about 1.3 s of backoff in all
_T = TypeVar("_T")


def retrying(fn: Callable[..., _T], *args: Any) -> _T:
    """Call ``fn(*args)``; on Windows retry PermissionError a few times with a short backoff.

    There, opening, renaming over or deleting a file that another process (a reader, a virus
    scanner, an indexer) holds open fails with a sharing violation that clears up by itself.
    On POSIX a PermissionError is a real permission problem and surfaces at once.
    """
    if not WINDOWS:
        return fn(*args)
    delay = 0.005
    for _ in range(_SHARING_RETRIES):
        try:
            return fn(*args)
        except PermissionError:
            time.sleep(delay)
            delay *= 2
    return fn(*args)


_LONG = "\\\\?\\"
_LONG_UNC = "\\\\?\\UNC\\"


def add_long_path_prefix(path: str) -> str:
    r"""Windows: ``C:\x`` -> ``\\?\C:\x`` and ``\\srv\share`` -> ``\\?\UNC\srv\share``.

    The prefix lifts the 260-character MAX_PATH limit of the Win32 file API.
    """
    if path.startswith(_LONG):
        return path
    if path.startswith("\\\\"):
        return _LONG_UNC + path[2:]
    return _LONG + path


def drop_long_path_prefix(path: str) -> str:
    """The inverse of :func:`add_long_path_prefix`."""
    if path.startswith(_LONG_UNC):
        return "\\\\" + path[len(_LONG_UNC) :]
    if path.startswith(_LONG):
        return path[len(_LONG) :]
    return path


def fs_limits(path: str) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX (bytes) of the file system holding ``path`` or its nearest ancestor."""
    if WINDOWS:  # no pathconf; paths carry the long-path prefix
        return DEFAULT_NAME_MAX, 32767
    probe = path
    while True:
        try:
            return (
                int(os.pathconf(probe, "PC_NAME_MAX")),
                int(os.pathconf(probe, "PC_PATH_MAX")),
            )
        except (AttributeError, ValueError):  # no pathconf (Windows) or unknown name
            return DEFAULT_NAME_MAX, DEFAULT_PATH_MAX
        except OSError:
            parent = os.path.dirname(probe)
            if parent == probe:
                return DEFAULT_NAME_MAX, DEFAULT_PATH_MAX
            probe = parent
