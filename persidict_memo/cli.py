"""``persidict-memo`` (also ``python -m persidict_memo``): see and prune caches from a shell.

::

    persidict-memo ls STORE          # functions: versions, entries, size, newest
    persidict-memo show STORE FUNC   # entries: created, compute seconds, size, arguments
    persidict-memo prune STORE [--older-than 30d] [--max-size 2GB] [--keep-versions 1] [--dry-run]
    persidict-memo clear STORE FUNC [--all-versions]

``STORE`` is a directory or ``s3://bucket/prefix`` (``--endpoint-url`` for S3-compatible
services; credentials and region come from the usual AWS variables and files). ``FUNC`` is
``module.qualname`` as ``ls`` shows it, or any unambiguous ending of it (``simulate``). Tables by
default, ``--json`` for scripts. Bad arguments and stores that cannot be read exit with status 2
and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Final, NoReturn

from persidict.cli import UsageError, one_line, open_store

__all__ = ["main", "parse_duration", "parse_size"]

_SIZE_UNITS: Final = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
    "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER: Final = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes from ``"2GB"``, ``"500 MB"``, ``"1.5GiB"`` or ``"1000"`` (decimal and binary units)."""
    match = _NUMBER.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500MB, 2GB, 1GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str) -> float:
    """Seconds from ``"30d"``, ``"12h"``, ``"15m"``, ``"45s"``, ``"2w"`` or ``"3600"``."""
    match = _NUMBER.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30d, 12h, 15m, 45s)")
    return float(match.group(1)) * _DURATION_UNITS[unit]


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


