"""parkedge-sim: the simulated park's command line.

Subcommands register themselves in ``COMMANDS`` (name -> (add_arguments, run));
adding one (e.g. ``evaluate``) is a function pair and one line here.
Exit codes: 2 bad input, 1 failure, 0 success; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .physics import SITES


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site", required=True, choices=SITES)
    p.add_argument("--speed", type=float, default=1.0, help="virtual seconds per wall second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--base-port", type=int, default=None,
                   help="first port (default 15020 park-a, 15120 park-b); 0 = any free ports")
    p.add_argument("--step-s", type=float, default=1.0, help="physics step in virtual seconds")
    p.add_argument("--start", default=None, help="virtual start, ISO 8601 UTC (default: now)")
    p.add_argument("--heartbeat-timeout-s", type=float, default=10.0)
    p.add_argument("--secure", action="store_true", help="OPC UA: add Basic256Sha256 and Aes256_Sha256_RsaPss")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="OPC UA: allow this login (anonymous is then off)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a site option, e.g. --set pv_kwp=5000")
    p.add_argument("--extra-points", type=int, default=0, metavar="N",
                   help="serve N more read-only points, half Modbus, half OPC UA (load tests)")
    p.add_argument("--extra-devices-toml", default=None, metavar="FILE",
                   help="write the extra points' [[devices]] tables (with their endpoints) to FILE")


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


async def _serve(args: argparse.Namespace) -> int:
    from .protocols.opcua_server import OpcUaOptions
    from .runtime import SimPark

    users = dict(u.split(":", 1) for u in args.user)
    options = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    sim = SimPark(args.site, seed=args.seed, speed=args.speed, step_s=args.step_s,
                  start_utc=_parse_start(args.start), host=args.host, base_port=args.base_port,
                  heartbeat_timeout_s=args.heartbeat_timeout_s, options=options,
                  opcua=OpcUaOptions(secure=args.secure, users=users), extra_points=args.extra_points)
    # Before the endpoints are printed: whoever reads them may stop us at once.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sim._stopping.set)
    endpoints = await sim.start()
    for e in endpoints:
        print(e.line(), flush=True)
    if args.extra_devices_toml:
        # Written whole (renamed into place) after the endpoint lines: once it exists,
        # every line is out.
        out = Path(args.extra_devices_toml)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(sim.extra_devices_toml(), encoding="utf-8")
        tmp.replace(out)
    await sim.run()
    await sim.stop()
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from .evaluate.cli import add_arguments

    add_arguments(p)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate.cli import run

    return run(args)


def _add_compare(p: argparse.ArgumentParser) -> None:
    from .evaluate.compare import add_arguments

    add_arguments(p)


def _run_compare(args: argparse.Namespace) -> int:
    from .evaluate.compare import run

    return run(args)


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "serve": (_add_serve, _run_serve),
    "evaluate": (_add_evaluate, _run_evaluate),
    "compare": (_add_compare, _run_compare),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parkedge-sim", description="The simulated park.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, _run) in COMMANDS.items():
        add(sub.add_parser(name))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, KeyError) as exc:
        print(f"parkedge-sim {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"parkedge-sim {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
