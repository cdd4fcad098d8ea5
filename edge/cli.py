"""``parkedge``: the daemon's program and the field engineer's tool.

Exit codes: 0 success, 1 failure, 2 bad input. Errors are one line on stderr.
Commands that ask the running daemon talk to it over its local socket
(``cli.socket`` in the site file); they find the site file from ``--config``,
``$PARKEDGE_CONFIG`` or the embedded default site.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_SITE = "park-a"


class CliError(Exception):
    """A one-line problem; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


def _config_path(args: argparse.Namespace) -> Path:
    from edge.config import embedded_site_path

    given = getattr(args, "config", None) or os.environ.get("PARKEDGE_CONFIG")
    return Path(given) if given else embedded_site_path(DEFAULT_SITE)


def _load(args: argparse.Namespace) -> Any:
    from edge.config import ConfigInvalid, load_site

    path = _config_path(args)
    try:
        return load_site(path, getattr(args, "set", None) or ())
    except ConfigInvalid as e:
        raise CliError(str(e), EXIT_BAD_INPUT) from e


def _print(doc: Any, as_json: bool, text: str | None = None) -> None:
    if as_json or text is None:
        print(json.dumps(doc, indent=None if as_json else 2, default=str))
    else:
        print(text)


# --------------------------------------------------------------------------- commands


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge.config import ConfigInvalid, load_site

    try:
        site = load_site(args.file, args.set or ())
    except ConfigInvalid as e:
        for err in e.errors:
            print(err, file=sys.stderr)
        return EXIT_BAD_INPUT
    n_points = sum(len(d.points) for d in site.devices)
    _print({"file": str(args.file), "site": site.id, "devices": len(site.devices), "points": n_points,
            "valid": True}, args.json,
           f"{args.file}: ok: site {site.id}, {len(site.devices)} devices, {n_points} points")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from edge.daemon import run_daemon

    return run_daemon(_load(args))


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.bench import run_benchmarks

    report = run_benchmarks(quick=args.quick)
    _print(report, args.json, _bench_text(report))
    return EXIT_OK


def _bench_text(report: dict[str, Any]) -> str:
    lines = []
    for name, section in report.items():
        lines.append(f"{name}:")
        if isinstance(section, dict):
            for k, v in section.items():
                lines.append(f"  {k}: {json.dumps(v, default=str)}")
        else:
            lines.append(f"  {section}")
    return "\n".join(lines)


def cmd_daemon(args: argparse.Namespace) -> int:
    """Every command that asks the running daemon over its socket."""
    from edge.ctl import request

    site = _load(args)
    req: dict[str, Any] = {"cmd": args.cmd}
    for key in ("device", "point", "value", "ttl", "reason", "mode", "action", "file"):
        if getattr(args, key, None) is not None:
            req[key] = getattr(args, key)
    if req.get("file"):
        req["file"] = str(Path(req["file"]).resolve())
    try:
        reply = request(site.cli.socket, req)
    except OSError as e:
        raise CliError(f"cannot reach the daemon at {site.cli.socket}: {e.strerror or e}") from e
    if not reply.get("ok", False):
        raise CliError(str(reply.get("error", "the daemon refused the request")),
                       EXIT_BAD_INPUT if reply.get("bad_input") else EXIT_FAIL)
    _print(reply.get("result"), args.json, reply.get("text"))
    return EXIT_OK


def cmd_local(args: argparse.Namespace) -> int:
    """Operator tools that work on files, without the daemon."""
    from edge import operator_tools

    result: int = operator_tools.dispatch(args)
    return result


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="parkedge", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def site_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="site file (default: $PARKEDGE_CONFIG or the embedded park-a)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
        sp.add_argument("--json", action="store_true", help="print one JSON document")

    sp = sub.add_parser("run", help="the daemon in the foreground")
    site_opts(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("check-config", help="validate a site file")
    sp.add_argument("file")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_check_config)

    for name, helptext in (("status", "mode, plan, last tick, devices' health"),
                           ("points", "every point's value, unit, quality and age"),
                           ("forecast", "the forecasts in force")):
        sp = sub.add_parser(name, help=helptext)
        site_opts(sp)
        sp.set_defaults(func=cmd_daemon, cmd=name)

    sp = sub.add_parser("read", help="read one point from the field now")
    site_opts(sp)
    sp.add_argument("device")
    sp.add_argument("point")
    sp.set_defaults(func=cmd_daemon, cmd="read")

    sp = sub.add_parser("write", help="a manual override: clamped, audited, expires by itself")
    site_opts(sp)
    sp.add_argument("device")
    sp.add_argument("point")
    sp.add_argument("value", type=float)
    sp.add_argument("--ttl", required=True, help="how long it holds, e.g. 90s, 15m, 2h")
    sp.add_argument("--reason", required=True)
    sp.set_defaults(func=cmd_daemon, cmd="write")

    sp = sub.add_parser("mode", help="set the control mode")
    site_opts(sp)
    sp.add_argument("mode", choices=["auto", "manual", "safe"])
    sp.set_defaults(func=cmd_daemon, cmd="mode")

    sp = sub.add_parser("plan", help="the plan in force; load or sign a plan")
    site_opts(sp)
    sp.add_argument("action", choices=["show", "load", "sign"])
    sp.add_argument("file", nargs="?")
    sp.add_argument("--key", help="private key file (sign)")
    sp.add_argument("--key-id", help="key id to put in the envelope (sign)")
    sp.add_argument("--out", help="where to write the signed envelope (sign; default stdout)")
    sp.set_defaults(func=cmd_daemon, cmd="plan")

    sp = sub.add_parser("buffer", help="what the SQLite buffer holds and has not yet sent")
    site_opts(sp)
    sp.add_argument("action", choices=["stats", "export"])
    sp.add_argument("--out", help="export: CSV file (default stdout)")
    sp.add_argument("--pending", action="store_true", help="export: only rows not yet acknowledged by the broker")
    sp.set_defaults(func=cmd_local, cmd="buffer")

    sp = sub.add_parser("keys", help="signing keys for plans and commands")
    sp.add_argument("action", choices=["new"])
    sp.add_argument("key_id")
    sp.add_argument("--out-dir", default=".")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_local, cmd="keys")

    sp = sub.add_parser("bench", help="the performance benchmarks")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--quick", action="store_true", help="fewer repetitions")
    sp.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "plan" and args.action == "sign":
        args.func = cmd_local
    try:
        code: int = args.func(args)
    except CliError as e:
        print(f"parkedge: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return EXIT_FAIL
    return code


if __name__ == "__main__":
    sys.exit(main())
