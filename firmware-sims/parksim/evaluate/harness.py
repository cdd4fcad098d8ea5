"""Closed loop in virtual time: the physics plays the park, the harness plays the cloud.

    kpis = evaluate("park-a", "mpc", days=14, start=date(2026, 7, 6), seed=0, trace="t.csv")

Every step (15 min): the physics' measurements become a Snapshot (quality good),
the controller decides, its setpoints go to ``park.apply`` (refusals counted),
``park.step`` returns the step's flows, which the harness books (cost, CO2,
green share, violations) and writes to the trace. Each local midnight the
harness issues the day's plan: the site tariff's prices and CO2 factors for
48 h, with a weather forecast from :mod:`.weather` (never the actuals).

Before the window a week is run with the rule baseline (same seed, same for every
controller) so that the forecasters have history and every controller starts
from the same plant state.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from edge.control import ControllerConfig, ControllerState, Forecast, Plan, decide, decide_rules, points
from edge.control.plant import DIESEL_CO2_KG_PER_KG, DIESEL_KG_PER_L, GAS_CO2_KG_PER_KWH, GAS_KWH_PER_M3
from edge.model import PointValue, Quality, Snapshot

from ..physics import build_park
from ..physics import devices as dv
from ..physics.park import Park, StepFlows
from .perfect import PerfectInputs, solve_perfect
from .site import EvalSite, load_eval_site
from .weather import VARS as WEATHER_VARS
from .weather import WeatherError, forecast_weather

__all__ = ["CONTROLLERS", "evaluate"]

F64 = NDArray[np.float64]
CONTROLLERS = ("mpc", "rules", "perfect")
STEP_S = 900.0
DAY_STEPS = 96
PLAN_H = 48
MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
# physics load name -> forecaster target (edge.forecast.TARGETS)
_TARGET_OF = {"office": "office", "hospital": "hospital", "datacentre": "data_centre",
              "data_centre": "data_centre", "buildings": "office", "heat": "heating",
              "cool": "cooling"}
# the targets _record_history always books (each from its own physics quantity)
_HISTORY_TARGETS = ("pv", "wind", "office", "hospital", "data_centre", "heating", "cooling")
_NAIVE_LAG = {"yesterday": DAY_STEPS, "last_week": 7 * DAY_STEPS, "clear_sky_yesterday": DAY_STEPS,
              "last_value": 1}


# --------------------------------------------------------------------------- helpers


def _card(target: str) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads((MODELS_DIR / f"{target}.card.json").read_text())
        return out
    except (OSError, ValueError):
        return {}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _physics_load(plant_load: Any, loads_kw: Mapping[str, float]) -> str:
    """The physics' load name for a plant load (by kind, point name, then asset name)."""
    if plant_load.kind == "heat":
        return "heat"
    if plant_load.kind == "cooling":
        return "cool"
    dev = plant_load.p_point.partition(".")[0] if plant_load.p_point else ""
    for cand in (dev.removeprefix("load_"), plant_load.name, plant_load.name.replace("_", "")):
        if cand in loads_kw:
            return cand
    if dev.startswith("dc") or "data" in plant_load.name:
        return "datacentre"
    if len([k for k in loads_kw if k not in ("heat", "cool", "datacentre")]) == 1:
        return next(k for k in loads_kw if k not in ("heat", "cool", "datacentre"))
    raise ValueError(f"no physics load for plant load {plant_load.name!r}")


@dataclass
class _Book:
    """Running KPIs, booked from the plant's flows (never from the controller)."""

    cost: float = 0.0
    energy_cost: float = 0.0
    gas_cost: float = 0.0
    diesel_cost: float = 0.0
    carbon_cost: float = 0.0
    imp_kwh: float = 0.0
    exp_kwh: float = 0.0
    co2: float = 0.0
    co2_scope1: float = 0.0
    co2_scope2: float = 0.0
    unserved_e: float = 0.0
    unserved_h: float = 0.0
    unserved_c: float = 0.0
    curtailed: float = 0.0
    shed_kwh: float = 0.0
    wear: float = 0.0
    consumed_kwh: float = 0.0
    green_kwh: float = 0.0
    renewable_kwh: float = 0.0
    pv_kwh: float = 0.0
    violations: int = 0
    examples: list[str] = field(default_factory=list)
    bat_green_kwh: dict[str, float] = field(default_factory=dict)
    cool_src: dict[str, float] = field(default_factory=dict)
    heat_src: dict[str, float] = field(default_factory=dict)


@dataclass
class _Ctx:
    site: EvalSite
    park: Park
    tz: ZoneInfo
    cfg: ControllerConfig
    kinds: dict[str, str]                     # physics device -> kind
    load_of: dict[str, str]                   # plant load name -> physics load name
    pv_ac_kw: float
    history: dict[str, list[float]]           # forecaster target -> measured kW per step
    hist_ts: list[float]
    # targets named by a load's ``forecast`` beyond _HISTORY_TARGETS (e.g. Park B's own):
    # target -> the physics loads whose meters it is the sum of
    hist_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
    plan: Plan | None = None

    def hist_last(self, target: str) -> float:
        h = self.history.get(target)
        return h[-1] if h else 0.0


def _kinds(park: Park) -> dict[str, str]:
    out = {}
    for name, dev in park.devices.items():
        out[name] = ("green" if isinstance(dev, dv.PvPlant | dv.WindFarm) else
                     "battery" if isinstance(dev, dv.Battery) else
                     "fossil" if isinstance(dev, dv.Chp | dv.Diesel) else
                     "grid" if isinstance(dev, dv.Grid) else "consumer")
    return out


def _prices(ctx: _Ctx, t: float, n: int) -> tuple[F64, F64, F64]:
    mids = t + (np.arange(n) + 0.5) * STEP_S
    return ctx.site.tariff.series(ctx.site.plant.timezone, mids)


