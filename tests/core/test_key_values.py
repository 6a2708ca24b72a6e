"""Values holding SafeStrTuple subclasses round-trip through every store of the contract matrix,
and a fresh process reads them back from every store that lives outside this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pytest

from persidict import BasicS3Dict, FileDirDict, PersiDict
from persidict.wrapper_dict import innermost
from tests.core.key_types import Addr, describe, sample_values

REPO = Path(__file__).resolve().parents[2]
CHECK = "from tests.core.key_types import check_stores; check_stores()"


def _recipe(store: PersiDict[Any], ctx: dict[str, Any]) -> dict[str, Any] | None:
    """How another process opens the storage under ``store`` (None: it lives in this one)."""
    inner = innermost(store)
    fmt = inner.serialization_format
    if isinstance(inner, FileDirDict):
        return {"kind": "file", "params": {"base_dir": inner.base_dir, "serialization_format": fmt,
                                           "digest_len": inner.digest_len}}
    target = ctx.get("s3")
    if isinstance(inner, BasicS3Dict) and target is not None and target.endpoint_url:
        return {"kind": "s3", "params": {"bucket_name": inner.bucket_name,
                                         "root_prefix": inner.get_params()["root_prefix"],
                                         "endpoint_url": target.endpoint_url,
                                         "serialization_format": fmt}}
    return None


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pkl", "json"])
def test_subclass_keys_inside_values(make_store: Any, append_only: bool, fmt: str) -> None:
    store = make_store(serialization_format=fmt, append_only=append_only)
    expected = sample_values()
    for key, value in expected.items():
        store[key] = value
    for key, value in expected.items():
        got = store[key]
        assert describe(got) == describe(value)
        if key == "addr":
            where = got["where"]
            assert type(where) is Addr and where.portals == {"north", "south"}
            assert where == ("abc", "def") and hash(where) == hash(("abc", "def"))
            assert joblib.hash(where) == joblib.hash(value["where"])
    # A subclass key as a store key means its strings, as any other key form does.
    store[Addr("keyabc")] = 1
    assert store["key", "abc"] == 1 and ("key", "abc") in set(store.keys())

    recipe = _recipe(store, make_store.ctx)
    if append_only and "mutable" in make_store.kind.modes:
        return  # the same storage was read back in a fresh process by the mutable run
    if not make_store.kind.persistent or "s3_mock" in make_store.kind.needs:
        assert recipe is None
        return  # memory and in-process mock stores: no other process can see them
    assert recipe is not None
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO,
                         input=json.dumps(recipe) + "\n", capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONHASHSEED": "random"})
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    assert reply == {"ok": fmt, "hash": joblib.hash(expected["addr"]["where"])}
