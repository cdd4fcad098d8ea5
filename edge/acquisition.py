"""Acquisition: one worker task a device, and the Snapshot each tick reads.

A device has one connection and one request in flight (pymodbus allows no
more), so the same worker that polls a device also carries its writes and its
heartbeat: nothing else ever talks to it. Polls are anchored to a monotonic
clock: slot k starts at ``t0 + k * poll``; a poll that runs past its slot is
counted as an overrun and the worker skips to the next free slot instead of
queueing catch-up polls (no drift, no burst).

Quality in the Snapshot: what the driver said, except that a good value older
than its staleness limit (three polls, at least ``control.stale_after_s``) is
reported ``stale``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.client import DeviceClient
from drivers.timeouts import within
from drivers.types import DriverError, Quality, Reading, WriteRefused
from edge import logs
from edge.config import DeviceConfig
from edge.metrics import Metrics
from edge.model import PointValue, Snapshot, point_key

log = logs.get("acquisition")

# A device is "connecting", not lost, while its driver makes its first connection: the
# OPC UA driver connects in the background and the first polls come before its session,
# so every daemon start logged a comm_lost warning per OPC UA device (8 of 8 on Park A's
# demo). Bounded, so a driver stuck in its first connect is reported after all.
CONNECT_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to one write; ``status`` is written | refused | failed | mismatch."""

    key: str
    value: float
    status: str
    detail: str = ""
    read_back: float | None = None


@dataclass
class _Cell:
    reading: Reading
    received_mono: float


@dataclass
class DeviceWorker:
    """Polls one device, carries its writes and its heartbeat."""

    cfg: DeviceConfig
    client: DeviceClient
    metrics: Metrics
    alive: Callable[[], bool] = lambda: True  # is the control loop still ticking?
    cells: dict[str, _Cell] = field(default_factory=dict)
    results: list[WriteResult] = field(default_factory=list)
    polls: int = 0
    overruns: int = 0
    failures: int = 0
    last_ok_mono: float | None = None
    last_error: str = ""
    _pending: dict[str, float] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _heartbeat_count: int = 0
    _next_heartbeat: float = 0.0
    _started_mono: float = field(default_factory=time.monotonic)

    @property
    def up(self) -> bool:
        return self.last_ok_mono is not None and self.failures == 0

    @property
    def connecting(self) -> bool:
        """Never up yet, and the driver's first connection is still under way (no failed
        attempt, within ``CONNECT_GRACE_S`` of the worker's start)."""
        if self.last_ok_mono is not None or time.monotonic() - self._started_mono > CONNECT_GRACE_S:
            return False
        h = self.client.health()
        return not h.connected and h.consecutive_failures == 0

    def submit(self, writes: Mapping[str, float]) -> None:
        """Queue writes (point name -> engineering value); the latest value per point wins."""
        self._pending.update(writes)
        self._wake.set()

    def take_results(self) -> list[WriteResult]:
        out, self.results = self.results, []
        return out

    async def run(self) -> None:
        period = self.cfg.poll_ms / 1000.0
        if self.last_ok_mono is None:
            self._started_mono = time.monotonic()
        t0 = time.monotonic()
        slot = 0
        while True:
            _raise_if_cancelled()
            await self._write_pending()
            await self._heartbeat()
            started = time.monotonic()
            await self._poll()
            done = time.monotonic()
            self.metrics.poll_duration.labels(self.cfg.name).observe(done - started)
            slot += 1
            due = t0 + slot * period
            if done > due:
                missed = math.ceil((done - due) / period)
                self.overruns += 1
                self.metrics.poll_overruns.labels(self.cfg.name).inc()
                slot += missed
                due = t0 + slot * period
            # Sleep to the next slot, but wake early for a write: setpoint latency
            # should not be a whole poll period.
            while (left := due - time.monotonic()) > 0:
                _raise_if_cancelled()
                self._wake.clear()
                if self._pending:
                    await self._write_pending()
                    continue
                with contextlib.suppress(TimeoutError):
                    await within(self._wake.wait(), left)

    async def _poll(self) -> None:
        self.polls += 1
        try:
            readings = await self.client.read_all()
        except (DriverError, OSError, TimeoutError) as e:
            self._mark_all(Quality.COMM_LOST)
            self._failed("comm_lost", e)
            return
        now = time.monotonic()
        for name, reading in readings.items():
            cell = self.cells.get(name)
            if reading.quality is Quality.GOOD or cell is None:
                self.cells[name] = _Cell(reading, now)
            else:
                # Keep the last good value visible, flagged with the new quality.
                self.cells[name] = _Cell(Reading(cell.reading.value, reading.quality, cell.reading.source_ts),
                                         cell.received_mono)
        if any(r.quality is Quality.GOOD for r in readings.values()) or not readings:
            self.failures = 0
            self.last_ok_mono = now
            self.metrics.device_up.labels(self.cfg.name, self.cfg.protocol).set(1)
        elif all(r.quality is Quality.COMM_LOST for r in readings.values()):
            if self.connecting:
                self.metrics.device_up.labels(self.cfg.name, self.cfg.protocol).set(0)
                return
            self._failed("comm_lost", DriverError("not connected"))
        else:
            self._failed("bad", DriverError("no good point in the poll"))

    def _failed(self, kind: str, e: BaseException) -> None:
        self.failures += 1
        msg = str(e) or type(e).__name__
        self.metrics.poll_errors.labels(self.cfg.name, kind).inc()
        self.metrics.device_up.labels(self.cfg.name, self.cfg.protocol).set(0)
        if msg != self.last_error:  # one line per change of trouble, not one per poll
            log.warning("poll_failed", device=self.cfg.name, kind=kind, error=msg)
        self.last_error = msg

    def _mark_all(self, quality: Quality) -> None:
        now = time.monotonic()
        for p in self.cfg.points:
            cell = self.cells.get(p.name)
            value, ts, mono = (cell.reading.value, cell.reading.source_ts, cell.received_mono) if cell else \
                (None, time.time(), now)
            self.cells[p.name] = _Cell(Reading(value, quality, ts), mono)

    async def _write_pending(self) -> None:
        while self._pending:
            name, value = self._pending.popitem()
            self.results.append(await self._write_one(name, value))

    async def _write_one(self, name: str, value: float) -> WriteResult:
        key = point_key(self.cfg.name, name)
        try:
            await self.client.write(name, value)
        except WriteRefused as e:
            return WriteResult(key, value, "refused", str(e))
        except (DriverError, OSError, TimeoutError, ValueError, KeyError) as e:
            return WriteResult(key, value, "failed", str(e) or type(e).__name__)
        try:
            back = (await self.client.read_points([name])).get(name)
        except (DriverError, OSError, TimeoutError) as e:
            return WriteResult(key, value, "mismatch", f"read-back failed: {e}")
        if back is None or back.quality is not Quality.GOOD or not isinstance(back.value, int | float):
            return WriteResult(key, value, "mismatch", "read-back gave no good value")
        pt = self.cfg.point(name)
        # One raw count of the register is the finest difference a read-back can show.
        tolerance = max(abs(pt.scale) if pt else 0.0, 1e-6 * max(1.0, abs(value)))
        if abs(float(back.value) - value) > tolerance:
            return WriteResult(key, value, "mismatch", f"read back {back.value}", float(back.value))
        self.cells[name] = _Cell(back, time.monotonic())
        return WriteResult(key, value, "written", read_back=float(back.value))

    async def _heartbeat(self) -> None:
        hb = self.cfg.heartbeat
        now = time.monotonic()
        if hb is None or now < self._next_heartbeat or not self.alive():
            # A stalled control loop stops the heartbeat: the PLC then falls back
            # to local control, which is the point of watching it.
            return
        self._next_heartbeat = now + hb.period_ms / 1000.0
        self._heartbeat_count = (self._heartbeat_count + 1) % 65536
        try:
            await self.client.write(hb.point, float(self._heartbeat_count))
            self.metrics.heartbeats.labels(self.cfg.name).inc()
        except (DriverError, OSError, TimeoutError) as e:
            self.metrics.poll_errors.labels(self.cfg.name, "heartbeat").inc()
            log.debug("heartbeat_failed", device=self.cfg.name, point=hb.point, error=str(e))


