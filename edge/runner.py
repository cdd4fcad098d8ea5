"""The daemon's control hook: the site's controller, its forecasts and its state, tick by tick.

``ControlRunner(snapshot) -> (setpoints, info)`` is what ``edge.daemon`` calls each
tick. It owns the pieces ``edge.control.decide`` keeps pure of: the
``ControllerState`` from tick to tick, the measured history of every forecast
target (mean kW per 15-min step, from the snapshots), the ``Forecaster`` refreshed
at each step rollover, and the plan in force (from an optional plan provider).

Forecast targets come from the site's ``[assets]``: PV and wind from their
``avail_point`` (what they could deliver; else ``p_point``, passive, so generation
is ``-value``), each load from its
``p_point`` and its ``forecast`` key. Until a target has a week of history the
Forecaster falls back to its baselines and says why; until it has a single
complete step, the latest measurement is held flat (persistence), and the info
says so. A load without a ``forecast`` key is always held flat.

The solve stays on the event loop: ``decide`` takes a few ms (the figures are in
docs/control.md), well inside a 1 s tick, and a thread hop would cost more than it
saves. The Forecaster's refresh (once every 15 min) is timed and reported too.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import logs
from edge.config import SiteConfig
from edge.control import (
    ControllerConfig,
    ControllerState,
    Forecast,
    Plan,
    PlantModel,
    PointLimit,
    decide,
)
from edge.control.safety import plant_limits
from edge.model import Quality, Snapshot

__all__ = ["ControlRunner", "PlanProvider", "build_runner", "controller_config"]

log = logs.get("runner")
PlanProvider = Callable[[], Plan | None]
STEP_S = 900                 # edge.forecast's step; imported lazily with the Forecaster
HISTORY_MAX_STEPS = 8 * 96   # a week (what the models read) and a day's margin


def controller_config(site: SiteConfig, *, deadline_s: float = 0.05) -> ControllerConfig:
    """The controller's configuration from the site file: plant, tariff, point limits, cadence."""
    if site.plant is None:
        raise ValueError(f"site {site.id!r} has no [assets]: nothing to control")
    if "tariff" not in site.raw:
        raise ValueError(f"site {site.id!r} has no [tariff]: no prices to optimise against")
    tariff = site.tariff
    if tariff is None:
        raise ValueError(f"{site.file}: [tariff] is required for the controller")
    # Only the points the plant model writes: the controller sets every point it has limits
    # for (its safe default where it decides nothing), and a protocol point such as a
    # SunSpec CtrlHb is not the controller's to set.
    written = set(plant_limits(site.plant))
    limits: dict[str, PointLimit] = {}
    for d in site.devices:
        for p in d.points:
            if f"{d.name}.{p.name}" not in written or not p.writable or p.limits is None:
                continue
            lim = p.limits
            default = p.default if p.default is not None else min(max(0.0, lim.min), lim.max)
            limits[f"{d.name}.{p.name}"] = PointLimit(
                lim.min, lim.max, lim.ramp_per_s if lim.ramp_per_s is not None else math.inf, default)
    return ControllerConfig(site.plant, tariff, limits, step_min=float(site.control.step_min),
                            stale_after_s=site.control.stale_after_s, deadline_s=deadline_s,
                            tick_s=site.control.tick_s, **site.control.planning())


@dataclass(frozen=True, slots=True)
class _Source:
    """How one forecast target is measured: points summed, each times a sign."""

    target: str
    points: tuple[tuple[str, float], ...]     # (point, sign): generation is -p_kw
    shed_frac: dict[str, str] = field(default_factory=dict)   # point -> its shed-fraction readback


def _sources(plant: PlantModel) -> dict[str, _Source]:
    pts: dict[str, list[tuple[str, float]]] = {}
    shed: dict[str, dict[str, str]] = {}
    for r in plant.renewables:
        # what could be delivered, not what was: a curtailment must not feed back as a forecast
        if r.avail_point:
            pts.setdefault(r.kind, []).append((r.avail_point, 1.0))
        elif r.p_point:
            pts.setdefault(r.kind, []).append((r.p_point, -1.0))
    for ld in plant.loads:
        if ld.forecast and ld.p_point:
            pts.setdefault(ld.forecast, []).append((ld.p_point, 1.0))
            if ld.shed_frac_point:
                shed.setdefault(ld.forecast, {})[ld.p_point] = ld.shed_frac_point
    return {t: _Source(t, tuple(p), shed.get(t, {})) for t, p in pts.items()}


