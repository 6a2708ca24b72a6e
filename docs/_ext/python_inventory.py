"""An intersphinx inventory of the Python standard library, written offline.

The docs build must work without a network, so instead of downloading ``objects.inv`` from
docs.python.org we write one from introspection: builtins, the exceptions and the standard
modules our signatures mention. Each entry points at its real page on docs.python.org, so links
in the built site go to the Python docs exactly as a downloaded inventory would make them.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import zlib
from pathlib import Path

# builtins documented in stdtypes.html rather than functions.html
_STDTYPES = {"dict", "list", "tuple", "str", "set", "frozenset", "bytes", "bytearray",
             "memoryview", "range"}
# Modules whose public classes and functions our API mentions.
_MODULES = ("typing", "collections.abc", "pathlib", "os", "datetime", "abc", "enum",
            "dataclasses", "concurrent.futures", "functools", "warnings", "logging",
            "collections", "contextlib", "types", "inspect")
_BASE = "https://docs.python.org/3/"


def _builtins() -> list[tuple[str, str, str]]:
    rows = []
    for name in dir(builtins):
        if name.startswith("_"):
            continue
        obj = getattr(builtins, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            rows.append((name, "py:exception", f"library/exceptions.html#{name}"))
        elif inspect.isclass(obj):
            page = "stdtypes" if name in _STDTYPES else "functions"
            rows.append((name, "py:class", f"library/{page}.html#{name}"))
        elif callable(obj):
            rows.append((name, "py:function", f"library/functions.html#{name}"))
    rows.append(("None", "py:data", "library/constants.html#None"))
    rows.append(("NotImplemented", "py:data", "library/constants.html#NotImplemented"))
    rows.append(("Ellipsis", "py:data", "library/constants.html#Ellipsis"))
    return rows


def _module_rows(modname: str) -> list[tuple[str, str, str]]:
    try:
        module = importlib.import_module(modname)
    except ImportError:
        return []
    page = f"library/{modname}.html"
    rows = [(modname, "py:module", f"{page}#module-{modname}")]
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj):
            continue
        full = f"{modname}.{name}"
        if inspect.isclass(obj):
            role = "py:exception" if issubclass(obj, BaseException) else "py:class"
        elif inspect.isroutine(obj):
            role = "py:function"
        else:
            role = "py:data"
        rows.append((full, role, f"{page}#{full}"))
    return rows


def write_inventory(path: Path) -> Path:
    """Write the inventory to ``path`` (format version 2) and return it."""
    rows = _builtins()
    for modname in _MODULES:
        rows += _module_rows(modname)
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in sorted(set(rows)))
    header = ("# Sphinx inventory version 2\n# Project: Python\n# Version: 3\n"
              "# The remainder of this file is compressed using zlib.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + zlib.compress(body.encode()))
    return path
