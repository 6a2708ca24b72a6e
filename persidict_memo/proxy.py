"""A small transparent stand-in for a function: the base of the cached-function wrappers.

It does what :func:`functools.update_wrapper` does (name, qualified name, module, docstring,
annotations, ``__dict__``, ``__wrapped__``, so :func:`inspect.signature` and
:func:`typing.get_type_hints` see the function), and forwards every other attribute it lacks
(``__code__``, ``__defaults__``, ``__self__``, ``__func__``...) to the wrapped callable, so
``inspect.iscoroutinefunction`` and other introspection answer as for the function itself.

Written here rather than taken from :mod:`wrapt`, whose package imports :mod:`asyncio` and
:mod:`importlib.metadata`: ``import persidict_memo`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FunctionProxy", "copy_identity"]

_COPIED = ("__module__", "__name__", "__qualname__", "__doc__", "__type_params__")


def copy_identity(proxy: object, wrapped: object) -> None:
    """Give ``proxy`` the identity of ``wrapped`` (as :func:`functools.update_wrapper` does)."""
    attributes = proxy.__dict__
    attributes.update(getattr(wrapped, "__dict__", {}))
    for name in _COPIED:
        try:
            attributes[name] = getattr(wrapped, name)
        except AttributeError:
            pass
    try:
        attributes["__annotations__"] = wrapped.__annotations__
    except Exception:  # none, or (deferred annotations) not evaluable yet
        pass
    attributes["__wrapped__"] = wrapped  # last: a classmethod's __dict__ has its own


class FunctionProxy:
    """Looks like the callable it wraps; subclasses define the call and the binding."""

    if TYPE_CHECKING:  # not at run time: no class-level __annotations__ to be found instead
        __wrapped__: Any

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the proxy does not have itself.
        if name == "__wrapped__" or name.startswith("_self_"):
            raise AttributeError(name)  # before __init__ (copy, unpickling): no recursion
        return getattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.__wrapped__!r}>"
