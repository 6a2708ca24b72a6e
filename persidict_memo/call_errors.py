"""The TypeError Python itself raises for a call a function's signature does not accept.

``inspect.Signature.bind`` refuses a bad call with its own wording (``missing a required
argument: 'x'``) and no function name. A cached function should fail exactly like the plain
one (``area() missing 1 required positional argument: 'width'``), so the call is replayed on an
empty function with the same parameters and name, which makes CPython produce its message.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["python_call_error"]


class _Default:
    """Stands for every default value in the replica (only presence matters)."""

    def __repr__(self) -> str:
        return "_default"


_DEFAULT = _Default()


def python_call_error(func_name: str, qualname: str, signature: inspect.Signature,
                      args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TypeError:
    """The TypeError of ``func(*args, **kwargs)`` for a function with ``signature``.

    Nothing of the real function runs: the replica has the same parameters and an empty body.
    """
    params = [
        p.replace(annotation=inspect.Parameter.empty,
                  default=inspect.Parameter.empty if p.default is inspect.Parameter.empty
                  else _DEFAULT)
        for p in signature.parameters.values()
    ]
    plain = signature.replace(parameters=params, return_annotation=inspect.Signature.empty)
    namespace: dict[str, Any] = {"_default": _DEFAULT}
    exec(f"def replica{plain}: pass", namespace)  # parameter names are identifiers
    replica = namespace["replica"]
    replica.__code__ = replica.__code__.replace(co_name=func_name, co_qualname=qualname)
    replica.__name__, replica.__qualname__ = func_name, qualname  # what CPython's message names
    try:
        replica(*args, **kwargs)
    except TypeError as exc:
        return TypeError(*exc.args)
    return TypeError(f"{qualname}() does not accept these arguments{signature}")
