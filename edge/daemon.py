"""The daemon: one asyncio loop running a site.

Each tick does its work in a fixed order (OpenEMS's cycle): read the snapshot,
decide, write, store. Ticks are anchored to a monotonic clock; a tick that
runs past its slot is counted and the next free slot is taken, never queued.
Around the tick: one worker a device (edge.acquisition), the local control
socket (edge.ctl), the Prometheus endpoint, the MQTT uplink when enabled, and
the systemd watchdog, which is fed only by a tick that completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from edge import logs
from edge.acquisition import Acquisition
from edge.actuation import Actuation, UnknownPoint
from edge.cloud import CloudLink
from edge.config import SiteConfig
from edge.ctl import BadRequest, Handler
from edge.ctl import serve as serve_ctl
from edge.devices import make_client
from edge.metrics import Metrics
from edge.model import Snapshot, utc_text
from edge.runner import ControlRunner, build_runner
from edge.store import AuditEntry, Event, Store
from edge.store import StoreConfig as StoreSettings

log = logs.get("daemon")
VERSION = "0.1.0"
_STOP_TIMEOUT_S = 5.0


def _where(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: its await chain, innermost last, as "file:line function"."""
    out: list[str] = []
    aw: Any = task.get_coro()
    while aw is not None and len(out) < 12:
        frame = getattr(aw, "cr_frame", None) or getattr(aw, "gi_frame", None)
        if frame is not None:
            out.append(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} "
                       f"{frame.f_code.co_name}")
        aw = getattr(aw, "cr_await", None) or getattr(aw, "gi_yieldfrom", None)
    return " > ".join(out) or "?"


