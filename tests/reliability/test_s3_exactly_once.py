"""S3 conditional operations are applied exactly once, or the caller is told the outcome is unknown.

Client A talks to moto through :class:`tests.s3_support.FaultProxy`, which drops one request
(never forwarded) or loses one answer (forwarded, done, then the connection is reset); while A
waits, client B (straight to moto) acts on the same key. Each scenario is one the issue saw
go wrong: an increment applied twice, a lost update reported as a success, two ``pop`` calls
getting the same item, a retried delete removing someone else's new item.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from persidict import (
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    BackendError,
    BasicS3Dict,
    ConcurrencyConflictError,
    MutationPolicyError,
    OutcomeUnknownError,
    WriteOnceDict,
)
from tests.s3_support import FaultProxy, make_client, new_bucket_name

pytestmark = pytest.mark.s3


def increment(v: Any) -> Any:
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


class Pair:
    """A (through the proxy) and B (direct) on one bucket and prefix."""

    def __init__(self, proxy: FaultProxy, moto_server: str, **params: Any) -> None:
        bucket = new_bucket_name()
        self.proxy = proxy
        self.a: BasicS3Dict[Any] = BasicS3Dict(
            bucket_name=bucket, client=make_client(proxy.url), root_prefix="x", **params)
        self.b: BasicS3Dict[Any] = BasicS3Dict(
            bucket_name=bucket, client=make_client(moto_server), root_prefix="x", **params)

    def prime(self) -> None:
        """Let both clients probe the endpoint while it is healthy."""
        for d in (self.a, self.b):
            d.setdefault_if("__prime__", default_value=0, condition=ANY_ETAG,
                            expected_etag=ITEM_NOT_AVAILABLE)


@pytest.fixture
def pair(aws_env: None, moto_server: str) -> Iterator[Pair]:
    with FaultProxy(moto_server) as proxy:
        p = Pair(proxy, moto_server)
        p.prime()
        yield p


def expect_unknown(action: Any, operation: str, key: tuple[str, ...]) -> OutcomeUnknownError:
    with pytest.raises(OutcomeUnknownError) as info:
        action()
    err = info.value
    assert isinstance(err, BackendError) and err.backend == "s3"
    assert err.operation == operation and err.key == key
    assert err.__cause__ is not None
    return err


def test_put_landed_answer_lost_then_b_writes_on_top(pair: Pair) -> None:
    """Was 3 increments for 2 calls: A's retried PUT got 412 and A incremented again."""
    pair.a["k"] = 1
    calls: list[Any] = []

    def counted(v: Any) -> Any:
        calls.append(v)
        return v + 1

    pair.proxy.lose_answer_once = "PUT"
    pair.proxy.on_fault = lambda: pair.b.transform_item("k", transformer=increment)
    expect_unknown(lambda: pair.a.transform_item("k", transformer=counted), "write", ("k",))
    assert calls == [1]  # the transformer ran once: nothing was applied twice
    assert pair.b["k"] == 3  # A's increment (landed) and B's: two calls, two increments


def test_put_lost_then_b_writes_identical_bytes(pair: Pair) -> None:
    """Was a lost update reported as success: the ETag was the MD5 of A's own body."""
    pair.a["k"] = 1
    pair.proxy.drop_request_once = "PUT"
    pair.proxy.on_fault = lambda: pair.b.__setitem__("k", 2)  # the very bytes A sends
    expect_unknown(lambda: pair.a.transform_item("k", transformer=increment), "write", ("k",))
    assert pair.b["k"] == 2


def test_delete_lost_then_b_pops(pair: Pair) -> None:
    """Was both pops getting the same job: A's retry got 404 and counted it as its own."""
    pair.a["job"] = "the job"
    got: list[Any] = []
    pair.proxy.drop_request_once = "DELETE"
    pair.proxy.on_fault = lambda: got.append(pair.b.pop("job"))
    expect_unknown(lambda: pair.a.pop("job"), "delete", ("job",))
    assert got == ["the job"]  # exactly one caller was handed the job
    assert "job" not in pair.b


def test_delete_landed_then_b_stores_identical_item(pair: Pair) -> None:
    """Was A's retried DELETE removing B's new item (same bytes, so the same ETag)."""
    pair.a["job"] = "the job"
    pair.proxy.lose_answer_once = "DELETE"
    pair.proxy.on_fault = lambda: pair.b.__setitem__("job", "the job")
    expect_unknown(lambda: pair.a.pop("job"), "delete", ("job",))
    assert pair.b["job"] == "the job"  # B's new item survives


