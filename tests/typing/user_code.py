"""What a user's code sees under ``mypy --strict`` (checked by tests/typing/test_typing.py).

Every ``assert_type`` must hold and every ``# type: ignore[code]`` must still be needed
(``warn_unused_ignores``): the ignored lines are the mistakes the annotations must catch.
This module is type-checked only; it is never imported by the tests.
"""

from __future__ import annotations

from typing import Any, assert_type

from persidict import (
    DELETE_CURRENT,
    KEEP_CURRENT,
    ConditionalOperationResult,
    FileDirDict,
    ItemNotAvailableFlag,
    LocalDict,
    OperationResult,
    PersiDict,
    SafeStrTuple,
    ValueNotRetrievedFlag,
)
from persidict_memo import CacheInfo, persistent_cache

# ----------------------------------------------------------------------------- typed stores
scores: FileDirDict[int] = FileDirDict(base_dir="./scores")
scores["alice"] = 95
scores["team", "bob"] = 87
scores[("team", "carol")] = 70
scores["alice"] = KEEP_CURRENT
scores["alice"] = DELETE_CURRENT
scores["alice"] = "ninety-five"  # type: ignore[assignment]
scores["alice"] = 9.5  # type: ignore[assignment]

assert_type(scores["alice"], int)
assert_type(scores.get("alice"), int | None)
assert_type(scores.get(("team", "bob"), 0), int)
assert_type(scores.pop("alice"), int)
assert_type(scores.pop(("team", "bob"), None), int | None)
assert_type(scores.setdefault("dave", 1), int)
assert_type("alice" in scores, bool)
assert_type(("team", "bob") in scores, bool)
scores.setdefault("erin", "x")  # type: ignore[call-overload]

assert_type(list(scores.keys()), list[SafeStrTuple])
assert_type(list(scores.values()), list[int])
assert_type(scores.newest_values(max_n=3), list[int])
team: PersiDict[int] = scores.get_subdict("team")
assert_type(scores.random_key(), SafeStrTuple | None)
assert_type(scores.timestamp("alice"), float)

r = scores.get_with_etag("alice")
assert_type(r, ConditionalOperationResult[int])
value = r.new_value
assert_type(value, int | ItemNotAvailableFlag | ValueNotRetrievedFlag)
if not isinstance(value, ItemNotAvailableFlag | ValueNotRetrievedFlag):  # how to narrow
    assert_type(value, int)


def bump(v: int | ItemNotAvailableFlag) -> int:
    return 1 if isinstance(v, ItemNotAvailableFlag) else v + 1


def bump_wrong(v: int) -> int:
    return v + 1


assert_type(scores.transform_item("n", transformer=bump), OperationResult[int])
scores.transform_item("n", transformer=bump_wrong)  # type: ignore[arg-type]

# ------------------------------------------------------------------- stores left unannotated
anything = FileDirDict(base_dir="./anything")
anything["k"] = {"free": "form"}
anything["n"] = 1
memory = LocalDict()
memory["k"] = [1, 2]
assert_type(memory["k"], Any)

# ------------------------------------------------------------------------ decorated functions


@persistent_cache
def area(width: float, height: float = 1.0) -> float:
    return width * height


@persistent_cache(store="./memo", ignore=("verbose",))
def label(n: int, *, verbose: bool = False) -> str:
    return str(n)


assert_type(area(2.0), float)
assert_type(area(2.0, height=3.0), float)
assert_type(label(3), str)
area("wide")  # type: ignore[arg-type]
label(3, loud=True)  # type: ignore[call-arg]

assert_type(area.is_cached(2.0), bool)
assert_type(area.lookup(2.0), float)
assert_type(area.inject(4.0, 2.0, height=2.0), bool)
assert_type(area.forget(2.0), bool)
assert_type(area.cache_key(2.0), tuple[str, ...])
assert_type(area.cache_info(), CacheInfo)
assert_type(area.cache_clear(), int)
assert_type(area.uncached(2.0), float)
area.is_cached("wide")  # type: ignore[arg-type]
