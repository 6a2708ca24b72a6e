"""BasicS3Dict and S3Dict against raw boto3 calls, on a real HTTP S3 endpoint (a moto server).

    python tests/benchmarks/bench_s3.py [--quick] [--repeats N] [--batch N]

One run starts a ``ThreadedMotoServer`` on 127.0.0.1 (a free port), points the stores at it by
``endpoint_url`` (dummy credentials in the environment) and times every operation against the
raw boto3 request(s) it needs, on the same bytes, through the very same client (so the client
settings are identical). Each repeat times a batch of keys for ours and for raw, alternating
which goes first; the table shows medians over the repeats, in milliseconds per operation.

Every request is counted with a botocore ``before-send`` hook on the client, for one operation
of each row, ours and raw: request counts are the robust signal on a loaded machine (the moto
server runs in this process and shares its CPU).

Rows and targets (issue 4, "Benchmark rows"):

* BasicS3Dict ``d[k]`` / ``d[k] = v`` / ``d[k] = DELETE_CURRENT`` / ``k in d`` /
  ``get_item_if(k, ETAG_HAS_CHANGED, etag, IF_ETAG_CHANGED)`` (a 304) against get_object +
  read + unpickle / pickle + put_object / delete_object / head_object /
  get_object(IfNoneMatch) -> 304: within 1.2x, with the same number of requests;
* ``del d[k]`` against head_object + delete_object (the two requests needed to raise KeyError);
* S3Dict (local file cache) set and delete within 1.2x of put_object / delete_object (0.309
  paid 2.2-2.6x there for an extra HEAD), a warm read of a mutable S3Dict = one 304, of an
  append-only S3Dict = no request;
* ``get_subdict`` under 0.1 ms, with no request and no new client;
* ``clear()`` of 2,000 objects in at most 3 requests per 1,000.

Not collected by pytest (pyproject ignores tests/benchmarks).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import pickle
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark a checkout without installing it

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
REGION = "us-east-1"
BUCKET = "persidict-bench"
VALUE = {"id": 7, "name": "item-7", "tags": ["a", "b", "c"], "score": 3.5, "blob": "x" * 200}
RATIO_TARGET = 1.2
SUBDICT_TARGET_MS = 0.1
CLEAR_OBJECTS = 2000

Op = Callable[[str], Any]


class RequestCounter:
    """A botocore ``before-send`` hook: counts the HTTP requests the client sends."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def __call__(self, request: Any, **_: Any) -> None:
        self.methods.append(request.method)

    def reset(self) -> None:
        self.methods = []

    def summary(self) -> str:
        if not self.methods:
            return "0"
        return f"{len(self.methods)} ({' '.join(self.methods)})"


