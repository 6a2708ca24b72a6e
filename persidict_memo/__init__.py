"""persidict_memo: a persistent, content-addressed memoizer built on persidict stores."""

from __future__ import annotations

__all__: list[str] = []
