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

from .decorator import persistent_cache
from .encoder import register_hasher
from .lifecycle import CacheEntry, FunctionSummary, PruneReport, list_functions, prune
from .memoizer import CacheInfo, CacheStoreWarning
from .stores import StoreUnavailableError

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