@dataclass
class Row:
    """One operation, ours against raw; ``prepare`` restores the keys' state (untimed)."""

    name: str
    ours: Op
    raw: Op
    raw_label: str
    prepare_ours: Callable[[list[str]], None] | None = None
    prepare_raw: Callable[[list[str]], None] | None = None
    key_prefix: str = ""  # rows that delete work on keys of their own
    ours_ms: list[tuple[float, float]] = field(default_factory=list)  # (wall, cpu)
    raw_ms: list[tuple[float, float]] = field(default_factory=list)
    ours_requests: str = ""
    raw_requests: str = ""
    n_ours: int = 0
    n_raw: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def timed(fn: Op, keys: list[str]) -> tuple[float, float]:
    """Wall and CPU milliseconds per call of ``fn`` over ``keys``.

    The CPU time is this process's, the moto server's threads included: the work done per
    operation by both ends, which a busy machine disturbs less than wall time.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for k in keys:
        fn(k)
    n = len(keys)
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def count_one(counter: RequestCounter, fn: Op, prepare: Callable[[list[str]], None] | None,
              key: str) -> tuple[str, int]:
    if prepare is not None:
        prepare([key])
    counter.reset()
    fn(key)
    n = len(counter.methods)
    summary = counter.summary()
    counter.reset()
    return summary, n


def build_rows(client: Any, base_dir: str) -> tuple[list[Row], dict[str, Any]]:
    from botocore.exceptions import ClientError

    from persidict import (
        DELETE_CURRENT,
        ETAG_HAS_CHANGED,
        IF_ETAG_CHANGED,
        VALUE_NOT_RETRIEVED,
        BasicS3Dict,
        S3Dict,
    )

    basic: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="basic", client=client)
    cached: S3Dict[Any] = S3Dict(bucket_name=BUCKET, root_prefix="cached", client=client,
                                 base_dir=base_dir)
    cached_ao: S3Dict[Any] = S3Dict(bucket_name=BUCKET, root_prefix="cached_ao", client=client,
                                    base_dir=base_dir, append_only=True)
    payload = pickle.dumps(VALUE, protocol=5)
    assert basic._serializer.encode(VALUE) == payload, "raw and ours must send the same bytes"

    def obj(prefix: str) -> Callable[[str], str]:
        return lambda k: f"{prefix}/{k}.pkl"

    raw_key = obj("raw")

    def raw_get(k: str) -> Any:
        return pickle.loads(client.get_object(Bucket=BUCKET, Key=raw_key(k))["Body"].read())

    def raw_put(k: str) -> Any:
        return client.put_object(Bucket=BUCKET, Key=raw_key(k), Body=pickle.dumps(VALUE, 5),
                                 ContentType="application/octet-stream")

    def raw_delete(k: str) -> Any:
        return client.delete_object(Bucket=BUCKET, Key=raw_key(k))

    def raw_head(k: str) -> Any:
        return client.head_object(Bucket=BUCKET, Key=raw_key(k))

    def raw_head_delete(k: str) -> Any:
        etag = raw_head(k)["ETag"]
        return client.delete_object(Bucket=BUCKET, Key=raw_key(k), IfMatch=etag)

    raw_etags: dict[str, str] = {}

    def raw_get_304(k: str) -> None:
        try:
            client.get_object(Bucket=BUCKET, Key=raw_key(k), IfNoneMatch=raw_etags[k])
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 304:
                raise
            return
        raise AssertionError("expected 304")

    def fill_raw(keys: list[str]) -> None:
        for k in keys:
            raw_put(k)

    def fill(store: Any) -> Callable[[list[str]], None]:
        def run(keys: list[str]) -> None:
            for k in keys:
                store[k] = VALUE
        return run

    def set_to(store: Any) -> Op:
        def run(k: str) -> None:
            store[k] = VALUE
        return run

    def delete_current(store: Any) -> Op:
        def run(k: str) -> None:
            store[k] = DELETE_CURRENT
        return run

    def del_item(store: Any) -> Op:
        def run(k: str) -> None:
            del store[k]
        return run

    basic_etags: dict[str, Any] = {}  # ETagValue strings

    def conditional_get(k: str) -> Any:
        r = basic.get_item_if(k, condition=ETAG_HAS_CHANGED, expected_etag=basic_etags[k],
                              retrieve_value=IF_ETAG_CHANGED)
        assert r.new_value is VALUE_NOT_RETRIEVED
        return r

    rows = [
        Row("BasicS3Dict `d[k]`", basic.__getitem__, raw_get,
            "get_object + read + pickle.loads"),
        Row("BasicS3Dict `d[k] = v`", set_to(basic), raw_put, "put_object"),
        Row("BasicS3Dict `d[k] = DELETE_CURRENT`", delete_current(basic), raw_delete,
            "delete_object", fill(basic), fill_raw, key_prefix="dc-"),
        Row("BasicS3Dict `del d[k]`", del_item(basic), raw_head_delete,
            "head_object + delete_object", fill(basic), fill_raw, key_prefix="del-"),
        Row("BasicS3Dict `k in d`", basic.__contains__, raw_head, "head_object"),
        Row("BasicS3Dict `get_item_if` (304)", conditional_get, raw_get_304,
            "get_object IfNoneMatch -> 304"),
        Row("S3Dict `d[k] = v`", set_to(cached), raw_put, "put_object"),
        Row("S3Dict `d[k] = DELETE_CURRENT`", delete_current(cached), raw_delete,
            "delete_object", fill(cached), fill_raw, key_prefix="dc-"),
        Row("S3Dict `del d[k]`", del_item(cached), raw_head_delete,
            "head_object + delete_object", fill(cached), fill_raw, key_prefix="del-"),
        Row("S3Dict warm read (mutable)", cached.__getitem__, raw_get_304,
            "get_object IfNoneMatch -> 304"),
        Row("S3Dict warm read (append-only)", cached_ao.__getitem__, raw_get_304,
            "get_object IfNoneMatch -> 304"),
    ]
    stores = {"basic": basic, "cached": cached, "cached_ao": cached_ao,
              "raw_etags": raw_etags, "basic_etags": basic_etags, "payload": payload}
    return rows, stores


def populate(stores: dict[str, Any], client: Any, keys: list[str]) -> None:
    """Give every read row its items (and warm the caches and the capability probe)."""
    from persidict import ANY_ETAG, ITEM_NOT_AVAILABLE

    basic, cached, cached_ao = stores["basic"], stores["cached"], stores["cached_ao"]
    for k in keys:
        client.put_object(Bucket=BUCKET, Key=f"raw/{k}.pkl", Body=stores["payload"],
                          ContentType="application/octet-stream")
        stores["raw_etags"][k] = client.head_object(Bucket=BUCKET, Key=f"raw/{k}.pkl")["ETag"]
        basic[k] = VALUE
        stores["basic_etags"][k] = basic.etag(k)
        cached[k] = VALUE
        assert cached[k] == VALUE
        if k not in cached_ao:
            cached_ao[k] = VALUE
        assert cached_ao[k] == VALUE
    # The first conditional write probes the endpoint's capabilities (once per endpoint).
    basic.set_item_if("probe-warmup", value=VALUE, condition=ANY_ETAG,
                      expected_etag=ITEM_NOT_AVAILABLE)


def measure(rows: list[Row], all_keys: list[str], repeats: int,
            counter: RequestCounter) -> None:
    for row in rows:  # warm up every path, then count the requests of one operation each
        keys = [row.key_prefix + k for k in all_keys[:2]]
        for fn, prepare in ((row.ours, row.prepare_ours), (row.raw, row.prepare_raw)):
            if prepare is not None:
                prepare(keys)
            timed(fn, keys)
        row.ours_requests, row.n_ours = count_one(counter, row.ours, row.prepare_ours, keys[0])
        row.raw_requests, row.n_raw = count_one(counter, row.raw, row.prepare_raw, keys[0])
    gc.collect()
    gc.disable()
    try:
        for rep in range(repeats):
            for row in rows:
                keys = [row.key_prefix + k for k in all_keys]
                sides = [(row.ours, row.prepare_ours, row.ours_ms),
                         (row.raw, row.prepare_raw, row.raw_ms)]
                if rep % 2:
                    sides.reverse()
                for fn, prepare, samples in sides:
                    if prepare is not None:
                        prepare(keys)
                    samples.append(timed(fn, keys))
    finally:
        gc.enable()


def measure_subdict(stores: dict[str, Any], client: Any, counter: RequestCounter,
                    repeats: int) -> list[tuple[str, float, float, str, bool]]:
    """Median wall and CPU ms per ``get_subdict`` call, its requests, whether it shares the
    parent's client."""
    out = []
    for name, store in (("BasicS3Dict", stores["basic"]), ("S3Dict", stores["cached"])):
        n = 200
        wall: list[float] = []
        cpu: list[float] = []
        counter.reset()
        same_client = True
        for _ in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            for i in range(n):
                store.get_subdict(f"sub{i % 7}")
            wall.append((time.perf_counter() - w) / n * 1e3)
            cpu.append((time.process_time() - c) / n * 1e3)
            same_client = same_client and _client_of(store.get_subdict("sub")) is client
        requests = counter.summary()
        out.append((f"{name} `get_subdict`", statistics.median(wall), statistics.median(cpu),
                    requests, same_client))
    counter.reset()
    return out


