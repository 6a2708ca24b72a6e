"""The public API of persidict_memo: defined once, sorted, light to import."""

from __future__ import annotations

import subprocess
import sys

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


def test_import_is_light() -> None:
    code = (
        "import sys, persidict_memo\n"
        "heavy = [m for m in ('numpy', 'pandas', 'boto3', 'joblib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
