"""CLI commands that work on files, without the running daemon: signing keys,
signing a plan, and reading the SQLite buffer (read-only, safe while the daemon runs)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from edge.plans import cmd_plan_sign
from edge.signing import cmd_keys_new
from edge.store import cmd_buffer_export, cmd_buffer_stats


def dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "keys":
        return cmd_keys_new(Path(args.out_dir), args.key_id, out=sys.stdout, err=sys.stderr)
    if args.cmd == "plan":  # plan sign
        if not args.file or not args.key:
            print("parkedge plan sign: needs FILE and --key KEY", file=sys.stderr)
            return 2
        with _output(args.out) as out:
            return cmd_plan_sign(Path(args.file), Path(args.key), args.key_id, out=out, err=sys.stderr)
    if args.cmd == "buffer":
        from edge.cli import _load

        site = _load(args)
        if args.action == "stats":
            return cmd_buffer_stats(site.store.path, max_bytes=site.store.max_bytes, as_json=args.json,
                                    out=sys.stdout, err=sys.stderr)
        with _output(args.out) as out:
            return cmd_buffer_export(site.store.path, out, pending_only=args.pending, err=sys.stderr)
    print(f"parkedge: unknown command {args.cmd!r}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if not path:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        yield f
