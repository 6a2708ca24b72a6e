"""The code part of a cache key: what a function's results depend on besides its arguments.

:func:`function_fingerprint` digests, once per decorated function (computed at its first call):

* the function's **normalised source**: its syntax tree without docstrings, decorators,
  comments, formatting or line numbers (its code object when no source can be found);
* its **closure**: the value of every closure cell, hashed with the canonical encoder as
  arguments are (a cell that cannot be hashed raises :class:`TypeError` naming the variable);
  a cell holding a nested function or class counts by that definition's code and closure;
* the **definitions it refers to by name**, transitively: functions and classes defined in the
  same top-level package as the function (the same module for a script or a notebook), found
  in the bytecode's global loads, including ``module.attribute`` chains through modules of that
  package; a class counts by its source, its bases from the package and the definitions its
  methods refer to;
* the values of the **module-level constants** it refers to that are of simple immutable types:
  ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, tuples and frozensets of
  those, and enum members.

Deliberately not tracked: mutable globals (lists, dicts, objects: their content can change
without any edit), functions and classes of other packages and of the standard library, and
names resolved at run time (``getattr``, ``globals()[...]``, imports inside the body). Code like
that is versioned with ``version=``. Editing a helper the function does not refer to never
changes its fingerprint.

A manual ``version=`` replaces the source and the definitions, not the closure values: those are
data, and two closures over different values are two different functions.
"""

from __future__ import annotations

import ast
import builtins
import dis
import enum
import inspect
import linecache
import sys
import textwrap
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final

import xxhash

from .encoder import Encoder, module_name

__all__ = ["function_fingerprint", "own_source_digest"]

_LOADS: Final = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_ATTRS: Final = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_SIMPLE: Final = frozenset({type(None), bool, int, float, complex, str, bytes})
_MISSING: Final = object()


def _hex(data: bytes | bytearray) -> str:
    return xxhash.xxh3_128_hexdigest(data)


# ----------------------------------------------------------------------- normalised source


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _parse(source: str) -> ast.Module | None:
    for text in (textwrap.dedent(source), "if 1:\n" + source):
        try:
            return ast.parse(text)
        except SyntaxError:
            continue
    return None


def _definition(tree: ast.Module, obj: Any) -> ast.AST | None:
    """The node defining ``obj`` in the parsed text of ``inspect.getsource(obj)``."""
    name = getattr(obj, "__name__", "")
    if isinstance(obj, type):
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == name:
                return node  # a class's decorators (@dataclass(frozen=True)...) count
        return None
    if name == "<lambda>":
        lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
        return lambdas[0] if len(lambdas) == 1 else None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            node.decorator_list = []
            return node
    return None


def _function_lines(func: Any) -> str | None:
    """A function's source lines, found from its code object's positions.

    From ``co_firstlineno`` (its first decorator) to the last line any of its instructions
    comes from: no tokenizing, unlike :func:`inspect.getsource` (whose first use in a process
    compiles the tokenizer's expressions: most of a cold first call).
    """
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType):
        return None
    lines = linecache.getlines(code.co_filename, getattr(func, "__globals__", None))
    first = last = code.co_firstlineno
    pending = [code]
    while pending:
        current = pending.pop()
        for _start, end, _col, _end_col in current.co_positions():
            if end is not None and end > last:
                last = end
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    if not lines or last > len(lines):
        return None
    return "".join(lines[first - 1 : last])


def _digest_node(source: str | None, obj: Any) -> str | None:
    if source is None:
        return None
    tree = _parse(source)
    node = None if tree is None else _definition(tree, obj)
    if node is None:
        return None
    _strip_docstrings(node)
    return _hex(ast.dump(node, annotate_fields=True, include_attributes=False).encode())


def _source_digest(obj: Any) -> str | None:
    if not isinstance(obj, type):
        digest = _digest_node(_function_lines(obj), obj)
        if digest is not None:
            return digest
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    return _digest_node(source, obj)


def _code_digest(code: types.CodeType) -> str:
    enc = Encoder()
    enc.encode(sys.version_info[:2])  # bytecode differs between Python versions
    enc.encode(code)
    return _hex(enc.out)


def _class_code_digest(cls: type) -> str:
    """A class without source: the code of its functions and the names of its bases."""
    enc = Encoder()
    enc.encode([f"{module_name(b.__module__)}.{b.__qualname__}" for b in cls.__bases__])
    for name, func in sorted(_class_functions(cls), key=lambda item: item[0]):
        enc.tag(b"s", name)
        enc.tag(b"s", _code_digest(func.__code__))
    return _hex(enc.out)


_OWN: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()


