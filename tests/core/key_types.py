"""SafeStrTuple subclasses written the way persidict 0.309 clients write them.

Importable by name (``tests.core.key_types``), so values holding these keys can be read back in
a fresh process: :func:`check_stores` reads stores named on stdin (one JSON recipe per line, see
:func:`reopen`) and checks they hold :func:`sample_values`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from persidict import NonEmptySafeStrTuple, SafeStrTuple


class Addr(SafeStrTuple):
    """An address type: built from one signature string, with its own mutable attributes."""

    def __init__(self, sig: str) -> None:
        self.portals: set[str] = set()  # set before the base __init__
        SafeStrTuple.__init__(self, sig[:3], sig[3:])
        self.label = f"addr-{sig}"  # and after it


class PortalAddr(Addr):
    """Custom pickled state: keeps the signature, rebuilds strings by assigning them."""

    def __getstate__(self) -> dict[str, Any]:
        return {"sig": "".join(self.strings), "portals": sorted(self.portals)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        sig = state["sig"]
        self.strings = (sig[:3], sig[3:])  # validated like the constructor's arguments
        self.portals = set(state["portals"])
        self.label = f"addr-{sig}"


class CaseFreeKey(NonEmptySafeStrTuple):
    """A key type with its own idea of equality (and a hash that agrees with it)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SafeStrTuple):
            return NotImplemented
        return tuple(s.lower() for s in self) == tuple(s.lower() for s in other)

    def __hash__(self) -> int:
        return hash(tuple(s.lower() for s in self))


class Slim(NonEmptySafeStrTuple):
    """A compact subclass: slots all the way down, so no ``__dict__``."""

    __slots__ = ("note",)


def sample_values() -> dict[str, Any]:
    """Values holding subclass keys (and plain keys), by the store key they are stored under."""
    a = Addr("abcdef")
    a.portals.update({"north", "south"})
    p = PortalAddr("xyz123")
    p.portals.add("east")
    return {
        "addr": {"where": a, "plain": SafeStrTuple("a", "b")},
        "portal": [p, NonEmptySafeStrTuple("k")],
        "nested": {"route": (Addr("uvwxyz"), Addr("qrstuv"))},
    }


def describe(value: Any) -> Any:
    """A comparable picture of a value: class names, strings and attributes of every key."""
    if isinstance(value, SafeStrTuple):
        attrs = {k: describe(v) for k, v in sorted(getattr(value, "__dict__", {}).items())}
        return [type(value).__name__, list(value.strings), attrs]
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, set):
        return sorted(describe(v) for v in value)
    return value


def reopen(recipe: dict[str, Any]) -> Any:
    """Open, in this process, the store a recipe names (``{"kind": "file" | "s3", ...}``)."""
    from persidict import BasicS3Dict, FileDirDict

    params = dict(recipe["params"])
    if recipe["kind"] == "file":
        return FileDirDict(**params)
    return BasicS3Dict(**params)


def check_stores() -> None:
    """Run in a fresh process (``-c``, so the classes keep their module name)."""
    import joblib

    expected = sample_values()
    for line in sys.stdin:
        recipe = json.loads(line)
        store = reopen(recipe)
        for key, value in expected.items():
            assert describe(store[key]) == describe(value), (recipe, key)
        print(json.dumps({"ok": recipe["params"].get("serialization_format"),
                          "hash": joblib.hash(store["addr"]["where"])}))
