"""Issue 9, wrong hits: what the key must cover (closures, helpers, constants, dtypes, __main__).

Each test here failed on the code before the fix: the key ignored closure values, helpers and
constants, normalised byte order away, and named script types ``__mp_main__`` in spawn workers.
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persidict import LocalDict
from persidict_memo import persistent_cache
from persidict_memo.call_keys import code_fingerprint

_packages = itertools.count()
RUNS: list[Any] = []  # body runs; a mutable global, which the key does not track


def load_package(tmp_path: Path, files: dict[str, str], module: str = "main") -> Any:
    """Write ``files`` as package ``memo_cover_pkg`` in a fresh folder and import a module of it.

    Each call is the same package, edited: the previous version is dropped from sys.modules.
    """
    name = "memo_cover_pkg"
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    root = tmp_path / f"src{next(_packages)}"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    for filename, source in files.items():
        (root / name / f"{filename}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(f"{name}.{module}")
    finally:
        sys.path.remove(str(root))


def fingerprint_of(tmp_path: Path, files: dict[str, str], func: str = "f") -> str:
    return code_fingerprint(getattr(load_package(tmp_path, files), func))


# ------------------------------------------------------------------------------- closures


def test_closure_values_are_part_of_the_key() -> None:
    store = LocalDict()
    RUNS.clear()

    def make(k: int) -> Any:
        @persistent_cache(store=store)
        def scale(x: int) -> int:
            RUNS.append((k, x))
            return x * k

        return scale

    assert make(2)(10) == 20
    assert make(3)(10) == 30  # a hit before the fix: 20
    assert make(2)(10) == 20
    assert RUNS == [(2, 10), (3, 10)]
    assert make(2).cache_key(10) != make(3).cache_key(10)
    assert make(2).cache_key(10) == make(2).cache_key(10)


def test_closure_holding_a_nested_helper_keys_on_its_closure() -> None:
    def make(k: int) -> Any:
        def offset(x: int) -> int:
            return x + k

        @persistent_cache(store=LocalDict())
        def f(x: int) -> int:
            return offset(x)

        return f

    assert make(1).cache_key(5) == make(1).cache_key(5)
    assert make(1).cache_key(5) != make(2).cache_key(5)


def test_closure_values_count_with_a_manual_version() -> None:
    def make(k: int) -> Any:
        @persistent_cache(store=LocalDict(), version="1")
        def f(x: int) -> int:
            return x * k

        return f

    assert make(1).cache_key(5)[3].startswith("ver~1~")
    assert make(1).cache_key(5) != make(2).cache_key(5)


def test_unhashable_closure_value_raises_at_first_call_naming_it() -> None:
    lock = threading.Lock()
    runs: list[int] = []

    @persistent_cache(store=LocalDict())
    def f(x: int) -> int:
        with lock:
            runs.append(x)
        return x

    with pytest.raises(TypeError, match=r"closure variable 'lock'.*ignore=\('lock',\)"):
        f(1)
    assert runs == []

    @persistent_cache(store=LocalDict(), ignore=("lock", "runs"))
    def g(x: int) -> int:
        with lock:
            runs.append(x)
        return x

    assert g(1) == 1
    assert g(1) == 1
    assert runs == [1]


def test_ignore_names_must_be_parameters_or_closure_variables() -> None:
    k = 3

    with pytest.raises(ValueError, match="neither parameters nor closure variables"):

        @persistent_cache(store=LocalDict(), ignore=("nope",))
        def f(x: int) -> int:
            return x * k


def test_recursive_nested_cached_function() -> None:
    def make(k: int) -> Any:
        @persistent_cache(store=LocalDict())
        def fib(n: int) -> int:
            return n * k if n < 2 else fib(n - 1) + fib(n - 2)

        return fib

    assert make(1)(10) == 55
    assert make(2)(10) == 110


def test_concurrent_first_calls_agree_on_the_closure_snapshot() -> None:
    factor = [2]

    @persistent_cache(store=LocalDict())
    def f(x: int) -> int:
        factor.append(x)  # the closure changes as calls run
        return x * factor[0]

    keys = []
    threads = [threading.Thread(target=lambda: keys.append(f.cache_key(1))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1


# -------------------------------------------------------------------- helpers, constants

_MAIN = """
from . import tools
from .tools import helper, SCALE, Mode

LIMIT = {limit}
TABLE = [1, 2, 3]  # mutable: not tracked

def f(x):
    return helper(x) * SCALE + LIMIT + tools.other(x) + len(TABLE) + Mode.FAST.value

def unused_caller(x):
    return x
"""

_TOOLS = """
import enum

SCALE = {scale}

class Mode(enum.Enum):
    FAST = {fast}
    SLOW = 2

def helper(x):
    return inner(x) + {helper}

def inner(x):
    return x * {inner}

def other(x):
    return x - 1

