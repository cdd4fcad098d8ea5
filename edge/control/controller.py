"""The tick: ``decide(snapshot, forecast, plan, state) -> (Decision, state)``, with its fallbacks.

Order of trust: the optimal first step; the last good solution shifted to now
(solver failed or late, inputs stale); the rule baseline; the site's safe
defaults. Each fallback is counted in the state and stated in the decision.
The safety clamp is applied to whatever comes out, last.

The state carries a cache of set-up QPs (one per commitment pattern). It is an
accelerator, not an input: with it or without it the same tick gives the
same setpoints up to the solver's tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from edge.control import rules as _rules
from edge.control.commitment import (
    RESERVE_FRAC,
    TRACE_KW,
    Commitment,
    UnitStatus,
    commit,
    cooling_uncovered,
    held_at_step0,
    held_in,
    ice_windows,
    with_cooling,
)
from edge.control.inputs import Forecast, Plan, Tariff, covered, extended_daily, local_hour_month, sample
from edge.control.plant import PlantModel
from edge.control.points import (
    diesel_points,
    electric_boiler_points,
    ice_store_points,
    renewable_points,
    shed_points,
)
from edge.control.project import FirstStep, project_first
from edge.control.qp import GRADED, QpModel, QpResult, StepGrid, TickData, Vec, make_grid
from edge.control.safety import Clamp, PointLimit, clamp, plant_limits
from edge.control.step0 import CARRY_HALF_LIFE_H, anchored, corrected_series
from edge.model import Snapshot

__all__ = ["ControllerConfig", "ControllerState", "Decision", "Reason", "SolveStats", "decide",
           "decide_rules"]

RELAXED = "<relaxed>"     # cache key marker of the commitment's relaxed QP (no unit has this name)
# ... and of its twin solved only on the quarter hour with ticks finer than a step
RELAXED_STEP = "<relaxed:step>"
CACHE_MODELS = 64             # QP structures kept (commitment patterns x aligned phases)
EPS_WITHIN_FRAC = 0.5         # eps's share at ticks within a step period (_eps)
_PRICE_SAMPLES_PER_STEP = 15   # a price sample a minute of a 15-min step (tariffs change on the minute)
# Step 0's export this close to the grid's limit is at it. OSQP at eps 1e-3 leaves a binding
# export row up to ~15 kW inside the limit (the projection closes the balance, not the
# bound), so at 1 kW Park A winter's battery fill (``_setpoints``) missed steps at the limit
# (cost incl. storage change 328.7 k CNY against 327.5 k at 20 kW, 15-min steps)
_AT_LIMIT_KW = 20.0
Reason = Literal["optimal", "shifted_previous", "rules", "safe_defaults"]
RuleFn = Callable[[PlantModel, _rules.RuleContext], dict[str, float]]


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    plant: PlantModel
    tariff: Tariff
    limits: Mapping[str, PointLimit] = field(default_factory=dict)   # the site's point limits
    step_min: float = 15.0
    horizon_h: float = 24.0
    # non-uniform steps: (hours, multiple of step_min) spans from now; None = uniform
    layout: tuple[tuple[float, int], ...] | None = GRADED
    stale_after_s: float = 5.0
    deadline_s: float = 0.05         # OSQP time limit per solve; 0 = none (virtual time)
    max_shift_age_s: float = 3600.0  # how long a previous solution may stand in
    # the commitment binds this far ahead; later steps may use any unit at any load
    # (commitment._firm); None: over the whole horizon
    firm_h: float | None = 12.0
    # a forecast's last miss carried into later steps, halving every this many hours
    # (step0.carried); 0: step 0 only
    carry_half_life_h: float = CARRY_HALF_LIFE_H
    # ... but not a wind model's: it reads the farm's last output (``y_last``) beside the
    # plan's wind speed, so a miss carried on counts twice (session 14). Yet it is worse than
    # that output held flat for the first 45 min (held-out nMAE of the rating at lead 1 / 2 /
    # 3: 4.03 / 4.15 / 4.27 % against 1.62 / 3.00 / 4.35 %), so its steps start from the
    # reading and fade to the model, the reading's weight halving every this many hours
    # (step0.anchored; step 0 is the reading). Park A, 15-min steps, cost incl. storage
    # change against session 20's (step 0 corrected by the last miss, later steps the
    # model's): winter -964 / -241 / -1,706 CNY on seeds 0 / 1 / 2, summer +392 / -182 /
    # -419; 5-min ticks winter -378, summer -3 (0.25 h: winter -911; 1 h -361; 2 h -100).
    wind_anchor_half_life_h: float = 0.5
    # ... and a heat forecast's with its own half-life where the site gives one (None: as the
    # others'). Park A's heat model runs ~6 % under its district heat all winter (bias
    # -0.059 to -0.061 on three seeds), a level the model's own reading of the last hour only
    # repairs for the next steps; carried longer, the miss keeps the level all day.
    heat_carry_half_life_h: float | None = None
    # how long step 0's setpoints hold: the tick period (the daemon's [control] tick_s);
    # None: a whole step (one decision a step, as the evaluation's default)
    tick_s: float | None = None
    # Heat and cooling that a store serves are planned at P50 + frac x (P90 - P50) of their
    # forecast (where it has a P90): a store run short meets the peak with chillers or gas
    # at the peak price, one left with a margin keeps it for tomorrow. Park B, 15-min steps,
    # shipped models: 89.8 / 95.4 -> 90.9 / 95.9 % of the saving captured (summer /
    # winter; 0.2: 90.8 / 95.9 %). 0: plan on the P50.
    store_margin_frac: float = 0.4
    # A battery charging against the import limit leaves this fraction of the renewables'
    # step-0 output free below it (project_first): its setpoint holds through the tick, and
    # PV or wind dropping within it had the meter short, the load unserved. Park A summer
    # at 1-min ticks: 82 -> 0 kWh unserved (captured 95.8 -> 95.7 %); at 15-min steps 774
    # -> 360 kWh (93.6 -> 93.5 %; 0.4: 199 kWh, 93.2 %); winter 75 -> 56 kWh at 15 min.
    import_headroom_frac: float = 0.2
    # PV and wind are planned at P50 + frac x (P90 - P50) of their forecast (where it has a
    # P90) on the steps where the park could be export-limited (``_export_risk``): there
    # more than forecast is curtailed once the battery is full, so the plan keeps room for
    # it; elsewhere a margin only shifts the plan's trades. Park A, 15 / 5 / 1-min ticks,
    # captured: winter 88.0 / 90.2 / 92.6 -> 88.9 / 91.5 / 93.8 %, summer within 0.1 point
    # (with the margin everywhere: winter 89.6 % but summer 96.4 -> 95.7 % at 15 min;
    # wind only, within 0.1 point of both). 0: plan on the P50.
    renewable_margin_frac: float = 1.0
    # With ticks finer than a step: step 0 runs to the end of the clock's current step period
    # (the quarter hour) and every later step is one of the forecasts' and the tariff's own
    # steps (``make_grid(first_h=)``, one QP structure a phase, the phase taken in whole
    # minutes). False: every step runs ``step_min`` from the tick, so within the quarter hour
    # each blends two forecast steps and, at a tariff change, two prices, and a tick re-plans
    # on that blur (Park A winter with exact forecasts at 5-min ticks: 322,844 against
    # 319,869 CNY at one decision a step; aligned 321,561). Park A's site file sets it.
    align_steps: bool = False
    eps: float = 1e-3
    rules: Literal["auto", "park_a", "park_b", "none"] = "auto"

    def rule_fn(self) -> RuleFn | None:
        kind = self.rules
        if kind == "auto":
            kind = "park_b" if self.plant.ice_stores else "park_a"
        return {"park_a": _rules.park_a, "park_b": _rules.park_b}.get(kind)

    def all_limits(self) -> dict[str, PointLimit]:
        lim = plant_limits(self.plant)
        for k, v in self.limits.items():
            lim[k] = lim[k].narrowed(v) if k in lim else v
        return lim


@dataclass(frozen=True, slots=True)
class SolveStats:
    status: str
    iters: int
    solve_ms: float
    obj_cny: float


@dataclass(frozen=True, slots=True)
class Decision:
    ts: float
    setpoints: Mapping[str, float]
    reason: Reason
    detail: str                                   # why, when not optimal
    solve: SolveStats | None = None
    flows_kw: Mapping[str, float] = field(default_factory=dict)     # step 0, magnitudes
    slack_kw: Mapping[str, float] = field(default_factory=dict)     # unserved at step 0
    residual_kw: Mapping[str, float] = field(default_factory=dict)  # balances after projection
    clamps: tuple[Clamp, ...] = ()
    fallbacks_total: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Solution:
    key: frozenset[str]
    ts: float
    x: Vec
    y: Vec
    model_key: frozenset[str]   # its QP's key in the cache (the units, on an aligned grid the phase)


@dataclass(frozen=True, slots=True)
class ControllerState:
    config: ControllerConfig
    cache: dict[frozenset[str], QpModel] = field(default_factory=dict, compare=False)
    last: _Solution | None = None
    status: Mapping[str, UnitStatus] = field(default_factory=dict)
    last_setpoints: Mapping[str, float] = field(default_factory=dict)
    last_ts: float | None = None
    fallbacks: Mapping[str, int] = field(default_factory=dict)
    # the last tick's forecast per load and renewable as a function of time (``_Trace``): the
    # next tick's readings are compared with it at the time they were taken, like for like
    # whatever the tick (a 1 s reading against a 15-min mean had carried a ramp for hours)
    fc_trace: Mapping[str, _Trace] = field(default_factory=dict)

    @classmethod
    def fresh(cls, config: ControllerConfig) -> ControllerState:
        return cls(config)

    @property
    def grid(self) -> StepGrid:
        return make_grid(self.config.horizon_h, self.config.step_min, self.config.layout)

    def grid_at(self, t: float) -> StepGrid:
        """The steps of a tick at ``t``: ``grid``, or aligned with the step periods
        (``ControllerConfig.align_steps``) where ``t`` falls between two."""
        c = self.config
        first_h = _first_step_h(c, t)
        if first_h is None:
            return self.grid
        return make_grid(c.horizon_h, c.step_min, c.layout, first_h=first_h)


def _first_step_h(cfg: ControllerConfig, t: float) -> float | None:
    """Step 0's length on a grid aligned with the step periods: the rest of the current
    period in whole minutes (at most ``step_min`` - 1 structures a commitment pattern at a
    1 s tick), or None (on a period's boundary, or not aligned)."""
    step_s = cfg.step_min * 60.0
    if (not cfg.align_steps or cfg.tick_s is None or not 0.0 < cfg.tick_s < step_s
            or (cfg.layout and cfg.layout[0][1] != 1)):
        return None
    rest_min = round((step_s - math.fmod(t, step_s)) / 60.0)
    if rest_min >= cfg.step_min:
        return None
    return max(rest_min, 1) / 60.0


# --- measurements and inputs --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Trace:
    """A forecast series (kW per step from ``start_ts``), linear between step middles."""

    start_ts: float
    step_s: float
    kw: Vec

    def along(self, ts: Vec) -> Vec:
        mids = self.start_ts + (np.arange(len(self.kw)) + 0.5) * self.step_s
        out: Vec = np.interp(ts, mids, self.kw)
        return out

    def at(self, ts: float) -> float:
        return float(self.along(np.array([ts]))[0])


def _read_ts(snap: Snapshot, points: list[str]) -> float:
    """When the readings of ``points`` were taken (the mean of their source times)."""
    ts = [snap.points[k].source_ts for k in points if k in snap.points]
    return float(np.mean(ts)) if ts else snap.ts


def _read(snap: Snapshot, point: str, stale_s: float) -> float | None:
    pv = snap.points.get(point)
    v = snap.value(point)
    if pv is None or v is None or not math.isfinite(v) or snap.ts - pv.source_ts > stale_s:
        return None
    return v


@dataclass(frozen=True, slots=True)
class _Inputs:
    soc_kwh: dict[str, float]
    ice_kwh: dict[str, float]
    heat_store_kwh: dict[str, float]
    missing: list[str]
    price_import: Vec
    price_export: Vec
    grid_co2: Vec
    gas: float
    carbon: float
    diesel: float
    renewable_kw: dict[str, Vec]
    elec_kw: Vec
    shed_max_kw: dict[str, Vec]
    heat_kw: Vec
    cooling_kw: Vec
    target_kw: Vec | None
    plan_modes: dict[str, Vec]
    plan_id: str
    # the forecasts as handed, per load ("heat", "cooling", electric loads and renewables by
    # name): what the next tick's readings are compared with (``ControllerState.fc_trace``)
    fc_trace: dict[str, _Trace] = field(default_factory=dict)
    # the import price in force now (what the rules read; a coarse first step averages it)
    price_import_now: float = math.nan
    # how long step 0's setpoints hold, h (the tick period; ``_hold_frac``)
    hold_h: float = math.nan
    # the cooling the park drew at the last reading, kW (NaN: not read)
    cooling_now_kw: float = math.nan

    @property
    def net_elec_kw(self) -> Vec:
        """Electric load less the renewables' forecast, kW per step."""
        out: Vec = self.elec_kw - sum(self.renewable_kw.values(), np.zeros(len(self.elec_kw)))
        return out


def _export_risk(p: PlantModel, fc: Forecast) -> NDArray[np.bool_]:
    """The forecast's steps where PV and wind at their P90 (P50 where there is none), with
    the CHPs giving the electricity of the heat forecast, exceed the electric loads by the
    grid's export limit or more. A screen, not a balance: chillers' and heaters' electricity
    and the battery are left out, and the CHPs are taken as heat-led (on Park A they are the
    heat's only source)."""
    def hi(p50: Vec, p90: Vec | None) -> Vec:
        lo: Vec = np.clip(np.asarray(p50, float), 0.0, None)
        if p90 is not None:
            lo = np.maximum(lo, np.asarray(p90, float))
        return lo

    surplus = hi(fc.pv_kw, fc.pv_p90_kw) + hi(fc.wind_kw, fc.wind_p90_kw)
    p_max = sum(c.p_max_kw for c in p.chps)
    if p_max > 0:
        heat_per_kw = sum(c.p_max_kw * c.heat_to_power for c in p.chps) / p_max
        surplus = surplus + np.minimum(p_max, np.clip(np.asarray(fc.heat_kw, float), 0.0, None)
                                       / heat_per_kw)
    for load in fc.elec_kw.values():
        surplus = surplus - np.asarray(load, float)
    risk: NDArray[np.bool_] = surplus >= p.grid.export_max_kw
    return risk


def _inputs(cfg: ControllerConfig, grid: StepGrid, snap: Snapshot, fc: Forecast,
            plan: Plan | None, prev_trace: Mapping[str, _Trace] | None = None) -> _Inputs:
    """``prev_trace``: the last tick's forecasts (``_Inputs.fc_trace``), when that tick was
    one step ago or less; None to take this tick's readings as step 0."""
    p, t = cfg.plant, snap.ts
    traces: dict[str, _Trace] = {}
    # a horizon configured past the forecasts' 24 h sees tomorrow as today; on the shipped
    # 24 h the forecast comes back untouched
    fc = extended_daily(fc, t + float(grid.dt_h.sum()) * 3600.0)

    def prev_at(key: str, points: list[str]) -> float | None:
        """The last tick's forecast for ``key`` when its readings were taken."""
        tr = (prev_trace or {}).get(key)
        return tr.at(_read_ts(snap, points)) if tr is not None else None
    half_h = cfg.carry_half_life_h
    missing: list[str] = []
    soc: dict[str, float] = {}
    for b in p.batteries:
        v = _read(snap, b.soc_point, cfg.stale_after_s)
        if v is None:
            missing.append(b.soc_point)
        soc[b.name] = (v if v is not None else 0.5) * b.capacity_kwh
    ice: dict[str, float] = {}
    for s in p.ice_stores:
        v = _read(snap, s.level_point, cfg.stale_after_s)
        if v is None:
            missing.append(s.level_point)
        ice[s.name] = (v if v is not None else 0.0) * s.capacity_kwh
    hs: dict[str, float] = {}
    for e in p.electric_boilers:
        if e.stored:
            v = _read(snap, e.stored_point, cfg.stale_after_s)
            if v is None:
                missing.append(e.stored_point)
            hs[e.name] = min(max(v if v is not None else 0.0, 0.0), e.store_kwh)
    n_fine = int(grid.fine_count.sum())
    fine_s = grid.fine_lengths_h() * 3600.0
    fine_at = t + grid.fine_starts_h() * 3600.0
    mids = fine_at + fine_s / 2.0
    # prices: step 0 at the price in force now (its setpoints hold until the next tick), the
    # later steps at their time average, from one sample a minute. A tick between quarter
    # hours (the daemon ticks every second) has steps that straddle a tariff change: priced
    # at their middles, the battery charged at 10 MW for the last minutes of a mid-peak
    # period; at their averages, it still charged from PV it could have exported then
    # (Park A summer at 5-min ticks)
    per = _PRICE_SAMPLES_PER_STEP
    subs = (np.repeat(fine_at, per)
            + (np.tile(np.arange(per), n_fine) + 0.5) * np.repeat(fine_s, per) / per)
    imp, exp, co2 = cfg.tariff.series(p.timezone, subs)
    gas, carbon, diesel = (cfg.tariff.gas_cny_per_m3, cfg.tariff.carbon_cny_per_t,
                           cfg.tariff.diesel_cny_per_l)
    target: Vec | None = None
    modes: dict[str, Vec] = {}
    plan_id = ""
    if plan is not None and plan.start_ts <= t < plan.valid_until_ts:
        plan_id = plan.plan_id
        m = covered(plan.start_ts, plan.step_s, len(plan.import_cny_per_kwh), subs)
        for dst, src in ((imp, plan.import_cny_per_kwh), (exp, plan.export_cny_per_kwh),
                         (co2, plan.grid_co2_kg_per_kwh)):
            dst[m] = sample(src, plan.start_ts, plan.step_s, subs)[m]
        gas, carbon, diesel = plan.gas_cny_per_m3, plan.carbon_cny_per_t, plan.diesel_cny_per_l
        if plan.grid_p_target_kw is not None:
            tg = sample(plan.grid_p_target_kw, plan.start_ts, plan.step_s, mids)
            target = grid.coarsen(np.where(m, tg, np.nan))
        for u, series in plan.commitments.items():
            mm = covered(plan.start_ts, plan.step_s, len(series), mids)
            fine = np.where(mm, sample(series, plan.start_ts, plan.step_s, mids), np.nan)
            idx = np.concatenate([[0], np.cumsum(grid.fine_count)[:-1]])
            modes[u] = fine[idx]            # a step's mode is its first fine step's

    def trace(key: str, a: Vec) -> None:
        traces[key] = _Trace(fc.start_ts, fc.step_s, np.asarray(a, float))

    # Step 0's loads and renewables are what its setpoints meet until the next tick: taken
    # at the middle of a 15-min step at a 1-min tick, Park A's heat-led CHPs ran down a
    # falling heat load ahead of it and left it unserved (2.0 MWh in the winter fortnight)
    hold_s = _hold_frac(cfg, grid) * _period_s(grid)
    at = mids.copy()
    at[: int(grid.fine_count[0])] = t + hold_s / 2.0

    def fs(a: Vec) -> Vec:
        # linear between the forecast's step middles: a tick between quarter hours takes the
        # part of the next step its own step 0 covers
        return grid.coarsen(_Trace(fc.start_ts, fc.step_s, np.asarray(a, float)).along(at))

    rated = sum(r.p_rated_kw for r in p.renewables if r.kind == "pv") or 1.0
    wrated = sum(r.p_rated_kw for r in p.renewables if r.kind == "wind") or 1.0
    ren: dict[str, Vec] = {}
    # where the park could be export-limited, PV and wind are planned towards their P90
    has_p90 = fc.pv_p90_kw is not None or fc.wind_p90_kw is not None
    margin = (_export_risk(p, fc) * cfg.renewable_margin_frac
              if cfg.renewable_margin_frac > 0 and has_p90 else None)
    for r in p.renewables:
        # this asset's share of its kind's forecast
        src = np.clip(fc.pv_kw if r.kind == "pv" else fc.wind_kw, 0, None)
        p90 = fc.pv_p90_kw if r.kind == "pv" else fc.wind_p90_kw
        if margin is not None and p90 is not None:
            src = src + margin * np.clip(np.asarray(p90, float) - src, 0.0, None)
        raw = src * r.p_rated_kw / (rated if r.kind == "pv" else wrated)
        trace(r.name, raw)
        # step 0 from what the plant could give in the step just measured, as for the loads:
        # a forecast below it had the battery exporting into the export limit while the PV
        # it displaced was spilled
        now = _read(snap, r.avail_point, cfg.stale_after_s) if r.avail_point else None
        # a wind forecast with a P90 is a model's (``edge.runner.margin_p90``), which has read
        # the farm's last output and starts from it here; a naive baseline's (yesterday's) has
        # not, and carries its miss
        model_wind = r.kind == "wind" and fc.wind_p90_kw is not None
        reading = now if now is not None and now >= 0 else None
        if model_wind and reading is not None:
            ren[r.name] = anchored(fs(raw), min(reading, r.p_rated_kw), grid,
                                   cfg.wind_anchor_half_life_h, max_kw=r.p_rated_kw)
        else:
            ren[r.name] = corrected_series(fs(raw), reading, prev_at(r.name, [r.avail_point]),
                                           grid, half_h, max_kw=r.p_rated_kw)
    elec = np.zeros(grid.n)
    shed: dict[str, Vec] = {}
    for ld in p.loads:
        if ld.kind != "electric":
            continue
        fc_kw = fc.elec_kw.get(ld.name)
        f = fs(fc_kw) if fc_kw is not None else np.zeros(grid.n)
        now = _read(snap, ld.p_point, cfg.stale_after_s) if ld.p_point else None
        if now is not None and ld.shed_frac_point:
            # the meter sees the load after shedding; the readback says how much was shed
            frac = _read(snap, ld.shed_frac_point, cfg.stale_after_s)
            if frac is not None and 0.0 <= frac < 1.0:
                now /= 1.0 - frac
        if fc_kw is not None:
            trace(ld.name, fc_kw)
        f = corrected_series(f, now, prev_at(ld.name, [ld.p_point]) if fc_kw is not None else None,
                             grid, half_h)
        elec += f
        if ld.interruptible_frac > 0:
            shed[ld.name] = ld.interruptible_frac * f
    thermal: dict[str, Vec] = {}
    cooling_now = math.nan
    stored = {"heat": any(e.stored for e in p.electric_boilers), "cooling": bool(p.ice_stores)}
    for kind, raw, p90 in (("heat", fc.heat_kw, fc.heat_p90_kw),
                           ("cooling", fc.cooling_kw, fc.cooling_p90_kw)):
        if stored[kind] and p90 is not None and cfg.store_margin_frac > 0:
            # the margin is in the series the next tick's miss is taken against (trace)
            raw = raw + cfg.store_margin_frac * np.clip(np.asarray(p90, float) - raw, 0.0, None)
        arr = fs(raw)
        pts = [ld.p_point for ld in p.loads if ld.kind == kind and ld.p_point]
        vals = [_read(snap, k, cfg.stale_after_s) for k in pts]
        trace(kind, raw)
        measured = (sum(v for v in vals if v is not None)
                    if vals and all(v is not None for v in vals) else None)
        thermal[kind] = corrected_series(
            arr, measured, prev_at(kind, pts), grid,
            cfg.heat_carry_half_life_h if kind == "heat" and cfg.heat_carry_half_life_h else half_h)
        if kind == "cooling" and measured is not None:
            cooling_now = measured
        for ld in p.loads:
            dev_k = (_read(snap, ld.network_point, cfg.stale_after_s)
                     if ld.kind == kind and ld.network_point else None)
            if dev_k is not None:
                # What the network's water lacks against its setpoint (or holds above it) is
                # made up over restore_h: the water takes each quarter hour's miss of the heat
                # forecast, and this brings it back. Not read, the deficit drifts until the
                # band is spent (Park A, 15-min steps: 111 / 19 kWh of heat unserved in the
                # winter / summer fortnight; read, none).
                step0 = float(thermal[kind][0]) - dev_k * ld.network_kwh_per_k / ld.network_restore_h
                thermal[kind] = np.concatenate([[max(step0, 0.0)], thermal[kind][1:]])
    heat, cool = thermal["heat"], thermal["cooling"]
    now = float(imp[0])
    imp, exp, co2 = (np.concatenate([a[:1], a.reshape(n_fine, per)[1:].mean(axis=1)])
                     for a in (imp, exp, co2))
    return _Inputs(soc, ice, hs, missing, grid.coarsen(imp), grid.coarsen(exp), grid.coarsen(co2),
                   gas, carbon, diesel, ren, elec, shed, heat, cool, target, modes, plan_id,
                   fc_trace=traces, price_import_now=now, hold_h=hold_s / 3600.0,
                   cooling_now_kw=cooling_now)


def _tick_data(cfg: ControllerConfig, inp: _Inputs, cm: Commitment,
               prev_kw: Mapping[str, float]) -> TickData:
    on: dict[str, Vec] = {}
    ice_on: dict[str, Vec] = {}
    for d in cfg.plant.dual_chillers:
        m = cm.mode[d.name]
        on[d.name] = (m == 1).astype(float)
        ice_on[d.name] = (m == 2) * cm.charge_ok[d.ice_store]
    for u, m in cm.mode.items():
        on.setdefault(u, (m > 0).astype(float))
    k = cm.firm_steps
    if k is not None:               # beyond the firm steps every unit is available
        for unit in cfg.plant.switched:
            avail = on.get(unit.name, np.zeros(len(inp.heat_kw))).copy()
            avail[k:] = 1.0
            on[unit.name] = avail
        for d in cfg.plant.dual_chillers:
            avail = np.asarray(ice_on[d.name], float).copy()
            avail[k:] = cm.charge_ok[d.ice_store][k:]
            ice_on[d.name] = avail
    return replace(_td(cfg, inp, on, ice_on, cm.melt_ok, prev_kw), firm_steps=k)


def _td(cfg: ControllerConfig, inp: _Inputs, on: Mapping[str, Vec], ice_on: Mapping[str, Vec],
        melt_ok: Mapping[str, Vec], prev_kw: Mapping[str, float], *, relaxed: bool = False) -> TickData:
    return TickData(inp.price_import, inp.price_export, inp.grid_co2, inp.gas, inp.carbon,
                    inp.diesel, inp.renewable_kw, inp.elec_kw, inp.shed_max_kw, inp.heat_kw,
                    inp.cooling_kw, on, ice_on, melt_ok, inp.soc_kwh, inp.ice_kwh, prev_kw,
                    cfg.plant.objective, inp.target_kw, inp.heat_store_kwh, relaxed=relaxed)


# --- first step to setpoints --------------------------------------------------------------

def _setpoints(p: PlantModel, fs: FirstStep, cm: Commitment, inp: _Inputs) -> dict[str, float]:
    """Step 0 as the points the devices take (see ``points.py`` for each form)."""
    v = fs.kw

    def g(s: str) -> float:
        return v.get(s, 0.0)

    sp: dict[str, float] = {}
    at_export_limit = g("grid.exp") >= p.grid.export_max_kw - _AT_LIMIT_KW
    for b in p.batteries:
        sp[b.p_set_point] = g(f"{b.name}.ch") - g(f"{b.name}.dis")
        known = b.soc_point not in inp.missing      # with the level unknown, the plan's value
        if b.export_limiter and at_export_limit and known and g(f"{b.name}.dis") > 0.0:
            # Exporting at the limit and discharging: asked for more, the converter delivers
            # what the grid can still take, so PV or wind coming in below their forecast
            # within the tick leave the export at the limit rather than short of it; above
            # their forecast it backs off, as at the plan's value. Up to its rating and to
            # what it holds above its minimum for the tick. At 15-min steps Park A winter's
            # mpc had exported 13.8 MWh below the limit in the peak hours (exact forecasts:
            # 4.3); cost incl. storage change 330.7 -> 327.5 k CNY, summer 298.1 -> 296.0 k.
            # The next tick smooths against this setpoint, not the plan's (against the plan's,
            # on an earlier form of the fill: 328.9 k against 328.6 k, within a run's noise).
            above_min_kwh = inp.soc_kwh[b.name] - b.soc_min_frac * b.capacity_kwh
            fill_kw = min(b.p_discharge_max_kw, max(above_min_kwh, 0.0) * b.eta_discharge / inp.hold_h)
            sp[b.p_set_point] = -max(fill_kw, g(f"{b.name}.dis"))
    for c in p.chps:
        sp[c.p_set_point] = -g(f"{c.name}.p")
    for dg in p.diesels:
        mode = cm.mode.get(dg.name)
        committed = mode is not None and float(mode[0]) > 0
        sp.update(diesel_points(dg, g(f"{dg.name}.p"), committed))
    for gb in p.gas_boilers:
        sp[gb.q_set_point] = -g(f"{gb.name}.q")
    for e in p.electric_boilers:
        sp.update(electric_boiler_points(e, g(f"{e.name}.q"),
                                         g(f"{e.name}.p") if e.stored else None))
    for cl in p.coolers:
        sp[cl.cool_set_point] = -g(f"{cl.name}.c")
    modes: dict[str, float] = {}
    for d in p.dual_chillers:
        modes[d.name] = float(cm.mode[d.name][0])
        sp[d.cool_set_point] = -(g(f"{d.name}.c") + g(f"{d.name}.ice"))
        sp[d.mode_set_point] = modes[d.name]
    for s in p.ice_stores:
        makers = [(d, modes[d.name]) for d in p.dual_chillers if d.ice_store == s.name]
        # in melt mode whenever it is not charging, at the plan's melt (0 included): the
        # store then picks up cooling the running chillers cannot (Park B winter, 15-min
        # steps: 1-126 kW loads at night with every chiller off, 464 -> 87 kWh unserved)
        sp.update(ice_store_points(s, g(f"{s.name}.melt"), makers, standby=True))
    # at the export limit the renewables' own limiter curtails what the grid cannot take,
    # and no more; a limit at the plan's output would also curtail what the forecast missed
    # while the grid could still take it
    limiter = p.grid.export_limiter and at_export_limit
    for r in p.renewables:
        sp.update(renewable_points(r, None if limiter else g(f"{r.name}.p"),
                                   float(inp.renewable_kw[r.name][0])))
    for ld in p.loads:
        if ld.interruptible_frac > 0:
            gross = float(inp.shed_max_kw[ld.name][0]) / ld.interruptible_frac
            sp.update(shed_points(ld, g(f"{ld.name}.shed"), gross))
    return sp


def _prev_kw(p: PlantModel, last: Mapping[str, float]) -> dict[str, float]:
    """Last setpoints as the QP's smoothed series (magnitudes).

    Every smoothed series needs one: step 0 is smoothed against it, and a series without
    one (boilers, chillers, ice melting when it was smoothed) was smoothed against 0, a
    pull towards zero on every tick that a single 12 MW melt series felt more than seven
    chillers sharing the rest. The ice melt is not smoothed since session 10 (qp.py)."""
    out: dict[str, float] = {}

    def put(series: str, point: str, sign: float = -1.0) -> None:
        if point and point in last:
            out[series] = sign * last[point]
    for b in p.batteries:
        put(f"{b.name}.net", b.p_set_point, 1.0)
    for u in p.generators:
        put(f"{u.name}.p", u.p_set_point)
    for g in p.gas_boilers:
        put(f"{g.name}.q", g.q_set_point)
    for e in p.electric_boilers:
        put(f"{e.name}.q", e.q_set_point)
        if e.stored:
            put(f"{e.name}.p", e.p_set_point, 1.0)
    for c in p.coolers:
        put(f"{c.name}.c", c.cool_set_point)
    for d in p.dual_chillers:
        mode = last.get(d.mode_set_point)
        if d.cool_set_point in last and mode is not None:
            kw = -last[d.cool_set_point]
            out[f"{d.name}.c"] = kw if mode == 1.0 else 0.0
            out[f"{d.name}.ice"] = kw if mode == 2.0 else 0.0
    return out


def _cache_key(key: frozenset[str], grid: StepGrid) -> frozenset[str]:
    """A QP's key in the cache: its units, and on an aligned grid its step 0's length."""
    return key | {f"first:{round(grid.first_fine_h * 60)}min"} if grid.first_fine_h else key


def _cache_put(state: ControllerState, key: frozenset[str], model: QpModel) -> None:
    """Keep ``model`` under ``key``; past ``CACHE_MODELS`` the oldest go, but the last
    solution's (each model holds an OSQP workspace of about 1 MB, and an aligned grid has a
    structure a phase for every commitment pattern)."""
    state.cache[key] = model
    keep = state.last.model_key if state.last is not None else None
    for old in list(state.cache):
        if len(state.cache) <= CACHE_MODELS:
            break
        if old not in (key, keep):
            del state.cache[old]


def _model(state: ControllerState, key: frozenset[str], grid: StepGrid) -> QpModel:
    ck = _cache_key(key, grid)
    m = state.cache.get(ck)
    if m is None:
        m = QpModel(state.config.plant, grid, key, eps=state.config.eps)
        _cache_put(state, ck, m)
    return m


def _eps(cfg: ControllerConfig, *, within: bool) -> float:
    """OSQP's tolerance for this tick's dispatch QP: ``cfg.eps`` on the step period's
    boundary (the quarter hour, and every tick at one decision a step), ``EPS_WITHIN_FRAC``
    of it at the ticks within the period (``_within_step``).

    Such a tick re-plans from a warm start a few minutes old, and at eps 1e-3 OSQP stopped
    near it: with exact forecasts at 5-min ticks Park B summer cost 1,034,101 CNY on the
    aligned grid against 1,033,506 from the tick, the loss spread over every daytime hour
    (its heat-storage boilers trickle-charged 2.5-4.4 kW through the day at day prices, 1
    kW from the tick), and with eps in proportion to step 0's share of a step 1,033,517;
    a 5-min step 0 weighs each kW at a third of a quarter hour's price under the same
    stopping test. Scaling step 0's columns instead gained nothing (1,034,233): it is the
    whole plan that the looser stop leaves behind. From the tick too, at half the eps,
    Park B summer at 5 / 1-min ticks -81 / -169 CNY, winter at 5 min +94. Not tighter, for
    the solve time (the daemon's solves have a 50 ms deadline): Park A summer at 1-min
    ticks, QP p99 10 ms at eps, 42 ms at half (two runs beside a CI run), 65 ms with eps in
    proportion to step 0's share (eps / 15 where step 0 is a minute). Figures for every row:
    docs/controller-history.md, session 22.
    """
    return cfg.eps * EPS_WITHIN_FRAC if within else cfg.eps


def _relaxed(state: ControllerState, inp: _Inputs, t: float,
             windows: tuple[dict[str, Vec], dict[str, Vec]],
             prev_kw: Mapping[str, float], *, step_tick: bool = False,
             grid: StepGrid | None = None) -> dict[str, Vec] | None:
    """The QP with every unit available and no minimum loads: what each unit would do if it
    could run at any load. Its per-unit series are what the commitment rounds into whole
    units, so on/off follows the same prices and balances as the dispatch. None when it
    does not solve (the commitment's merit heuristics then decide).

    ``step_tick``: the tick on the quarter hour that decides on/off for the step, with
    ticks finer than a step (``_within_step``). It has a model of its own, warm-started
    from the last quarter hour's solution shifted by a whole step, as at one decision a
    step; the ticks within the step (whose relaxation decides only the later steps) keep
    the other. From the last tick's, shifted by a part of a step, the loose solve (eps
    1e-3) stayed near a warm start that no longer lines up with the steps, in directions
    the prices barely tell apart (the ice store's melt against a chiller at the peak),
    and the rounding followed it. On the quarter-hour hold (``_within_step``), Park B
    summer at 5-min ticks, seeds 0 / 1 / 2: 1,034,857 / 1,034,671 / 1,036,599 -> 1,034,482 /
    1,034,514 / 1,036,032 CNY (unserved cooling 28 -> 13 kWh on seed 0), at 1-min ticks
    1,035,394 -> 1,034,833; Park A summer -195 / -52 CNY at 5 / 1 min, winter -118 / +239,
    Park B winter +13 / +17. The eps alone (1e-4 on the quarter hours, this model's warm
    start as before) gained as much on Park B but cost Park A summer +432 at 5 min.
    """
    p = state.config.plant
    grid = grid if grid is not None else state.grid_at(t)        # the tick's, from decide
    if not p.switched:
        return None
    units = frozenset(u.name for u in p.switched)
    key = _cache_key(units | {RELAXED_STEP if step_tick else RELAXED}, grid)
    model = state.cache.get(key)
    if model is None:
        model = QpModel(p, grid, units, eps=state.config.eps)
        _cache_put(state, key, model)
    charge_ok, melt_ok = windows
    # every unit available, but not one its minimum down time holds off: the rounding cannot
    # start it, so what the relaxation had it carry would be staged on no unit (found on a
    # Park A summer tick where a CHP had stopped 15 min before and no electric chiller was
    # staged; what the rounding still misses there is commitment.with_cooling's)
    avail = {u.name: np.where(held_in(state.status.get(u.name), 0, u.min_down_h, grid, t), 0.0, 1.0)
             for u in p.switched}
    td = _td(state.config, inp, avail,
             {d.name: np.asarray(charge_ok[d.ice_store], float) * avail[d.name]
              for d in p.dual_chillers}, melt_ok, prev_kw, relaxed=True)
    warm = None
    if model.warm is not None:
        x0, y0, ts0 = model.warm
        warm = model.shift(x0, y0, t - ts0)
    res = model.solve(td, warm, state.config.deadline_s)
    if not res.ok:
        model.warm = None
        return None
    model.warm = (res.x, res.y, t)
    out: dict[str, Vec] = {}
    stores = {f"{st.name}.{k}" for st in p.ice_stores for k in ("melt", "e")}
    for s in model.series:
        if s.endswith((".p", ".c", ".ice")) or s in stores:
            out[s] = model.kw(res.x, s)                       # .e: kWh at step end
    return out


def _commitment(cfg: ControllerConfig, grid: StepGrid, inp: _Inputs, t: float,
                status: Mapping[str, UnitStatus], relaxed: Mapping[str, Vec] | None,
                windows: tuple[dict[str, Vec], dict[str, Vec]]) -> Commitment:
    """This tick's commitment from its inputs and the relaxation (``_relaxed``; None: the
    merit heuristics). The QP benchmark calls it too, so that it commits as ``decide`` does."""
    return commit(cfg.plant, grid, t, heat_kw=inp.heat_kw, cooling_kw=inp.cooling_kw,
                  elec_net_kw=inp.net_elec_kw,
                  price_import=inp.price_import, gas_cny_per_m3=inp.gas,
                  carbon_cny_per_t=inp.carbon, ice_kwh=inp.ice_kwh, status=status,
                  plan_modes=inp.plan_modes, relaxed_kw=relaxed, windows=windows,
                  firm_h=cfg.firm_h, hold_frac=_hold_frac(cfg, grid))


def _period_s(grid: StepGrid) -> float:
    """Step 0's whole length, s: ``dt_h[0]`` on a grid from the tick; an aligned grid's step 0
    is the rest of this period."""
    return float(grid.fine_count[0]) * grid.fine_h * 3600.0


def _hold_frac(cfg: ControllerConfig, grid: StepGrid) -> float:
    """The share of step 0 that its setpoints hold: the tick period over step 0's length
    from the tick (an aligned grid's step 0 ends at the period's boundary; the reserves
    that scale with this are for the rise before the next tick, as before)."""
    step0_s = _period_s(grid)
    if cfg.tick_s is None or cfg.tick_s <= 0 or step0_s <= 0:
        return 1.0
    return min(cfg.tick_s / step0_s, 1.0)


def _within_step(cfg: ControllerConfig, grid: StepGrid, t: float, last_ts: float | None) -> bool:
    """Whether this tick falls in the same step period (``step_min`` of the clock: the
    quarter hour) as the last one, with ticks finer than a step: on/off is then held as it
    is (``commitment.held_at_step0``) and only the dispatch is decided again.

    The rounding of a near-indifferent relaxation, solved loosely from a warm start shifted
    by part of a step, changes its mind between ticks; every start it makes runs the
    unit's minimum time, so a tick every 5 min started units three times as often as one
    every 15 (a gateway ticking every second would start them for the noise alone). On
    the quarter hour, Park B summer at 5-min ticks: 1,035,278 / 1,035,132 / 1,036,706 ->
    1,034,857 / 1,034,671 / 1,036,599 CNY on seeds 0 / 1 / 2 (exact forecasts 1,034,436 ->
    1,033,908); Park A summer / winter -506 / -70, Park B winter -57; at 1-min ticks Park
    A -500 / -303, Park B winter -235, summer +2 (before the quarter hour's own relaxation,
    ``_relaxed``). One decision a step (the evaluation's 15-min default) is unchanged.
    """
    if last_ts is None or _hold_frac(cfg, grid) >= 1.0:
        return False
    step_s = cfg.step_min * 60.0
    return math.floor(t / step_s + 1e-6) == math.floor(last_ts / step_s + 1e-6)


def _solve(state: ControllerState, cm: Commitment, td: TickData, t: float,
           grid: StepGrid, eps: float) -> tuple[QpModel, QpResult]:
    """The QP for commitment ``cm`` on the tick's ``grid`` at the tick's tolerance (``_eps``),
    warm-started from the last tick's solution."""
    model = _model(state, cm.units, grid)
    model.eps = eps
    warm = None
    last = state.last
    if last is not None and last.model_key == _cache_key(cm.units, model.grid):
        warm = model.shift(last.x, last.y, t - last.ts)
    elif last is not None and last.model_key in state.cache:
        # a new commitment pattern (or step 0's length on an aligned grid): start from the
        # old plan rather than cold (a cold start took up to 10x the iterations and made the
        # solve's p99)
        warm = model.adopt(state.cache[last.model_key], last.x, last.y, t - last.ts)
    return model, model.solve(td, warm, state.config.deadline_s)


def _leaner(cfg: ControllerConfig, grid: StepGrid, inp: _Inputs, t: float,
            status: Mapping[str, UnitStatus], relaxed: Mapping[str, Vec] | None,
            windows: tuple[dict[str, Vec], dict[str, Vec]], cm: Commitment) -> Commitment | None:
    """``cm`` with the CHPs (or the diesels) off for their minimum down time from now, where
    the relaxation wants less of them at step 0 than the units ``cm`` runs would give at
    their minimum load; None where nothing changes at step 0.

    The rounding starts a unit for any need above a trace, and a unit runs at its minimum
    load or not at all: Park A's CHPs ran at 1.2 MW through summer nights for 10-50 kW of
    district heat that the bound left unserved at its price, 4.3 MWh of power a night sold
    at the valley price against the bound's 1.3 (now 1.8; summer captured 93.5 -> 96.4 %
    at 15-min steps). Off for the minimum down time, not for the whole stretch of small
    need: the choice is made again every tick, and stretches run into the morning's rising
    heat, where the unit is wanted. Chillers are not tried: the one this would stop is
    the running unit with room that picks up cooling above the forecast (Park B summer,
    unserved cooling 242 -> 526 kWh).
    """
    if relaxed is None:
        return None
    p = cfg.plant
    alt = dict(relaxed)
    changed = False
    for kind in (p.chps, p.diesels):
        running = [u for u in kind if u.name in cm.mode and cm.mode[u.name][0] > 0]
        if not running:
            continue
        need_kw = sum(float(relaxed[f"{u.name}.p"][0]) for u in kind if f"{u.name}.p" in relaxed)
        if need_kw >= sum(u.min_load_frac * u.p_max_kw for u in running):
            continue
        down_h = max(u.min_down_h for u in running)
        k = max(1, int(np.searchsorted(grid.start_h, down_h - 1e-9)))
        for u in kind:
            if f"{u.name}.p" in alt:
                s = np.array(alt[f"{u.name}.p"], float)
                s[:k] = 0.0
                alt[f"{u.name}.p"] = s
                changed = True
    if not changed:
        return None
    lean = _commitment(cfg, grid, inp, t, status, alt, windows)
    if all(int(lean.mode[u][0]) == int(cm.mode[u][0]) for u in cm.mode):
        return None
    return lean


def _unstarted(cfg: ControllerConfig, inp: _Inputs, status: Mapping[str, UnitStatus],
               cm: Commitment) -> Commitment | None:
    """``cm`` without the chillers it starts now (off or making ice now, cooling at step 0)
    for their first run, where an ice store may melt now and holds a quarter hour of its
    release: the store's melt stands in, and its pick-up is the reserve. None where ``cm``
    starts no chiller now or no store can melt.

    A chiller started for the last half hour of a morning ramp runs its minimum time at
    its minimum load into the peak that ice made at night was to carry (Park B summer, a
    dual chiller at 1.37 MW from 08:00 on five mornings of fourteen; against the bound
    with exact forecasts 1.8 k CNY in that hour). The relaxation prices neither the
    minimum load nor the minimum run; the QP on both commitments does (``_cheaper``), and
    the plan without them is taken only where the store stands in (``_store_stands_in``)."""
    p = cfg.plant
    if not any(float(cm.melt_ok[s.name][0]) > 0.5 and inp.ice_kwh.get(s.name, 0.0) >= 0.25 * s.melt_max_kw
               for s in p.ice_stores):
        return None
    chillers = [c.name for c in p.electric_chillers] + [d.name for d in p.dual_chillers]
    modes = dict(cm.mode)
    changed = False
    for u in chillers:
        m = modes.get(u)
        st = status.get(u)
        if m is None or int(m[0]) != 1 or (st is not None and st.mode == 1):
            continue
        run = int(np.argmax(m != 1)) if (m != 1).any() else len(m)
        alt = np.array(m, copy=True)
        alt[:run] = 0
        modes[u] = alt
        changed = True
    return replace(cm, mode=modes) if changed else None


def _store_stands_in(p: PlantModel, inp: _Inputs, model: QpModel, x: Vec) -> bool:
    """Whether plan ``x`` melts ice at step 0, with room to melt more of RESERVE_FRAC of the
    cooling forecast: the store in melt mode picks up a load above it (the physics' running
    units do), as the chillers' reserve would. At 4 % of the load, Park B summer left 62 kWh
    of cooling unserved at 15-min steps, the store at its release limit at 19:30."""
    melt0 = sum(model.first(x, f"{s.name}.melt") for s in p.ice_stores)
    cap0 = sum(s.release_cap_kw(inp.ice_kwh.get(s.name, 0.0)) for s in p.ice_stores)
    return melt0 > TRACE_KW and cap0 - melt0 >= RESERVE_FRAC * float(inp.cooling_kw[0])


def _cheaper(state: ControllerState, inp: _Inputs, t: float, prev_kw: Mapping[str, float],
             current: tuple[Commitment, TickData, QpModel, QpResult], alt: Commitment, *,
             accept: Callable[[QpModel, QpResult], bool] | None = None, always: bool = False
             ) -> tuple[Commitment, TickData, QpModel, QpResult]:
    """The tick solved again on commitment ``alt``: whichever plan the QP prices lower (both
    on the same data; ``alt``'s only where ``accept`` takes it; ``always``: ``alt``'s where
    it solves), with both solves' iterations and time counted (each solve has the
    deadline, so a tick may take two)."""
    cm, td, model, res = current
    td_alt = _tick_data(state.config, inp, alt, prev_kw)
    model_alt, res_alt = _solve(state, alt, td_alt, t, model.grid, model.eps)
    spent = (res.iters + res_alt.iters, res.solve_ms + res_alt.solve_ms)
    if res_alt.ok and (always or (res_alt.obj_kcny < res.obj_kcny
                                  and (accept is None or accept(model_alt, res_alt)))):
        cm, td, model, res = alt, td_alt, model_alt, res_alt
    return cm, td, model, replace(res, iters=spent[0], solve_ms=spent[1])


# --- the tick ----------------------------------------------------------------------------

def decide(snapshot: Snapshot, forecast: Forecast, plan: Plan | None,
           state: ControllerState) -> tuple[Decision, ControllerState]:
    """One tick: measured state and expectations in, setpoints and why out."""
    cfg, t, p = state.config, snapshot.ts, state.config.plant
    grid = state.grid_at(t)
    recent = state.last_ts is not None and 0.0 < t - state.last_ts <= cfg.step_min * 60.0 + 1e-6
    inp = _inputs(cfg, grid, snapshot, forecast, plan, state.fc_trace if recent else None)
    fc_ok = forecast.start_ts <= t < forecast.start_ts + forecast.step_s * len(forecast.heat_kw)
    windows = ice_windows(p, grid, t)
    prev_kw = _prev_kw(p, state.last_setpoints)
    within = _within_step(cfg, grid, t, state.last_ts)
    relaxed = None if inp.missing or not fc_ok else _relaxed(
        state, inp, t, windows, prev_kw, step_tick=not within and _hold_frac(cfg, grid) < 1.0,
        grid=grid)
    cm = _commitment(cfg, grid, inp, t, state.status, relaxed, windows)
    if within:
        # on/off as decided at the step's start, unless the running units fall short
        cm = held_at_step0(p, grid, t, cm, state.status, inp.ice_kwh, inp.plan_modes,
                           cooling_kw0=float(inp.cooling_kw[0]), heat_kw0=float(inp.heat_kw[0]),
                           elec_net_kw0=float(inp.net_elec_kw[0]),
                           reserve_frac=RESERVE_FRAC * _hold_frac(cfg, grid))
    td = _tick_data(cfg, inp, cm, prev_kw)
    detail = ""
    if inp.missing or not fc_ok:
        detail = "stale inputs: " + ", ".join(inp.missing or ["forecast does not cover now"])
    else:
        model, res = _solve(state, cm, td, t, grid, _eps(cfg, within=within))
        lean = (_leaner(cfg, grid, inp, t, state.status, relaxed, windows, cm)
                if res.ok and not within else None)
        if lean is not None:
            # the same tick without the units the rounding runs only at their minimum load
            cm, td, model, res = _cheaper(state, inp, t, prev_kw, (cm, td, model, res), lean)
        unstarted = _unstarted(cfg, inp, state.status, cm) if res.ok and not within else None
        if unstarted is not None:
            # the same tick with the store's melt for the chillers started now
            cm, td, model, res = _cheaper(state, inp, t, prev_kw, (cm, td, model, res), unstarted,
                                          accept=lambda m, r: _store_stands_in(p, inp, m, r.x))
        if res.ok:
            short = model.kw(res.x, "slack.c")
            if cm.firm_steps is not None:
                short[cm.firm_steps:] = 0.0
            more = with_cooling(p, grid, t, cm, short, state.status, inp.ice_kwh)
            if more is not None:
                # the same tick with chillers started for the cooling the plan left unserved
                cm, td, model, res = _cheaper(state, inp, t, prev_kw, (cm, td, model, res), more)
        if res.ok and inp.cooling_now_kw > TRACE_KW and cooling_uncovered(p, cm, inp.ice_kwh):
            # The park draws cooling now and nothing on at step 0 would pick it up: a
            # chiller starts whatever the forecast says. Park B's winter nights draw 15-80
            # kW while the store charges; the cooling forecast there jumps between 0 and
            # 125 kW from step to step, and each step it put at 0 stopped the screw chiller
            # (14-day window, 15-min steps: 71 kWh unserved, the bound 13).
            first = np.where(np.arange(grid.n) == 0, inp.cooling_now_kw, 0.0)
            keep = with_cooling(p, grid, t, cm, first, state.status, inp.ice_kwh)
            if keep is not None:
                cm, td, model, res = _cheaper(state, inp, t, prev_kw, (cm, td, model, res), keep,
                                              always=True)
        if res.ok and res.lo is not None and res.up is not None:
            fs = project_first(model, res.x, td, res.lo, res.up,
                               import_headroom_frac=cfg.import_headroom_frac)
            stats = SolveStats(res.status, res.iters, res.solve_ms, res.obj_kcny * 1e3)
            new_last = _Solution(cm.units, t, res.x, res.y, _cache_key(cm.units, model.grid))
            return _finish(state, snapshot, "optimal", "", _setpoints(p, fs, cm, inp),
                           fs, stats, cm, new_last, inp=inp)
        detail = f"solver: {res.status} after {res.iters} iterations"

    # 1. the last good solution, shifted to now
    last = state.last
    if last is not None and t - last.ts <= cfg.max_shift_age_s and last.model_key in state.cache:
        model = state.cache[last.model_key]
        x, _ = model.shift(last.x, last.y, t - last.ts)
        if inp.missing:            # stored energy unknown: take the old plan's own trajectory
            soc = dict(td.soc_kwh)
            for b in p.batteries:
                soc[b.name] = model.first(x, f"{b.name}.e")
            ice = dict(td.ice_kwh)
            for s in p.ice_stores:
                ice[s.name] = model.first(x, f"{s.name}.e")
            hs = dict(td.heat_store_kwh)
            for e in p.electric_boilers:
                if e.stored:
                    hs[e.name] = model.first(x, f"{e.name}.e")
            td = replace(td, soc_kwh=soc, ice_kwh=ice, heat_store_kwh=hs)
        cm_old = replace(cm, units=last.key)
        _, lo, up, _ = model.vectors(td)
        fs = project_first(model, x, td, lo, up, import_headroom_frac=cfg.import_headroom_frac)
        return _finish(state, snapshot, "shifted_previous", detail,
                       _setpoints(p, fs, cm_old, inp), fs, None, cm, last,
                       inp=inp)
    detail += "; no recent solution to shift"
    # 2. the rule baseline
    fn = cfg.rule_fn()
    if fn is not None:
        sp = fn(p, _rule_context(cfg, t, inp))
        return _finish(state, snapshot, "rules", detail, sp, None, None, None, None,
                       inp=inp)
    # 3. safe defaults
    return _finish(state, snapshot, "safe_defaults", detail + "; no rules", {}, None, None, None,
                   None, inp=inp)


def _rule_context(cfg: ControllerConfig, t: float, inp: _Inputs) -> _rules.RuleContext:
    hour, _ = local_hour_month(cfg.plant.timezone, np.array([t]))
    soc = {b.name: inp.soc_kwh[b.name] / b.capacity_kwh for b in cfg.plant.batteries
           if b.soc_point not in inp.missing}
    ice = {s.name: inp.ice_kwh[s.name] for s in cfg.plant.ice_stores
           if s.level_point not in inp.missing}
    hs = {e.name: inp.heat_store_kwh[e.name] for e in cfg.plant.electric_boilers
          if e.stored and e.stored_point not in inp.missing}
    return _rules.RuleContext(int(hour[0]), inp.price_import_now, inp.gas, soc, ice,
                              float(inp.elec_kw[0]), float(inp.heat_kw[0]),
                              float(inp.cooling_kw[0]),
                              float(sum(v[0] for v in inp.renewable_kw.values())),
                              hs, {r.name: float(inp.renewable_kw[r.name][0])
                                   for r in cfg.plant.renewables},
                              {ld.name: float(inp.shed_max_kw[ld.name][0]) / ld.interruptible_frac
                               for ld in cfg.plant.loads if ld.interruptible_frac > 0})


def _finish(state: ControllerState, snap: Snapshot, reason: Reason, detail: str,
            wanted: dict[str, float], fs: FirstStep | None, stats: SolveStats | None,
            cm: Commitment | None, last: _Solution | None, *,
            inp: _Inputs | None = None) -> tuple[Decision, ControllerState]:
    cfg = state.config
    limits = cfg.all_limits()
    full = {k: lim.default for k, lim in limits.items()}
    full.update(wanted)                # points the source did not set keep their safe default
    dt = snap.ts - state.last_ts if state.last_ts is not None else 0.0
    out, notes = clamp(full, limits, state.last_setpoints, dt)
    fallbacks = dict(state.fallbacks)
    if reason != "optimal":
        fallbacks[reason] = fallbacks.get(reason, 0) + 1
    flows = fs.kw if fs is not None else {}
    dec = Decision(
        ts=snap.ts, setpoints=out, reason=reason, detail=detail, solve=stats, flows_kw=flows,
        slack_kw={k: flows.get(f"slack.{s}", 0.0) for k, s in
                  (("electric", "e"), ("heat", "h"), ("cooling", "c"))} if fs else {},
        residual_kw=fs.residual_kw if fs is not None else {}, clamps=tuple(notes),
        fallbacks_total=fallbacks)
    status = cm.status_after_first(snap.ts, state.status) if cm is not None else state.status
    new = replace(state, last=last if last is not None else state.last, status=status,
                  last_setpoints=out, last_ts=snap.ts, fallbacks=fallbacks,
                  fc_trace=dict(inp.fc_trace) if inp is not None else {})
    return dec, new


def decide_rules(snapshot: Snapshot, forecast: Forecast, plan: Plan | None,
                 state: ControllerState) -> tuple[Decision, ControllerState]:
    """The rule baseline as a controller with the same interface (for ``evaluate --controller rules``)."""
    cfg = state.config
    inp = _inputs(cfg, state.grid, snapshot, forecast, plan)
    fn = cfg.rule_fn()
    sp = fn(cfg.plant, _rule_context(cfg, snapshot.ts, inp)) if fn is not None else {}
    dec, new = _finish(state, snapshot, "rules", "rule baseline", sp, None, None, None, None)
    return replace(dec, fallbacks_total={}), replace(new, fallbacks={})
