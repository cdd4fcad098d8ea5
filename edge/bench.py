"""``parkedge bench``: the performance figures of DESIGN.md, measured on the machine at hand.

Sections, each isolated (an exception in one becomes ``{"error": ...}`` for it
and the others still run):

- ``acquisition``: points/s and poll latency per protocol, through the real
  driver clients, against the simulated park;
- ``tick``: the daemon's whole tick (snapshot, control hook, actuation, store
  commit) run in-process against the simulated park, at the site's own points
  and at 1,000 points (half Modbus, half OPC UA by subscription);
- ``store``: ``Store.commit_tick`` rows/s against raw sqlite3, same run;
- ``daemon_rss_bytes``: ``parkedge run`` in a subprocess;
- ``qp``, ``forecast``, ``outbox_drain``: the other modules' own bench
  functions, called if they are there (``{"pending": ...}`` if not);
- ``machine``: what the figures came from.

The simulated park runs as a subprocess (``python -m parksim.cli serve``):
the dependency goes from the sims to edge, never back. It serves the site's
points plus load-test points (``--extra-points``), and writes those points'
site-file tables; the site file is the embedded one with every endpoint
overridden from the lines ``serve`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from drivers.opcua import OpcUaClient
from drivers.types import Quality
from edge.config import SiteConfig, embedded_site_path, load_site
from edge.devices import make_client

__all__ = ["SimProcess", "run_benchmarks"]

_T = TypeVar("_T")
SITE = "park-a"
TARGET_POINTS = 1000  # the goal: tick p99 <= 50 ms at 1,000 points
_DRAIN_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Sizes:
    acquisition_polls: int
    ticks_load: int
    ticks_site: int
    store_ticks: int
    rss_ticks: int
    qp_ticks: int
    qp_peer_ticks: int
    forecast_calls: int
    drain_backlog_h: float


# Ticks are the daemon's real 1 s: the full run spends most of its time there.
_FULL = _Sizes(50, 100, 40, 300, 5, 96, 24, 300, 1.0)
_QUICK = _Sizes(5, 8, 4, 30, 2, 8, 2, 20, 0.05)


def run_benchmarks(*, quick: bool) -> dict[str, Any]:
    """Every section; ``quick`` is the CI smoke size (well under a minute)."""
    sizes = _QUICK if quick else _FULL
    _quiet_logs()
    started = time.time()
    load_at_start = os.getloadavg()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="parkedge-bench-") as tmp:
        work = Path(tmp)
        # CPU-only sections first, before the simulated park takes its share of the cores;
        # the QP first of all: right after the store's fsyncs it measured p50 4.1 ms against
        # 2.9-3.2 ms run alone (same code, same hour)
        out["qp"] = _section(lambda: _optional("edge.control.bench", "bench_qp", ticks=sizes.qp_ticks,
                                               peer_ticks=sizes.qp_peer_ticks))
        out["qp_park_b"] = _section(lambda: _optional("edge.control.bench", "bench_qp", park_name="b",
                                                      ticks=sizes.qp_ticks,
                                                      peer_ticks=sizes.qp_peer_ticks))
        out["store"] = _section(lambda: _store(work, sizes))
        out["forecast"] = _section(lambda: _optional("edge.forecast.bench", "bench_inference",
                                                     n=sizes.forecast_calls))
        out["outbox_drain"] = _section(lambda: _outbox_drain(work, sizes))
        sim = SimProcess(work, extra_points=0)
        sim_error = ""
        try:
            base = _site_points(embedded_site_path(SITE))
            sim = SimProcess(work, extra_points=max(0, TARGET_POINTS - base))
            sim.start()
        except Exception as e:
            sim_error = f"simulated park did not start: {type(e).__name__}: {e}"
        try:
            def needs_sim(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
                return {"error": sim_error} if sim_error else _section(body)

            out["acquisition"] = needs_sim(lambda: _acquisition(sim.site(work, "acq"), sizes))
            out["tick"] = needs_sim(lambda: _ticks(sim, work, sizes))
            out["daemon_rss_bytes"] = needs_sim(lambda: _daemon_rss(sim, work, sizes))
        finally:
            sim.stop()
    out["machine"] = _machine(started, load_at_start)
    order = ("machine", "acquisition", "tick", "store", "daemon_rss_bytes", "qp", "qp_park_b", "forecast",
             "outbox_drain")
    return {k: out[k] for k in order}


def _section(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return body()
    except Exception as e:  # one broken section must not hide the others' figures
        return {"error": f"{type(e).__name__}: {e}"}


def _quiet_logs() -> None:
    """The in-process daemon logs through structlog: to stderr, warnings only, unless set up already."""
    import structlog

    from edge import logs

    if not structlog.is_configured():
        logs.configure(level="warning")


# --------------------------------------------------------------------------- the simulated park


class SimProcess:
    """``parkedge-sim serve`` in a subprocess, and the site files that point at it."""

    def __init__(self, work: Path, *, extra_points: int, timeout_s: float = 60.0) -> None:
        self.work = work
        self.extra_points = extra_points
        self.timeout_s = timeout_s
        self.endpoints: dict[str, str] = {}  # device -> url, from the lines serve prints
        self.extra_toml = work / "extra-devices.toml"
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "parksim.cli", "serve", "--site", SITE, "--base-port", "0",
               "--seed", "0", "--extra-points", str(self.extra_points),
               "--extra-devices-toml", str(self.extra_toml)]
        err = (self.work / "sim-stderr.txt").open("w")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        self._reader = threading.Thread(target=self._read_lines, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.timeout_s
        while not self.extra_toml.exists():  # written after every endpoint line
            if self._proc.poll() is not None:
                tail = (self.work / "sim-stderr.txt").read_text()[-500:].strip()
                raise RuntimeError(f"parkedge-sim serve exited {self._proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"parkedge-sim serve not ready after {self.timeout_s:g} s")
            time.sleep(0.1)
        wanted = {d["name"] for d in self._devices(self.load_file())}
        while not wanted <= self.endpoints.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no endpoint printed for {sorted(wanted - self.endpoints.keys())}")
            time.sleep(0.05)

    def _read_lines(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:  # "name protocol url [unit=N]"
            parts = line.split()
            if len(parts) >= 3:
                self.endpoints[parts[0]] = parts[2]

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def load_file(self) -> Path:
        """The embedded site file plus the extra points' devices (a generated file, never committed)."""
        path = self.work / f"{SITE}-{TARGET_POINTS}.toml"
        if not path.exists():
            text = embedded_site_path(SITE).read_text(encoding="utf-8")
            path.write_text(text + "\n\n# --- load-test points (parkedge-sim --extra-points)\n\n"
                            + self.extra_toml.read_text(encoding="utf-8"), encoding="utf-8")
        return path

    @staticmethod
    def _devices(path: Path) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = tomllib.loads(path.read_text(encoding="utf-8")).get("devices", [])
        return devices

    def overrides(self, path: Path, tag: str) -> list[str]:
        """``--set`` items: every endpoint from the served park, and this run's own files and ports."""
        items = [f'store.path="{self.work / f"store-{tag}.db"}"', f'cli.socket="{self.work / f"{tag}.sock"}"',
                 f'metrics.listen="127.0.0.1:{_free_port()}"']
        for i, d in enumerate(self._devices(path)):
            items.append(f'devices[{i}].endpoint="{self.endpoints[d["name"]]}"')
        return items

    def site(self, work: Path, tag: str, *, load: bool = True) -> SiteConfig:
        path = self.load_file() if load else embedded_site_path(SITE)
        return load_site(path, self.overrides(path, tag), base_dir=work)


