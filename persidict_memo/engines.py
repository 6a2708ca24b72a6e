"""Sending cached functions to other processes: loky (joblib), dask.distributed, ray, spawn pools.

A cached function defined in an importable module pickles by reference, like the plain function
would: the receiving process imports the module and finds the very wrapper there. A function that
cannot be found by name in another process (defined in a script's ``__main__``, in a notebook, or
inside another function) travels *by value* instead, as a :class:`CachedSpec`:

* the function itself (serialised with cloudpickle, which copies its code, defaults, closure and
  the globals it uses);
* the decorator's options;
* a description of the store (a directory, an ``s3://`` URL, or a PersiDict's class and
  constructor parameters, never a live client, lock or thread);
* the key prefix computed in the sending process, so that the receiver files results under
  exactly the same keys (its ``__main__`` is a different module: the worker's, not the script).

The receiver rebuilds one cached function per process and per original (an id drawn at
decoration time), so every task of a job shares one in-memory tier and one set of statistics,
and results computed by workers are hits in the parent and the other way round.

The spec is serialised to bytes with cloudpickle (joblib's vendored copy, always installed) once
per wrapper, so the wrapper pickles with any pickler: cloudpickle in loky, dask and ray, the
standard library's in ``multiprocessing``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from persidict import PersiDict

__all__ = ["CachedSpec", "by_value", "describe_store", "rebuild", "store_from_description"]

# Store parameters that travel: plain data. Live connections (a boto3 client or session) stay
# behind and the receiver makes its own; any other parameter that cannot travel (the memory of
# a LocalDict, a signing key, a wrapped store) makes the store unusable in another process.
_PLAIN: Final = (str, int, float, bool, type(None), type)
_RECONNECTED: Final = frozenset({"client", "session"})
_MAIN_MODULES: Final = ("__main__", "__mp_main__")

_registry_lock = threading.Lock()
_rebuilt: dict[str, Any] = {}  # origin id -> the cached function standing for it here
_pickling = threading.local()  # origin ids whose spec is being serialised (self-reference)


@dataclass(frozen=True)
class CachedSpec:
    """Everything a process needs to rebuild a cached function sent by value.

    Attributes:
        origin: an id drawn when the function was decorated; one rebuild per id and process.
        target: what was decorated (a function, classmethod or staticmethod).
        options: the decorator's keyword options except ``store``.
        store: the store description (see :func:`describe_store`).
        prefix: the key prefix computed where the function was decorated.
    """

    origin: str
    target: Any
    options: Mapping[str, Any]
    store: Any
    prefix: tuple[str, ...]


def by_value(func: Callable[..., Any]) -> bool:
    """Whether ``func`` cannot be found by name in another process (so it travels by value)."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    return module in _MAIN_MODULES or module is None or "<locals>" in qualname


def describe_store(store: object) -> object:
    """A picklable description of a ``store=`` argument, free of live clients and locks.

    ``None`` becomes the default directory of the sending process, a directory its absolute
    path; an ``s3://`` URL stays as it is (the receiver keeps its own local copy); a PersiDict
    becomes its class and its constructor parameters, without its client or session (the
    receiver connects on its own). A PersiDict that cannot be rebuilt from plain parameters (a
    LocalDict, whose items live in this process's memory; a store with a signing key, which is
    never pickled) becomes a description that :func:`store_from_description` refuses with an
    explanation, so the function fails loudly in the other process instead of running on an
    empty or unsigned store.
    """
    from .stores import default_cache_dir, expand_directory

    if store is None:
        return expand_directory(default_cache_dir())
    if isinstance(store, PersiDict):
        params = {k: v for k, v in store.get_params().items() if k not in _RECONNECTED}
        stuck = sorted(k for k, v in params.items() if not isinstance(v, _PLAIN))
        if stuck:
            return ("unsendable", type(store).__name__, _why_unsendable(store, stuck))
        return ("persidict", type(store), params)
    if isinstance(store, str) and store.startswith("s3://"):
        return store
    if isinstance(store, str | os.PathLike):
        return expand_directory(store)
    return store


