"""Canonical encodings of callables; they join the encoder's registry on import.

Functions, classes and modules are identified by module and qualified name (what pickle uses
to find them again; a script's ``__main__`` and a spawn worker's ``__mp_main__`` are one name).
Lambdas and nested functions share names, so their code object (bytecode, names, constants),
defaults and closure values count too; a nested function whose
closure holds itself (a recursive helper) is encoded with a back-reference instead of failing
as a cycle. Bound methods are their function and ``__self__``; ``functools.partial`` objects
their function, arguments and keywords.
"""

from __future__ import annotations

import functools
import types
from typing import Any

from .encoder import Encoder, Handler, module_name, register_exact, register_resolver

__all__ = [
    "encode_builtin",
    "encode_class",
    "encode_code",
    "encode_function",
    "encode_method",
    "encode_module",
    "encode_partial",
]


def _named(tag: bytes) -> Handler:
    """Objects identified by their module and qualified name (classes, module-level functions)."""

    def handler(enc: Encoder, obj: Any) -> None:
        module = module_name(getattr(obj, "__module__", None) or "?")
        qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if not isinstance(qualname, str):
            raise TypeError(f"cannot hash {obj!r}: it has no qualified name")
        enc.tag(tag, f"{module}:{qualname}")

    return handler


encode_class = _named(b"K")
_builtin_function = _named(b"B")
_function_name = _named(b"G")


def encode_module(enc: Encoder, obj: types.ModuleType) -> None:
    enc.tag(b"M", module_name(obj.__name__))


def encode_function(enc: Encoder, obj: types.FunctionType) -> None:
    _function_name(enc, obj)
    if "<" not in obj.__qualname__:
        return  # a module-level function or method: its name is its identity
    # Lambdas and nested functions share names, so their code and captured values count too.

    def body() -> None:
        encode_code(enc, obj.__code__)
        enc.encode(obj.__defaults__)
        enc.encode(obj.__kwdefaults__)
        cells = obj.__closure__ or ()
        try:
            enc.encode(tuple(cell.cell_contents for cell in cells))
        except ValueError:  # an empty cell: a name not yet bound in the enclosing scope
            raise TypeError(f"cannot hash {obj.__qualname__}: its closure is incomplete") from None

    if enc.is_active(obj):  # a nested function calling itself: its closure holds it
        enc.out += b"^"
    else:
        enc.guarded(obj, body)


def encode_code(enc: Encoder, code: types.CodeType) -> None:
    enc.out += b"Y"
    enc.raw(b"b", code.co_code)
    enc.encode(code.co_names)
    enc.encode(code.co_varnames)
    enc.count(len(code.co_consts))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            encode_code(enc, const)
        else:
            enc.encode(const)


def encode_method(enc: Encoder, obj: types.MethodType) -> None:
    enc.out += b"J"
    enc.encode(obj.__func__)
    enc.guarded(obj, lambda: enc.encode(obj.__self__))


def encode_builtin(enc: Encoder, obj: types.BuiltinMethodType) -> None:
    owner = getattr(obj, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        _builtin_function(enc, obj)
        return
    enc.tag(b"j", obj.__name__)
    enc.encode(owner)


def encode_partial(enc: Encoder, obj: functools.partial[Any]) -> None:
    enc.out += b"Z"
    enc.encode(obj.func)
    enc.encode(obj.args)
    enc.encode(obj.keywords)


for _type, _handler in (
    (type, encode_class),
    (types.ModuleType, encode_module),
    (types.FunctionType, encode_function),
    (types.MethodType, encode_method),
    (types.BuiltinFunctionType, encode_builtin),
    (functools.partial, encode_partial),
):
    register_exact(_type, _handler)


def _resolve_callable(obj: Any, tp: type) -> Handler | None:
    """Subclasses and look-alikes (metaclasses, wrapt proxies of functions, code objects)."""
    if isinstance(obj, type):
        return encode_class
    if isinstance(obj, types.FunctionType):
        return encode_function
    if isinstance(obj, types.MethodType):
        return encode_method
    if isinstance(obj, types.BuiltinFunctionType):
        return encode_builtin
    if isinstance(obj, functools.partial):
        return encode_partial
    if isinstance(obj, types.CodeType):
        return encode_code
    return None


register_resolver(_resolve_callable, order=40)
