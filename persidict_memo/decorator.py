"""``@persistent_cache``: a transparent, signature-preserving, persistent memoizer.

The decorated object is a :class:`CachedFunction` (a :class:`~persidict_memo.proxy.FunctionProxy`):
it looks like the function (name, docstring, signature, type hints, ``__wrapped__``,
``inspect.iscoroutinefunction``), binds like it (methods, classmethods, staticmethods), pickles
by reference like it, and adds the inspection methods. The cache logic lives in
:class:`~persidict_memo.memoizer.Memoizer`.
"""

from __future__ import annotations

import datetime
import inspect
import types
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, overload

from persidict import PersiDict

from . import engines, refresh
from .memoizer import DEFAULT_MEMORY_BYTES, CacheInfo, Memoizer, StoreErrorPolicy
from .proxy import FunctionProxy, copy_identity
from .stores import check_store
from .toolkit import CacheToolkit

__all__ = ["BoundCachedFunction", "CachedFunction", "persistent_cache"]

P = ParamSpec("P")
R = TypeVar("R")
P2 = ParamSpec("P2")
R2 = TypeVar("R2")
T = TypeVar("T")
DEFAULT_LEASE_TIMEOUT: Final = 60.0


def _plain_function(target: Any) -> Callable[..., Any]:
    """The function whose signature describes a call (``self``/``cls`` included)."""
    func = target
    if isinstance(func, classmethod | staticmethod):
        func = func.__func__
    if isinstance(func, types.MethodType):
        func = func.__func__
    if isinstance(func, type) or not callable(func):
        raise TypeError(
            f"persistent_cache decorates functions and methods, not {type(target).__name__}"
        )
    return func  # type: ignore[no-any-return]