def _why_unsendable(store: PersiDict[Any], stuck: list[str]) -> str:
    kind = type(store).__name__
    if "signing_key" in stuck:
        why = (f"its {kind} store's signing key is never pickled, so another process cannot "
               "open it signed. Give persistent_cache the directory or s3:// URL and "
               "signing_key= (or set PERSIDICT_SIGNING_KEY in the workers) instead of a "
               "signed store object")
    elif kind == "LocalDict":
        why = ("its LocalDict store keeps its items in the memory of the process that made "
               "it: another process would start from an empty store and share no result. Use "
               "a directory or an s3:// URL as store= for functions that run in other processes")
    else:
        why = (f"its {kind} store cannot be rebuilt from plain parameters (not: "
               f"{', '.join(stuck)}). Use a directory, an s3:// URL or a store of plain "
               "parameters as store= for functions that run in other processes")
    return why


def store_from_description(description: object) -> object:
    """The ``store=`` argument a description stands for (a new PersiDict for a PersiDict).

    Raises:
        ValueError: for a store that cannot be used in another process (see
            :func:`describe_store`), with the reason and what to use instead.
    """
    if isinstance(description, tuple) and description:
        if description[0] == "persidict":
            _, kind, params = description
            return kind(**params)
        if description[0] == "unsendable":
            raise ValueError(f"persidict_memo: a cached function sent to another process "
                             f"cannot use its store here: {description[2]}.")
    return description


def _cloudpickle() -> Any:
    """cloudpickle: a dependency of joblib >= 1.5, vendored inside older joblib releases."""
    try:
        return importlib.import_module("cloudpickle")
    except ImportError:  # pragma: no cover - an older joblib with its vendored copy
        return importlib.import_module("joblib.externals.cloudpickle")


def serialise(spec: CachedSpec) -> bytes:
    """The spec as bytes (cloudpickle), loadable by :func:`rebuild` with plain ``pickle``."""
    active: set[str] = getattr(_pickling, "active", set())
    _pickling.active = active | {spec.origin}
    try:
        data: bytes = _cloudpickle().dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        return data
    finally:
        _pickling.active = active


def is_being_serialised(origin: str) -> bool:
    """True while the spec of ``origin`` is being serialised (the function refers to itself)."""
    return origin in getattr(_pickling, "active", ())


def remember(origin: str, cached: Any) -> None:
    """Record the cached function standing for ``origin`` in this process."""
    with _registry_lock:
        _rebuilt.setdefault(origin, cached)


class _SelfReference:
    """Stands for a by-value function's own wrapper inside its globals while they travel."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _rebuilt[self.origin](*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return _SelfReference, (self.origin,)


def self_reference(origin: str) -> tuple[Any, ...]:
    """The reduction of a wrapper met again while its own spec is being serialised."""
    return _SelfReference, (origin,)


def rebuild(data: bytes) -> Any:
    """The cached function a serialised :class:`CachedSpec` stands for, one per process."""
    spec: CachedSpec = pickle.loads(data)  # bytes made by a process of the same job
    with _registry_lock:
        found = _rebuilt.get(spec.origin)
    if found is not None:
        return found
    from .decorator import make_cached

    store = store_from_description(spec.store)
    cached = make_cached(spec.target, store, dict(spec.options), origin=spec.origin)
    cached._self_memo.keys.prefix = spec.prefix  # type: ignore[assignment]  # the sender's
    _point_self_references_at(spec.target, cached)
    with _registry_lock:
        return _rebuilt.setdefault(spec.origin, cached)


def _point_self_references_at(target: Any, cached: Any) -> None:
    func = getattr(target, "__func__", target)
    namespace = getattr(func, "__globals__", None)
    if not isinstance(namespace, dict):
        return
    for name, value in list(namespace.items()):
        if isinstance(value, _SelfReference) and value.origin == cached._self_origin:
            namespace[name] = cached


def function_of(target: Any) -> types.FunctionType | None:
    """The plain function behind a decorated target, if there is one."""
    func = getattr(target, "__func__", target)
    return func if isinstance(func, types.FunctionType) else None