_SLOW_METRICS_EVERY_S = 5.0
# After these ticks every object then alive (drivers, OPC UA sessions and their nodes, the
# models, the QP) moves to the collector's permanent generation (gc.freeze). Before, each
# full collection walked them all: 87-92 ms a time at 1,000 points, the daemon tick's p99
# (95-132 ms) and the event loop's ~140 ms lag spikes of every benchmark run.
_GC_FREEZE_AT_TICKS = (3, 10, 60, 600)


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify, WatchdogSec=) how we are; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` to seconds."""
    text = text.strip().lower()
    factor = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(text[-1:])
    number = text[:-1] if factor else text
    try:
        seconds = float(number) * (factor or 1.0)
    except ValueError:
        raise BadRequest(f"duration {text!r} is not like 90s, 15m, 2h") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadRequest(f"duration {text!r} must be > 0")
    return seconds


@dataclass
class TickStats:
    count: int = 0
    overruns: int = 0
    last_ts: float | None = None
    last_duration_s: float = 0.0
    durations_s: list[float] = field(default_factory=list)  # recent, for status percentiles

    def record(self, ts: float, duration_s: float) -> None:
        self.count += 1
        self.last_ts = ts
        self.last_duration_s = duration_s
        self.durations_s.append(duration_s)
        if len(self.durations_s) > 1000:
            del self.durations_s[:500]

    def percentile(self, q: float) -> float | None:
        if not self.durations_s:
            return None
        ordered = sorted(self.durations_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Daemon:
    def __init__(self, site: SiteConfig, *, serve_metrics: bool = True) -> None:
        self.site = site
        self.metrics = Metrics()
        self.metrics.info.labels(site.id, VERSION).set(1)
        self.ticks = TickStats()
        self._last_tick_mono = time.monotonic()
        self._serve_metrics = serve_metrics
        self._stop = asyncio.Event()
        self.store = Store(StoreSettings(
            path=site.store.path, max_bytes=site.store.max_bytes, retention_days=site.store.retention_days,
            keyframe_s=site.store.keyframe_s,
            deadbands={f"{d.name}.{p.name}": p.deadband for d in site.devices for p in d.points if p.deadband},
        ))
        clients = {d.name: make_client(d) for d in site.devices}
        self.acquisition = Acquisition(site.devices, clients, self.metrics,
                                       stale_after_s=site.control.stale_after_s, alive=self._alive)
        self.actuation = Actuation(site, self.acquisition, self.metrics)
        self.actuation.set_mode(site.control.mode, ts=time.time(), who="config", reason="start")
        self.cloud = CloudLink(site, self.store, self.actuation)
        self.controller = _controller_for(site, self.cloud)
        self._next_slow_metrics = 0.0
        self._outbox_dropped_seen = int(self.store.stats().counters.get("outbox_dropped_rows", 0))
        self.last_snapshot: Snapshot | None = None
        self.last_decision: dict[str, Any] = {}

    def _alive(self) -> bool:
        """The heartbeat proves the control loop runs, so it stops when ticks stop."""
        return time.monotonic() - self._last_tick_mono < max(3 * self.site.control.tick_s, 2.0)

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if self._serve_metrics:
            host, port = self.site.metrics.host_port
            try:
                self.metrics.serve(host, port)
            except OSError as e:
                log.error("metrics_listen_failed", listen=self.site.metrics.listen, error=str(e))
        ctl = await serve_ctl(self.site.cli.socket, self._handlers())
        log.info("daemon_started", site=self.site.id, devices=len(self.site.devices),
                 points=sum(len(d.points) for d in self.site.devices), socket=str(self.site.cli.socket))
        sd_notify("READY=1")
        tasks = [asyncio.create_task(self.acquisition.run(), name="acquisition"),
                 asyncio.create_task(self._tick_loop(), name="ticks"),
                 asyncio.create_task(self.cloud.uplink.run(), name="uplink")]
        try:
            await self._stop.wait()
        finally:
            sd_notify("STOPPING=1")
            log.info("daemon_stopping", site=self.site.id)
            for t in tasks:
                t.cancel()
            # Bounded: a task that swallows its cancel must not keep the daemon (and its
            # device connections) alive after SIGTERM; systemd would kill us anyway.
            _done, stuck = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT_S)
            for t in stuck:
                log.error("task_did_not_stop", task=t.get_name(), timeout_s=_STOP_TIMEOUT_S)
            if stuck:
                # where each task still alive is waiting: a stuck child of a TaskGroup names
                # the driver call that swallowed its cancel
                me = asyncio.current_task()
                for t in asyncio.all_tasks():
                    if t is not me and not t.done():
                        log.error("task_still_running", task=t.get_name(), at=_where(t))
            ctl.close()
            with contextlib.suppress(Exception):
                await ctl.wait_closed()
            self.store.close()
            log.info("daemon_stopped", site=self.site.id)

    async def _tick_loop(self) -> None:
        period = self.site.control.tick_s
        t0 = time.monotonic()
        slot = 0
        while True:
            started = time.monotonic()
            try:
                self.tick(time.time())
            except Exception as e:  # the loop never dies; a broken tick is logged and counted
                self.metrics.task_restarts.labels("tick").inc()
                log.error("tick_failed", error=f"{type(e).__name__}: {e}")
            done = time.monotonic()
            self.metrics.tick_duration.observe(done - started)
            if self.ticks.count in _GC_FREEZE_AT_TICKS:
                gc.freeze()
                log.info("gc_frozen", ticks=self.ticks.count, objects=gc.get_freeze_count())
            slot += 1
            due = t0 + slot * period
            if done > due:
                self.ticks.overruns += 1
                self.metrics.tick_overruns.inc()
                slot += math.ceil((done - due) / period)
                due = t0 + slot * period
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    def tick(self, ts: float) -> None:
        """One tick: read, decide, write, store."""
        started = time.monotonic()
        snap = self.acquisition.snapshot(ts)
        self.last_snapshot = snap
        setpoints = self._decide(snap)
        self.actuation.apply(setpoints, ts=ts, snapshot=snap)
        self.actuation.collect_results(ts=ts)
        audit, events = self.actuation.drain()
        values = {k: (pv.value, str(pv.quality)) for k, pv in snap.points.items()}
        with self.metrics.commit_duration.time():
            result = self.store.commit_tick(ts, values, [
                Event(ts=e["ts"], kind=e["kind"], source=e.get("who", "daemon"), message=e["detail"])
                for e in events])
        for a in audit:
            self.store.add_audit(AuditEntry(ts=a["ts"], actor=a["who"], action=a["action"], target=a["point"],
                                            value=a["applied"], ttl_s=a["ttl_s"], reason=a["reason"]))
        if result.ok:
            self.metrics.store_rows.inc(result.rows)
        else:
            self.metrics.store_errors.labels("commit").inc()
        counts: dict[str, int] = {"good": 0, "stale": 0, "bad": 0, "comm_lost": 0}
        for pv in snap.points.values():
            counts[str(pv.quality)] += 1
        for q, n in counts.items():
            self.metrics.points.labels(q).set(n)
        self.cloud.after_commit(ts)
        if ts >= self._next_slow_metrics:
            self._next_slow_metrics = ts + _SLOW_METRICS_EVERY_S
            self._refresh_slow_metrics()
        self._last_tick_mono = time.monotonic()
        self.ticks.record(ts, self._last_tick_mono - started)
        sd_notify("WATCHDOG=1")

    def _decide(self, snap: Snapshot) -> dict[str, float]:
        if self.controller is None or self.actuation.mode != "auto":
            return {}
        setpoints, info = self.controller(snap)
        self.last_decision = info
        self.metrics.control_reason.labels(str(info.get("reason", "unknown"))).inc()
        if info.get("solve_ms") is not None:
            self.metrics.solve_duration.observe(float(info["solve_ms"]) / 1e3)
        return setpoints

    def _refresh_slow_metrics(self) -> None:
        """Gauges read from state that costs a query (the store) or changes slowly (forecasts)."""
        stats = self.store.stats()
        self.metrics.store_bytes.set(stats.used_bytes)
        self.metrics.outbox_rows.set(stats.outbox_pending_rows)
        dropped = int(stats.counters.get("outbox_dropped_rows", 0))
        if dropped > self._outbox_dropped_seen:
            self.metrics.outbox_dropped.inc(dropped - self._outbox_dropped_seen)
        self._outbox_dropped_seen = dropped
        self.metrics.mqtt_connected.set(1.0 if self.cloud.uplink.connected else 0.0)
        forecaster = getattr(self.controller, "forecaster", None)
        if forecaster is None:
            return
        for target, t in forecaster.state()["targets"].items():
            self.metrics.forecast_fallback.labels(target).set(0.0 if str(t["source"]).startswith("model") else 1.0)
            for source, key in (("in_force", "nmae_in_force"), ("baseline", "nmae_baseline")):
                if t["skill"].get(key) is not None:
                    self.metrics.forecast_nmae.labels(target, source).set(t["skill"][key])

    # ------------------------------------------------------------------ local socket

    def _handlers(self) -> dict[str, Handler]:
        return {"status": self._h_status, "points": self._h_points, "read": self._h_read,
                "write": self._h_write, "mode": self._h_mode, "forecast": self._h_forecast,
                **self.cloud.handlers()}

    async def _h_status(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        p50, p99 = self.ticks.percentile(0.5), self.ticks.percentile(0.99)
        stats = self.store.stats()
        devices = self.acquisition.health()
        latency = {"last": round(self.ticks.last_duration_s * 1e3, 3),
                   "p50": None if p50 is None else round(p50 * 1e3, 3),
                   "p99": None if p99 is None else round(p99 * 1e3, 3)}
        doc: dict[str, Any] = {
            "site": self.site.id, "version": VERSION, "mode": self.actuation.mode,
            "plan": self.cloud.plan_id(), "ticks": self.ticks.count, "tick_overruns": self.ticks.overruns,
            "last_tick_ts": self.ticks.last_ts,
            "tick_latency_ms": latency, "devices": devices,
            "overrides": {k: {"value": o.value, "expires_ts": o.expires_ts, "reason": o.reason}
                          for k, o in self.actuation.overrides.items()},
            "control": self.last_decision,
            "buffer": {"outbox_pending_rows": stats.outbox_pending_rows, "store_bytes": stats.used_bytes},
        }
        up = sum(1 for h in devices.values() if h["up"])
        text = (f"site {self.site.id}  mode {self.actuation.mode}  ticks {self.ticks.count} "
                f"(p50 {latency['p50']} ms, p99 {latency['p99']} ms)\n"
                f"devices up {up}/{len(devices)}  overrides {len(self.actuation.overrides)}  "
                f"outbox {stats.outbox_pending_rows} rows")
        for name, h in devices.items():
            state = "up" if h["up"] else "connecting" if h["connecting"] else "DOWN"
            text += f"\n  {name:<14} {state:<10} polls {h['polls']:<7} {h['last_error']}"
        return doc, text

    async def _h_points(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        snap = self.last_snapshot or self.acquisition.snapshot(time.time())
        now = time.time()
        rows = {k: {"value": pv.value, "unit": pv.unit, "quality": str(pv.quality),
                    "age_s": round(now - pv.source_ts, 3)} for k, pv in sorted(snap.points.items())}
        text = "\n".join(f"{k:<34} {_value_text(v['value']):>14} {v['unit']:<6} {v['quality']:<9} {v['age_s']:>7} s"
                         for k, v in rows.items())
        return rows, text

    async def _h_read(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        device, point = str(req["device"]), str(req["point"])
        worker = self.acquisition.workers.get(device)
        if worker is None or worker.cfg.point(point) is None:
            raise BadRequest(f"unknown point {device}.{point} (site {self.site.id!r})")
        reading = (await worker.client.read_points([point])).get(point)
        if reading is None:
            raise BadRequest(f"{device}.{point}: the driver returned nothing")
        pt = worker.cfg.point(point)
        doc = {"device": device, "point": point, "value": reading.value, "unit": pt.unit if pt else "",
               "quality": str(reading.quality), "source_ts": reading.source_ts}
        return doc, f"{device}.{point} = {_value_text(reading.value)} {doc['unit']} ({reading.quality})"

    async def _h_write(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        key = f"{req['device']}.{req['point']}"
        try:
            value = float(req["value"])
        except (TypeError, ValueError):
            raise BadRequest(f"value {req.get('value')!r} is not a number") from None
        ttl_s = parse_duration(str(req.get("ttl", "")))
        ts = time.time()
        try:
            clamped = self.actuation.override(key, value, ttl_s=ttl_s, reason=str(req.get("reason", "")),
                                              who=str(req.get("who", "local-cli")), ts=ts)
        except UnknownPoint as e:
            raise BadRequest(str(e)) from None
        doc = {"point": key, "requested": value, "applied": clamped.value, "clamped": clamped.reason,
               "expires_ts": ts + ttl_s}
        note = f" (clamped: {clamped.reason})" if clamped.reason else ""
        return doc, f"{key} := {clamped.value}{note} for {ttl_s:g} s"

    async def _h_forecast(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        if self.controller is None:
            return {"forecast": None}, "no controller: the site has no [assets]"
        doc = self.controller.forecast_summary()
        text = f"forecast from {utc_text(doc['origin_ts'], self.site.tz)} every {doc['step_s']} s" + (
            f"  ({doc['note']})" if doc["note"] else "")
        for name, t in doc["targets"].items():
            p = t["p50_kw"]
            text += (f"\n  {name:<13} {t['source']:<28} history {t['history_steps']:>4} steps  "
                     f"p50 next {p['next']:>9} mean {p['mean']:>9} max {p['max']:>9} kW")
        return doc, text

    async def _h_mode(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        mode = str(req.get("mode"))
        try:
            self.actuation.set_mode(mode, ts=time.time(), who=str(req.get("who", "local-cli")), reason="cli")
        except ValueError as e:
            raise BadRequest(str(e)) from None
        return {"mode": mode}, f"mode {mode}"


def _value_text(value: object) -> str:
    """A reading for the terminal: at most 4 decimals (a float32 register's 20002.16796875
    kWh reads 20002.168); JSON keeps the value whole."""
    if isinstance(value, float) and math.isfinite(value):
        if 0.0 < abs(value) < 1e-3:
            return f"{value:.3g}"
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return str(value)


def _controller_for(site: SiteConfig, cloud: CloudLink) -> ControlRunner | None:
    """The control hook (edge.runner) on the plan in force; None holds every setpoint."""
    return build_runner(site, plan_provider=lambda: cloud.plan_for(time.time()))


def run_daemon(site: SiteConfig) -> int:
    logs.configure(level=os.environ.get("PARKEDGE_LOG_LEVEL", "info"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Daemon(site).run())
    return 0
