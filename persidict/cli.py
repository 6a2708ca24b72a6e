"""``persidict`` (also ``python -m persidict``): look into any store from a shell.

::

    persidict ls STORE [PREFIX]      # the keys (under PREFIX: a/b or a b)
    persidict du STORE               # items and bytes
    persidict get STORE KEY...       # values (KEY: a/b/c)
    persidict cleanup STORE          # delete stale temp files left by killed writers
    persidict demo [--dir D] [--n N] # the tour of a FileDirDict (also: persidict with no command)

``STORE`` is a directory (a ``FileDirDict``; ``--format`` picks its serialization format, pkl by
default) or ``s3://bucket/prefix`` (``--endpoint-url``; credentials from the usual AWS
variables). ``--json`` prints JSON. Bad arguments and unreadable stores exit with status 2 and a
one-line message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

from .file_scan import STALE_TEMP_AGE

__all__ = ["main"]

_COMMANDS: Final = ("ls", "du", "get", "cleanup", "demo")


class UsageError(Exception):
    """Exit status 2 with this one-line message."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line, at most 300 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _key(text: str) -> tuple[str, ...]:
    parts = tuple(p for p in text.replace(os.sep, "/").split("/") if p)
    if not parts:
        raise UsageError(f"not a key: {text!r} (components separated by '/')")
    return parts


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client that gives up quickly (a CLI should not hang on a dead endpoint)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise UsageError('S3 stores need boto3: pip install "persidict[aws]"') from exc
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def open_store(
    where: str,
    fmt: str,
    endpoint_url: str | None,
    s3_store: Callable[[str, str, Any], Any] | None = None,
) -> Any:
    """The store at ``where`` (a directory or ``s3://bucket/prefix``); UsageError if it does not
    exist or cannot be reached.

    ``s3_store(bucket, prefix, client)`` builds the S3 store (default: a ``BasicS3Dict`` of
    ``fmt``); the bucket has been checked by then.
    """
    import persidict

    if where.startswith("s3://"):
        bucket, _, prefix = where[len("s3://") :].partition("/")
        if not bucket:
            raise UsageError(f"an S3 store needs a bucket: s3://bucket/prefix, got {where!r}")
        client = s3_client(endpoint_url)
        try:
            client.head_bucket(Bucket=bucket)  # fail here, fast, rather than mid-listing
            if s3_store is not None:
                return s3_store(bucket, prefix.strip("/"), client)
            return persidict.BasicS3Dict(
                bucket_name=bucket, root_prefix=prefix.strip("/"), serialization_format=fmt,
                client=client,
            )
        except Exception as exc:
            raise UsageError(f"cannot reach {where}: {one_line(exc)}") from exc
    if "://" in where:
        raise UsageError(f"unknown store {where!r}: give a directory or s3://bucket/prefix")
    path = os.path.expanduser(where)
    if not os.path.isdir(path):
        raise UsageError(f"no such store directory: {where}")
    return persidict.FileDirDict(base_dir=path, serialization_format=fmt)


def _sizes(store: Any) -> tuple[int, int]:
    """(items, bytes) of every object of the store (all formats: what the store takes up)."""
    import persidict

    if isinstance(store, persidict.BasicS3Dict):
        count = size = 0
        pages = store.s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket_name, Prefix=store.root_prefix
        )
        for page in pages:
            for obj in page.get("Contents", ()):
                count += 1
                size += int(obj["Size"])
        return count, size
    count = size = 0
    for dirpath, _, files in os.walk(store.base_dir):
        for name in files:
            try:
                size += os.stat(os.path.join(dirpath, name), follow_symlinks=False).st_size
                count += 1
            except OSError:
                pass
    return count, size


def _printable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def run(args: argparse.Namespace) -> Any:
    """Run one store command; its output (text, or data for --json)."""
    store = open_store(args.store, args.format, args.endpoint_url)
    if args.command == "ls":
        view = store.get_subdict(_key(args.prefix)) if args.prefix else store
        keys = ["/".join(k) for k in view]
        keys.sort()
        return keys if args.json else "\n".join(keys) or "(no keys)"
    if args.command == "du":
        count, size = _sizes(store)
        items = len(store)
        if args.json:
            return {"items": items, "objects": count, "bytes": size}
        return f"{items} items ({args.format}); {count} objects, {size} bytes in all"
    if args.command == "get":
        values: dict[str, Any] = {}
        for text in args.keys:
            key = _key(text)
            try:
                values[text] = store[key]
            except KeyError:
                raise UsageError(f"no such key: {text}") from None
        if args.json:
            return {k: _printable(v) for k, v in values.items()}
        if len(values) == 1:
            return repr(next(iter(values.values())))
        return "\n".join(f"{k}: {v!r}" for k, v in values.items())
    # cleanup
    remover = getattr(store, "remove_stale_temp_files", None)
    removed = int(remover(args.max_age)) if remover is not None else 0
    if args.json:
        return {"removed": removed}
    return f"removed {removed} stale temp files"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``persidict``."""
    parser = _Parser(prog="persidict", description="Look into persidict stores.")
    common = _Parser(add_help=False)
    common.add_argument("store", metavar="STORE", help="a directory or s3://bucket/prefix")
    common.add_argument("--format", default="pkl", help="serialization format (default pkl)")
    common.add_argument("--endpoint-url", help="an S3-compatible endpoint (MinIO, Ceph, R2...)")
    common.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ls = sub.add_parser("ls", parents=[common], help="list the keys")
    ls.add_argument("prefix", nargs="?", metavar="PREFIX", help="only keys under it (a/b)")
    sub.add_parser("du", parents=[common], help="items and bytes")
    get = sub.add_parser("get", parents=[common], help="print values")
    get.add_argument("keys", nargs="+", metavar="KEY", help="a key, components joined by '/'")
    cleanup = sub.add_parser("cleanup", parents=[common], help="delete stale temp files")
    cleanup.add_argument("--max-age", type=float, default=STALE_TEMP_AGE, metavar="SECONDS",
                         help=f"only temp files older than this (default {STALE_TEMP_AGE:.0f})")
    demo = sub.add_parser("demo", help="a short tour of a FileDirDict, with timings")
    demo.add_argument("--dir", default=None, help="keep the store in this folder")
    demo.add_argument("--n", type=int, default=1000, help="number of items (default 1000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``persidict``; no command (or only demo options) runs the demo."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["demo", *argv]
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .__main__ import main as demo

        return demo([*(["--dir", args.dir] if args.dir else []), "--n", str(args.n)])
    try:
        out = run(args)
    except UsageError as exc:
        print(f"persidict: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"persidict: {args.command} {args.store}: {one_line(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, sort_keys=True) if args.json else out)
    return 0