def test_discard_if_answer_lost_is_unknown(pair: Pair) -> None:
    """Was ``True`` from a 404 that may have been someone else's delete."""
    pair.a["k"] = 1
    etag = pair.a.etag("k")
    pair.proxy.lose_answer_once = "DELETE"
    pair.proxy.on_fault = lambda: pair.b.__setitem__("k", 1)  # identical bytes, new version
    expect_unknown(lambda: pair.a.discard_if("k", condition=ETAG_IS_THE_SAME,
                                             expected_etag=etag), "delete", ("k",))
    assert pair.b["k"] == 1


def test_lost_requests_without_a_second_client_are_settled(pair: Pair) -> None:
    """No one else acts: a dropped request is sent again (same write id), a lost answer is
    recognised by its write id; each operation is applied exactly once and reported."""
    pair.a["n"] = 0
    for expected, fault in enumerate(("drop_request_once", "lose_answer_once"), start=1):
        setattr(pair.proxy, fault, "PUT")
        assert pair.a.transform_item("n", transformer=increment).new_value == expected
        assert getattr(pair.proxy, fault) is None
    assert pair.b["n"] == 2
    pair.proxy.drop_request_once = "DELETE"
    assert pair.a.pop("n") == 2  # the very version it read is still there: sent again
    assert "n" not in pair.b


def test_setdefault_if_and_write_once(aws_env: None, moto_server: str) -> None:
    """Was ``value_was_mutated`` for an insert that B made (identical bytes)."""
    with FaultProxy(moto_server) as proxy:
        pair = Pair(proxy, moto_server)
        pair.prime()
        proxy.drop_request_once = "PUT"
        proxy.on_fault = lambda: pair.b.__setitem__("lease", "me")
        expect_unknown(lambda: pair.a.setdefault_if(
            "lease", default_value="me", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE),
            "write", ("lease",))
        proxy.lose_answer_once = "PUT"
        r = pair.a.setdefault_if("own", default_value=1, condition=ANY_ETAG,
                                 expected_etag=ITEM_NOT_AVAILABLE)
        assert r.value_was_mutated and pair.b["own"] == 1  # recognised by its write id

        ao = Pair(proxy, moto_server, append_only=True)
        ao.prime()
        w: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=ao.a, p_consistency_checks=1)
        proxy.drop_request_once = "PUT"
        proxy.on_fault = lambda: ao.b.__setitem__("v", 42)
        w["v"] = 42  # the key holds exactly this value for good: write-once is satisfied
        proxy.drop_request_once = "PUT"
        proxy.on_fault = lambda: ao.b.__setitem__("u", 1)
        with pytest.raises(MutationPolicyError):
            w["u"] = 2  # another value won: reported as a conflict, as without faults


@pytest.mark.slow
def test_random_fault_soak(aws_env: None, moto_server: str) -> None:
    """12% of requests dropped or answered into the void, 6 writers incrementing one counter:
    every success was applied, every applied increment was reported as a success or as an
    unknown outcome (``successes <= final <= successes + unknowns``)."""
    writers, per_writer = 6, 10
    with FaultProxy(moto_server) as proxy:
        bucket = new_bucket_name()
        setup: BasicS3Dict[Any] = BasicS3Dict(bucket_name=bucket,
                                              client=make_client(moto_server))
        setup["counter"] = 0
        stores = [BasicS3Dict(bucket_name=bucket, client=make_client(proxy.url))
                  for _ in range(writers)]
        for d in stores:  # probe while healthy
            d.setdefault_if("__prime__", default_value=0, condition=ANY_ETAG,
                            expected_etag=ITEM_NOT_AVAILABLE)
        proxy.rng.seed(int(os.environ.get("PERSIDICT_SOAK_SEED", "12")))
        proxy.fault_rate = 0.12
        proxy.fault_delay = 0.3  # the others keep writing while an answer is being lost
        tally = {"success": 0, "unknown": 0, "failed": 0}
        lock = threading.Lock()
        deadline = time.monotonic() + 240

        def work(d: BasicS3Dict[Any]) -> None:
            for _ in range(per_writer):
                if time.monotonic() > deadline:
                    return
                try:
                    d.transform_item("counter", transformer=increment, n_retries=12)
                    outcome = "success"
                except OutcomeUnknownError:
                    outcome = "unknown"
                except (BackendError, ConcurrencyConflictError):
                    outcome = "failed"  # definitively not applied
                with lock:
                    tally[outcome] += 1

        threads = [threading.Thread(target=work, args=(d,)) for d in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "the soak did not finish in time"
        proxy.fault_rate = 0.0
        final = setup["counter"]
    print(f"soak: {tally} final={final} faults={proxy.faults} requests={proxy.requests}")
    assert proxy.faults > 0
    assert sum(tally.values()) > writers  # it did run
    assert tally["success"] <= final <= tally["success"] + tally["unknown"], (tally, final)
