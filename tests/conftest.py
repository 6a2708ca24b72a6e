"""The backend matrix: every store kind the contract suite runs against, listed once.

A contract test asks for ``make_store`` and calls ``make_store(**params)`` with the common
PersiDict parameters (``append_only``, ``serialization_format``, ``base_class_for_values``). Each
kind builds a fresh, empty store in its own temporary location.

Only the combinations a kind can be are generated (WriteOnceDict is always append-only, a
MutableDictCached never is): a test that takes an ``append_only`` argument runs once per kind and
mode that kind supports; any other test runs on the kinds that support the modes it uses, read
from the helpers it calls (``append_only_store`` / ``mutable_store``; a bare ``make_store()``
is mutable). A test marked ``atomic_kinds`` runs only on the kinds whose conditional writes are
one atomic decision.

Adding a backend = adding one ``StoreKind`` to ``KINDS``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

from persidict import LocalDict, PersiDict

_counter = itertools.count()


@dataclass(frozen=True)
class StoreKind:
    """One entry of the matrix: how to build a store, and what it can be."""

    name: str
    build: Callable[..., PersiDict[Any]]  # build(ctx, append_only, serialization_format, bcv)
    modes: frozenset[str] = frozenset({"mutable", "append_only"})
    needs: tuple[str, ...] = ()  # fixtures the builder needs, e.g. ("s3_mock",)
    marks: tuple[Any, ...] = field(default=())
    persistent: bool = True  # values go through serialisation (json turns tuples into lists...)
    atomic: bool = True  # conditional writes are one atomic decision


def _file(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import FileDirDict

    return FileDirDict(base_dir=ctx["tmp"] / f"fd{next(_counter)}", **p)


def _local(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    return LocalDict(**p)


def _write_once(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import FileDirDict, WriteOnceDict

    inner = FileDirDict(base_dir=ctx["tmp"] / f"wo{next(_counter)}", **p)
    return WriteOnceDict(wrapped_dict=inner, p_consistency_checks=0.5)


def _append_cached(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import AppendOnlyDictCached, FileDirDict

    main = FileDirDict(base_dir=ctx["tmp"] / f"ac{next(_counter)}", **p)
    return AppendOnlyDictCached(main_dict=main, data_cache=LocalDict(**p))


def _mutable_cached(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import FileDirDict, MutableDictCached

    main = FileDirDict(base_dir=ctx["tmp"] / f"mc{next(_counter)}", **p)
    etag_params = {**p, "serialization_format": "txt", "base_class_for_values": str}
    return MutableDictCached(main_dict=main, data_cache=LocalDict(**p),
                             etag_cache=LocalDict(**etag_params))


def _mutable_cached_local(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import MutableDictCached

    etag_params = {**p, "serialization_format": "txt", "base_class_for_values": str}
    return MutableDictCached(main_dict=LocalDict(**p), data_cache=LocalDict(**p),
                             etag_cache=LocalDict(**etag_params))


def _user_0309(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from tests.core.user_store_0309 import RamDict  # a PersiDict subclass written for 0.309

    return RamDict(**p)


def _user_0309_append_cached(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import AppendOnlyDictCached

    return AppendOnlyDictCached(main_dict=_user_0309(ctx, **p), data_cache=LocalDict(**p))


def _user_0309_write_once(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import WriteOnceDict

    return WriteOnceDict(wrapped_dict=_user_0309(ctx, **p), p_consistency_checks=0.5)


def _user_0309_mutable_cached(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    from persidict import MutableDictCached

    etag_params = {**p, "serialization_format": "txt", "base_class_for_values": str}
    return MutableDictCached(main_dict=_user_0309(ctx, **p), data_cache=LocalDict(**p),
                             etag_cache=LocalDict(**etag_params))


def _basic_s3(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    return ctx["s3"].basic_store(root_prefix=f"t{next(_counter)}", **p)


def _s3_dict(ctx: dict[str, Any], **p: Any) -> PersiDict[Any]:
    n = next(_counter)
    return ctx["s3"].cached_store(root_prefix=f"t{n}", base_dir=ctx["tmp"] / f"s3c{n}", **p)


KINDS: list[StoreKind] = [
    StoreKind("local", _local, persistent=False),
    StoreKind("file", _file, atomic=False),
    StoreKind("write_once", _write_once, modes=frozenset({"append_only"}), atomic=False),
    StoreKind("append_cached", _append_cached, modes=frozenset({"append_only"}), atomic=False),
    StoreKind("mutable_cached", _mutable_cached, modes=frozenset({"mutable"}), atomic=False),
    StoreKind("mutable_cached_mem", _mutable_cached_local, modes=frozenset({"mutable"}),
              persistent=False),
    StoreKind("user_0309", _user_0309, persistent=False, atomic=False),
    StoreKind("user_0309_append_cached", _user_0309_append_cached,
              modes=frozenset({"append_only"}), persistent=False, atomic=False),
    StoreKind("user_0309_write_once", _user_0309_write_once, modes=frozenset({"append_only"}),
              persistent=False, atomic=False),
    StoreKind("user_0309_mutable_cached", _user_0309_mutable_cached,
              modes=frozenset({"mutable"}), persistent=False, atomic=False),
    StoreKind("basic_s3_mock", _basic_s3, needs=("s3_mock",), marks=(pytest.mark.s3,)),
    StoreKind("basic_s3_http", _basic_s3, needs=("s3_http",), marks=(pytest.mark.s3,)),
    StoreKind("s3dict_mock", _s3_dict, needs=("s3_mock",), marks=(pytest.mark.s3,)),
    StoreKind("s3dict_http", _s3_dict, needs=("s3_http",), marks=(pytest.mark.s3,)),
]


class StoreFactory:
    """What ``make_store`` hands a test: call it to get a fresh, empty store of one kind."""

    def __init__(self, kind: StoreKind, ctx: dict[str, Any]) -> None:
        self.kind = kind
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.kind.name

    def __call__(self, *, append_only: bool = False, serialization_format: str = "pkl",
                 base_class_for_values: type | None = None) -> PersiDict[Any]:
        mode = "append_only" if append_only else "mutable"
        if mode not in self.kind.modes:  # not generated (see pytest_generate_tests), unless a
            pytest.skip(f"{self.kind.name} stores cannot be {mode}")  # test hides its mode
        return self.kind.build(self.ctx, append_only=append_only,
                               serialization_format=serialization_format,
                               base_class_for_values=base_class_for_values)


def _s3_available() -> bool:
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        return False
    return True


def _names_used(function: Callable[..., Any]) -> set[str]:
    """Global names a test refers to, through nested functions and the helpers of its module."""
    names: set[str] = set()
    todo, seen = [function.__code__], set()
    while todo:
        code = todo.pop()
        if code in seen:
            continue
        seen.add(code)
        names |= set(code.co_names)
        todo += [c for c in code.co_consts if isinstance(c, CodeType)]
        for name in code.co_names:
            helper = function.__globals__.get(name)
            if callable(helper) and getattr(helper, "__module__", None) == function.__module__ \
                    and hasattr(helper, "__code__"):
                todo.append(helper.__code__)
    return names


def _modes_used(function: Callable[..., Any]) -> frozenset[str]:
    names = _names_used(function)
    modes = {"append_only"} if "append_only_store" in names else set()
    if "mutable_store" in names or not modes:
        modes.add("mutable")
    return frozenset(modes)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``make_store`` over the valid (kind, mode) combinations only."""
    if "make_store" not in metafunc.fixturenames:
        return
    if "append_only" in metafunc.fixturenames:
        metafunc.parametrize(
            ["make_store", "append_only"],
            [pytest.param(k, mode == "append_only", id=f"{k.name}-{mode}", marks=k.marks)
             for k in KINDS for mode in ("mutable", "append_only") if mode in k.modes],
            indirect=["make_store"])
        return
    modes = _modes_used(metafunc.function)
    atomic_only = metafunc.definition.get_closest_marker("atomic_kinds") is not None
    metafunc.parametrize(
        "make_store",
        [pytest.param(k, id=k.name, marks=k.marks) for k in KINDS
         if modes <= k.modes and (k.atomic or not atomic_only)],
        indirect=True)


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of fresh stores of one backend kind (parametrised by pytest_generate_tests)."""
    kind: StoreKind = request.param
    ctx: dict[str, Any] = {"tmp": tmp_path}
    for need in kind.needs:
        if need.startswith("s3") and not _s3_available():
            pytest.skip("boto3/moto not installed")
        ctx["s3"] = request.getfixturevalue(need)
    return StoreFactory(kind, ctx)


with contextlib.suppress(ImportError):
    from tests.s3_support import *  # noqa: F403  (the s3_mock / s3_http fixtures)
from tests.ray_support import *  # noqa: E402, F403  (the ray_cluster fixture)
