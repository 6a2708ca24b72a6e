"""LocalDict timestamps never go backwards within a store when the wall clock does."""

from __future__ import annotations

import time
from typing import Any

import pytest

from persidict import LocalDict


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``time.time()`` reads the last value pushed onto the returned list."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[-1])
    return now


def test_clock_stepping_back_keeps_write_order(clock: list[float]) -> None:
    d: LocalDict[Any] = LocalDict()
    d["first"] = 1
    clock.append(clock[-1] - 3600.0)  # NTP steps the clock back an hour
    d["second"] = 2
    clock.append(clock[-1] - 5.0)
    d["third"] = 3
    assert [k[0] for k in d.newest_keys()] == ["third", "second", "first"]
    assert [k[0] for k in d.oldest_keys(max_n=1)] == ["first"]
    assert d.timestamp("first") < d.timestamp("second") < d.timestamp("third")


def test_frozen_clock_still_orders_writes(clock: list[float]) -> None:
    d: LocalDict[Any] = LocalDict()
    sub = d.get_subdict("s")  # one family: one clock
    for i in range(5):
        (d if i % 2 else sub)[f"k{i}"] = i
    stamps = [t for _, t in sorted(((k, v) for k, v in d.keys_and_timestamps()),
                                   key=lambda kv: kv[1])]
    assert len(set(stamps)) == 5
    assert [k[-1] for k in d.newest_keys()] == ["k4", "k3", "k2", "k1", "k0"]


def test_rewrite_after_clock_jump_is_newest(clock: list[float]) -> None:
    d: LocalDict[Any] = LocalDict()
    d["a"] = 1
    d["b"] = 2
    clock.append(clock[-1] - 100.0)
    d["a"] = 10
    assert d.newest_keys(max_n=1)[0] == ("a",)
    assert d.timestamp("a") > d.timestamp("b")