def human_size(n: int | None) -> str:
    """``1.2 MB``-style bytes (decimal units)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError  # pragma: no cover


def human_age(when: float | None, now: float | None = None) -> str:
    """``3.0 h ago``-style age of a POSIX time."""
    if when is None:
        return "-"
    seconds = max(0.0, (now or time.time()) - when)
    for limit, unit, scale in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / scale:.0f} {unit} ago"
    return f"{seconds / 86400:.1f} d ago"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns, the last one free-width."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------- stores


def open_cli_store(where: str, endpoint_url: str | None) -> Any:
    """The PersiDict a command works on; UsageError when it does not exist or cannot be read.

    An S3 store is an ``S3Dict`` whose local copies go under the default memo cache folder.
    """
    import persidict

    from .stores import default_cache_dir

    def s3_store(bucket: str, prefix: str, client: Any) -> Any:
        return persidict.S3Dict(
            bucket_name=bucket,
            root_prefix=prefix,
            base_dir=os.path.join(os.path.expanduser(default_cache_dir()), "s3"),
            client=client,
        )

    return open_store(where, "pkl", endpoint_url, s3_store)


# ----------------------------------------------------------------------------- commands


def _listing() -> Any:
    from . import progress

    return progress.counter("listing", " objects")


def _functions(store: Any) -> list[Any]:
    from .lifecycle import functions_in
    from .stores import ResultStore

    with _listing() as bar:
        return functions_in(ResultStore(store), bar)


def _resolve(store: Any, name: str) -> Any:
    """The FunctionSummary that ``name`` means (its full name or an unambiguous ending)."""
    summaries = _functions(store)
    full = {f"{s.module}.{s.qualname}": s for s in summaries}
    if name in full:
        return full[name]
    matches = [s for n, s in full.items() if n.endswith("." + name) or s.qualname == name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no cached function {name!r} in this store (see: persidict-memo ls)")
    names = ", ".join(sorted(f"{s.module}.{s.qualname}" for s in matches))
    raise UsageError(f"{name!r} is ambiguous: {names}")


def _function_calls(store: Any, summary: Any) -> tuple[Any, dict[Any, Any]]:
    from .call_keys import SCHEME
    from .inventory import layout_of
    from .lifecycle import scan_calls
    from .stores import ResultStore

    layout = layout_of(ResultStore(store))
    with _listing() as bar:
        return layout, scan_calls(layout, (SCHEME, summary.module, summary.qualname), bar)


def cmd_ls(args: argparse.Namespace, store: Any) -> Any:
    summaries = _functions(store)
    if args.json:
        return [asdict(s) for s in summaries]
    if not summaries:
        return "no cached functions"
    rows = [
        [f"{s.module}.{s.qualname}", str(s.versions), str(s.entries), human_size(s.size_bytes),
         human_age(s.newest)]
        for s in summaries
    ]
    return table(rows, ["FUNCTION", "VERSIONS", "ENTRIES", "SIZE", "NEWEST"])


def cmd_show(args: argparse.Namespace, store: Any) -> Any:
    from .lifecycle import entries

    summary = _resolve(store, args.func)
    layout, calls = _function_calls(store, summary)
    found = list(entries(layout.rs, calls))
    if args.json:
        return [{**asdict(e), "key": "/".join(e.key)} for e in found]
    rows = [
        [human_age(e.created), "-" if e.compute_seconds is None else f"{e.compute_seconds:.3g}",
         human_size(e.size_bytes), e.version, e.host or "-", e.args_repr or "?"]
        for e in found
    ]
    head = f"{summary.module}.{summary.qualname}: {len(found)} entries"
    return head + "\n" + table(rows, ["CREATED", "SECONDS", "SIZE", "VERSION", "HOST", "ARGUMENTS"])


def cmd_prune(args: argparse.Namespace, store: Any) -> Any:
    from .lifecycle import prune_store
    from .stores import ResultStore

    if args.older_than is None and args.max_size is None and args.keep_versions is None:
        raise UsageError("prune needs --older-than, --max-size or --keep-versions")
    with _listing() as bar:
        report = prune_store(
            ResultStore(store),
            older_than=args.older_than,
            max_bytes=args.max_size,
            keep_versions=args.keep_versions,
            dry_run=args.dry_run,
            bar=bar,
        )
    if args.json:
        return asdict(report)
    verb = "would remove" if report.dry_run else "removed"
    return (f"{verb} {report.removed} results ({human_size(report.freed_bytes)}), "
            f"kept {report.kept}")


def cmd_clear(args: argparse.Namespace, store: Any) -> Any:
    summary = _resolve(store, args.func)
    layout, calls = _function_calls(store, summary)
    results = {k: c for k, c in calls.items() if c.result is not None}
    if args.all_versions or not results:
        doomed = calls
        which = "all versions"
    else:  # the code version written last: what the function's current code most likely is
        newest = max(results.values(), key=lambda c: c.result.mtime).result.key[3]
        doomed = {k: c for k, c in calls.items() if k[3] == newest}
        which = f"version {newest}"
    removed = layout.remove([i for c in doomed.values() for i in c.items])
    if args.json:
        return {"function": f"{summary.module}.{summary.qualname}", "removed": removed,
                "versions": "all" if args.all_versions else which}
    return f"removed {removed} results of {summary.module}.{summary.qualname} ({which})"


# ------------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``persidict-memo``."""
    parser = _Parser(
        prog="persidict-memo",
        description="See, size and prune persidict_memo caches (a directory or s3://bucket/prefix).",
    )
    common = _Parser(add_help=False)
    common.add_argument("store", metavar="STORE", help="a directory or s3://bucket/prefix")
    common.add_argument("--endpoint-url", help="an S3-compatible endpoint (MinIO, Ceph, R2...)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("ls", parents=[common], help="the cached functions")
    show = sub.add_parser("show", parents=[common], help="the entries of one function")
    show.add_argument("func", metavar="FUNC", help="module.qualname (or an unambiguous ending)")
    prune = sub.add_parser("prune", parents=[common], help="remove old or surplus results")
    prune.add_argument("--older-than", type=parse_duration, metavar="AGE",
                       help="remove results older than this (30d, 12h, 3600)")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE",
                       help="then remove the oldest results until the rest fit (2GB, 500MB)")
    prune.add_argument("--keep-versions", type=_count, metavar="N",
                       help="keep each function's N most recent code versions")
    prune.add_argument("--dry-run", action="store_true", help="only report what would go")
    clear = sub.add_parser("clear", parents=[common], help="remove a function's results")
    clear.add_argument("func", metavar="FUNC", help="module.qualname (or an unambiguous ending)")
    clear.add_argument("--all-versions", action="store_true",
                       help="every code version (default: the version written last)")
    return parser


_COMMANDS: Final = {"ls": cmd_ls, "show": cmd_show, "prune": cmd_prune, "clear": cmd_clear}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``persidict-memo``; the exit status (0, or 2 for bad arguments and stores)."""
    args = build_parser().parse_args(argv)
    try:
        store = open_cli_store(args.store, args.endpoint_url)
        out = _COMMANDS[args.command](args, store)
    except UsageError as exc:
        print(f"persidict-memo: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store failed mid-command: still one line, status 2
        print(f"persidict-memo: {args.command} {args.store}: {one_line(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, sort_keys=True) if args.json else out)
    return 0