class _CacheMethods(CacheToolkit[P, R]):
    """The inspection methods shared by the unbound and the bound wrappers.

    Each takes the arguments of a call, exactly as the decorated callable would.
    """

    _self_memo: Memoizer

    def _full_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        raise NotImplementedError

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> tuple[str, ...]:
        """The store key of a call, without computing anything."""
        return self._self_memo.keys.key(self._full_args(args), kwargs)

    def is_cached(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Whether the result of a call is stored."""
        return self._self_memo.is_cached(self.cache_key(*args, **kwargs))

    def lookup(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The cached result of a call; ``KeyError`` if there is none. Never computes."""
        result: R = self._self_memo.lookup(self.cache_key(*args, **kwargs))
        return result

    def inject(self, result: R, /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Store ``result`` as the result of a call; False if one was already stored."""
        full = self._full_args(args)
        memo = self._self_memo
        return memo.inject(memo.keys.key(full, kwargs), result, full, kwargs)

    def forget(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the stored result of one call; True if there was one."""
        return self._self_memo.forget(self.cache_key(*args, **kwargs))

    def metadata(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        """The metadata of a call's stored result (``KeyError`` if there is none)."""
        return self._self_memo.metadata(self.cache_key(*args, **kwargs))

    def cache_clear(self, all_versions: bool = False) -> int:
        """Drop the results of the current code version (all versions if asked); count them."""
        return self._self_memo.clear(all_versions)

    def cache_info(self) -> CacheInfo:
        """Hits, misses, waits and store errors of this function in this process."""
        return self._self_memo.info()

    @property
    def cache_store(self) -> PersiDict[Any]:
        """The store holding the results (an append-only view)."""
        return self._self_memo.results_store()


class BoundCachedFunction(_CacheMethods[P, R], FunctionProxy):
    """The wrapper of a cached method bound to an instance (or of a classmethod to its class)."""

    def __init__(self, parent: CachedFunction[Any, Any], bound: Any) -> None:
        copy_identity(self, bound)
        self._self_parent = parent
        self._self_memo = parent._self_memo
        self._self_wrapper = parent._self_wrapper
        # instance methods: the instance; classmethods: the class; staticmethods: None
        self._self_instance = getattr(bound, "__self__", None)

    @property  # a proxy: it shows the bound method's class
    def __class__(self) -> type:
        return self.__wrapped__.__class__  # type: ignore[no-any-return]

    @__class__.setter
    def __class__(self, value: type) -> None:
        raise TypeError("cannot change the class of a cached method")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self._self_wrapper(self.__wrapped__, self._self_instance, args, kwargs)
        return result

    def __get__(self, instance: Any, owner: type | None = None) -> BoundCachedFunction[P, R]:
        return self  # already bound, as a bound method binds no further

    def __eq__(self, other: object) -> bool:  # as bound methods compare: same function, self
        if isinstance(other, BoundCachedFunction):
            return bool(self.__wrapped__ == other.__wrapped__)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.__wrapped__)

    def _full_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        instance = self._self_instance
        return args if instance is None else (instance, *args)

    def uncached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the plain method, bypassing the cache."""
        result: R = self.__wrapped__(*args, **kwargs)
        return result

    def __reduce_ex__(self, protocol: Any) -> Any:
        instance = self._self_instance
        if instance is None:
            raise TypeError(f"cannot pickle the unbound cached method {self.__qualname__}")
        return getattr, (instance, self.__name__)


class CachedFunction(_CacheMethods[P, R], FunctionProxy):
    """What ``@persistent_cache`` returns: the function, cached, with inspection methods.

    It looks like the function (name, docstring, signature, type hints, ``__wrapped__``,
    ``inspect.iscoroutinefunction``) and binds like it: in a class body it becomes a method
    (a :class:`BoundCachedFunction` per instance), a classmethod or a staticmethod.
    """

    def __init__(
        self,
        wrapped: Any,
        memo: Memoizer,
        is_async: bool,
        *,
        store: object = None,
        options: dict[str, Any] | None = None,
        origin: str | None = None,
    ) -> None:
        copy_identity(self, wrapped)
        self._self_wrapper = _wrapper_for(memo, is_async)
        self._self_memo = memo
        self._self_store_arg = store
        self._self_options = dict(options or {})
        self._self_origin = origin or uuid.uuid4().hex
        self._self_by_value = engines.by_value(_plain_function(wrapped))
        self._self_spec: bytes | None = None
        instance = getattr(wrapped, "__self__", None)  # a bound method was decorated
        if isinstance(instance, types.ModuleType):  # a builtin function's __self__
            instance = None
        self._self_instance = instance
        self._self_binds = hasattr(type(wrapped), "__get__")
        self._self_plain = isinstance(wrapped, types.FunctionType)
        if is_async and hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
            inspect.markcoroutinefunction(self)

    @property  # a proxy: it shows the function's class (but see below)
    def __class__(self) -> type:
        # A wrapper that travels by value must not look like a plain function to cloudpickle
        # (it would copy the bare function and lose the cache): it then shows its own type.
        if self._self_by_value:
            return type(self)
        return self.__wrapped__.__class__  # type: ignore[no-any-return]

    @__class__.setter
    def __class__(self, value: type) -> None:
        raise TypeError("cannot change the class of a cached function")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self._self_wrapper(self.__wrapped__, self._self_instance, args, kwargs)
        return result

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> CachedFunction[P, R]: ...

    @overload
    def __get__(
        self: CachedFunction[Concatenate[T, P2], R2], instance: T, owner: type | None = None
    ) -> BoundCachedFunction[P2, R2]: ...

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if not self._self_binds or (instance is None and self._self_plain):
            return self  # a plain function looked up on its class: called with self explicitly
        return BoundCachedFunction(self, self.__wrapped__.__get__(instance, owner))

    def __set_name__(self, owner: type, name: str) -> None:
        set_name = getattr(self.__wrapped__, "__set_name__", None)
        if set_name is not None:
            set_name(owner, name)

    def _full_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        instance = self._self_instance
        return args if instance is None else (instance, *args)

    def uncached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the plain function, bypassing the cache."""
        result: R = self.__wrapped__(*args, **kwargs)
        return result

    def __reduce_ex__(self, protocol: Any) -> Any:
        if not self._self_by_value:
            # Pickled by reference, as the plain function would be: the name is looked up in
            # its module on unpickling (which finds this very wrapper again).
            return self.__qualname__
        origin = self._self_origin
        if engines.is_being_serialised(origin):  # the function's globals name itself
            return engines.self_reference(origin)
        engines.remember(origin, self)  # unpickled in this very process: this wrapper
        data = self._self_spec
        if data is None:
            spec = engines.CachedSpec(
                origin=origin,
                target=self.__wrapped__,
                options=self._self_options,
                store=engines.describe_store(self._self_store_arg),
                prefix=self._self_memo.keys.prefix,
            )
            data = self._self_spec = engines.serialise(spec)
        return engines.rebuild, (data,)


def _wrapper_for(memo: Memoizer, is_async: bool) -> Callable[..., Any]:
    """The wrapper function ``(wrapped, instance, args, kwargs)``: hands the call to the memoizer.

    ``wrapped`` is the callable to run on a miss (a bound method for methods); ``instance`` is
    what the key adds in front of ``args`` (``self``, ``cls``, or None).
    """
    expiry = refresh.expiry_of(memo)
    if expiry is not None:  # max_age: expired results are refreshed (see refresh.py)
        return expiry.async_wrapper if is_async else expiry.sync_wrapper

    def sync_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return memo.call(wrapped, args, kwargs, args if instance is None else (instance, *args))

    def async_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        full = args if instance is None else (instance, *args)
        return memo.call_async(wrapped, args, kwargs, full)

    return async_wrapper if is_async else sync_wrapper


def _max_age_seconds(max_age: float | datetime.timedelta | None) -> float | None:
    from .lifecycle import positive_seconds  # here: lifecycle is off the import path

    return positive_seconds(max_age, "max_age")


@overload
def persistent_cache(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def persistent_cache(func: classmethod[Any, Any, Any] | staticmethod[Any, Any], /) -> Any: ...


@overload
def persistent_cache(
    func: None = None,
    /,
    *,
    store: object = None,
    ignore: tuple[str, ...] | list[str] | str = (),
    version: str | None = None,
    lease: bool = True,
    lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    check_determinism: float = 0.0,
    on_store_error: StoreErrorPolicy = "warn",
    durable: bool = False,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    hashers: Mapping[type, Callable[[Any], Any]] | None = None,
    signing_key: bytes | str | None = None,
    max_age: float | datetime.timedelta | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def persistent_cache(
    func: Any = None,
    /,
    *,
    store: object = None,
    ignore: tuple[str, ...] | list[str] | str = (),
    version: str | None = None,
    lease: bool = True,
    lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    check_determinism: float = 0.0,
    on_store_error: StoreErrorPolicy = "warn",
    durable: bool = False,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    hashers: Mapping[type, Callable[[Any], Any]] | None = None,
    signing_key: bytes | str | None = None,
    max_age: float | datetime.timedelta | None = None,
) -> Any:
    """Cache a function's results persistently, content-addressed, shareable across processes.

    Usable bare (``@persistent_cache``) or with options (``@persistent_cache(store=...)``).

    Args:
        store: ``None`` (a FileDirDict under ``$PERSIDICT_MEMO_DIR``, else
            ``$XDG_CACHE_HOME/persidict_memo`` or ``~/.cache/persidict_memo``), a directory,
            an ``"s3://bucket/prefix"`` URL, or any PersiDict. Opened on first use.
        ignore: names of parameters left out of the key (``verbose``, ``n_jobs``...), or of
            closure variables whose values the results do not depend on.
        version: ``None`` to key results by the function's normalised source; a string to
            key them by this manual version instead.
        lease: compute each uncached call once across processes and machines; the other
            callers wait for its result.
        lease_timeout: seconds after which a lease holder that stopped refreshing its lease is
            presumed dead and its computation is taken over.
        check_determinism: probability (0..1) that a hit is recomputed and compared with the
            stored result; a mismatch raises :class:`persidict.MutationPolicyError`.
        on_store_error: ``"warn"`` (a :class:`CacheStoreWarning`) or ``"raise"`` when a store
            that worked fails (a result cannot be stored or read); either way nothing
            half-written is left behind. A store that cannot be opened at all raises
            :class:`StoreUnavailableError` at the first call, whatever this says.
        durable: fsync every result file before the call returns (default False: a result
            lost or damaged by a power cut is read as a miss, recomputed and replaced).
        memory_bytes: the budget, in pickled bytes, of this function's in-process memory of
            results (default 64 MiB; 0 turns it off); a result bigger than an eighth of it is
            not kept in memory (its next hit reads the store).
        hashers: ``{class: function}``: arguments that are instances of ``class`` (or of a
            subclass) are keyed by ``function(argument)``, for this function only (see
            :func:`persidict_memo.register_hasher`, which applies to all).
        signing_key: sign the results in the store this opens (a directory, an ``s3://``
            URL or the default) and refuse unsigned or tampered ones (see
            :doc:`/reliability`); ``None`` takes ``$PERSIDICT_SIGNING_KEY`` if set. For a
            PersiDict ``store``, give the key to that store instead.
        max_age: seconds (or a timedelta) after which a stored result is a miss: it is
            recomputed and replaces the old one atomically, once across processes (leases
            apply). None: results never expire.

    Raises:
        TypeError: for generator functions, classes and other non-functions, and bad options.
        ValueError: for ``ignore`` names the function does not have, out-of-range options and
            a ``store`` URL of an unknown scheme or malformed (``"gs://..."``, ``"s3:/x"``).
    """
    _check_options(lease, lease_timeout, check_determinism, on_store_error, durable, memory_bytes)
    check_store(store)
    if signing_key is not None and isinstance(store, PersiDict):
        raise ValueError("signing_key is for the stores persistent_cache opens; give it to the "
                         "PersiDict passed as store= instead")
    # Every option goes here: engines rebuild the decorator from this dict in other processes.
    options: dict[str, Any] = {
        "ignore": (ignore,) if isinstance(ignore, str) else tuple(ignore),
        "version": version,
        "lease": lease,
        "lease_timeout": lease_timeout,
        "check_determinism": check_determinism,
        "on_store_error": on_store_error,
        "durable": durable,
        "memory_bytes": memory_bytes,
        "hashers": hashers,
        "signing_key": signing_key,
        "max_age": _max_age_seconds(max_age),
    }

    def decorate(target: Any) -> Any:
        return make_cached(target, store, options)

    return decorate if func is None else decorate(func)


def make_cached(
    target: Any, store: object, options: dict[str, Any], origin: str | None = None
) -> CachedFunction[Any, Any]:
    """The cached function of ``target`` (options already checked); ``origin`` when rebuilt."""
    plain = _plain_function(target)
    if inspect.isgeneratorfunction(plain) or inspect.isasyncgenfunction(plain):
        raise TypeError(
            f"persistent_cache cannot cache the generator function {plain.__qualname__}: "
            "its result is consumed lazily and cannot be stored. Return a list instead."
        )
    max_age = options.get("max_age")
    memo = Memoizer(plain, store=store, **{k: v for k, v in options.items() if k != "max_age"})
    if max_age is not None:
        refresh.expire(memo, max_age)
    is_async = inspect.iscoroutinefunction(plain)
    return CachedFunction(target, memo, is_async, store=store, options=options, origin=origin)


def _check_options(
    lease: object,
    lease_timeout: object,
    check_determinism: object,
    on_store_error: object,
    durable: object,
    memory_bytes: object,
) -> None:
    if not isinstance(lease, bool):
        raise TypeError(f"lease must be a bool, got {type(lease).__name__}")
    if isinstance(lease_timeout, bool) or not isinstance(lease_timeout, int | float):
        raise TypeError(f"lease_timeout must be a number, got {type(lease_timeout).__name__}")
    if not lease_timeout > 0:
        raise ValueError(f"lease_timeout must be positive, got {lease_timeout}")
    if isinstance(check_determinism, bool) or not isinstance(check_determinism, int | float):
        raise TypeError(
            f"check_determinism must be a number, got {type(check_determinism).__name__}"
        )
    if not 0 <= check_determinism <= 1:
        raise ValueError(f"check_determinism must be in [0, 1], got {check_determinism}")
    if on_store_error not in ("warn", "raise"):
        raise ValueError(f"on_store_error must be 'warn' or 'raise', got {on_store_error!r}")
    if not isinstance(durable, bool):
        raise TypeError(f"durable must be a bool, got {type(durable).__name__}")
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int):
        raise TypeError(f"memory_bytes must be an int, got {type(memory_bytes).__name__}")
    if memory_bytes < 0:
        raise ValueError(f"memory_bytes must be >= 0, got {memory_bytes}")
