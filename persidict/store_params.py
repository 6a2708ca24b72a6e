"""The constructor parameters every store shares, checked in one place.

``append_only``, ``base_class_for_values`` and ``serialization_format`` mean the same for every
store; :class:`~persidict.PersiDict` checks them before anything else happens, so a bad
combination fails the same way for a file, S3 or memory store.
"""

from __future__ import annotations

from .keys import SAFE_CHARS_SET

__all__ = ["check_store_params"]


def check_store_params(append_only: object, base_class_for_values: object,
                       serialization_format: object) -> None:
    """TypeError / ValueError for parameters no store accepts.

    Non-string values are stored as ``"pkl"`` (pickle) or ``"json"`` (jsonpickle); any other
    safe name is a plain-text format (the file extension), for ``str`` values only.
    """
    if not isinstance(append_only, bool):
        raise TypeError(f"append_only must be a bool, got {type(append_only).__name__}")
    if not isinstance(serialization_format, str):
        raise TypeError("serialization_format must be a str, got "
                        f"{type(serialization_format).__name__}")
    if not serialization_format:
        raise ValueError("serialization_format must be a non-empty string")
    if not set(serialization_format) <= SAFE_CHARS_SET:
        raise ValueError(
            "serialization_format must contain only URL/filename-safe characters")
    if base_class_for_values is not None and not isinstance(base_class_for_values, type):
        raise TypeError("base_class_for_values must be a type or None")
    is_text = base_class_for_values is not None and issubclass(base_class_for_values, str)
    if not is_text and serialization_format not in ("pkl", "json"):
        raise ValueError(_bad_format_message(serialization_format))


def _bad_format_message(fmt: str) -> str:
    close = {"pickle": "pkl", "pickled": "pkl", "jsonpickle": "json"}.get(fmt.lower(), fmt.lower())
    hint = f" Did you mean {close!r}?" if close in ("pkl", "json") else ""
    return (f"serialization_format={fmt!r} is not a format for non-string values: they must be "
            f"either 'pkl' (pickle) or 'json' (jsonpickle).{hint} Any other name (e.g. 'txt') is "
            f"a plain-text format, for str values: pass base_class_for_values=str with it.")