def _raise_if_cancelled() -> None:
    """Honour a cancel that driver or library code swallowed: the task's ``cancelling()``
    count still shows it. Measured: in a full ``parkedge bench`` run two device workers
    were still alive 5 s after the daemon's stop, waiting between polls; which call ate
    their cancel is not pinned down (asyncua's ``Client._cancel_task`` catches a
    ``CancelledError`` while awaiting, one candidate)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Acquisition:
    """The workers of a site and the Snapshot they add up to."""

    def __init__(self, devices: Sequence[DeviceConfig], clients: Mapping[str, DeviceClient],
                 metrics: Metrics, *, stale_after_s: float, alive: Callable[[], bool]) -> None:
        self.workers = {d.name: DeviceWorker(d, clients[d.name], metrics, alive) for d in devices}
        self._stale_after_s = stale_after_s
        self._units = {point_key(d.name, p.name): p.unit for d in devices for p in d.points}

    async def run(self) -> None:
        """Run every worker; a worker that dies is restarted (and counted), never the daemon."""
        async with asyncio.TaskGroup() as tg:
            for w in self.workers.values():
                tg.create_task(self._supervise(w))

    async def _supervise(self, worker: DeviceWorker) -> None:
        backoff = 0.5
        while True:
            try:
                await worker.run()  # drivers connect lazily and reconnect by themselves
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await worker.client.close()
                raise
            except Exception as e:
                worker.metrics.task_restarts.labels(f"device:{worker.cfg.name}").inc()
                worker._mark_all(Quality.COMM_LOST)
                log.error("device_task_failed", device=worker.cfg.name, error=f"{type(e).__name__}: {e}")
                with contextlib.suppress(Exception):
                    await worker.client.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def snapshot(self, ts: float) -> Snapshot:
        now = time.monotonic()
        points: dict[str, PointValue] = {}
        for w in self.workers.values():
            limit = max(3 * w.cfg.poll_ms / 1000.0, self._stale_after_s)
            for name, cell in w.cells.items():
                quality = cell.reading.quality
                if quality is Quality.GOOD and now - cell.received_mono > limit:
                    quality = Quality.STALE
                key = point_key(w.cfg.name, name)
                points[key] = PointValue(cell.reading.value, self._units.get(key, ""), quality,
                                         cell.reading.source_ts)
        return Snapshot(ts=ts, points=points)

    def health(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {
            name: {
                "protocol": w.cfg.protocol, "up": w.up, "connecting": w.connecting,
                "polls": w.polls, "overruns": w.overruns,
                "consecutive_failures": w.failures, "last_error": w.last_error,
                "last_ok_age_s": None if w.last_ok_mono is None else round(now - w.last_ok_mono, 3),
            }
            for name, w in self.workers.items()
        }
