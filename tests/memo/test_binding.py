"""One test per binding kind: functions, nested functions, methods, classmethods, staticmethods,
``async def``; the inspection methods bind like the calls do."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from persidict_memo import persistent_cache


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "cache")


def test_nested_function_with_closure(store: str) -> None:
    runs: list[int] = []

    def make(offset: int) -> Any:
        @persistent_cache(store=store)
        def shifted(x: int) -> int:
            runs.append(x)
            return x + offset

        return shifted

    plus_one = make(1)
    assert plus_one(1) == 2
    assert plus_one(1) == 2
    assert runs == [1]
    assert "(locals)" in plus_one.cache_key(1)[2]


def make_class(store: str, runs: list[Any], **options: Any) -> Any:
    class Scaler:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        @persistent_cache(store=store, **options)
        def scale(self, x: int) -> int:
            """Scale x."""
            runs.append(("scale", self.factor, x))
            return self.factor * x

        @classmethod
        @persistent_cache(store=store)
        def outer_classmethod(cls, x: int) -> str:
            runs.append(("outer_cm", x))
            return f"{cls.__name__}:{x}"

        @persistent_cache(store=store)
        @classmethod
        def inner_classmethod(cls, x: int) -> str:
            runs.append(("inner_cm", x))
            return f"{cls.__name__}:{x}"

        @staticmethod
        @persistent_cache(store=store)
        def outer_static(x: int) -> int:
            runs.append(("outer_sm", x))
            return -x

        @persistent_cache(store=store)
        @staticmethod
        def inner_static(x: int) -> int:
            runs.append(("inner_sm", x))
            return -x

    return Scaler


def test_method_self_hashed_by_content(store: str) -> None:
    runs: list[Any] = []
    scaler = make_class(store, runs)
    a, same, other = scaler(2), scaler(2), scaler(3)
    assert a.scale(5) == 10
    assert same.scale(5) == 10
    assert scaler.scale(a, 5) == 10
    assert other.scale(5) == 15
    assert runs == [("scale", 2, 5), ("scale", 3, 5)]
    assert a.scale.__doc__ == "Scale x."
    assert str(inspect.signature(a.scale)) == "(x: 'int') -> 'int'"


def test_method_with_ignored_self(store: str) -> None:
    runs: list[Any] = []
    scaler = make_class(store, runs, ignore=("self",))
    assert scaler(2).scale(5) == 10
    assert scaler(3).scale(5) == 10  # self is not part of the key
    assert len(runs) == 1


def test_bound_inspection_methods(store: str) -> None:
    runs: list[Any] = []
    scaler = make_class(store, runs)
    a = scaler(2)
    assert a.scale.cache_key(5) == scaler.scale.cache_key(a, 5)
    assert a.scale.cache_key(5) == scaler(2).scale.cache_key(5)
    assert a.scale.cache_key(5) != scaler(3).scale.cache_key(5)
    assert not a.scale.is_cached(5)
    a.scale(5)
    assert a.scale.is_cached(5)
    assert a.scale.lookup(5) == 10
    assert a.scale.metadata(5)["arguments"].startswith("self=")
    assert a.scale.inject(99, 6) is True
    assert a.scale(6) == 99
    assert a.scale.forget(6) is True
    assert a.scale.uncached(7) == 14
    assert not a.scale.is_cached(7)
    assert a.scale.cache_info().misses == 1


@pytest.mark.parametrize("name", ["outer_classmethod", "inner_classmethod"])
def test_classmethods(store: str, name: str) -> None:
    runs: list[Any] = []
    scaler = make_class(store, runs)
    method = getattr(scaler, name)
    assert method(1) == "Scaler:1"
    assert getattr(scaler(4), name)(1) == "Scaler:1"
    assert len(runs) == 1
    assert method.cache_key(1) == getattr(scaler(4), name).cache_key(1)
    assert method.is_cached(1)


@pytest.mark.parametrize("name", ["outer_static", "inner_static"])
def test_staticmethods(store: str, name: str) -> None:
    runs: list[Any] = []
    scaler = make_class(store, runs)
    assert getattr(scaler, name)(1) == -1
    assert getattr(scaler(4), name)(1) == -1
    assert len(runs) == 1
    assert getattr(scaler, name).cache_key(1) == getattr(scaler(4), name).cache_key(1)
    assert getattr(scaler(4), name).lookup(1) == -1


def test_async_function(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store)
    async def fetch(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0)
        return x * 2

    assert inspect.iscoroutinefunction(fetch)

    async def main() -> list[int]:
        return [await fetch(1), await fetch(1), await fetch(x=1)]

    assert asyncio.run(main()) == [2, 2, 2]
    assert runs == [1]
    assert fetch.lookup(1) == 2
    assert fetch.cache_info().hits == 2


def test_async_exceptions_not_cached(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store)
    async def fail(x: int) -> int:
        runs.append(x)
        raise RuntimeError("boom")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            asyncio.run(fail(1))
    assert runs == [1, 1]
    assert not fail.is_cached(1)


def test_async_concurrent_callers_compute_once(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store)
    async def slow(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.3)
        return x

    async def main() -> list[int]:
        return list(await asyncio.gather(*(slow(7) for _ in range(4))))

    assert asyncio.run(main()) == [7, 7, 7, 7]
    assert runs == [7]
    assert slow.cache_info().waits == 3


# ------------------------------------------------- the wrapper looks like the function it wraps
def helper(x: int, *, scale: float = 2.0) -> float:
    """Scale x."""
    return x * scale


helper.tag = "kept"  # type: ignore[attr-defined]


def test_wrapper_shows_the_function(store: str) -> None:
    import types
    import typing

    cached = persistent_cache(store=store)(helper)
    assert cached.__wrapped__ is helper
    assert (cached.__name__, cached.__qualname__, cached.__module__, cached.__doc__) == (
        helper.__name__, helper.__qualname__, helper.__module__, "Scale x."
    )
    assert cached.tag == "kept"  # type: ignore[attr-defined]
    # (a module-level function: one that travels by value shows its own type, see engines.py)
    assert isinstance(cached, types.FunctionType) and inspect.isfunction(cached)
    assert cached.__code__ is helper.__code__ and cached.__defaults__ is helper.__defaults__
    assert inspect.signature(cached) == inspect.signature(helper)
    assert typing.get_type_hints(cached) == {"x": int, "scale": float, "return": float}
    assert not inspect.iscoroutinefunction(cached)
    assert cached(3) == 6.0


def test_methods_bind_like_methods(store: str) -> None:
    class Box:
        def __init__(self, n: int) -> None:
            self.n = n

        def __persidict_hash__(self) -> int:
            return self.n

        @persistent_cache(store=store)
        def times(self, x: int) -> int:
            """Multiply."""
            return self.n * x

    box = Box(3)
    bound = box.times
    assert bound == box.times and hash(bound) == hash(box.times)
    assert bound != Box(3).times  # another instance, as bound methods compare
    assert bound.__self__ is box and bound.__func__ is Box.__dict__["times"].__wrapped__
    assert bound.__doc__ == "Multiply." and bound.__name__ == "times"
    assert bound.__get__(Box(4)) is bound  # a bound method binds no further
    assert Box.times(box, 5) == box.times(5) == 15
    assert Box.times.cache_key(box, 5) == box.times.cache_key(5)
    assert Box.times.cache_info().misses == 1


def test_async_function_is_a_coroutine_function(store: str) -> None:
    async def fetch(x: int) -> int:
        return x

    cached = persistent_cache(store=store)(fetch)
    assert inspect.iscoroutinefunction(cached)
    assert asyncio.run(cached(4)) == 4
