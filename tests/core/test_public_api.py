"""The public surface: names, lazy imports, import cost (SPEC 1, 8.17)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import persidict

EXPECTED = [
    "__version__", "PersiDict", "PersiDictKey", "NonEmptyPersiDictKey", "MutationPolicyError",
    "ConcurrencyConflictError", "BackendError", "FileDirDict", "S3Dict", "S3Dict_FileDirCached",
    "BasicS3Dict", "LocalDict", "WriteOnceDict", "EmptyDict", "OverlappingMultiDict",
    "AppendOnlyDictCached", "MutableDictCached", "SafeStrTuple", "NonEmptySafeStrTuple",
    "get_safe_chars", "replace_unsafe_chars", "KEEP_CURRENT", "DELETE_CURRENT", "Joker",
    "KeepCurrentFlag", "DeleteCurrentFlag", "ETagValue", "ETagConditionFlag", "AnyETagFlag",
    "ETagIsTheSameFlag", "ETagHasChangedFlag", "ANY_ETAG", "ETAG_IS_THE_SAME",
    "ETAG_HAS_CHANGED", "RetrieveValueFlag", "AlwaysRetrieveFlag", "NeverRetrieveFlag",
    "IfETagChangedRetrieveFlag", "ALWAYS_RETRIEVE", "NEVER_RETRIEVE", "IF_ETAG_CHANGED",
    "ItemNotAvailableFlag", "ValueNotRetrievedFlag", "ITEM_NOT_AVAILABLE", "VALUE_NOT_RETRIEVED",
    "ETagIfExists", "ValueType", "TransformingFunction", "OperationResult",
    "ConditionalOperationResult",
]


def test_all_names_exact_and_resolvable() -> None:
    assert persidict.__all__ == EXPECTED
    assert len(set(EXPECTED)) == 50
    for name in EXPECTED:
        assert getattr(persidict, name) is not None, name
    assert persidict.S3Dict is persidict.S3Dict_FileDirCached
    assert isinstance(persidict.__version__, str) and persidict.__version__


def test_star_import_gives_every_name() -> None:
    ns: dict[str, object] = {}
    exec("from persidict import *", ns)
    assert set(EXPECTED) <= set(ns)


def test_constructors_have_explicit_keywords() -> None:
    for cls, params in [
        (persidict.FileDirDict, ["base_dir", "serialization_format", "append_only",
                                 "digest_len", "base_class_for_values"]),
        (persidict.LocalDict, ["backend", "serialization_format", "append_only",
                               "base_class_for_values", "prune_interval"]),
        (persidict.EmptyDict, ["append_only", "base_class_for_values",
                               "serialization_format"]),
        (persidict.WriteOnceDict, ["wrapped_dict", "p_consistency_checks"]),
        (persidict.AppendOnlyDictCached, ["main_dict", "data_cache"]),
        (persidict.MutableDictCached, ["main_dict", "data_cache", "etag_cache"]),
    ]:
        sig = inspect.signature(cls)
        assert list(sig.parameters)[: len(params)] == params, cls
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in sig.parameters.values())
        assert not any(p.kind is inspect.Parameter.VAR_KEYWORD
                       for p in sig.parameters.values()), cls


def test_generic_syntax() -> None:
    alias = persidict.LocalDict[int]
    d = alias()
    d["a"] = 1
    assert d["a"] == 1 and type(d) is persidict.LocalDict


def test_import_is_light() -> None:
    code = ("import sys, persidict; "
            "print(sorted(m for m in ('numpy', 'pandas', 'boto3', 'botocore', 'joblib', "
            "'jsonpickle', 'deepdiff') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
