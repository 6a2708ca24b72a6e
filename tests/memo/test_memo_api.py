"""The public API of persidict_memo: defined once, sorted, light to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import persidict_memo
from persidict_memo import CacheInfo, CacheStoreWarning, persistent_cache


def test_all_is_sorted_and_complete() -> None:
    assert persidict_memo.__all__ == sorted(persidict_memo.__all__)
    assert {"persistent_cache", "CacheInfo"} <= set(persidict_memo.__all__)
    for name in persidict_memo.__all__:
        assert getattr(persidict_memo, name) is not None


def test_cache_info_fields() -> None:
    info = CacheInfo(hits=1, misses=2, waits=3, store_errors=4)
    assert info._fields == ("hits", "misses", "waits", "store_errors")
    assert tuple(info) == (1, 2, 3, 4)


def test_warning_class() -> None:
    assert issubclass(CacheStoreWarning, RuntimeWarning)


def test_decorated_function_exposes_the_whole_api() -> None:
    @persistent_cache(store=None)
    def f(x: int) -> int:
        return x

    for name in (
        "cache_key",
        "is_cached",
        "lookup",
        "inject",
        "forget",
        "cache_clear",
        "cache_info",
        "metadata",
        "uncached",
        "__wrapped__",
    ):
        assert callable(getattr(f, name)), name


HEAVY = ("asyncio", "numpy", "pandas", "boto3", "joblib", "wrapt")


def test_import_is_light(tmp_path: Path) -> None:
    """Neither the import nor decorating and calling (a miss, then a hit) loads heavy modules."""
    code = (
        "import sys, persidict_memo\n"
        f"heavy = {HEAVY!r}\n"
        "first = [m for m in heavy if m in sys.modules]\n"
        "from persidict_memo import persistent_cache\n"
        f"@persistent_cache(store={str(tmp_path / 'cache')!r})\n"
        "def square(x):\n"
        "    return x * x\n"
        "assert square(3) == square(3) == 9\n"
        "print(','.join(first), ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split(" ") == ["", "\n"]


def test_decorator_import_leaves_the_toolkit_modules_unloaded() -> None:
    """``from persidict_memo import persistent_cache`` loads neither the cache-lifecycle modules
    (inventory, prune) nor a thread pool: they are imported by the toolkit methods that use them."""
    later = ("persidict_memo.lifecycle", "persidict_memo.inventory", "concurrent.futures")
    code = (
        "import sys\n"
        "from persidict_memo import persistent_cache\n"
        f"print(','.join(m for m in {later!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