def _site_points(path: Path) -> int:
    return sum(len(d.get("points", [])) for d in SimProcess._devices(path))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- acquisition


def _acquisition(site: SiteConfig, sizes: _Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for protocol in ("modbus", "opcua"):
        out[protocol] = _run_bounded(_poll_protocol(site, protocol, sizes.acquisition_polls))
    out["note"] = ("every device of the protocol polled back to back, one task a device as in the "
                   "daemon; OPC UA by batched reads (the subscription path is in the tick section)")
    return out


async def _poll_protocol(site: SiteConfig, protocol: str, polls: int) -> dict[str, Any]:
    devices = [d for d in site.devices if d.protocol == protocol]
    if protocol == "opcua":  # a throughput needs reads; a subscription only delivers what changed
        devices = [dataclasses.replace(d, subscription=None) for d in devices]
    clients = {d.name: make_client(d) for d in devices}
    latencies: list[float] = []
    good = 0
    try:
        for c in clients.values():
            if isinstance(c, OpcUaClient) and not await c.wait_connected(30.0):
                raise TimeoutError(f"{c.name}: no OPC UA session after 30 s")
        await asyncio.gather(*(c.read_all() for c in clients.values()))  # connect, learn the plan
        requests_before = sum(c.health().requests for c in clients.values())

        async def poll(name: str) -> None:
            nonlocal good
            for _ in range(polls):
                t0 = time.perf_counter()
                readings = await clients[name].read_all()
                latencies.append(time.perf_counter() - t0)
                good += sum(1 for r in readings.values() if r.quality is Quality.GOOD)

        t0 = time.perf_counter()
        await asyncio.gather(*(poll(n) for n in clients))
        wall_s = time.perf_counter() - t0
        requests = sum(c.health().requests for c in clients.values()) - requests_before
    finally:
        for c in clients.values():
            with contextlib.suppress(Exception):
                await c.close()
    points = sum(len(d.points) for d in devices)
    return {"devices": len(devices), "points": points, "polls": polls, "readings": points * polls,
            "good_readings": good, "wall_s": round(wall_s, 3), "points_per_s": round(good / wall_s, 1),
            "poll_ms": _pct(latencies), "requests_per_poll_all_devices": round(requests / polls, 2)}


# --------------------------------------------------------------------------- the tick


def _ticks(sim: SimProcess, work: Path, sizes: _Sizes) -> dict[str, Any]:
    load = sim.site(work, "tick-load")
    site = sim.site(work, "tick-site", load=False)
    return {
        "load": _run_bounded(_run_daemon(load, sizes.ticks_load)),
        "site": _run_bounded(_run_daemon(site, sizes.ticks_site)),
        "note": ("Daemon.tick work (snapshot, control hook, actuation, store commit) from "
                 "Daemon.ticks; loop_lag_ms is how late a 10 ms timer fires on the daemon's loop "
                 "(subscription callbacks and polls share it); control hook: "
                 + ("none wired (holds setpoints)" if _no_controller(site) else "the site's controller")),
    }


def _no_controller(site: SiteConfig) -> bool:
    return site.plant is None  # edge.runner builds a controller exactly when the site has [assets]


async def _run_daemon(site: SiteConfig, ticks: int, warmup_timeout_s: float = 60.0) -> dict[str, Any]:
    from edge.daemon import Daemon

    configured = sum(len(d.points) for d in site.devices)
    daemon = Daemon(site, serve_metrics=False)
    task = asyncio.create_task(daemon.run(handle_signals=False), name="bench-daemon")
    lags: list[float] = []

    async def watch_loop() -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - t0 - 0.01)

    watcher: asyncio.Task[None] | None = None
    try:
        # Warm up until every configured point has arrived good (sessions up, plans learnt).
        deadline = time.monotonic() + warmup_timeout_s
        while not _all_good(daemon, configured):
            if task.done():
                task.result()
                raise RuntimeError("the daemon stopped during warm-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every point good after {warmup_timeout_s:g} s: {_qualities(daemon)}")
            await asyncio.sleep(0.1)
        # ... and until the controller has made its first decision: that one tick pays the
        # QP's setup and the forecasters' first refresh once; it is reported on its own
        # (first_decision_tick_ms), not mixed into the steady-state percentiles.
        first_tick_ms: float | None = None
        if daemon.controller is not None:
            while daemon.last_decision.get("reason") in (None, "holding"):
                if task.done() or time.monotonic() > deadline:
                    raise RuntimeError("the controller never made a decision during warm-up")
                await asyncio.sleep(0.05)
            first_tick_ms = round(max(daemon.ticks.durations_s[-3:]) * 1e3, 3)
            await asyncio.sleep(2 * site.control.tick_s)  # two more ticks to settle
        count0, overruns0, seq0 = daemon.ticks.count, daemon.ticks.overruns, daemon.store.next_seq
        watcher = asyncio.create_task(watch_loop())
        deadline = time.monotonic() + 10.0 * ticks * site.control.tick_s + 30.0
        while daemon.ticks.count < count0 + ticks:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon stopped ticking at {daemon.ticks.count - count0}/{ticks}")
            await asyncio.sleep(0.05)
        n = daemon.ticks.count - count0
        durations = daemon.ticks.durations_s[-n:]
        rows = daemon.store.next_seq - seq0
        qualities = _qualities(daemon)
        measured_points = len(daemon.last_snapshot.points) if daemon.last_snapshot else 0
    finally:
        if watcher is not None:
            watcher.cancel()
        daemon.stop()
        shutdown = await _stop_all(task)
    protocols = {p: sum(len(d.points) for d in site.devices if d.protocol == p) for p in ("modbus", "opcua")}
    return {"points": configured, "points_in_snapshot": measured_points, "points_by_protocol": protocols,
            "devices": len(site.devices), "tick_s": site.control.tick_s, "ticks": n,
            "tick_ms": _pct(durations), "first_decision_tick_ms": first_tick_ms,
            "overruns": daemon.ticks.overruns - overruns0,
            "store_rows_per_tick": round(rows / n, 1), "qualities_at_end": qualities,
            "loop_lag_ms": _pct(lags), "shutdown": shutdown}