def _client_of(store: Any) -> Any:
    """The boto3 client of a BasicS3Dict, or of the BasicS3Dict inside an S3Dict."""
    from persidict import BasicS3Dict

    return (store if isinstance(store, BasicS3Dict) else store._s3).s3_client


def measure_clear(stores: dict[str, Any], client: Any, counter: RequestCounter,
                  rounds: int) -> list[tuple[float, str, int]]:
    from persidict import BasicS3Dict

    store: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="clear", client=client)
    payload = stores["payload"]
    results = []
    for _ in range(rounds):
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: client.put_object(
                Bucket=BUCKET, Key=f"clear/k{i:05d}.pkl", Body=payload), range(CLEAR_OBJECTS)))
        assert len(store) == CLEAR_OBJECTS
        counter.reset()
        start = time.perf_counter()
        store.clear()
        elapsed = (time.perf_counter() - start) * 1e3
        n = len(counter.methods)
        results.append((elapsed, _compact(counter.methods), n))
        counter.reset()
        assert len(store) == 0
    return results


def _compact(methods: list[str]) -> str:
    counts: dict[str, int] = {}
    for m in methods:
        counts[m] = counts.get(m, 0) + 1
    return f"{len(methods)} (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="keys per timed batch")
    from bench_json import add_json_option, progress, write_json
    from bench_json import row as record

    add_json_option(parser)
    args = parser.parse_args()
    repeats = args.repeats or (9 if args.quick else 41)
    batch = args.batch or (10 if args.quick else 20)

    for name, value in DUMMY_CREDENTIALS.items():
        os.environ[name] = value
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        os.environ.pop(name, None)

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request

    from persidict.s3_backend import make_s3_client

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    base_dir = tempfile.mkdtemp(prefix="bench_s3_")
    try:
        client = make_s3_client(region=REGION, endpoint_url=endpoint)
        counter = RequestCounter()
        client.meta.events.register("before-send.s3.*", counter)
        client.create_bucket(Bucket=BUCKET)
        rows, stores = build_rows(client, base_dir)
        keys = [f"k{i:04d}" for i in range(batch)]
        populate(stores, client, keys)
        progress(f"{len(rows)} operations x {repeats} repeats x {batch} keys")
        measure(rows, keys, repeats, counter)
        progress("get_subdict and clear()")
        subdict = measure_subdict(stores, client, counter, repeats)
        clear = measure_clear(stores, client, counter, 1 if args.quick else 3)
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)

    print(f"# S3 stores vs raw boto3 on a moto server over HTTP: Python "
          f"{platform.python_version()}, {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {repeats} "
          f"repeats x {batch} keys, ms per operation\n")
    print("Result: PASS when ours sends no more requests than raw and the wall-clock ratio is "
          "within the target; `cpu ratio` (this process's CPU, moto server included) is the "
          "steadier second opinion on a busy machine.\n")
    print("| operation | ours ms | raw ms | raw request(s) | ratio | cpu ratio | target "
          "| requests ours | requests raw | result |")
    print("|---|---:|---:|---|---:|---:|---|---|---|---|")
    misses = 0
    records = []
    for row in rows:
        ours = statistics.median(w for w, _ in row.ours_ms)
        raw = statistics.median(w for w, _ in row.raw_ms)
        cpu_ratio = (statistics.median(c for _, c in row.ours_ms)
                     / max(statistics.median(c for _, c in row.raw_ms), 1e-9))
        ratio = ours / raw
        if "append-only" in row.name:
            target = "0 requests"
            ok = row.n_ours == 0
        else:
            target = f"<= {RATIO_TARGET}x, same requests"
            ok = ratio <= RATIO_TARGET and row.n_ours <= row.n_raw
        misses += not ok
        records.append(record(row.name, {"raw boto3": ratio},
                              None if "append-only" in row.name else RATIO_TARGET,
                              "PASS" if ok else "MISS"))
        print(f"| {row.name} | {ours:.3f} | {raw:.3f} | {row.raw_label} | {ratio:.2f} | "
              f"{cpu_ratio:.2f} | {target} | {row.ours_requests} | {row.raw_requests} | "
              f"{'PASS' if ok else 'MISS'} |")
    for name, ms, cpu_ms, requests, same_client in subdict:
        ok = ms < SUBDICT_TARGET_MS and requests == "0" and same_client
        misses += not ok
        print(f"| {name} | {ms:.4f} (cpu {cpu_ms:.4f}) | | | | | < {SUBDICT_TARGET_MS} ms, "
              f"0 requests, same client "
              f"| {requests} | | {'PASS' if ok else 'MISS'}"
              f"{'' if same_client else ' (new client!)'} |")
    limit = 3 * CLEAR_OBJECTS // 1000
    for elapsed, requests, n in clear:
        ok = n <= limit
        misses += not ok
        print(f"| `clear()` of {CLEAR_OBJECTS:,} objects | {elapsed:.1f} | | | | | "
              f"<= {limit} requests | {requests} | | {'PASS' if ok else 'MISS'} |")
    print(f"\n{misses} row(s) missed.")
    write_json(args.json, "bench_s3", args.quick, records)


if __name__ == "__main__":
    main()