def own_source_digest(obj: Any) -> tuple[str, str]:
    """``("src", digest)`` of a function's or class's normalised source, or ``("code", ...)``.

    Remembered per object: a definition is parsed once per process.
    """
    try:
        return _OWN[obj]
    except (KeyError, TypeError):
        pass
    digest = _source_digest(obj)
    if digest is not None:
        result = ("src", digest)
    elif isinstance(obj, type):
        result = ("code", _class_code_digest(obj))
    else:
        code = getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType):
            raise TypeError(f"cannot fingerprint {obj!r}: no source and no code object")
        result = ("code", _code_digest(code))
    try:
        _OWN[obj] = result
    except TypeError:
        pass
    return result


# --------------------------------------------------------------------------- references


_REFS: weakref.WeakKeyDictionary[types.CodeType, tuple[tuple[str, ...], ...]] = (
    weakref.WeakKeyDictionary()
)


def _global_chains(code: types.CodeType) -> tuple[tuple[str, ...], ...]:
    """Every global name the code (and its nested code) loads, with the attributes read off it.

    ``helpers.scale(x)`` gives ``("helpers", "scale")``; a bare ``LIMIT`` gives ``("LIMIT",)``.
    """
    try:
        return _REFS[code]
    except KeyError:
        pass
    chains: list[list[str]] = []
    pending = [code]
    while pending:
        current = pending.pop()
        chain: list[str] | None = None
        for ins in dis.get_instructions(current):
            if ins.opname in _LOADS:
                chain = [str(ins.argval)]
                chains.append(chain)
            elif ins.opname in _ATTRS and chain is not None:
                chain.append(str(ins.argval))
            else:
                chain = None
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    result = tuple(dict.fromkeys(tuple(c) for c in chains))
    _REFS[code] = result
    return result


def _class_functions(cls: type) -> list[tuple[str, types.FunctionType]]:
    found = []
    for name, member in vars(cls).items():
        for candidate in (
            member,
            getattr(member, "__func__", None),  # staticmethod, classmethod
            getattr(member, "fget", None),  # property
            getattr(member, "fset", None),
            getattr(member, "fdel", None),
        ):
            candidate = _unwrap(candidate)
            if isinstance(candidate, types.FunctionType):
                found.append((name, candidate))
    return found


def _unwrap(obj: Any) -> Any:
    """The function under decorators that keep ``__wrapped__`` (wrapt, functools.wraps)."""
    if obj is None or not callable(obj) or isinstance(obj, type):
        return obj
    try:
        return inspect.unwrap(obj)
    except ValueError:  # a __wrapped__ cycle
        return obj


def _top_package(module: str) -> str:
    return module_name(module).partition(".")[0]


def _is_simple_constant(value: Any) -> bool:
    kind = type(value)
    if kind in _SIMPLE:
        return True
    if kind is tuple or kind is frozenset:
        return all(_is_simple_constant(item) for item in value)
    return isinstance(value, enum.Enum)


def _is_local(obj: Any) -> bool:
    return "<locals>" in getattr(obj, "__qualname__", "") or getattr(obj, "__name__", "") == (
        "<lambda>"
    )


def _qualified(obj: Any) -> str:
    return f"{module_name(getattr(obj, '__module__', None) or '?')}.{obj.__qualname__}"