async def _stop_all(daemon_task: asyncio.Task[None], grace_s: float = 10.0) -> dict[str, Any]:
    """Wait for the stopped daemon to return; cancel again whatever still runs after ``grace_s``.

    On Python 3.11 a cancellation can be lost (``asyncio.wait_for`` returns the
    result of an inner future that completed in the same loop iteration), and a
    device worker that lost its cancel polls on for ever. Reported, not hidden.
    """
    t0 = time.monotonic()
    await asyncio.wait({daemon_task}, timeout=grace_s)
    stuck: list[str] = []
    recancels = 0
    for _ in range(5):
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if daemon_task.done() and not left:
            break
        if recancels == 0:
            stuck = sorted({_task_where(t) for t in left})
        recancels += 1
        for t in left:
            t.cancel()
        await asyncio.wait(left, timeout=2.0)
    return {"clean": recancels == 0, "seconds": round(time.monotonic() - t0, 3), "recancels": recancels,
            "stuck_tasks": stuck}


def _task_where(task: asyncio.Task[Any]) -> str:
    """The innermost frame a task waits in, as ``file:line function``."""
    coro: Any = task.get_coro()
    where = task.get_name()
    for _ in range(30):
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"
        coro = getattr(coro, "cr_await", None)
        if coro is None:
            break
    return where