def _issue_plan(ctx: _Ctx, t: float, seed: int, werr: WeatherError) -> None:
    n = PLAN_H * 4
    imp, exp, co2 = _prices(ctx, t, n)
    tf = ctx.site.tariff
    park = ctx.park

    def actual(ts: float) -> dict[str, float]:
        e = park.exogenous_at(ts)
        return {"ghi_w_m2": e.weather.ghi_w_m2, "temp_c": e.weather.temp_c, "wind_m_s": e.weather.wind_m_s}

    wf = forecast_weather(actual, t, STEP_S, n, seed, werr)
    # the plan carries its weather forecast, as a cloud plan does (edge.plans, series.weather)
    ctx.plan = Plan(f"eval-{int(t)}", t, STEP_S, imp, exp, co2, tf.gas_cny_per_m3, tf.carbon_cny_per_t,
                    tf.diesel_cny_per_l, valid_until_ts=t + n * STEP_S,
                    weather={k: wf[k] for k in WEATHER_VARS})


def _snapshot(ctx: _Ctx, t: float, meas: Mapping[str, float], interval_s: float = STEP_S) -> Snapshot:
    """The physics' measurements as a Snapshot. Its flows are means over the interval just
    stepped, so every point is stamped at that interval's middle (what the controller
    compares its last forecast with)."""
    units = ctx.site.units
    read_ts = t - interval_s / 2.0
    pts = {k: PointValue(float(v), units.get(k, ""), Quality.GOOD, read_ts) for k, v in meas.items()}
    return Snapshot(t, pts)


def _persistence(ctx: _Ctx, t: float, flows: StepFlows | None, n: int = DAY_STEPS) -> Forecast:
    """What the rule baseline is handed: the last step held (rules read only step 0)."""
    p = ctx.site.plant
    exo = ctx.park.exogenous_at(t)
    lk = flows.loads_kw if flows else {**exo.loads_kw, "heat": exo.heat_kw, "cool": exo.cool_kw}
    pv = exo.pv_avail_kw if flows is None else ctx.hist_last("pv")
    wind = exo.wind_avail_kw if flows is None else ctx.hist_last("wind")
    elec = {ld.name: np.full(n, lk.get(ctx.load_of[ld.name], 0.0)) for ld in p.loads if ld.kind == "electric"}
    return Forecast(t, STEP_S, np.full(n, pv), np.full(n, wind), elec, np.full(n, lk.get("heat", 0.0)),
                    np.full(n, lk.get("cool", 0.0)), issued_ts=t)


# ``evaluate(exact=...)``: the kinds of forecast that can be made exact, each beside the others'
EXACT_KINDS = ("pv", "wind", "electric", "heat", "cooling")