def unused(x):
    return x * {unused}
"""


def _files(**changes: Any) -> dict[str, str]:
    values = {"limit": 10, "scale": 3, "fast": 1, "helper": 1, "inner": 2, "unused": 5}
    values.update(changes)
    return {"main": _MAIN.format(**values), "tools": _TOOLS.format(**values)}


def test_helpers_and_constants_of_the_package_count(tmp_path: Path) -> None:
    base = fingerprint_of(tmp_path, _files())
    assert fingerprint_of(tmp_path, _files()) == base
    for change in ({"helper": 7}, {"inner": 3}, {"scale": 4}, {"limit": 11}, {"fast": 9}):
        assert fingerprint_of(tmp_path, _files(**change)) != base, change


def test_editing_an_unused_helper_does_not_invalidate(tmp_path: Path) -> None:
    base = fingerprint_of(tmp_path, _files())
    assert fingerprint_of(tmp_path, _files(unused=6)) == base
    main_edited = _files()
    main_edited["main"] = main_edited["main"].replace("return x\n", "return x + 1\n")
    assert fingerprint_of(tmp_path, main_edited) == base


def test_mutable_globals_and_other_packages_are_not_tracked(tmp_path: Path) -> None:
    files = _files()
    module = load_package(tmp_path, files)
    before = code_fingerprint(module.f)
    module.TABLE.append(4)
    assert code_fingerprint(module.f) == before
    uses_numpy = {"main": "import numpy as np\nRATE = 0.5\ndef f(x):\n    return np.sqrt(x)\n"}
    assert fingerprint_of(tmp_path, uses_numpy).startswith("src~")


def test_classes_referenced_by_name_count_with_their_methods_helpers(tmp_path: Path) -> None:
    source = """
    def tweak(v):
        return v + {tweak}

    class Model:
        def predict(self, x):
            return tweak(x) * {factor}

    def f(x):
        return Model().predict(x)
    """
    base = fingerprint_of(tmp_path, {"main": source.format(tweak=1, factor=2)})
    assert fingerprint_of(tmp_path, {"main": source.format(tweak=1, factor=3)}) != base
    assert fingerprint_of(tmp_path, {"main": source.format(tweak=2, factor=2)}) != base
    assert fingerprint_of(tmp_path, {"main": source.format(tweak=1, factor=2)}) == base


def test_mutual_recursion_terminates(tmp_path: Path) -> None:
    source = """
    def even(n):
        return n == 0 or odd(n - 1)

    def odd(n):
        return n != 0 and even(n - 1)

    def f(n):
        return even(n)
    """
    assert fingerprint_of(tmp_path, {"main": source}).startswith("src~")


def test_a_helper_edit_recomputes_through_the_decorator(tmp_path: Path) -> None:
    store = str(tmp_path / "cache")
    source = """
    from persidict_memo import persistent_cache

    def helper(x):
        return x * {k}

    @persistent_cache(store={store!r})
    def f(x):
        return helper(x)
    """
    assert load_package(tmp_path, {"main": source.format(k=2, store=store)}).f(5) == 10
    assert load_package(tmp_path, {"main": source.format(k=3, store=store)}).f(5) == 15


# ----------------------------------------------------------------------------- dtypes


def test_byte_order_is_a_different_call() -> None:
    RUNS.clear()

    @persistent_cache(store=LocalDict())
    def raw_bytes(a: Any) -> bytes:
        RUNS.append(a.dtype.str)
        return bytes(a.tobytes())

    a = np.arange(4, dtype="<i4")
    assert raw_bytes(a) == a.tobytes()
    swapped = a.astype(">i4")
    assert raw_bytes(swapped) == swapped.tobytes()  # a wrong hit before the fix
    assert RUNS == ["<i4", ">i4"]


# --------------------------------------------------------------- __main__ / __mp_main__

_SCRIPT = """
import dataclasses, enum, json, multiprocessing as mp, sys
sys.path.insert(0, {repo!r})
from persidict import LocalDict
from persidict_memo import persistent_cache
from persidict_memo.hashing import content_hash


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int
    color: Color


def helper():
    return 1


@persistent_cache(store=LocalDict())
def paint(p, how=helper):
    return p.x


def hashes(_=None):
    value = [Point(1, Color.RED), Color.RED, Point, helper]
    return [content_hash(value), list(paint.cache_key(Point(2, Color.RED)))]


if __name__ == "__main__":
    with mp.get_context("spawn").Pool(1) as pool:
        worker = pool.apply(hashes)
    print(json.dumps({{"parent": hashes(), "worker": worker}}))
"""


@pytest.mark.slow
def test_script_types_hash_the_same_in_main_and_spawn_workers(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "paint_script.py"
    script.write_text(_SCRIPT.format(repo=repo))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["worker"] == result["parent"]
    assert result["parent"][1][1] == "__main__.paint_script"
