"""Progress bars (tqdm, imported only when a bar may be shown).

``enabled=None`` shows a bar on a terminal (standard error is a TTY) or in a notebook, and only
once the work has taken about a second (tqdm's ``delay``): quick runs print nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from types import TracebackType
from typing import Any, Final

__all__ = ["Bar", "bar", "counter", "interactive"]

_DELAY: Final = 1.0


def interactive() -> bool:
    """Whether a person is probably watching: a terminal, or a notebook kernel."""
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


class Bar:
    """A progress bar that may be off (then every method does nothing)."""

    def __init__(self, impl: Any = None) -> None:
        self._impl = impl

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done."""
        if self._impl is not None:
            self._impl.update(n)

    def close(self) -> None:
        """Finish the bar."""
        if self._impl is not None:
            self._impl.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _tqdm() -> Any:
    if "ipykernel" in sys.modules and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm  # a widget bar (it needs ipywidgets)
    else:
        from tqdm.std import tqdm  # text on standard error (a notebook shows it too)
    return tqdm


def bar(total: int, description: str, enabled: bool | None = None, *, delay: bool = True) -> Bar:
    """A bar over ``total`` steps: forced on or off by ``enabled``, or automatic with None."""
    if enabled is None:
        enabled = interactive()
    if not enabled or total <= 0:
        return Bar()
    return Bar(_tqdm()(total=total, desc=description, delay=_DELAY if delay else 0.0))


def counter(description: str, unit: str, enabled: bool | None = None) -> Bar:
    """A running count of steps whose total is not known (a listing), shown after a second."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        return Bar()
    return Bar(_tqdm()(desc=description, unit=unit, delay=_DELAY, leave=False))