class _Walk:
    """One fingerprint computation: the definitions reached from a root function."""

    def __init__(self, root: Callable[..., Any], ignore: frozenset[str], track_code: bool) -> None:
        self.root = root
        self.ignore = ignore
        self.track_code = track_code
        self.package = _top_package(getattr(root, "__module__", None) or "?")
        self.entries: set[bytes] = set()
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.keep: list[Any] = []  # what was seen stays alive, so ids are not reused

    def ours(self, obj: Any) -> bool:
        """Defined in the root's package (or locally): its code is followed."""
        module = getattr(obj, "__module__", None)
        return _is_local(obj) or (isinstance(module, str) and _top_package(module) == self.package)

    # -------------------------------------------------------------------- definitions
    def function(self, func: types.FunctionType) -> bytes:
        """The identity of a function: name, code and closure values (and, walked, its refs)."""
        if id(func) in self.active:
            return b"^" + _qualified(func).encode()  # recursion through closures
        self.active.add(id(func))
        try:
            enc = Encoder()
            if func is not self.root:  # (the root's name is in the key already)
                enc.tag(b"s", _qualified(func))
            if self.track_code or func is not self.root:
                kind, digest = own_source_digest(func)
                enc.tag(b"s", f"{kind}~{digest}")
            self.closure(enc, func)
            if self.track_code:
                self.globals_of(func)
            return xxhash.xxh3_128_digest(enc.out)
        finally:
            self.active.discard(id(func))

    def klass(self, cls: type) -> bytes:
        kind, digest = own_source_digest(cls)
        if id(cls) not in self.seen:
            self.seen.add(id(cls))
            self.keep.append(cls)
            for base in cls.__bases__:
                if base is not object and self.ours(base):
                    self.entries.add(b"C" + self.klass(base))
            if self.track_code:
                for _name, method in _class_functions(cls):
                    self.globals_of(method)
        return f"{_qualified(cls)}={kind}~{digest}".encode()

    def definition(self, value: Any) -> bytes | None:
        """The identity of a function or class whose code is followed, else None."""
        target = _unwrap(value)
        if isinstance(target, types.FunctionType) and self.ours(target):
            return b"F" + self.function(target)
        if isinstance(target, type) and self.ours(target):
            return b"K" + self.klass(target)
        return None

    # ------------------------------------------------------------------------ closures
    def closure(self, enc: Encoder, func: types.FunctionType) -> None:
        cells = func.__closure__ or ()
        for name, cell in zip(func.__code__.co_freevars, cells, strict=True):
            if func is self.root and name in self.ignore:
                continue
            enc.tag(b"s", name)
            try:
                value = cell.cell_contents
            except ValueError:
                raise TypeError(self._cell_error(func, name, "it is not bound yet")) from None
            if value is self.root or _unwrap(value) is self.root:
                enc.out += b"^"  # the function calling itself
                continue
            identity = self.definition(value)
            if identity is not None:
                enc.raw(b"b", identity)
                continue
            try:
                enc.encode(value)
            except (TypeError, RecursionError) as exc:
                reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
                raise TypeError(self._cell_error(func, name, reason)) from exc

    def _cell_error(self, func: types.FunctionType, name: str, reason: str) -> str:
        owner = "" if func is self.root else f" of {func.__qualname__}, which it uses,"
        return (
            f"{self.root.__qualname__}(): closure variable {name!r}{owner} cannot be hashed for "
            f"the cache key: {reason}. Give its type a __persidict_hash__() method or register "
            f"a hasher (persidict_memo.register_hasher), or, if results do not depend on it, "
            f"leave it out of the key with ignore=({name!r},)"
        )

    # ------------------------------------------------------------------------- globals
    def globals_of(self, func: types.FunctionType) -> None:
        if id(func) in self.seen and func is not self.root:
            return
        self.seen.add(id(func))
        self.keep.append(func)
        namespace = func.__globals__
        where = module_name(namespace.get("__name__", "?"))
        for chain in _global_chains(func.__code__):
            self.reference(namespace, where, chain)

    def reference(self, namespace: dict[str, Any], where: str, chain: Iterable[str]) -> None:
        names = iter(chain)
        first = next(names)
        value = namespace.get(first, _MISSING)
        if value is _MISSING or value is getattr(builtins, first, _MISSING):
            return  # a builtin (or a name not defined yet)
        path = [where, first]
        for attr in names:  # helpers.scale: follow modules of the package only
            if not (isinstance(value, types.ModuleType) and self.ours(value)):
                break
            value = getattr(value, attr, _MISSING)
            path.append(attr)
            if value is _MISSING:
                return
        if isinstance(value, types.ModuleType):
            return
        if value is self.root or _unwrap(value) is self.root:
            return  # recursion by name
        target = _unwrap(value)
        if isinstance(target, types.FunctionType | type) and self.ours(target):
            if id(target) in self.seen:
                return
            identity = self.definition(target)
            if identity is not None:
                self.entries.add(identity)
            return
        if _is_simple_constant(value):
            enc = Encoder()
            enc.tag(b"s", ".".join(path))
            enc.encode(value)
            if isinstance(value, enum.Enum) and _is_simple_constant(value.value):
                enc.encode(value.value)
            self.entries.add(b"V" + bytes(enc.out))


def function_fingerprint(
    func: Callable[..., Any], *, ignore: frozenset[str] = frozenset(), track_code: bool = True
) -> tuple[str, str]:
    """``(kind, hex digest)`` of what ``func``'s results depend on besides its arguments.

    ``kind`` is ``"src"`` (normalised source found) or ``"code"`` (only the code object). With
    ``track_code=False`` (a manual ``version=``) only closure values are digested, and the
    digest is ``""`` when there are none. ``ignore`` names closure variables left out.

    Raises:
        TypeError: a closure variable cannot be hashed reliably (the message names it).
    """
    func = _unwrap(func)
    if not isinstance(func, types.FunctionType):
        if track_code:
            kind, digest = own_source_digest(func)
            return kind, digest
        return "ver", ""
    walk = _Walk(func, ignore, track_code)
    identity = walk.function(func)
    if not track_code:
        has_cells = any(n not in ignore for n in func.__code__.co_freevars)
        return "ver", (_hex(identity) if has_cells else "")
    kind, _own = own_source_digest(func)
    enc = Encoder()
    enc.raw(b"b", identity)
    enc.count(len(walk.entries))
    for entry in sorted(walk.entries):
        enc.raw(b"b", entry)
    return kind, _hex(enc.out)
