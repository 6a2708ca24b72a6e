"""@persistent_cache: hits and misses, the inspection API, options, errors and code versions."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import pickle
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persidict import BackendError, FileDirDict, LocalDict, MutationPolicyError
from persidict_memo import CacheInfo, CacheStoreWarning, persistent_cache

_counter = itertools.count()


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "cache")


def counted(store: Any, **options: Any) -> tuple[Any, list[Any]]:
    """A cached ``add(x, y=2)`` and the list of its body runs."""
    runs: list[Any] = []

    @persistent_cache(store=store, **options)
    def add(x: Any, y: Any = 2) -> Any:
        """Add two things."""
        runs.append((x, y))
        return x + y

    return add, runs


def load_module(tmp_path: Path, source: str, name: str = "memo_versioned") -> Any:
    """Import ``source`` as module ``name`` (the same name: the same function, edited)."""
    path = tmp_path / f"{name}{next(_counter)}" / f"{name}.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- hits and misses


def test_hit_after_miss_and_equivalent_calls(store: str) -> None:
    add, runs = counted(store)
    assert add(1) == 3
    assert add(1) == 3
    assert add(x=1) == 3
    assert add(1, y=2) == 3
    assert add(1, 2) == 3
    assert runs == [(1, 2)]
    assert add(1, 3) == 4
    assert len(runs) == 2
    assert add.cache_info() == CacheInfo(hits=4, misses=2, waits=0, store_errors=0)


def test_results_persist_across_decorations(store: str) -> None:
    add, _runs = counted(store)
    add(5)
    again, runs_again = counted(store)
    assert again(5) == 7
    assert runs_again == []
    assert again.cache_info().hits == 1


def test_none_is_cached_and_exceptions_are_not(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store)
    def maybe(x: int) -> None:
        runs.append(x)
        if x < 0:
            raise ValueError("negative")
        return

    assert maybe(1) is None
    assert maybe(1) is None
    assert runs == [1]
    for _ in range(2):
        with pytest.raises(ValueError, match="negative"):
            maybe(-1)
    assert runs == [1, -1, -1]
    assert not maybe.is_cached(-1)


def test_numpy_argument_and_result(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store)
    def total(a: np.ndarray) -> np.ndarray:
        runs.append(1)
        return a * 2

    a = np.arange(10.0)
    np.testing.assert_array_equal(total(a), a * 2)
    np.testing.assert_array_equal(total(a.copy()), a * 2)
    b = a.copy()
    b[5] += 1
    total(b)
    assert len(runs) == 2


def test_unhashable_argument_names_the_parameter(store: str) -> None:
    add, runs = counted(store)
    with pytest.raises(TypeError, match="argument 'y'"):
        add(1, threading.Lock())
    assert runs == []


def test_ignore(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store, ignore=("verbose",))
    def f(x: int, verbose: bool = False) -> int:
        runs.append(x)
        return x

    f(1)
    f(1, verbose=True)
    assert runs == [1]
    with pytest.raises(ValueError, match="nope"):
        persistent_cache(store=store, ignore=("nope",))(lambda x: x)


# ---------------------------------------------------------------------------- the inspection API


def test_transparent_wrapper(store: str) -> None:
    add, _ = counted(store)
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two things."
    assert str(inspect.signature(add)) == "(x: 'Any', y: 'Any' = 2) -> 'Any'"
    assert inspect.isfunction(add.__wrapped__)
    assert add.uncached(1) == 3
    assert add.__wrapped__(1) == 3
    assert not add.is_cached(1)  # the plain function stores nothing


def test_cache_key_is_cached_lookup(store: str) -> None:
    add, runs = counted(store)
    key = add.cache_key(1)
    assert key == add.cache_key(x=1, y=2)
    assert key[0] == "v2"
    assert key[2].endswith("add")
    assert not add.is_cached(1)
    with pytest.raises(KeyError):
        add.lookup(1)
    add(1)
    assert add.is_cached(1)
    assert add.lookup(1) == 3
    assert runs == [(1, 2)]
    assert key in FileDirDict(base_dir=store)


def test_inject_and_forget(store: str) -> None:
    add, runs = counted(store)
    assert add.inject(100, 1) is True
    assert add(1) == 100
    assert add.inject(5, 1) is False
    assert add(1) == 100
    assert runs == []
    assert add.forget(1) is True
    assert add.forget(1) is False
    assert not add.is_cached(1)
    assert add(1) == 3
    assert runs == [(1, 2)]


def test_forget_is_seen_by_a_fresh_decoration(store: str) -> None:
    add, _ = counted(store)
    add(1)
    other, other_runs = counted(store)
    assert other.forget(1)
    assert not add.is_cached(1) or add.lookup(1) == 3  # this process may still remember it
    assert other(1) == 3
    assert other_runs == [(1, 2)]


def test_cache_clear_current_and_all_versions(store: str, tmp_path: Path) -> None:
    add, runs = counted(store)
    add(1)
    add(2)
    assert add.cache_clear() == 2
    assert not add.is_cached(1)
    add(1)
    assert len(runs) == 3

    source = """
    from persidict_memo import persistent_cache

    @persistent_cache(store={store!r})
    def f(x):
        return x + {delta}
    """
    old = load_module(tmp_path, source.format(store=store, delta=1))
    new = load_module(tmp_path, source.format(store=store, delta=2))
    assert old.f.cache_key(1)[2] == new.f.cache_key(1)[2] == "f"
    old.f(1)
    new.f(1)
    assert new.f.cache_clear() == 1
    assert old.f.is_cached(1)
    new.f(1)
    assert new.f.cache_clear(all_versions=True) == 2
    old_fresh = load_module(tmp_path, source.format(store=store, delta=1))
    assert not old_fresh.f.is_cached(1)


def test_metadata(store: str) -> None:
    add, _ = counted(store)
    with pytest.raises(KeyError):
        add.metadata(1)
    add(1)
    meta = add.metadata(1)
    assert meta["function"].endswith("add")
    assert meta["arguments"] == "x=1, y=2"
    assert meta["compute_seconds"] >= 0
    assert meta["result_size"] > 0
    assert meta["result_type"] == "builtins.int"
    assert meta["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "persidict" in meta["packages"]
    assert meta["key"] == "/".join(add.cache_key(1))
    assert {"created", "host", "pid"} <= set(meta)


def test_cache_store_is_append_only_view(store: str) -> None:
    add, _ = counted(store)
    add(1)
    assert add.cache_store.append_only
    assert add.cache_store[add.cache_key(1)] == 3


# ---------------------------------------------------------------------------- code versions


def test_code_edit_recomputes_and_old_results_stay(tmp_path: Path, store: str) -> None:
    source = """
    from persidict_memo import persistent_cache
    RUNS = []

    @persistent_cache(store={store!r})
    def f(x):
        {doc}
        RUNS.append(x)  {comment}
        return x * {factor}
    """
    v1 = load_module(tmp_path, source.format(store=store, doc="", comment="", factor=2))
    assert v1.f(3) == 6
    cosmetic = load_module(
        tmp_path, source.format(store=store, doc='"""Docs."""', comment="# note", factor=2)
    )
    assert cosmetic.f(3) == 6
    assert cosmetic.RUNS == []
    v2 = load_module(tmp_path, source.format(store=store, doc="", comment="", factor=3))
    assert v2.f(3) == 9
    assert v2.RUNS == [3]
    rolled_back = load_module(tmp_path, source.format(store=store, doc="", comment="", factor=2))
    assert rolled_back.f(3) == 6
    assert rolled_back.RUNS == []


def test_manual_version(store: str) -> None:
    runs: list[int] = []

    def make(version: str) -> Any:
        @persistent_cache(store=store, version=version, ignore=("runs",))
        def f(x: int) -> int:
            runs.append(x)
            return x

        return f

    make("1")(1)
    make("1")(1)
    assert runs == [1]
    make("2")(1)
    assert runs == [1, 1]
    assert make("1").cache_key(1)[3] == "ver~1"


# ---------------------------------------------------------------------------- store errors


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("no pickling today")


def test_unstorable_result_warns_and_leaves_nothing(store: str) -> None:
    runs: list[int] = []

    @persistent_cache(store=store)
    def make(x: int) -> Unpicklable:
        runs.append(x)
        return Unpicklable()

    with pytest.warns(CacheStoreWarning, match="no pickling today"):
        assert isinstance(make(1), Unpicklable)
    with pytest.warns(CacheStoreWarning):
        make(1)
    assert runs == [1, 1]  # loudly recomputed, never silently
    assert make.cache_info().store_errors == 2
    assert not make.is_cached(1)
    assert list(Path(store).rglob("*.pkl")) == []
    assert list(Path(store).rglob("*.meta")) == []  # the lease record was deleted too


def test_unstorable_result_raises_on_request(store: str) -> None:
    @persistent_cache(store=store, on_store_error="raise")
    def make(x: int) -> Unpicklable:
        return Unpicklable()

    with pytest.raises(TypeError, match="no pickling today"):
        make(1)
    assert not make.is_cached(1)


def test_read_errors_are_reported_and_recomputed(store: str) -> None:
    add, _runs = counted(store)
    add(1)
    path = next(Path(store).rglob("*.pkl"))
    path.write_bytes(b"garbage")
    fresh, fresh_runs = counted(store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fresh(1) == 3
    assert any(issubclass(w.category, CacheStoreWarning) for w in caught)
    assert fresh_runs == [(1, 2)]


# ---------------------------------------------------------------------------- determinism


def test_check_determinism_catches_a_nondeterministic_function(store: str) -> None:
    counter = itertools.count()

    @persistent_cache(store=store, check_determinism=1.0)
    def noisy(x: int) -> int:
        return x + next(counter)

    assert noisy(1) == 1
    with pytest.raises(MutationPolicyError, match="not deterministic"):
        noisy(1)


def test_check_determinism_passes_a_deterministic_function(store: str) -> None:
    add, runs = counted(store, check_determinism=1.0)
    assert add(1) == 3
    assert add(1) == 3
    assert len(runs) == 2  # the hit was recomputed and compared
    assert add.cache_info().hits == 1


# ---------------------------------------------------------------------------- stores and options


def test_default_store_honours_persidict_memo_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSIDICT_MEMO_DIR", str(tmp_path / "env_cache"))

    @persistent_cache
    def f(x: int) -> int:
        return x

    f(1)
    assert list((tmp_path / "env_cache").rglob("*.pkl"))


def test_default_store_under_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERSIDICT_MEMO_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    @persistent_cache()
    def f(x: int) -> int:
        return x

    f(1)
    assert list((tmp_path / "xdg" / "persidict_memo").rglob("*.pkl"))


def test_pathlike_and_persidict_stores(tmp_path: Path) -> None:
    add, _ = counted(tmp_path / "as_path")
    add(1)
    assert list((tmp_path / "as_path").rglob("*.pkl"))
    memory = LocalDict()
    add_mem, runs = counted(memory)
    add_mem(1)
    add_mem(1)
    assert runs == [(1, 2)]
    assert add_mem.cache_key(1) in memory


def test_a_wrapper_store_is_used_as_it_is(tmp_path: Path) -> None:
    from persidict import AppendOnlyDictCached

    main = FileDirDict(base_dir=tmp_path / "main", append_only=True)
    cached = AppendOnlyDictCached(main_dict=main, data_cache=LocalDict(append_only=True))
    add, runs = counted(cached)
    assert add(1) == 3
    assert add(1) == 3
    assert runs == [(1, 2)]
    assert add.metadata(1)["arguments"] == "x=1, y=2"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"store": 3}, TypeError),
        ({"lease": "yes"}, TypeError),
        ({"lease_timeout": 0}, ValueError),
        ({"lease_timeout": "1"}, TypeError),
        ({"check_determinism": 2}, ValueError),
        ({"on_store_error": "ignore"}, ValueError),
        ({"version": 3}, TypeError),
    ],
)
def test_bad_options(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        persistent_cache(**options)(lambda x: x)


def test_generators_and_classes_are_refused() -> None:
    def gen(x: int) -> Any:
        yield x

    async def agen(x: int) -> Any:
        yield x

    with pytest.raises(TypeError, match="generator"):
        persistent_cache(gen)
    with pytest.raises(TypeError, match="generator"):
        persistent_cache(agen)
    with pytest.raises(TypeError, match="not type"):
        persistent_cache(Unpicklable)


def test_module_level_function_pickles_by_reference() -> None:
    import memo_workers

    assert pickle.loads(pickle.dumps(memo_workers.square)) is memo_workers.square


def test_a_call_needing_its_own_result_does_not_wait_for_its_own_lease(store: str) -> None:
    calls: list[int] = []

    @persistent_cache(store=store, lease_timeout=60)
    def selfish(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            return selfish(x) + 1  # the inner call computes and publishes x
        return x

    start = time.monotonic()
    assert selfish(1) == 1  # the outer result loses the publishing race: the first stands
    assert time.monotonic() - start < 5
    assert selfish.lookup(1) == 1


def test_metadata_describes_arrays_briefly(store: str) -> None:
    @persistent_cache(store=store)
    def total(a: np.ndarray, label: str) -> float:
        return float(a.sum())

    total(np.zeros((1000, 3)), "x" * 500)
    arguments = total.metadata(np.zeros((1000, 3)), "x" * 500)["arguments"]
    assert arguments.startswith("a=<ndarray shape=(1000, 3) dtype=float64>, label='xxx")
    assert len(arguments) < 120


class FailingWrites(LocalDict[Any]):
    """A store that reads fine but cannot write anything (a full disk, a lost permission)."""

    def setdefault_if(self, key: Any, **kwargs: Any) -> Any:
        raise BackendError("the store is read-only today", backend="memory", operation="write")


def test_a_failing_store_never_fails_the_call() -> None:
    runs: list[int] = []

    @persistent_cache(store=FailingWrites())
    def f(x: int) -> int:
        runs.append(x)
        return x * 2

    with pytest.warns(CacheStoreWarning, match="read-only today"):
        assert f(1) == 2
    assert runs == [1]
    assert f.cache_info().store_errors == 2  # the lease, then the result


def test_a_failing_store_raises_on_request() -> None:
    @persistent_cache(store=FailingWrites(), on_store_error="raise")
    def f(x: int) -> int:
        return x * 2

    with pytest.raises(BackendError, match="read-only today"):
        f(1)