def margin_p90(targets: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The P90s a store's margin may be sized on (``ControllerConfig.store_margin_frac``), by
    target: a model's only. A baseline's interval is its residual quantiles over the training
    year, not the day's (Park B on the naive baselines lost 1-2 points of the saving with a
    margin sized on it). ``targets``: ``edge.forecast`` target forecasts by name."""
    return {name: np.asarray(tf.p90_kw, dtype=np.float64) for name, tf in targets.items()
            if tf.source.startswith("model")}


def control_forecast(plant: PlantModel, start_ts: float, p50: Mapping[str, np.ndarray], *,
                     target_of: Mapping[str, str], p90: Mapping[str, np.ndarray] | None = None,
                     issued_ts: float = 0.0,
                     persisted_kw: Callable[[Any], float] = lambda ld: 0.0) -> Forecast:
    """The forecast targets' P50 (kW by target) as ``edge.control.Forecast``'s per-asset
    magnitudes: a target shared by loads split by their peaks, a load without a target
    (``target_of``: load name -> target) or without its P50 held at ``persisted_kw``; the
    heat and cooling P90 where every target behind them has one (``margin_p90``), PV's and
    wind's where theirs has one. The daemon and the evaluation harness both map their
    forecasts through here."""
    n = len(next(iter(p50.values()))) if p50 else 96
    zero = np.zeros(n)
    elec: dict[str, np.ndarray] = {}
    heat, cool = zero.copy(), zero.copy()
    heat90: np.ndarray | None = zero.copy()
    cool90: np.ndarray | None = zero.copy()
    by_target: dict[str, list[Any]] = {}
    for ld in plant.loads:
        by_target.setdefault(target_of.get(ld.name) or f"_{ld.name}", []).append(ld)
    for target, loads in by_target.items():
        series = p50.get(target)
        hi = (p90 or {}).get(target)
        peak = sum(ld.peak_kw for ld in loads) or 1.0
        for ld in loads:
            s = series * ld.peak_kw / peak if series is not None else np.full(n, persisted_kw(ld))
            s90 = hi * ld.peak_kw / peak if series is not None and hi is not None else None
            if ld.kind == "electric":
                elec[ld.name] = s
            elif ld.kind == "heat":
                heat = heat + s
                heat90 = heat90 + s90 if heat90 is not None and s90 is not None else None
            else:
                cool = cool + s
                cool90 = cool90 + s90 if cool90 is not None and s90 is not None else None
    return Forecast(start_ts, float(STEP_S), np.clip(p50.get("pv", zero), 0, None),
                    np.clip(p50.get("wind", zero), 0, None), elec, heat, cool, issued_ts=issued_ts,
                    heat_p90_kw=heat90, cooling_p90_kw=cool90,
                    pv_p90_kw=_clipped((p90 or {}).get("pv")),
                    wind_p90_kw=_clipped((p90 or {}).get("wind")))


def _clipped(kw: np.ndarray | None) -> np.ndarray | None:
    return None if kw is None else np.clip(kw, 0.0, None)


def site_scale_kw(plant: PlantModel, target_of: Mapping[str, str] | None = None) -> dict[str, float]:
    """Per forecast target, this site's size in kW: the AC rating of its PV or wind, the summed
    peak of the loads a target forecasts (``Forecaster(site_scale_kw=)``). ``target_of``: a
    load's target where it is not the load's own ``forecast``."""
    out: dict[str, float] = {}
    for r in plant.renewables:
        out[r.kind] = out.get(r.kind, 0.0) + r.p_rated_kw
    for ld in plant.loads:
        tgt = (target_of or {}).get(ld.name) or ld.forecast
        if tgt:
            out[tgt] = out.get(tgt, 0.0) + ld.peak_kw
    return {t: v for t, v in out.items() if v > 0}


class _History:
    """Mean kW per step of each target, oldest first; NaN for a step with no good reading."""

    def __init__(self, sources: Mapping[str, _Source]) -> None:
        self.sources = sources
        self.steps: dict[str, deque[float]] = {t: deque(maxlen=HISTORY_MAX_STEPS) for t in sources}
        self.step: int | None = None
        self._sum = dict.fromkeys(sources, 0.0)
        self._n = dict.fromkeys(sources, 0)
        self.latest: dict[str, float] = {}

    def observe(self, snap: Snapshot) -> None:
        step = math.floor(snap.ts / STEP_S)
        if self.step is not None and step > self.step:
            gap = min(step - self.step - 1, HISTORY_MAX_STEPS)
            for t in self.sources:
                self.steps[t].append(self._sum[t] / self._n[t] if self._n[t] else math.nan)
                self.steps[t].extend([math.nan] * gap)     # the daemon was not running
                self._sum[t], self._n[t] = 0.0, 0
        if self.step is None or step >= self.step:
            self.step = step
        for t, src in self.sources.items():
            v = _measure(snap, src)
            if v is not None:
                self._sum[t] += v
                self._n[t] += 1
                self.latest[t] = v

    def arrays(self) -> dict[str, np.ndarray]:
        return {t: np.asarray(self.steps[t], dtype=np.float64) for t in self.sources}

    def complete_steps(self, target: str) -> int:
        return int(np.isfinite(np.asarray(self.steps[target], dtype=np.float64)).sum())


def _measure(snap: Snapshot, src: _Source) -> float | None:
    total = 0.0
    for point, sign in src.points:
        v = snap.value(point)
        if v is None or not math.isfinite(v):
            return None
        frac_point = src.shed_frac.get(point)
        if frac_point is not None:          # metered after shedding: add the shed part back
            frac = snap.value(frac_point)
            if frac is not None and 0.0 <= frac < 1.0:
                v /= 1.0 - frac
        total += sign * v
    return max(total, 0.0)


def _model_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "models"


class ControlRunner:
    """The controller in the daemon: call it with each tick's snapshot."""

    def __init__(self, site: SiteConfig, *, plan_provider: PlanProvider | None = None,
                 model_dir: Path | None = None, deadline_s: float = 0.05) -> None:
        self.site = site
        self.config = controller_config(site, deadline_s=deadline_s)
        self.plant: PlantModel = self.config.plant
        self.state = ControllerState.fresh(self.config)
        self.plan_provider = plan_provider
        self.sources = _sources(self.plant)
        self.history = _History(self.sources)
        # stored energies, and what the forecasts start from: nothing is decided before each
        # has been read once (the first forecast would be made of zeros otherwise)
        self.required = [b.soc_point for b in self.plant.batteries] + [
            s.level_point for s in self.plant.ice_stores] + [
            e.stored_point for e in self.plant.electric_boilers if e.stored] + [
            p for src in self.sources.values() for p, _ in src.points] + [
            ld.p_point for ld in self.plant.loads if ld.p_point and not ld.forecast]
        self._seen_required: set[str] = set()
        self.forecaster: Any = None
        self.forecaster_note = ""
        if site.latitude is None or site.longitude is None:
            self.forecaster_note = "site.latitude/longitude not set: persistence forecasts only"
        else:
            from edge.forecast import Forecaster  # onnxruntime: loaded only when used

            self.forecaster = Forecaster(model_dir or _model_dir(), timezone=site.timezone,
                                         latitude=site.latitude, longitude=site.longitude,
                                         country=site.country or "CN", targets=tuple(self.sources),
                                         site_scale_kw=site_scale_kw(self.plant))
        self.forecast: Forecast | None = None
        self._p50: dict[str, np.ndarray] = {}
        self._p90: dict[str, np.ndarray] = {}
        self._persisted: list[str] = []
        self.forecast_refresh_ms = 0.0
        self.forecast_sources: dict[str, str] = {}
        self.last_info: dict[str, Any] = {}
        self.decide_ms: deque[float] = deque(maxlen=1000)

    # ------------------------------------------------------------------ forecasts

    def _refresh_forecast(self, snap: Snapshot, plan: Plan | None = None) -> Forecast:
        step = math.floor(snap.ts / STEP_S)
        if self.forecast is None or self.forecast.start_ts != step * STEP_S:
            t0 = time.perf_counter()
            self._p50 = {}
            self._p90 = {}
            self.forecast_sources = {}
            if self.forecaster is not None:
                # the plan's weather over the day ahead; a model whose keys it lacks runs
                # its no-weather variant or stands down for its baseline, and says so
                weather = plan.weather_ahead(step * STEP_S, STEP_S, 96) if plan is not None else None
                fc = self.forecaster.refresh(step, self.history.arrays(), weather or None)
                for t, tf in fc.targets.items():
                    self._p50[t] = np.asarray(tf.p50_kw, dtype=np.float64)
                    self.forecast_sources[t] = tf.source
                self._p90 = margin_p90(fc.targets)
            self._persisted = [t for t in self.sources
                               if t not in self._p50 or self.history.complete_steps(t) == 0]
            for t in self._persisted:
                self.forecast_sources[t] = "persistence" + (
                    " (no complete step yet)" if self.forecaster is not None else "")
            self.forecast_refresh_ms = (time.perf_counter() - t0) * 1e3
        elif not self._persisted:
            return self.forecast
        # nothing measured over a whole step yet: the latest reading held flat, every tick
        for t in self._persisted:
            self._p50[t] = np.full(96, self.history.latest.get(t, 0.0))
            self._p90.pop(t, None)
        self.forecast = self._control_forecast(step * STEP_S, self._p50, snap, self._p90)
        return self.forecast

    def _control_forecast(self, start_ts: float, p50: Mapping[str, np.ndarray],
                          snap: Snapshot, p90: Mapping[str, np.ndarray] | None = None) -> Forecast:
        """``control_forecast`` for this site; a load without a forecast target holds its reading."""
        def reading(ld: Any) -> float:
            v = snap.value(ld.p_point) if ld.p_point else None
            return max(v, 0.0) if v is not None else 0.0
        return control_forecast(self.plant, start_ts, p50, p90=p90, issued_ts=snap.ts,
                                target_of={ld.name: ld.forecast for ld in self.plant.loads
                                           if ld.forecast},
                                persisted_kw=reading)

    def forecast_summary(self) -> dict[str, Any]:
        """What ``parkedge forecast`` shows: per target, source, history and the P50's shape."""
        out: dict[str, Any] = {"origin_ts": self.forecast.start_ts if self.forecast else None,
                               "step_s": STEP_S, "refresh_ms": round(self.forecast_refresh_ms, 3),
                               "note": self.forecaster_note, "targets": {}}
        state = self.forecaster.state() if self.forecaster is not None else {"targets": {}, "notes": []}
        out["notes"] = state.get("notes", [])
        fc = self.forecaster.forecast if self.forecaster is not None else None
        for t in self.sources:
            st = state["targets"].get(t, {})
            row: dict[str, Any] = {"source": self.forecast_sources.get(t, "none"),
                                   "reason": st.get("reason", ""),
                                   "history_steps": self.history.complete_steps(t),
                                   "skill": st.get("skill")}
            if fc is not None and t in fc.targets and not self.forecast_sources.get(t, "").startswith("persist"):
                p = np.asarray(fc.targets[t].p50_kw)
            else:
                p = np.full(96, self.history.latest.get(t, 0.0))
            row["p50_kw"] = {"next": round(float(p[0]), 1), "mean": round(float(p.mean()), 1),
                             "min": round(float(p.min()), 1), "max": round(float(p.max()), 1)}
            out["targets"][t] = row
        return out

    # ------------------------------------------------------------------ the tick

    def __call__(self, snap: Snapshot) -> tuple[dict[str, float], dict[str, Any]]:
        t0 = time.perf_counter()
        self.history.observe(snap)
        for k in self.required:
            pv = snap.points.get(k)
            if pv is not None and pv.quality is Quality.GOOD:
                self._seen_required.add(k)
        waiting = [k for k in self.required if k not in self._seen_required]
        if waiting:
            # Before the first reading of a stored energy the controller would plan blind
            # (and the rules would act on zeros): hold, the PLCs keep their last values.
            held = {"reason": "holding", "detail": "waiting for first readings: " + ", ".join(waiting),
                    "decide_ms": round((time.perf_counter() - t0) * 1e3, 3)}
            self.last_info = held
            return {}, held
        plan = self.plan_provider() if self.plan_provider is not None else None
        fc = self._refresh_forecast(snap, plan)
        t1 = time.perf_counter()
        dec, self.state = decide(snap, fc, plan, self.state)
        ms = (time.perf_counter() - t1) * 1e3
        self.decide_ms.append(ms)
        info: dict[str, Any] = {
            "reason": dec.reason, "detail": dec.detail, "decide_ms": round(ms, 3),
            "solve_ms": round(dec.solve.solve_ms, 3) if dec.solve else None,
            "solve_status": dec.solve.status if dec.solve else None,
            "iterations": dec.solve.iters if dec.solve else None,
            "objective_cny": round(dec.solve.obj_cny, 2) if dec.solve else None,
            "slack_kw": {k: round(v, 3) for k, v in dec.slack_kw.items()},
            "fallbacks_total": dict(dec.fallbacks_total), "clamps": len(dec.clamps),
            "plan": plan.plan_id if plan is not None else None,
            "forecast": dict(self.forecast_sources),
            "forecast_refresh_ms": round(self.forecast_refresh_ms, 3),
        }
        self.last_info = info
        if dec.reason != "optimal":
            log.warning("control_fallback", reason=dec.reason, detail=dec.detail)
        return dict(dec.setpoints), info


def build_runner(site: SiteConfig, *, plan_provider: PlanProvider | None = None,
                 model_dir: Path | None = None) -> ControlRunner | None:
    """The site's controller, or None (hold every setpoint) when the site has no [assets]."""
    if site.plant is None:
        log.info("control_holding", site=site.id, reason="no [assets] in the site file")
        return None
    try:
        return ControlRunner(site, plan_provider=plan_provider, model_dir=model_dir)
    except ValueError as e:
        log.error("control_unavailable", site=site.id, error=str(e))
        return None
