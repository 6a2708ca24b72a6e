"""persidict: persistent dict-like key-value stores on local files, S3 and memory.

Every store has the full ``dict`` API plus timestamps, sub-stores, random keys, the jokers
``KEEP_CURRENT``/``DELETE_CURRENT`` and ETag-based conditional operations::

    from persidict import FileDirDict
    d = FileDirDict(base_dir="my_data")
    d["user", "alice"] = {"score": 95}

Store classes are imported on first use, so ``import persidict`` stays fast and never imports
boto3, numpy or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .empty_dict import EmptyDict
from .errors import (
    BackendError,
    ConcurrencyConflictError,
    MutationPolicyError,
    OutcomeUnknownError,
)
from .keys import (
    SAFE_CHARS_SET,
    SAFE_STRING_MAX_LENGTH,
    NonEmptyPersiDictKey,
    NonEmptySafeStrTuple,
    PersiDictKey,
    SafeStrTuple,
    contains_unsafe_chars,
    get_safe_chars,
    replace_unsafe_chars,
)
from .local_dict import LocalDict
from .markers import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    CONTINUE_NORMAL_EXECUTION,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    EXECUTION_IS_COMPLETE,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    AlwaysRetrieveFlag,
    AnyETagFlag,
    ConditionalOperationResult,
    DeleteCurrentFlag,
    ETagConditionFlag,
    ETagHasChangedFlag,
    ETagIfExists,
    ETagIsTheSameFlag,
    ETagValue,
    IfETagChangedRetrieveFlag,
    ItemNotAvailableFlag,
    Joker,
    KeepCurrentFlag,
    NeverRetrieveFlag,
    OperationResult,
    RetrieveValueFlag,
    TransformingFunction,
    ValueNotRetrievedFlag,
    ValueType,
)
from .persi_dict import PersiDict

if TYPE_CHECKING:
    from .append_only_dict_cached import AppendOnlyDictCached
    from .basic_s3_dict import BasicS3Dict
    from .file_dir_dict import FileDirDict
    from .mutable_dict_cached import MutableDictCached
    from .overlapping_multi_dict import OverlappingMultiDict
    from .s3_dict import S3Dict, S3Dict_FileDirCached
    from .write_once_dict import WriteOnceDict

# Public name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "FileDirDict": "file_dir_dict",
    "BasicS3Dict": "basic_s3_dict",
    "S3Dict": "s3_dict",
    "S3Dict_FileDirCached": "s3_dict",
    "WriteOnceDict": "write_once_dict",
    "AppendOnlyDictCached": "append_only_dict_cached",
    "MutableDictCached": "mutable_dict_cached",
    "OverlappingMultiDict": "overlapping_multi_dict",
}


def _distribution_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # slow: only when asked

    try:
        return version("persidict")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = _distribution_version()
        return globals()[name]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'persidict' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})


__all__ = [
    "__version__",
    "PersiDict",
    "PersiDictKey",
    "NonEmptyPersiDictKey",
    "MutationPolicyError",
    "ConcurrencyConflictError",
    "BackendError",
    "FileDirDict",
    "S3Dict",
    "S3Dict_FileDirCached",
    "BasicS3Dict",
    "LocalDict",
    "WriteOnceDict",
    "EmptyDict",
    "OverlappingMultiDict",
    "AppendOnlyDictCached",
    "MutableDictCached",
    "SafeStrTuple",
    "NonEmptySafeStrTuple",
    "get_safe_chars",
    "replace_unsafe_chars",
    "KEEP_CURRENT",
    "DELETE_CURRENT",
    "Joker",
    "KeepCurrentFlag",
    "DeleteCurrentFlag",
    "ETagValue",
    "ETagConditionFlag",
    "AnyETagFlag",
    "ETagIsTheSameFlag",
    "ETagHasChangedFlag",
    "ANY_ETAG",
    "ETAG_IS_THE_SAME",
    "ETAG_HAS_CHANGED",
    "RetrieveValueFlag",
    "AlwaysRetrieveFlag",
    "NeverRetrieveFlag",
    "IfETagChangedRetrieveFlag",
    "ALWAYS_RETRIEVE",
    "NEVER_RETRIEVE",
    "IF_ETAG_CHANGED",
    "ItemNotAvailableFlag",
    "ValueNotRetrievedFlag",
    "ITEM_NOT_AVAILABLE",
    "VALUE_NOT_RETRIEVED",
    "ETagIfExists",
    "ValueType",
    "TransformingFunction",
    "OperationResult",
    "ConditionalOperationResult",
]

# Not in __all__ (as in persidict 0.309) but reachable: SAFE_CHARS_SET, SAFE_STRING_MAX_LENGTH,
# contains_unsafe_chars, the answers of the subclass hook PersiDict._process_setitem_args, and
# OutcomeUnknownError (new here; __all__ keeps 0.309's 50 names).
_EXTRA_PUBLIC = (SAFE_CHARS_SET, SAFE_STRING_MAX_LENGTH, contains_unsafe_chars,
                 CONTINUE_NORMAL_EXECUTION, EXECUTION_IS_COMPLETE, OutcomeUnknownError)
