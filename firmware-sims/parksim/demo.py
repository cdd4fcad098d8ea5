"""`make demo`: the simulated park, and the daemon running it.

    python -m parksim.demo --site park-a [--speed 10] [--duration 60]

The park's PLCs are served on their default loopback ports (as `parkedge-sim
serve` does); the daemon runs as its own process, exactly as systemd would start
it (`parkedge run` on the embedded site file, state under ./var/demo). Every two
seconds the table shows what the daemon reports over its local socket: its
mode, tick latency, the devices' health, the controller's decision and a few
live readings. Ctrl-C stops both; `--duration` makes it non-interactive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge.ctl import request

from .runtime import SimPark

WATCH = {
    "park-a": [("grid1.p_kw", "grid (+export)"), ("pv1.p_kw", "PV"), ("wind1.p_kw", "wind"),
               ("bess1.p_kw", "battery (+charge)"), ("bess1.soc_frac", "battery SOC"),
               ("chp1.p_kw", "CHP 1"), ("chp2.p_kw", "CHP 2"), ("load_office.p_kw", "office load"),
               ("load_hospital.p_kw", "hospital load"), ("load_heat.p_kw", "heat demand"),
               ("load_cool.p_kw", "cooling demand")],
    "park-b": [("grid1.p_kw", "grid (+export)"), ("pv1.p_kw", "PV"), ("ice1.stored_kwh", "ice stored"),
               ("load_cool.p_kw", "cooling demand"), ("load_heat.p_kw", "heat demand")],
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:12.3f}" if abs(v) < 10 else f"{v:12.1f}"
    return f"{v!s:>12}"


def _screen(site: str, status: dict[str, Any], points: dict[str, Any], elapsed_s: float) -> str:
    lat = status.get("tick_latency_ms", {})
    devices = status.get("devices", {})
    up = sum(1 for h in devices.values() if h.get("up"))
    control = status.get("control") or {}
    lines = [
        f"Park Edge demo: {site}   {elapsed_s:6.0f} s   mode {status.get('mode')}   ticks {status.get('ticks')}"
        f"   tick p50 {lat.get('p50')} ms  p99 {lat.get('p99')} ms",
        f"devices up {up}/{len(devices)}   control: {control.get('reason', 'holding (no controller)')}"
        f"   outbox {status.get('buffer', {}).get('outbox_pending_rows')} rows",
        "",
    ]
    for key, label in WATCH.get(site, []):
        p = points.get(key)
        if p is not None:
            lines.append(f"  {label:<20} {_fmt(p['value'])} {p['unit']:<5} {p['quality']}")
    down = [n for n, h in devices.items() if not h.get("up")]
    if down:
        lines.append(f"\n  down: {', '.join(down)}")
    return "\n".join(lines)


def _start_daemon(args: argparse.Namespace, state: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``parkedge run`` as its own process, on the embedded site file (what systemd would run)."""
    parkedge = Path(sys.executable).with_name("parkedge")
    prog = [str(parkedge)] if parkedge.exists() else [sys.executable, "-m", "edge.cli"]
    cmd = [*prog, "run", "--set", f'store.path="{state / (args.site + ".db")}"',
           "--set", f'cli.socket="{state / "parkedge.sock"}"',
           "--set", f'metrics.listen="127.0.0.1:{args.metrics_port}"']
    env = {**os.environ, "PARKEDGE_CONFIG": str(_site_file(args.site))}
    log_path = state / "daemon.log"
    with open(log_path, "ab") as log:
        # Its own session: Ctrl-C reaches the demo, which then stops the daemon in order.
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True), log_path


def _stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()


async def _main(args: argparse.Namespace, state: Path) -> int:
    sock = state / "parkedge.sock"
    sim = SimPark(args.site, seed=args.seed, speed=args.speed)
    await sim.start()
    sim_task = asyncio.create_task(sim.run())
    print(f"simulated {args.site}: {len(sim.endpoints)} devices served on loopback", flush=True)
    daemon, log_path = await asyncio.to_thread(_start_daemon, args, state)
    print(f"daemon pid {daemon.pid}: logs in {log_path}, metrics on http://127.0.0.1:{args.metrics_port}/metrics",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    code = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            if daemon.poll() is not None:
                print(f"the daemon exited with {daemon.returncode}; see {log_path}", file=sys.stderr)
                code = 1
                break
            try:
                status = await asyncio.to_thread(request, sock, {"cmd": "status"})
                points = await asyncio.to_thread(request, sock, {"cmd": "points"})
            except OSError:
                print("waiting for the daemon's socket ...", flush=True)
                continue
            screen = _screen(args.site, status.get("result") or {}, points.get("result") or {},
                             time.monotonic() - started)
            print(("\033[2J\033[H" if sys.stdout.isatty() else "\n") + screen, flush=True)
            if args.duration and time.monotonic() - started >= args.duration:
                break
    finally:
        await asyncio.to_thread(_stop_daemon, daemon)
        await sim.stop()
        sim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim_task
    print(f"stopped: the daemon's store is {state / (args.site + '.db')}")
    return code


def _site_file(site: str) -> Path:
    from edge.config import embedded_site_path

    return embedded_site_path(site)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="parksim.demo", description=__doc__.split("\n")[0])
    p.add_argument("--site", default="park-a", choices=["park-a", "park-b"])
    p.add_argument("--speed", type=float, default=10.0, help="the park's clock, x real time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--state-dir", default="var/demo")
    p.add_argument("--metrics-port", type=int, default=9108)
    args = p.parse_args(argv)
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_main(args, state))


if __name__ == "__main__":
    sys.exit(main())
