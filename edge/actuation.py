"""Actuation: the only way a value reaches a device.

Every value, from the controller, a manual override or safe mode, passes the
same clamp: the point's configured limits, then its ramp rate measured from
the last value commanded. Values are written only when they change; the
device worker reads each write back and reports a mismatch as an alarm.

Precedence each tick: an unexpired override, then (mode ``auto``) the
controller's setpoint, then (mode ``safe``) the point's configured default.
In mode ``manual`` only overrides are written; everything else holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge import logs
from edge.acquisition import Acquisition, WriteResult
from edge.config import PointConfig, SiteConfig
from edge.metrics import Metrics
from edge.model import Snapshot

log = logs.get("actuation")
MODES = ("auto", "manual", "safe")


class UnknownPoint(ValueError):
    """A setpoint or override named a point that is not a writable point of the site."""


@dataclass(frozen=True, slots=True)
class Clamped:
    value: float
    reason: str | None  # None when the request passed untouched; else "min", "max", "ramp", "nan"


def clamp(pt: PointConfig, requested: float, *, last: float | None, dt_s: float) -> Clamped:
    """Limits, then ramp from ``last`` over ``dt_s``. A NaN request holds ``last`` (or the default)."""
    assert pt.limits is not None, "config guarantees limits on writable points"
    lim = pt.limits
    if not math.isfinite(requested):
        hold = last if last is not None else (pt.default if pt.default is not None else min(max(0.0, lim.min), lim.max))
        return Clamped(hold, "nan")
    value, reason = requested, None
    if value < lim.min:
        value, reason = lim.min, "min"
    elif value > lim.max:
        value, reason = lim.max, "max"
    if lim.ramp_per_s is not None and last is not None:
        step = lim.ramp_per_s * max(dt_s, 0.0)
        if value > last + step:
            value, reason = last + step, "ramp"
        elif value < last - step:
            value, reason = last - step, "ramp"
    return Clamped(value, reason)


@dataclass
class Override:
    key: str
    value: float
    expires_ts: float
    reason: str
    who: str


@dataclass
class Actuation:
    site: SiteConfig
    acquisition: Acquisition
    metrics: Metrics
    mode: str = "auto"
    overrides: dict[str, Override] = field(default_factory=dict)
    commanded: dict[str, float] = field(default_factory=dict)  # last value sent, per point key
    _commanded_ts: dict[str, float] = field(default_factory=dict)
    _writable: dict[str, PointConfig] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)  # drained into the store each tick
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for d in self.site.devices:
            hb = d.heartbeat.point if d.heartbeat else None
            for p in d.points:
                if p.writable and p.name != hb:
                    self._writable[f"{d.name}.{p.name}"] = p

    def writable_point(self, key: str) -> PointConfig:
        pt = self._writable.get(key)
        if pt is None:
            raise UnknownPoint(f"{key!r} is not a writable point of site {self.site.id!r}")
        return pt

    def set_mode(self, mode: str, *, ts: float, who: str, reason: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != self.mode:
            self.events.append({"ts": ts, "kind": "mode", "detail": f"{self.mode} -> {mode}", "who": who,
                                "reason": reason})
            log.info("mode_changed", old=self.mode, new=mode, who=who, reason=reason)
        self.mode = mode
        self.metrics.set_mode(mode)

    def override(self, key: str, value: float, *, ttl_s: float, reason: str, who: str, ts: float) -> Clamped:
        """A manual override: clamped like everything else, audited, expiring by itself."""
        pt = self.writable_point(key)
        if not ttl_s > 0:
            raise ValueError(f"ttl must be > 0, got {ttl_s}")
        if not reason.strip():
            raise ValueError("an override needs a reason")
        bounded = clamp(pt, value, last=None, dt_s=0.0)  # limits now; the ramp applies tick by tick
        self.overrides[key] = Override(key, bounded.value, ts + ttl_s, reason, who)
        self.audit.append({"ts": ts, "who": who, "action": "override", "point": key, "value": value,
                           "applied": bounded.value, "ttl_s": ttl_s, "reason": reason})
        log.info("override_set", device=key.split(".")[0], point=key, value=value, applied=bounded.value,
                 ttl_s=ttl_s, reason=reason, who=who)
        self.metrics.overrides.set(len(self.overrides))
        return bounded

    def _expire(self, ts: float) -> None:
        for key, ov in list(self.overrides.items()):
            if ts >= ov.expires_ts:
                del self.overrides[key]
                self.audit.append({"ts": ts, "who": "daemon", "action": "override_expired", "point": key,
                                   "value": ov.value, "applied": None, "ttl_s": 0, "reason": ov.reason})
                log.info("override_expired", device=key.split(".")[0], point=key)
        self.metrics.overrides.set(len(self.overrides))

    def targets(self, setpoints: Mapping[str, float]) -> dict[str, float]:
        """What each writable point should get this tick, before the clamp."""
        out: dict[str, float] = {}
        if self.mode == "auto":
            for key, value in setpoints.items():
                if key in self._writable:
                    out[key] = value
                else:
                    self.metrics.setpoint_rejections.labels(key.split(".")[0], "unknown_point").inc()
        elif self.mode == "safe":
            out = {k: p.default for k, p in self._writable.items() if p.default is not None}
        out.update({k: ov.value for k, ov in self.overrides.items()})
        return out

    def apply(self, setpoints: Mapping[str, float], *, ts: float, snapshot: Snapshot | None = None) -> dict[str, float]:
        """Clamp and hand changed values to the device workers; returns what was sent.

        ``snapshot`` is the tick's own: the ramp of a point with nothing commanded yet
        starts from its measured value there (built once, not once per point)."""
        self._expire(ts)
        sent: dict[str, float] = {}
        by_device: dict[str, dict[str, float]] = {}
        for key, requested in self.targets(setpoints).items():
            pt = self._writable[key]
            last = self.commanded.get(key)
            if last is None:
                # Ramp from where the device is now, not from zero.
                if snapshot is None:
                    snapshot = self.acquisition.snapshot(ts)
                last = snapshot.value(key)
            # Credit at most one tick of ramp: a late tick then ramps a little slower,
            # never faster, so jitter cannot push a step past ramp_per_s * tick_s.
            tick_s = self.site.control.tick_s
            dt = min(ts - self._commanded_ts.get(key, ts - tick_s), tick_s)
            c = clamp(pt, requested, last=last, dt_s=dt)
            device = key.split(".")[0]
            if c.reason is not None:
                self.metrics.setpoint_rejections.labels(device, c.reason).inc()
            if key in self.commanded and abs(self.commanded[key] - c.value) <= 1e-9:
                continue  # written only when it changes
            self.commanded[key] = c.value
            self._commanded_ts[key] = ts
            by_device.setdefault(device, {})[key.split(".", 1)[1]] = c.value
            sent[key] = c.value
        for device, writes in by_device.items():
            self.acquisition.workers[device].submit(writes)
        return sent

    def collect_results(self, *, ts: float) -> list[WriteResult]:
        """Write outcomes since the last tick; refusals and mismatches become events."""
        results: list[WriteResult] = []
        for worker in self.acquisition.workers.values():
            results.extend(worker.take_results())
        for r in results:
            device = r.key.split(".")[0]
            if r.status == "written":
                self.metrics.setpoint_writes.labels(device).inc()
                continue
            if r.status == "mismatch":
                self.metrics.readback_mismatch.labels(device).inc()
            else:
                self.metrics.setpoint_rejections.labels(device, r.status).inc()
                # Forget the commanded value so the next tick tries again.
                self.commanded.pop(r.key, None)
            self.events.append({"ts": ts, "kind": f"write_{r.status}", "detail": f"{r.key}={r.value}: {r.detail}",
                                "who": "daemon", "reason": r.detail})
            log.warning("write_" + r.status, device=device, point=r.key, value=r.value, detail=r.detail)
        return results

    def drain(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        audit, events = self.audit, self.events
        self.audit, self.events = [], []
        return audit, events