class _Mpc:
    """mpc's own forecasters (edge.forecast.Forecaster) fed with the measured history; the
    kinds in ``exact`` replaced by what will happen (a diagnostic: what each forecast costs)."""

    def __init__(self, ctx: _Ctx, forecasts: str = "models", exact: tuple[str, ...] = ()) -> None:
        from edge.forecast import Forecaster
        from edge.runner import site_scale_kw

        p = ctx.site.plant
        self.ctx = ctx
        # plant load -> target: its own ``forecast``, else the physics load's usual one
        self.loads: dict[str, str] = {}
        for ld in p.loads:
            tgt = getattr(ld, "forecast", "") or _TARGET_OF.get(ctx.load_of[ld.name], "")
            if tgt:
                self.loads[ld.name] = tgt
        self.site_kw = site_scale_kw(p, self.loads)    # target -> the site's rating or peak (kW)
        targets = [t for t in ("pv", "wind") if t in self.site_kw]
        targets += list(dict.fromkeys(self.loads.values()))
        self.targets = targets
        model_dir = MODELS_DIR
        if forecasts == "naive":
            # the Forecaster's own fallback: each card's validated naive baseline (no ONNX file)
            import shutil
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="parkedge-naive-")
            model_dir = Path(self._tmp.name)
            for tg in targets:
                card = MODELS_DIR / f"{tg}.card.json"
                if card.exists():
                    shutil.copy(card, model_dir / card.name)
        elif forecasts not in ("models", "oracle"):
            raise ValueError(f"forecasts {forecasts!r}: expected models, naive or oracle")
        self.oracle = forecasts == "oracle"
        self.exact = frozenset(exact)
        self.fc = Forecaster(model_dir, timezone=ctx.site.timezone, latitude=ctx.park.spec.lat_deg,
                             longitude=ctx.park.spec.lon_deg, targets=targets,
                             site_scale_kw=self.site_kw)
        self.issued: dict[str, list[tuple[int, F64]]] = {t: [] for t in targets}
        self.ms: list[float] = []

    def forecast(self, t: float, step_idx: int) -> Forecast:
        from edge.runner import control_forecast, margin_p90

        if self.oracle:
            return self._oracle(t)
        ctx = self.ctx
        hist = {tg: np.asarray(ctx.history[tg][-(8 * DAY_STEPS):]) for tg in self.targets}
        assert ctx.plan is not None
        weather = ctx.plan.weather_ahead(t, STEP_S, DAY_STEPS)      # as the daemon hands it over
        t0 = time.perf_counter()
        out = self.fc.update(t, hist, weather)
        self.ms.append((time.perf_counter() - t0) * 1e3)
        p50 = {tg: np.asarray(out.targets[tg].p50_kw) for tg in self.targets}
        p90 = margin_p90({tg: out.targets[tg] for tg in self.targets})     # as the daemon
        for tg in self.targets:
            self.issued[tg].append((step_idx, p50[tg]))
        fc = control_forecast(ctx.site.plant, out.origin_ts, p50, p90=p90, issued_ts=t,
                              target_of=self.loads)
        return self._with_exact(fc) if self.exact else fc

    def _with_exact(self, fc: Forecast) -> Forecast:
        """``fc`` with the kinds in ``self.exact`` as they will be at each step's middle (their
        P90 dropped: an exact series has no spread). The forecast skill stays the models'."""
        mids: F64 = fc.start_ts + (np.arange(len(fc.pv_kw), dtype=np.float64) + 0.5) * fc.step_s
        a = _actual(self.ctx, mids)
        kw: dict[str, Any] = {}
        if "pv" in self.exact:
            kw.update(pv_kw=a.pv_kw, pv_p90_kw=None)
        if "wind" in self.exact:
            kw.update(wind_kw=a.wind_kw, wind_p90_kw=None)
        if "electric" in self.exact:
            kw.update(elec_kw=a.elec_kw)
        if "heat" in self.exact:
            kw.update(heat_kw=a.heat_kw, heat_p90_kw=None)
        if "cooling" in self.exact:
            kw.update(cooling_kw=a.cool_kw, cooling_p90_kw=None)
        return replace(fc, **kw)

    def _oracle(self, t: float) -> Forecast:
        """What will happen over the next day, exactly (a diagnostic: the controller's own share
        of the gap to perfect, with forecast error taken out)."""
        a = _actual(self.ctx, t + (np.arange(DAY_STEPS) + 0.5) * STEP_S)
        return Forecast(t, STEP_S, a.pv_kw, a.wind_kw, a.elec_kw, a.heat_kw, a.cool_kw, issued_ts=t)

    def skill(self, actual: Mapping[str, F64], first_idx: int, n_steps: int) -> dict[str, Any]:
        """nMAE of the forecasts issued in the window on the window's steps, next to the naive one."""
        out: dict[str, Any] = {}
        for tg in self.targets if not self.oracle else []:
            y = actual[tg]                   # index: absolute step from the history's start
            base = _card(tg).get("fallback", {}).get("baseline", "last_week")
            lag = _NAIVE_LAG.get(base, 7 * DAY_STEPS)
            em = en = ys = bias = 0.0
            cnt = 0
            for idx, p50 in self.issued[tg]:
                k = np.arange(DAY_STEPS)
                s = idx + k
                ok = s < first_idx + n_steps
                s, k = s[ok], k[ok]
                a = y[s]
                # lag >= a day >= the longest lead: the naive value is always known at issue
                naive = y[s - lag] if lag > 1 else np.full(len(s), y[idx - 1])
                em += float(np.abs(p50[k] - a).sum())
                bias += float((p50[k] - a).sum())
                en += float(np.abs(naive - a).sum())
                ys += float(np.abs(a).sum())
                cnt += len(s)
            if not cnt:
                continue
            norm = self.site_kw[tg] if tg in ("pv", "wind") else ys / cnt
            out[tg] = {"model_nmae": round(em / cnt / norm, 4), "naive_nmae": round(en / cnt / norm, 4),
                       "model_bias": round(bias / cnt / norm, 4),   # mean (forecast - actual)
                       "naive": base, "norm": "rated" if tg in ("pv", "wind") else "mean", "samples": cnt}
        return out


# --------------------------------------------------------------------------- perfect


@dataclass(frozen=True)
class _Actual:
    """What the park will see at the given instants: available PV and wind, each
    electric load of the plant model, heat and cooling (kW)."""

    pv_kw: F64
    wind_kw: F64
    elec_kw: dict[str, F64]
    heat_kw: F64
    cool_kw: F64


def _actual(ctx: _Ctx, ts: F64) -> _Actual:
    exo = [ctx.park.exogenous_at(float(t)) for t in ts]
    elec = {ld.name: np.array([e.loads_kw.get(ctx.load_of[ld.name], 0.0) for e in exo])
            for ld in ctx.site.plant.loads if ld.kind == "electric"}
    return _Actual(np.array([e.pv_avail_kw for e in exo]), np.array([e.wind_avail_kw for e in exo]), elec,
                   np.array([e.heat_kw for e in exo]), np.array([e.cool_kw for e in exo]))


