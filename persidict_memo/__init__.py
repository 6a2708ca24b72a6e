"""persidict_memo: a persistent, content-addressed memoizer built on persidict stores::

    from persidict_memo import persistent_cache

    @persistent_cache                               # a local cache (see persistent_cache)
    def simulate(params: dict, seed: int = 0): ...

    @persistent_cache(store="s3://team-bucket/exp-cache", ignore=("verbose",))
    def featurize(df, *, window: int, verbose: bool = False): ...

Results are keyed by the function's module, qualified name and normalised source, and by a
canonical 128-bit hash of the call's normalised arguments; they are published with an atomic
insert-if-absent, so any number of processes and machines can share one store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .decorator import persistent_cache
    from .encoder import register_hasher
    from .lifecycle import CacheEntry, FunctionSummary, PruneReport, list_functions, prune
    from .memoizer import CacheInfo, CacheStoreWarning
    from .stores import StoreUnavailableError

# Public name -> module that defines it, imported on first use (PEP 562): ``import
# persidict_memo`` costs next to nothing, and a module that only names the package pays nothing.
_LAZY = {
    "persistent_cache": "decorator",
    "register_hasher": "encoder",
    "CacheEntry": "lifecycle",
    "FunctionSummary": "lifecycle",
    "PruneReport": "lifecycle",
    "list_functions": "lifecycle",
    "prune": "lifecycle",
    "CacheInfo": "memoizer",
    "CacheStoreWarning": "memoizer",
    "StoreUnavailableError": "stores",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'persidict_memo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CacheEntry",
    "CacheInfo",
    "CacheStoreWarning",
    "FunctionSummary",
    "PruneReport",
    "StoreUnavailableError",
    "list_functions",
    "persistent_cache",
    "prune",
    "register_hasher",
]