def _run_bounded(coro: Coroutine[Any, Any, _T], grace_s: float = 5.0) -> _T:
    """``asyncio.run`` without its unbounded wait for tasks that ignore cancellation."""
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(coro)
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in left:
            t.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=grace_s))
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        return result
    finally:
        loop.close()


def _all_good(daemon: Any, configured: int) -> bool:
    snap = daemon.last_snapshot
    return bool(snap is not None and len(snap.points) == configured
                and all(pv.quality is Quality.GOOD for pv in snap.points.values()))


def _qualities(daemon: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    if daemon.last_snapshot is not None:
        for pv in daemon.last_snapshot.points.values():
            counts[str(pv.quality)] = counts.get(str(pv.quality), 0) + 1
    return counts


# --------------------------------------------------------------------------- daemon RSS


def _daemon_rss(sim: SimProcess, work: Path, sizes: _Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, path in (("site", embedded_site_path(SITE)), ("load", sim.load_file())):
        out[label] = _rss_of_run(path, sim.overrides(path, f"rss-{label}"), work / f"rss-{label}.sock",
                                 sizes.rss_ticks, work / f"rss-{label}-stderr.txt")
    out["note"] = "parkedge run in a subprocess, read from /proc/PID/status once every point is good"
    return out


def _parkedge_cmd() -> list[str]:
    script = Path(sys.executable).with_name("parkedge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge.cli"]


def _rss_of_run(path: Path, overrides: Sequence[str], sock: Path, min_ticks: int, stderr: Path,
                timeout_s: float = 60.0) -> dict[str, Any]:
    from edge.ctl import request

    cmd = [*_parkedge_cmd(), "run", "--config", str(path)]
    for item in overrides:
        cmd += ["--set", item]
    with stderr.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PARKEDGE_LOG_LEVEL": "warning"})
    try:
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"parkedge run exited {proc.returncode}: {stderr.read_text()[-400:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"parkedge run not settled after {timeout_s:g} s: {status.get('ticks')} ticks")
            time.sleep(0.5)
            with contextlib.suppress(OSError, ValueError):
                reply = request(sock, {"cmd": "points"}, timeout_s=5.0)
                points = reply.get("result") or {}
                status = request(sock, {"cmd": "status"}, timeout_s=5.0).get("result") or {}
                if (points and all(p["quality"] == "good" for p in points.values())
                        and int(status.get("ticks", 0)) >= min_ticks):
                    break
        mem = _proc_status(proc.pid)
    finally:
        t0 = time.monotonic()
        proc.terminate()
        try:
            proc.wait(timeout=20)
            sigterm_exit_s: float | None = round(time.monotonic() - t0, 3)
        except subprocess.TimeoutExpired:  # see _stop_all: a worker that lost its cancel
            sigterm_exit_s = None
            proc.kill()
            proc.wait()
    return {"points": len(points), "ticks": status.get("ticks"), "vm_rss_bytes": mem["VmRSS"],
            "vm_hwm_bytes": mem["VmHWM"], "sigterm_exit_s": sigterm_exit_s}


def _proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024  # kB
    return out


# --------------------------------------------------------------------------- store and the other modules


def _store(work: Path, sizes: _Sizes) -> dict[str, Any]:
    from edge.store import bench_store

    got: dict[str, Any] = dict(bench_store(work, points=TARGET_POINTS, ticks=sizes.store_ticks))
    got["goal"] = "ratio_raw_over_store <= 2"
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in got.items()}


def _optional(module: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """Another module's bench function, if it exists yet."""
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        return {"pending": f"{module}.{name} not available: {e}"}
    result: dict[str, Any] = fn(**kwargs)
    return result


def _outbox_drain(work: Path, sizes: _Sizes) -> dict[str, Any]:
    try:
        drain = importlib.import_module("edge.sync").bench_drain
    except (ImportError, AttributeError) as e:
        return {"pending": f"edge.sync.bench_drain not available: {e}"}
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        return {"pending": "no mosquitto broker installed (make mosquitto)"}
    port = _free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
    broker = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if broker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not listen on {port}") from None
                time.sleep(0.05)
        # Bounded: the drain ends only when the outbox is empty, which a stuck uplink never reaches.
        result: dict[str, Any] = asyncio.run(asyncio.wait_for(
            drain(work, port=port, backlog_hours=sizes.drain_backlog_h), _DRAIN_TIMEOUT_S))
        return result
    finally:
        broker.terminate()
        broker.wait(timeout=20)


# --------------------------------------------------------------------------- helpers


def _pct(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/max in ms (nearest rank)."""
    if not samples_s:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    s = sorted(samples_s)

    def rank(q: float) -> float:
        return s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))] * 1e3

    return {"p50": round(rank(0.5), 3), "p99": round(rank(0.99), 3), "max": round(s[-1] * 1e3, 3), "n": len(s)}


def _machine(started: float, load_at_start: tuple[float, float, float]) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform(),
            "started_utc": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.time() - started, 1),
            "loadavg_start": [round(x, 2) for x in load_at_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