def _perfect_inputs(ctx: _Ctx, t0: float, n: int, ticks_per_step: int) -> PerfectInputs:
    """The window as the bound sees it: ``n`` steps of 15 min, each cut into ``ticks_per_step``
    (the physics' step), the actual loads and renewables at each one's middle."""
    p, park = ctx.site.plant, ctx.park
    dt_s = STEP_S / ticks_per_step
    mids = t0 + (np.arange(n * ticks_per_step) + 0.5) * dt_s
    a = _actual(ctx, mids)
    imp, exp, co2 = (np.repeat(v, ticks_per_step) for v in _prices(ctx, t0, n))   # booked per step
    tf = ctx.site.tariff
    pv_rated = sum(r.p_rated_kw for r in p.renewables if r.kind == "pv") or 1.0
    w_rated = sum(r.p_rated_kw for r in p.renewables if r.kind == "wind") or 1.0
    ren = {r.name: (a.pv_kw if r.kind == "pv" else a.wind_kw)
           * r.p_rated_kw / (pv_rated if r.kind == "pv" else w_rated) for r in p.renewables}
    elec, heat, cool = a.elec_kw, a.heat_kw, a.cool_kw
    from edge.control.commitment import in_window

    charge_ok = {s.name: in_window(p.timezone, mids, s.charge_hours).astype(float) for s in p.ice_stores}
    meas = park.measurements()
    soc = {b.name: float(meas.get(b.soc_point, meas.get(f"{b.p_set_point.partition('.')[0]}.soc_frac", 0.5)))
           * b.capacity_kwh for b in p.batteries}
    # the store's own kWh where it reports them (the level is a fraction of the physics' usable
    # capacity, which the site's capacity_kwh matches only to 0.04 %)
    ice = {s.name: min(float(meas.get(f"{s.level_point.partition('.')[0]}.stored_kwh",
                                      float(meas.get(s.level_point, 0.0)) * s.capacity_kwh)),
                       s.usable_frac * s.capacity_kwh) for s in p.ice_stores}
    hs = {}
    for eb in p.electric_boilers:
        if getattr(eb, "store_kwh", 0.0):
            hs[eb.name] = float(meas.get(eb.stored_point, 0.0))
    on0: dict[str, int] = {}
    for u in p.chps:
        on0[u.name] = int(meas.get(u.running_point or "", 0.0) > 0.5 or
                          -_dev_power(park, u.p_set_point) > 1.0)
    for g in p.diesels:
        on0[g.name] = int(meas.get(g.running_point or "", 0.0) > 0.5)
    for c in p.electric_chillers:
        on0[c.name] = int(_dev_q(park, c.cool_set_point) > 1.0)
    for d in p.dual_chillers:
        dev = park.devices.get(d.mode_set_point.partition(".")[0])
        on0[d.name] = int(getattr(dev, "mode", 0))
    pmin = float(np.min(imp))
    term = {b.name: pmin / b.eta_charge for b in p.batteries}
    cop_ice = max((d.cop_ice for d in p.dual_chillers), default=4.0)
    term |= {s.name: pmin / (cop_ice * s.charge_eff) for s in p.ice_stores}
    term |= {eb.name: pmin / eb.eta for eb in p.electric_boilers}
    return PerfectInputs(dt_s / 3600.0, imp, exp, co2, tf.gas_cny_per_m3, tf.carbon_cny_per_t,
                        tf.diesel_cny_per_l, ren, elec, heat, cool, charge_ok, soc, ice, on0, term,
                        heat_store_kwh=hs)


def _perfect_plan(ctx: _Ctx, t0: float, n: int, gap: float, time_limit_s: float,
                  ticks_per_step: int = 1) -> tuple[Any, list[dict[str, float]]]:
    """The bound's setpoints for every tick. Finer than 15 min, the 15-min MILP's commitment
    is kept and the dispatch re-solved at the tick (an LP): held through the ticks, the
    15-min plan cost 1.1-1.3 % more on Park A and left load unserved within the steps."""
    p = ctx.site.plant
    inp = _perfect_inputs(ctx, t0, n, 1)
    res = solve_perfect(p, inp, time_limit_s=time_limit_s, mip_rel_gap=gap)
    if ticks_per_step > 1:
        fixed = {name: np.repeat(np.round(res.series[name]), ticks_per_step) for name in res.integers}
        inp = _perfect_inputs(ctx, t0, n, ticks_per_step)
        fine = solve_perfect(p, inp, time_limit_s=time_limit_s, mip_rel_gap=gap, fixed=fixed)
        res = dataclasses.replace(fine, status=f"{res.status}; dispatch re-solved per tick: {fine.status}",
                                  mip_gap=res.mip_gap, solve_ms=res.solve_ms + fine.solve_ms,
                                  n_binaries=res.n_binaries)
    ren, elec = inp.renewable_kw, inp.elec_kw
    x = res.series

    def g(s: str, k: int) -> float:
        v = x.get(s)
        return float(v[k]) if v is not None else 0.0

    plans: list[dict[str, float]] = []
    lim = ctx.cfg.all_limits()
    for k in range(len(inp.price_import)):
        sp: dict[str, float] = {}
        for b in p.batteries:
            sp[b.p_set_point] = g(f"{b.name}.ch", k) - g(f"{b.name}.dis", k)
        for u in p.chps:
            sp[u.p_set_point] = -g(f"{u.name}.p", k) if g(f"{u.name}.on", k) > 0.5 else 0.0
        for dg in p.diesels:
            on = g(f"{dg.name}.on", k) > 0.5
            sp |= points.diesel_points(dg, g(f"{dg.name}.p", k) if on else 0.0, on)
        for gb in p.gas_boilers:
            sp[gb.q_set_point] = -g(f"{gb.name}.q", k)
        for eb in p.electric_boilers:
            sp |= points.electric_boiler_points(eb, g(f"{eb.name}.q", k),
                                                g(f"{eb.name}.p", k) if eb.stored else None)
        for c in p.electric_chillers:
            on = g(f"{c.name}.on", k) > 0.5 or c.min_load_frac == 0
            sp[c.cool_set_point] = -g(f"{c.name}.c", k) if on else 0.0
        for a in p.absorption_chillers:
            sp[a.cool_set_point] = -g(f"{a.name}.c", k)
        modes: dict[str, float] = {}
        for d in p.dual_chillers:
            mode = 1.0 if g(f"{d.name}.m1", k) > 0.5 else 2.0 if g(f"{d.name}.m2", k) > 0.5 else 0.0
            modes[d.name] = mode
            sp[d.mode_set_point] = mode
            sp[d.cool_set_point] = -(g(f"{d.name}.c", k) if mode == 1 else
                                     g(f"{d.name}.ice", k) if mode == 2 else 0.0)
        for s in p.ice_stores:
            makers = [(d, modes[d.name]) for d in p.dual_chillers if d.ice_store == s.name]
            sp |= points.ice_store_points(s, g(f"{s.name}.melt", k), makers)
        for r in p.renewables:
            sp |= points.renewable_points(r, g(f"{r.name}.p", k), float(ren[r.name][k]))
        for ld in p.loads:
            if ld.interruptible_frac > 0:
                sp |= points.shed_points(ld, g(f"{ld.name}.shed", k), float(elec[ld.name][k]))
        # the solver's feasibility tolerance (1e-7 relative) can put a value a hair outside its
        # bound; the same min/max clamp as decide()'s safety layer takes it back in
        plans.append({key: min(max(v, lim[key].min), lim[key].max) if key in lim else v
                      for key, v in sp.items()})
    return res, plans


def _dev_power(park: Park, point: str) -> float:
    dev = park.devices.get(point.partition(".")[0])
    return -float(getattr(dev, "p_gen_kw", 0.0))


def _dev_q(park: Park, point: str) -> float:
    dev = park.devices.get(point.partition(".")[0])
    return float(getattr(dev, "q_kw", 0.0))


# --------------------------------------------------------------------------- the loop


def _apply(ctx: _Ctx, sp: Mapping[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """The setpoints as they are (the site's keys are the physics' keys); refusals counted."""
    out = dict(sp)
    return out, ctx.park.apply(out)


def _book(ctx: _Ctx, bk: _Book, f: StepFlows, pimp: float, pexp: float, co2f: float,
          refused: Mapping[str, str], sp: Mapping[str, float]) -> dict[str, Any]:
    """Book one step; return its trace row."""
    dt = f.dt_s / 3600.0
    tf = ctx.site.tariff
    carbon = tf.carbon_cny_per_t * 1e-3
    gas_kwh = f.gas_m3 * GAS_KWH_PER_M3
    diesel_kg = f.diesel_l * DIESEL_KG_PER_L
    s1 = gas_kwh * GAS_CO2_KG_PER_KWH + diesel_kg * DIESEL_CO2_KG_PER_KG
    s2 = f.grid_import_kw * dt * co2f
    energy = (f.grid_import_kw * pimp - f.grid_export_kw * pexp) * dt
    gas_c, dsl_c, co2_c = f.gas_m3 * tf.gas_cny_per_m3, f.diesel_l * tf.diesel_cny_per_l, carbon * (s1 + s2)
    step_cost = energy + gas_c + dsl_c + co2_c
    bk.cost += step_cost
    bk.energy_cost += energy
    bk.gas_cost += gas_c
    bk.diesel_cost += dsl_c
    bk.carbon_cost += co2_c
    bk.imp_kwh += f.grid_import_kw * dt
    bk.exp_kwh += f.grid_export_kw * dt
    bk.co2 += s1 + s2
    bk.co2_scope1 += s1
    bk.co2_scope2 += s2
    bk.unserved_e += -f.elec_unserved_kw * dt if f.elec_unserved_kw < 0 else f.elec_unserved_kw * dt
    bk.unserved_h += f.heat_unserved_kw * dt
    bk.unserved_c += f.cool_unserved_kw * dt
    bk.curtailed += f.curtailed_kw * dt
    for src, acc in ((f.cool_supply_kw, bk.cool_src), (f.heat_supply_kw, bk.heat_src)):
        for name, q in src.items():
            acc[name] = acc.get(name, 0.0) + q * dt
    # green share: proportional mixing on the bus, traced through the battery
    kinds = ctx.kinds
    green = fossil = consumers = charge = discharge = 0.0
    green_in_dis = 0.0
    for name, p in f.electric_kw.items():
        kind = kinds.get(name, "consumer" if name.startswith("load_") else "special")
        if kind == "green":
            green += -p
            if isinstance(ctx.park.devices[name], dv.PvPlant):
                bk.pv_kwh += -p * dt
        elif kind == "fossil":
            fossil += -p
        elif kind == "battery":
            dev = ctx.park.devices[name]
            assert isinstance(dev, dv.Battery)
            e_before = max(f.storage.get(f"{name}.energy_kwh", 0.0) - p * dt * (dev.eff_charge if p > 0 else
                                                                                  1 / dev.eff_discharge), 1e-9)
            phi = min(1.0, bk.bat_green_kwh.get(name, 0.0) / e_before)
            if p > 0:
                charge += p
            else:
                discharge += -p
                green_in_dis += -p * phi
            bk.wear += abs(p) * dt * _wear(ctx, name)
        elif kind == "consumer":
            consumers += p
    imp = f.grid_import_kw
    supply = green + fossil + imp + discharge
    g = (green + green_in_dis) / supply if supply > 0 else 0.0
    for name, p in f.electric_kw.items():
        if kinds.get(name) == "battery":
            dev = ctx.park.devices[name]
            assert isinstance(dev, dv.Battery)
            e_after = f.storage.get(f"{name}.energy_kwh", 0.0)
            gb = bk.bat_green_kwh.get(name, 0.0)
            e_before = max(e_after - p * dt * (dev.eff_charge if p > 0 else 1 / dev.eff_discharge), 1e-9)
            phi = min(1.0, gb / e_before)
            gb = gb + g * p * dev.eff_charge * dt if p > 0 else gb - phi * (-p) / dev.eff_discharge * dt
            bk.bat_green_kwh[name] = min(max(gb, 0.0), e_after)
    bk.consumed_kwh += consumers * dt
    bk.green_kwh += g * consumers * dt
    bk.renewable_kwh += green * dt
    shed = 0.0
    for ld in ctx.site.plant.loads:
        if ld.interruptible_frac > 0:
            exo = ctx.park.exogenous_at(f.t_start_s + f.dt_s / 2)
            full = exo.loads_kw.get(ctx.load_of[ld.name], 0.0)
            shed += max(full - f.loads_kw.get(ctx.load_of[ld.name], full), 0.0)
    bk.shed_kwh += shed * dt
    imb = {"electric": f.electric_imbalance_kw(), "heat": f.heat_imbalance_kw(), "cooling": f.cool_imbalance_kw()}
    bad = [f"{k} balance {v:.3g} kW" for k, v in imb.items() if abs(v) > 1e-6]
    bad += list(f.violations)
    bad += [f"refused {k}={sp.get(k)}: {why}" for k, why in refused.items()]
    if bad:
        bk.violations += 1
        if len(bk.examples) < 10:
            bk.examples.append(f"{datetime.fromtimestamp(f.t_start_s, UTC).isoformat()}: " + "; ".join(bad))
    row: dict[str, Any] = {"timestamp": datetime.fromtimestamp(f.t_start_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "dt_s": f.dt_s}
    for name, p in f.electric_kw.items():
        row[f"p_{name}_kw"] = p
    for name, q in f.heat_supply_kw.items():
        row[f"heat_{name}_kw"] = q
    for name, q in f.heat_use_kw.items():
        row[f"heat_use_{name}_kw"] = q
    row["heat_dump_kw"], row["heat_unserved_kw"] = f.heat_dump_kw, f.heat_unserved_kw
    for name, q in f.cool_supply_kw.items():
        row[f"cool_{name}_kw"] = q
    for name, q in f.cool_use_kw.items():
        row[f"cool_use_{name}_kw"] = q
    row["cool_dump_kw"], row["cool_unserved_kw"] = f.cool_dump_kw, f.cool_unserved_kw
    row |= {"grid_import_kw": f.grid_import_kw, "grid_export_kw": f.grid_export_kw,
            "elec_unserved_kw": f.elec_unserved_kw, "curtailed_kw": f.curtailed_kw,
            "price_import": pimp, "price_export": pexp, "grid_co2_kg_per_kwh": co2f,
            "gas_cny_per_m3": tf.gas_cny_per_m3, "diesel_cny_per_l": tf.diesel_cny_per_l,
            "carbon_cny_per_t": tf.carbon_cny_per_t, "gas_m3": f.gas_m3, "diesel_l": f.diesel_l,
            "co2_kg": s1 + s2, "cost_cny": step_cost, "green_frac": g}
    for k, v in f.storage.items():
        row[f"storage_{k}"] = v
    for k, v in f.loads_kw.items():
        row[f"load_{k}_kw"] = v
    for k, v in sorted(sp.items()):
        row[f"sp_{k}"] = v
    row["violations"] = "; ".join(bad)
    return row


def _wear(ctx: _Ctx, dev_name: str) -> float:
    for b in ctx.site.plant.batteries:
        if b.p_set_point.partition(".")[0] == dev_name:
            return b.wear_cny_per_kwh
    return 0.0


def _storage_levels(park: Park) -> dict[str, float]:
    out = {}
    for name, dev in park.devices.items():
        if isinstance(dev, dv.Battery):
            out[name] = dev.soc_frac * dev.e_kwh
        elif isinstance(dev, dv.IceStore | dv.HeatStorageBoiler):
            out[name] = dev.stored_kwh
    return out


def _storage_value(ctx: _Ctx, name: str, pmin: float) -> float:
    """CNY per kWh left in a store: what refilling it costs at the window's cheapest import."""
    dev = ctx.park.devices[name]
    if isinstance(dev, dv.Battery):
        return pmin / dev.eff_charge
    if isinstance(dev, dv.IceStore):
        cop = max((d.cop_ice for d in ctx.site.plant.dual_chillers), default=3.8)
        return pmin / (cop * dev.eff_charge)
    if isinstance(dev, dv.HeatStorageBoiler):
        return pmin / dev.eff
    return 0.0


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, dtime(0, 0), tzinfo=tz).astimezone(UTC)


def evaluate(site: str, controller: str, days: float, *, start: date | None = None,
             weather: str | None = None, trace: str | Path | None = None, seed: int = 0,
             warmup_days: int = 7, pv_kwp: float | None = None, pv_ac_kw: float | None = None,
             weather_error_scale: float = 1.0, perfect_gap: float = 1e-4,
             perfect_time_limit_s: float = 300.0, site_file: str | None = None,
             forecasts: str = "models", ticks_per_step: int = 1,
             exact: tuple[str, ...] = (), perfect_lookahead_days: float = 0.0) -> dict[str, Any]:
    """Run ``controller`` on ``site`` for ``days`` from local midnight of ``start``; return the KPIs.

    ``exact``: for mpc on its models or the naive baselines, the kinds of forecast
    (``EXACT_KINDS``) handed over as they will happen, the others as forecast: what each
    forecast's error costs (a diagnostic, like ``forecasts="oracle"`` for all of them).

    ``perfect_lookahead_days``: perfect solves the window and this many days after it (the
    actuals of those too) and books the window alone, so its stores end the window where the
    next day wants them. With 0 (the default) it is the exact optimum of the window's
    objective, the strict bound, which empties its stores for the window's end: the KPIs
    credit what is left at the cheapest refill price only (docs/evaluation.md).

    ``ticks_per_step``: how often per 15-min step the controller decides (and the physics
    steps), each time on the measurements of the tick just past. The daemon ticks every
    second; 1 here is a controller that sees a change up to 15 min late."""
    if controller not in CONTROLLERS:
        raise ValueError(f"controller {controller!r}: expected one of {', '.join(CONTROLLERS)}")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days}")
    bad = [k for k in exact if k not in EXACT_KINDS]
    if bad:
        raise ValueError(f"exact {bad[0]!r}: expected some of {', '.join(EXACT_KINDS)}")
    if exact and (controller != "mpc" or forecasts == "oracle"):
        raise ValueError("exact: only for controller mpc on its models or the naive baselines")
    if not 0.0 <= perfect_lookahead_days <= 7.0:
        raise ValueError(f"perfect_lookahead_days must be in [0, 7], got {perfect_lookahead_days}")
    if perfect_lookahead_days and controller != "perfect":
        raise ValueError("perfect_lookahead_days: only for controller perfect")
    if not (isinstance(ticks_per_step, int) and 1 <= ticks_per_step <= 900):
        raise ValueError(f"ticks_per_step must be an integer in [1, 900], got {ticks_per_step!r}")
    wall0 = time.perf_counter()
    start = start or date(2026, 7, 6)
    if pv_kwp is not None and pv_ac_kw is None:
        pv_ac_kw = round(pv_kwp * 0.94, 1)     # both reference parks' DC/AC ratio
    esite = load_eval_site(site, pv_ac_kw=pv_ac_kw, path=site_file)
    tz = ZoneInfo(esite.timezone)
    t_start = local_midnight_utc(start, tz)
    options: dict[str, float] = {}
    if pv_kwp is not None:
        options["pv_kwp"] = float(pv_kwp)
        options["pv_ac_kw"] = float(pv_ac_kw)  # type: ignore[arg-type]
    park = build_park(site, seed=seed, start_utc=t_start.replace() - _days(warmup_days), weather=weather,
                      options=options or None)
    pv_dev = park.devices.get("pv1")
    ctl = esite.control
    cfg = ControllerConfig(esite.plant, esite.tariff, limits=esite.limits, step_min=15,
                           stale_after_s=STEP_S, deadline_s=0.0, tick_s=STEP_S / ticks_per_step,
                           **ctl.planning())
    kinds = _kinds(park)
    exo = park.exogenous_at(park.t_s)
    loads_kw = {**exo.loads_kw, "heat": exo.heat_kw, "cool": exo.cool_kw}
    load_of = {ld.name: _physics_load(ld, loads_kw) for ld in esite.plant.loads}
    hist_of: dict[str, tuple[str, ...]] = {}
    for ld in esite.plant.loads:
        tgt = getattr(ld, "forecast", "")
        if tgt and tgt not in _HISTORY_TARGETS:
            hist_of[tgt] = (*hist_of.get(tgt, ()), load_of[ld.name])
    ctx = _Ctx(esite, park, tz, cfg, kinds, load_of, float(getattr(pv_dev, "ac_kw", 1.0)),
               {t: [] for t in (*_HISTORY_TARGETS, *hist_of)}, [], hist_of=hist_of)
    werr = WeatherError(scale=weather_error_scale)
    n_warm = round(warmup_days * DAY_STEPS)
    n = round(days * DAY_STEPS)

    # --- warm-up: the rule baseline, same for every controller
    state = ControllerState.fresh(cfg)
    flows: StepFlows | None = None
    for _ in range(n_warm):
        flows, state = _tick_rules(ctx, state, flows)
    first_idx = len(ctx.hist_ts)

    # --- the window
    bk = _Book()
    rows: list[dict[str, Any]] = []
    levels0 = _storage_levels(park)
    mpc = _Mpc(ctx, forecasts, tuple(exact)) if controller == "mpc" else None
    perfect_res = None
    perfect_sp: list[dict[str, float]] = []
    if controller == "perfect":
        tail = round(perfect_lookahead_days * DAY_STEPS)
        perfect_res, perfect_sp = _perfect_plan(ctx, park.t_s, n + tail, perfect_gap, perfect_time_limit_s,
                                                 ticks_per_step)
    state = ControllerState.fresh(cfg)
    tick_ms: list[float] = []
    qp_ms: list[float] = []
    reasons: dict[str, int] = {}
    pmins: list[float] = []
    tick_s = STEP_S / ticks_per_step
    for k in range(n):
        t_step = park.t_s
        local = datetime.fromtimestamp(t_step, tz)
        if ctx.plan is None or (local.hour == 0 and local.minute == 0):
            _issue_plan(ctx, t_step, seed, werr)
        imp, exp, co2 = _prices(ctx, t_step, 1)
        pmins.append(float(imp[0]))
        # the forecasters run once per step (their period), the controller every tick
        fc = mpc.forecast(t_step, first_idx + k) if mpc is not None else None
        step_flows: list[StepFlows] = []
        for _tick in range(ticks_per_step):
            t = park.t_s
            meas = park.measurements()
            if controller == "perfect":
                sp: Mapping[str, float] = perfect_sp[k * ticks_per_step + _tick]
            else:
                snap = _snapshot(ctx, t, meas, tick_s)
                if fc is not None:
                    t0 = time.perf_counter()
                    dec, state = decide(snap, fc, ctx.plan, state)
                    tick_ms.append((time.perf_counter() - t0) * 1e3)
                    if dec.solve is not None:
                        qp_ms.append(dec.solve.solve_ms)
                else:
                    pfc = _persistence(ctx, t, flows)
                    t0 = time.perf_counter()
                    dec, state = decide_rules(snap, pfc, ctx.plan, state)
                    tick_ms.append((time.perf_counter() - t0) * 1e3)
                reasons[dec.reason] = reasons.get(dec.reason, 0) + 1
                sp = dec.setpoints
            applied, refused = _apply(ctx, sp)
            flows = park.step(tick_s)
            step_flows.append(flows)
            rows.append(_book(ctx, bk, flows, float(imp[0]), float(exp[0]), float(co2[0]), refused, applied))
        _record_history(ctx, t_step, _mean_loads(step_flows))

    levels1 = _storage_levels(park)
    pmin = min(pmins)
    delta = {k: levels1[k] - levels0[k] for k in levels0}
    storage_credit = sum(_storage_value(ctx, k, pmin) * v for k, v in delta.items())
    penalties = (bk.unserved_e * esite.plant.objective.unserved_elec_cny_per_kwh
                 + bk.unserved_h * esite.plant.objective.unserved_heat_cny_per_kwh
                 + bk.unserved_c * esite.plant.objective.unserved_cooling_cny_per_kwh
                 + bk.shed_kwh * esite.plant.objective.shed_cny_per_kwh)
    if controller == "perfect":
        assert perfect_res is not None
        solve = {"p50": perfect_res.solve_ms, "p99": perfect_res.solve_ms, "max": perfect_res.solve_ms}
    else:
        solve = {"p50": _pct(tick_ms, 50), "p99": _pct(tick_ms, 99), "max": max(tick_ms, default=0.0)}
    kpis: dict[str, Any] = {
        "site": site, "controller": controller, "days": days,
        "start": start.isoformat(), "seed": seed,
        **({"forecasts": forecasts} if controller == "mpc" else {}),
        **({"exact": sorted(exact)} if exact else {}),
        "cost_cny": round(bk.cost, 2),
        "grid_import_kwh": round(bk.imp_kwh, 1), "grid_export_kwh": round(bk.exp_kwh, 1),
        "green_share": round(bk.green_kwh / bk.consumed_kwh, 5) if bk.consumed_kwh > 0 else 0.0,
        "co2_kg": round(bk.co2, 1),
        "unserved_kwh": round(bk.unserved_e + bk.unserved_h + bk.unserved_c, 2),
        "curtailed_kwh": round(bk.curtailed, 1),
        "solve_ms": {k: round(v, 3) for k, v in solve.items()},
        "violations": bk.violations,
        "forecast": mpc.skill({tg: np.asarray(v) for tg, v in ctx.history.items() if v}, first_idx, n)
        if mpc else {},
        # beyond the contract
        "cost_breakdown_cny": {"energy": round(bk.energy_cost, 2), "gas": round(bk.gas_cost, 2),
                               "diesel": round(bk.diesel_cost, 2), "carbon": round(bk.carbon_cost, 2)},
        "co2_scope_kg": {"scope1": round(bk.co2_scope1, 1), "scope2": round(bk.co2_scope2, 1)},
        "unserved_by_kind_kwh": {"electric": round(bk.unserved_e, 2), "heat": round(bk.unserved_h, 2),
                                 "cooling": round(bk.unserved_c, 2)},
        "shed_kwh": round(bk.shed_kwh, 1),
        "cool_by_source_kwh": {k: round(v, 1) for k, v in bk.cool_src.items()},
        "heat_by_source_kwh": {k: round(v, 1) for k, v in bk.heat_src.items()},
        "battery_wear_cny": round(bk.wear, 2),
        "storage_delta_kwh": {k: round(v, 1) for k, v in delta.items()},
        "storage_credit_cny": round(storage_credit, 2),
        "cost_adj_cny": round(bk.cost - storage_credit, 2),
        "objective_cny": round(bk.cost - storage_credit + bk.wear + penalties, 2),
        "electricity_consumed_kwh": round(bk.consumed_kwh, 1),
        "renewable_kwh": round(bk.renewable_kwh, 1),
        "pv_kwh": round(bk.pv_kwh, 1),
        "violation_examples": bk.examples,
        "wall_s": 0.0,
    }
    if reasons:
        kpis["reasons"] = reasons
    if qp_ms:
        kpis["qp_ms"] = {"p50": round(_pct(qp_ms, 50), 3), "p99": round(_pct(qp_ms, 99), 3)}
    if mpc and mpc.ms:
        kpis["forecast_ms"] = {"p50": round(_pct(mpc.ms, 50), 3), "p99": round(_pct(mpc.ms, 99), 3)}
    if perfect_res is not None:
        # with a look-ahead the solve's objective and bound cover the days after the window too
        kpis["perfect"] = {"lookahead_days": perfect_lookahead_days,
                           "status": perfect_res.status, "mip_gap": perfect_res.mip_gap,
                           "objective_cny": round(perfect_res.objective_cny, 2),
                           "dual_bound_cny": round(perfect_res.dual_bound_cny, 2),
                           "vars": perfect_res.n_vars, "binaries": perfect_res.n_binaries}
    kpis["wall_s"] = round(time.perf_counter() - wall0, 2)
    if trace:
        _write_trace(Path(trace), rows)
    return kpis


def _days(n: float) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def _mean_loads(flows: list[StepFlows]) -> dict[str, float]:
    """The loads' mean over a step's ticks (what a 15-min meter reading would say)."""
    total = sum(f.dt_s for f in flows)
    out: dict[str, float] = {}
    for f in flows:
        for k, v in f.loads_kw.items():
            out[k] = out.get(k, 0.0) + v * f.dt_s / total
    return out


def _record_history(ctx: _Ctx, t_start_s: float, loads_kw: Mapping[str, float]) -> None:
    """Book one step's measured history for the forecasters (one entry per 15-min step)."""
    exo = ctx.park.exogenous_at(t_start_s + STEP_S / 2)
    h = ctx.history
    h["pv"].append(exo.pv_avail_kw)            # the inverters' available power
    h["wind"].append(exo.wind_avail_kw)
    lk = loads_kw
    h["office"].append(lk.get("office", lk.get("buildings", 0.0)))
    h["hospital"].append(lk.get("hospital", 0.0))
    # the data centre's demand before shedding: the meter plus what was switched off
    h["data_centre"].append(exo.loads_kw.get("datacentre", 0.0))
    h["heating"].append(lk.get("heat", 0.0))
    h["cooling"].append(lk.get("cool", 0.0))
    for tgt, names in ctx.hist_of.items():
        h[tgt].append(sum(lk.get(n, 0.0) for n in names))
    ctx.hist_ts.append(t_start_s)


def _tick_rules(ctx: _Ctx, state: ControllerState, flows: StepFlows | None
                ) -> tuple[StepFlows, ControllerState]:
    """One warm-up step under the rule baseline (no plan: the site tariff)."""
    park = ctx.park
    t = park.t_s
    meas = park.measurements()
    snap = _snapshot(ctx, t, meas)
    dec, state = decide_rules(snap, _persistence(ctx, t, flows), None, state)
    _apply(ctx, dec.setpoints)
    f = park.step(STEP_S)
    _record_history(ctx, t, f.loads_kw)
    return f, state


def _write_trace(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
