"""On/off decisions over the horizon: the plan's commitment where it has one, else a local layer.

The local layer stages units by need and merit, then every unit's schedule
passes a filter for minimum up and down times starting from its present
status. Ice stores get a mode per step: charging is allowed only in the
store's local charge window, melting only outside it, so a store never
charges and melts at once and switches once each way a day. The result
fixes the QP's bounds; which units appear at all is the key of the cached
QP structure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from edge.control.inputs import local_hour_month
from edge.control.plant import GAS_CO2_KG_PER_KWH, GAS_KWH_PER_M3, DualChiller, IceStore, PlantModel
from edge.control.qp import StepGrid, Vec

__all__ = ["RESERVE_FRAC", "STORE_RESERVE_FRAC", "Commitment", "UnitStatus", "commit", "held_at_step0",
           "held_in", "ice_windows", "in_window", "min_up_down", "with_cooling"]

# Thermal units staged for this much above what the relaxation needs of them: a load
# above the forecast then finds a running unit with room instead of going unserved.
RESERVE_FRAC = 0.15
# Step 0's chillers and ice stores together keep this much of the cooling load as room
# (_round_relaxed): Park B summer at 15-min steps, unserved cooling 14 / 0 / 8 kWh -> 0 on
# seeds 0 / 1 / 2 for +149 / +182 / +61 CNY a fortnight (3 %: seed 2 still 8 kWh; 5 %: +326
# CNY on seed 1). It scales with hold_frac, so 5-min and 1-min ticks run as before.
STORE_RESERVE_FRAC = 0.04
# Below this a relaxed series is the solver's tolerance (eps 1e-3 MW), not a need.
TRACE_KW = 10.0
# Chillers' electric draw where only a rough figure is wanted (the merit heuristics' diesel
# staging, a shortfall within the step): cooling over this COP (the parks' are 4.5-5.5).
ROUGH_COP = 4.0



@dataclass(frozen=True, slots=True)
class UnitStatus:
    """A unit's present state: ``mode`` 0 off, 1 on (dual chillers: 1 cooling, 2 ice), since when."""

    mode: int
    since_ts: float


@dataclass(frozen=True, slots=True)
class Commitment:
    mode: Mapping[str, NDArray[np.int64]]   # per committable unit, per step
    melt_ok: Mapping[str, Vec]              # per ice store: fraction of the step melting may run
    charge_ok: Mapping[str, Vec]            # per ice store: fraction of the step charging may run
    units: frozenset[str] = field(default_factory=frozenset)
    # steps from now over which ``mode`` binds; beyond, every unit is available at any
    # load (the relaxation's terms) and ``mode`` is only what the rounding would do
    firm_steps: int | None = None

    def status_after_first(self, now_ts: float,
                           prev: Mapping[str, UnitStatus]) -> dict[str, UnitStatus]:
        """Unit statuses once step 0 is applied.

        A unit with no status before (the controller's first tick, e.g. after a restart)
        that stays off has been off for as long as anyone knows: ``since_ts`` -inf, so no
        minimum down time holds it off. Stamped "now", every chiller off at the first tick
        counted as just stopped and could not start for its hour, however much cooling
        went unserved (found replaying two ticks from a fresh state). One it runs is
        stamped now: its minimum run is kept.
        """
        out = {}
        for u, m in self.mode.items():
            old = prev.get(u)
            mode = int(m[0])
            if old is not None and old.mode == mode:
                out[u] = old
            else:
                out[u] = UnitStatus(mode, -math.inf if old is None and mode == 0 else now_ts)
        return out


def in_window(tz: object, ts: Vec, hours: tuple[int, int]) -> NDArray[np.bool_]:
    """Whether each UTC time is inside local hours [start, end), wrapping midnight."""
    from zoneinfo import ZoneInfo
    assert isinstance(tz, ZoneInfo)
    hour, _ = local_hour_month(tz, ts)
    h0, h1 = hours
    res: NDArray[np.bool_] = (hour >= h0) & (hour < h1) if h0 < h1 else (hour >= h0) | (hour < h1)
    return res


def _no_room(store: IceStore, making: Sequence[Sequence[DualChiller]], dt_h: Vec,
             level_kwh: float) -> NDArray[np.bool_]:
    """Per step, whether the store, filled from ``level_kwh`` by the makers in ice mode at
    the steps before at their rating, has no room left for the minimum charge of the
    makers in ice mode then (``making[k]``)."""
    room = store.usable_frac * store.capacity_kwh - level_kwh
    out = np.zeros(len(making), bool)
    for k, ds in enumerate(making):
        if not ds:
            continue
        if room < _min_charge_kwh(store, ds, float(dt_h[k])):
            out[k] = True
        else:
            room -= sum(d.ice_max_kw for d in ds) * store.charge_eff * float(dt_h[k])
    return out


def _min_charge_kwh(store: IceStore, makers: Sequence[DualChiller], dt_h: float) -> float:
    """Ice that makers in ice mode put into the store in a step at their minimum load:
    less room than this and ice-making would overfill it."""
    return sum(d.min_load_frac * d.ice_max_kw for d in makers) * store.charge_eff * dt_h


def min_up_down(want: NDArray[np.int64], status: UnitStatus, now_ts: float, step_start_s: Vec,
                min_up_h: float, min_down_h: float) -> NDArray[np.int64]:
    """``want`` changed as little as needed so that no on or off period is shorter than allowed.

    A mode change (e.g. cooling to ice) counts as stopping and starting.
    """
    out = want.copy()
    mode, since = status.mode, status.since_ts
    for k in range(len(out)):
        t = now_ts + step_start_s[k]
        held_h = (t - since) / 3600.0
        if out[k] != mode:
            need = min_up_h if mode != 0 else min_down_h
            if held_h + 1e-9 < need:
                out[k] = mode
                continue
            mode, since = int(out[k]), t
    return out


def fill_gaps(want: NDArray[np.int64], mode_now: int, step_start_s: Vec,
              min_down_h: float, *,
              allowed: Mapping[int, NDArray[np.bool_]] | None = None) -> NDArray[np.int64]:
    """Bridge off-gaps shorter than the minimum down time when the unit runs again after.

    Stopping for a gap the unit could not restart from would leave the load
    unserved when it comes back; staying on through it is the cheaper error. When
    the same mode resumes, the gap keeps it; when another one follows (a dual
    chiller from ice to cooling), the gap starts the next mode early: a mode
    change counts as a stop and a start, so going straight over needs no down
    time, and the gap in between would have kept the unit off when it is wanted
    (Park B, end of the charge window: 2.3 MW of cooling planned unserved).

    ``allowed``: per mode, the steps where it may run (a dual chiller's ice mode: its
    store's charge window). Where the next mode may not start early, the gap keeps the
    mode before it. Started early into the minute before 22:00 and shut there, a chiller
    cooling since 21:00 had stopped, and its down time kept it from making ice until
    23:00 (Park B, 1-min ticks, three nights of the summer fortnight, 2.1-2.7 MWh of ice
    each).
    """
    out = want.copy()
    n = len(out)
    k = 0
    prev = mode_now
    while k < n:
        if out[k] != 0 or prev == 0:
            prev = int(out[k])
            k += 1
            continue
        end = k
        while end < n and out[end] == 0:
            end += 1
        t_end = step_start_s[end] if end < n else np.inf
        if end < n and (t_end - step_start_s[k]) / 3600.0 < min_down_h:
            nxt = int(out[end])
            ok = (allowed or {}).get(nxt)
            out[k:end] = nxt if ok is None else np.where(ok[k:end], nxt, prev)
        k = end
    return out


def _stage(need_kw: Vec, caps_kw: list[float]) -> list[NDArray[np.int64]]:
    """Units in the given order switched on until their capacity covers ``need_kw``."""
    out, covered = [], np.zeros_like(need_kw)
    for cap in caps_kw:
        on = (covered < need_kw - 1e-6).astype(np.int64)
        covered = covered + on * cap
        out.append(on)
    return out


def commit(plant: PlantModel, grid: StepGrid, now_ts: float, *, heat_kw: Vec, cooling_kw: Vec,
           elec_net_kw: Vec, price_import: Vec, gas_cny_per_m3: float, carbon_cny_per_t: float,
           ice_kwh: Mapping[str, float], status: Mapping[str, UnitStatus],
           plan_modes: Mapping[str, Vec] | None = None,
           relaxed_kw: Mapping[str, Vec] | None = None,
           reserve_frac: float = RESERVE_FRAC,
           hold_frac: float = 1.0,
           windows: tuple[dict[str, Vec], dict[str, Vec]] | None = None,
           firm_h: float | None = None) -> Commitment:
    """The horizon's on/off schedule; ``elec_net_kw`` is electric load less renewables.

    ``firm_h``: the schedule binds for steps starting within this many hours (at least
    step 0); later steps leave every unit available (``Commitment.firm_steps``). None:
    it binds over the whole horizon.

    With ``relaxed_kw`` (per unit series of the QP solved with minimum loads dropped:
    ``chp1.p``, ``ch1.c``, ``dch1.c``, ``dch1.ice``, ... in kW) the units are staged to
    carry what the relaxation gives each kind, plus ``reserve_frac`` of it for thermal
    units, so that a load above the forecast finds a running unit with room (the
    physics' running units pick it up). Without it, the merit heuristics below decide.
    ``windows`` is ``ice_windows()`` for this tick where the caller has it already.
    ``hold_frac``: the share of step 0 that its setpoints hold, the tick period over step
    0's length (1 at one decision a step): what the load may do before the next tick is
    decided again is that share of what it does over a step.
    """
    n = grid.n
    want: dict[str, NDArray[np.int64]] = {}
    charge_ok, melt_ok = windows if windows is not None else ice_windows(plant, grid, now_ts)
    if relaxed_kw is not None:
        want = _round_relaxed(plant, relaxed_kw, status, charge_ok, grid, now_ts, reserve_frac, ice_kwh,
                              hold_frac=hold_frac)
        return _firm(plant, grid, firm_h, _finish(plant, grid, now_ts, want, status, plan_modes,
                                                  ice_kwh, charge_ok, melt_ok))

    # chillers: ice makers fill the store in the window; by day the ice goes to the
    # dearest steps, chillers cover the rest in order of efficiency
    ice_cool = np.zeros(n)
    for st in plant.ice_stores:
        makers = [d for d in plant.dual_chillers if d.ice_store == st.name]
        room = st.usable_frac * st.capacity_kwh - ice_kwh.get(st.name, 0.0)
        ice_mode = np.zeros(n, np.int64)
        for k in range(n):
            if charge_ok[st.name][k] > 0.5 and room >= _min_charge_kwh(st, makers, grid.dt_h[k]):
                ice_mode[k] = 1
                room -= sum(d.ice_max_kw for d in makers) * st.charge_eff * grid.dt_h[k]
        for d in makers:
            want[d.name] = 2 * ice_mode
        # ice for each melting stretch is what is in the store when it starts (now, or
        # after the night before); within a stretch it goes to the dearest steps
        per_step = sum(d.ice_max_kw for d in makers) * st.charge_eff * grid.dt_h
        level = ice_kwh.get(st.name, 0.0)
        day = melt_ok[st.name] > 0.5
        k = 0
        while k < n:
            if not day[k]:
                level = min(st.usable_frac * st.capacity_kwh, level + ice_mode[k] * per_step[k])
                k += 1
                continue
            end = k
            while end < n and day[end]:
                end += 1
            avail = level * st.release_eff
            for j in k + np.argsort(-price_import[k:end], kind="stable"):
                if avail <= 0:
                    break
                melt = min(st.melt_max_kw, cooling_kw[j], avail / grid.dt_h[j])
                ice_cool[j] += melt
                avail -= melt * grid.dt_h[j]
            level = avail / st.release_eff
            k = end
    heat_for_abs = np.zeros(n)
    abs_cool = np.zeros(n)
    if plant.absorption_chillers and plant.chps:
        abs_cool = np.minimum(cooling_kw, sum(a.cool_max_kw for a in plant.absorption_chillers))
        heat_for_abs = abs_cool / plant.absorption_chillers[0].cop
    need_cool = np.maximum(0.0, cooling_kw - ice_cool - abs_cool)
    chillers: list[tuple[str, float, float]] = [
        (c.name, c.cool_max_kw, c.cop) for c in plant.electric_chillers]
    chillers += [(d.name, d.cool_max_kw, d.cop_cool) for d in plant.dual_chillers]
    chillers.sort(key=lambda c: (-c[2], -c[1]))
    for (name, _, _), on in zip(chillers, _stage(need_cool, [c[1] for c in chillers]), strict=True):
        prior = want.get(name, np.zeros(n, np.int64))
        want[name] = np.where(prior == 2, 2, on)

    # CHP: cover the heat the boilers do not, then run whenever it beats the grid
    carbon = carbon_cny_per_t * 1e-3
    gas_kwh = gas_cny_per_m3 / GAS_KWH_PER_M3 + carbon * GAS_CO2_KG_PER_KWH
    boiler_kw = sum(b.q_max_kw for b in plant.gas_boilers)
    heat_need = np.maximum(0.0, heat_kw + heat_for_abs - boiler_kw)
    boiler_cost = min((gas_kwh / b.eta for b in plant.gas_boilers), default=2.0)
    for chp, on in zip(plant.chps, _stage(heat_need, [c.p_max_kw * c.heat_to_power
                                                      for c in plant.chps]), strict=True):
        net = gas_kwh / chp.eta_elec - chp.heat_to_power * boiler_cost
        econ = (price_import > net) & (heat_kw > 0)
        want[chp.name] = np.maximum(on, econ.astype(np.int64))

    # diesel: only when nothing else can carry the electric load
    firm = (plant.grid.import_max_kw + sum(b.p_discharge_max_kw for b in plant.batteries)
            + sum(c.p_max_kw for c in plant.chps))
    deficit = np.maximum(0.0, elec_net_kw + need_cool / ROUGH_COP - firm)
    for dg, on in zip(plant.diesels, _stage(deficit, [d.p_max_kw for d in plant.diesels]),
                      strict=True):
        want[dg.name] = on

    return _firm(plant, grid, firm_h, _finish(plant, grid, now_ts, want, status, plan_modes,
                                              ice_kwh, charge_ok, melt_ok))


def with_cooling(plant: PlantModel, grid: StepGrid, now_ts: float, cm: Commitment,
                 short_kw: Vec, status: Mapping[str, UnitStatus], ice_kwh: Mapping[str, float],
                 *, reserve_frac: float = RESERVE_FRAC) -> Commitment | None:
    """``cm`` with chillers started where a plan on it leaves ``short_kw`` of cooling unserved
    (more than a trace), plus the reserve; None where no chiller is free to start.

    The rounding stages chillers for what the relaxation has them carry; where the
    relaxation counted on cooling that the commitment does not give (the absorption
    chiller on a CHP that is then not started, ice the store cannot release that fast),
    the plan booked the cooling as unserved with every chiller off: Park B summer, 15-min
    steps, 300 kWh on four ticks; Park A summer, exact forecasts at 5-min ticks, 1.1 MW
    for 35 min. A free chiller is one off and not held off by its minimum down time.
    """
    need = np.where(np.asarray(short_kw, float) > TRACE_KW,
                    np.asarray(short_kw, float) * (1.0 + reserve_frac), 0.0)
    if not need.any():
        return None
    down_h = {u.name: u.min_down_h for u in plant.switched}
    units = sorted((c for c in _chillers(plant) if c[0] in cm.mode), key=lambda c: (-c[2], -c[1], c[0]))
    free = {c[0]: (np.asarray(cm.mode[c[0]]) == 0) & ~held_in(status.get(c[0]), 0, down_h[c[0]], grid, now_ts)
            for c in units}
    staged = _stage_by(need, [(c[0], c[1], c[3]) for c in units], free, min_kw=TRACE_KW)
    if not any(on.any() for on in staged.values()):
        return None
    want = {u: np.asarray(m, np.int64).copy() for u, m in cm.mode.items()}
    for u, on in staged.items():
        want[u] = np.where(on > 0, 1, want[u]).astype(np.int64)
    out = _finish(plant, grid, now_ts, want, status, None, ice_kwh, dict(cm.charge_ok),
                  dict(cm.melt_ok))
    return replace(out, units=out.units | cm.units, firm_steps=cm.firm_steps)


def cooling_uncovered(plant: PlantModel, cm: Commitment, ice_kwh: Mapping[str, float]) -> bool:
    """Whether nothing on at step 0 of ``cm`` can pick up cooling: no chiller in cooling
    mode, no ice store that may melt and holds a trace's worth of release, and no
    absorption chiller (which the QP may run on any heat)."""
    if plant.absorption_chillers:
        return False
    if any(int(cm.mode[c[0]][0]) == 1 for c in _chillers(plant) if c[0] in cm.mode):
        return False
    return not any(float(cm.melt_ok.get(s.name, np.zeros(1))[0]) > 0.0
                   and s.release_cap_kw(ice_kwh.get(s.name, 0.0)) > TRACE_KW for s in plant.ice_stores)


def held_at_step0(plant: PlantModel, grid: StepGrid, now_ts: float, cm: Commitment,
                  status: Mapping[str, UnitStatus], ice_kwh: Mapping[str, float],
                  plan_modes: Mapping[str, Vec] | None = None, *, cooling_kw0: float = 0.0,
                  heat_kw0: float = 0.0, elec_net_kw0: float = 0.0,
                  reserve_frac: float = 0.0) -> Commitment:
    """``cm`` with every unit's step 0 in its present mode (later steps as ``cm`` has them),
    then the plan's commitment, minimum times, the charge window and full stores as usual:
    on/off for a tick within a step period whose start decided it (``controller.decide``).

    A unit ``cm`` starts now still starts where the units running now fall short of step
    0's forecast plus ``reserve_frac`` of it: holding on/off is for the rounding's second
    thoughts, not for a load the running units cannot carry. Chillers: against
    ``cooling_kw0`` (kW), with the chillers cooling now and the ice stores' release where
    they may melt. CHPs: against ``heat_kw0``, with the running CHPs' heat and every
    boiler, or against ``elec_net_kw0`` (electric load less renewables, kW; the chillers'
    draw is added at ``ROUGH_COP``) with the grid's import limit, the batteries' discharge
    and the running CHPs and diesels. Diesels: against the latter. A park whose heat is
    its CHPs' alone (Park A) would otherwise leave a CHP trip's heat unserved until the
    quarter hour.
    """
    want = {u: np.asarray(m, np.int64).copy() for u, m in cm.mode.items()}

    def running(u: str) -> bool:
        st = status.get(u)
        return st is not None and st.mode == 1

    chillers = {c[0]: c[1] for c in _chillers(plant)}
    cool_kw = sum(cap for u, cap in chillers.items() if running(u))
    cool_kw += sum(s.release_cap_kw(ice_kwh.get(s.name, 0.0)) for s in plant.ice_stores
                   if float(cm.melt_ok[s.name][0]) > 0.5)
    heat_kw = (sum(c.p_max_kw * c.heat_to_power for c in plant.chps if running(c.name))
               + sum(b.q_max_kw for b in plant.gas_boilers) + sum(b.q_max_kw for b in plant.electric_boilers))
    elec_kw = (plant.grid.import_max_kw + sum(b.p_discharge_max_kw for b in plant.batteries)
               + sum(c.p_max_kw for c in plant.chps if running(c.name))
               + sum(d.p_max_kw for d in plant.diesels if running(d.name)))
    more = 1.0 + reserve_frac
    # short by at least half the smallest unit's minimum load: a trace of heat or power is
    # what the quarter hour chose to leave (a CHP is not run at its minimum for 10-50 kW
    # of summer night heat, controller._leaner), not a trip to answer now
    mins = [c.min_load_frac * c.p_max_kw for c in plant.chps] + [d.min_load_frac * d.p_max_kw
                                                                  for d in plant.diesels]
    floor_kw = 0.5 * min(mins, default=0.0)
    elec_short = (elec_net_kw0 + cooling_kw0 / ROUGH_COP) * more - elec_kw > max(floor_kw, TRACE_KW)
    heat_floor = 0.5 * min((c.min_load_frac * c.p_max_kw * c.heat_to_power for c in plant.chps),
                           default=0.0)
    heat_short = heat_kw0 * more - heat_kw > max(heat_floor, TRACE_KW)
    short = {u: cool_kw < cooling_kw0 * more for u in chillers}
    short |= {c.name: heat_short or elec_short for c in plant.chps}
    short |= {d.name: elec_short for d in plant.diesels}
    for u, m in want.items():
        st = status.get(u)
        if st is not None and not (short.get(u, False) and m[0] == 1):
            m[0] = st.mode
    out = _finish(plant, grid, now_ts, want, status, plan_modes, ice_kwh, dict(cm.charge_ok),
                  dict(cm.melt_ok))
    return replace(out, units=out.units | cm.units, firm_steps=cm.firm_steps)


def _chillers(plant: PlantModel) -> list[tuple[str, float, float, float]]:
    """The units that cool chilled water: (name, cooling kW, COP, minimum load kW)."""
    out = [(c.name, c.cool_max_kw, c.cop, c.min_load_frac * c.cool_max_kw) for c in plant.electric_chillers]
    out += [(d.name, d.cool_max_kw, d.cop_cool, d.min_load_frac * d.cool_max_kw) for d in plant.dual_chillers]
    return out


def _firm(plant: PlantModel, grid: StepGrid, firm_h: float | None, cm: Commitment) -> Commitment:
    """``cm`` binding only over the steps that start within ``firm_h``.

    On/off far ahead is decided again by the ticks that come nearer to it, so the
    dispatch may use any unit there. Holding it to the rounding made the horizon's
    last hours short of chillers on Park B, cooling went unserved there at 5 CNY/kWh,
    and that shortage raised the value of ice now: the plan rationed ice through
    today's peaks, and OSQP needed up to its 4,000-iteration cap on those ticks
    (docs/control.md).
    """
    if firm_h is None:
        return cm
    k = max(1, int(np.searchsorted(grid.start_h, firm_h - 1e-9)))
    if k >= grid.n:
        return cm
    return replace(cm, units=cm.units | frozenset(u.name for u in plant.switched), firm_steps=k)


def ice_windows(plant: PlantModel, grid: StepGrid, now_ts: float) -> tuple[dict[str, Vec], dict[str, Vec]]:
    """Per ice store, the fraction of each step charging (night window) and melting may run;
    step 0 is decided by "now" alone."""
    charge_ok: dict[str, Vec] = {}
    melt_ok: dict[str, Vec] = {}
    minute = np.arange(round(float(grid.dt_h.sum()) * 60)) * 60.0 + 30.0
    counts = np.round(grid.dt_h * 60).astype(np.int64)
    for st in plant.ice_stores:
        inside = in_window(plant.timezone, now_ts + minute, st.charge_hours).astype(float)
        frac = np.add.reduceat(inside, np.concatenate([[0], np.cumsum(counts)[:-1]])) / counts
        frac[0] = float(in_window(plant.timezone, np.array([now_ts]), st.charge_hours)[0])
        charge_ok[st.name] = frac
        melt_ok[st.name] = 1.0 - frac
    return charge_ok, melt_ok


def _stage_by(need_kw: Vec, units: list[tuple[str, float, float]], free: Mapping[str, NDArray[np.bool_]],
              min_kw: float = 0.0) -> dict[str, NDArray[np.int64]]:
    """Units (name, capacity kW, minimum load kW), in order of preference, switched on where
    ``free`` until they cover ``need_kw``; a unit whose minimum load is above what is left
    to cover gives way to one that can run that low, so a small need is not met by a big
    unit running at its minimum and dumping the rest."""
    out = {name: np.zeros(len(need_kw), np.int64) for name, _, _ in units}
    for k, need in enumerate(need_kw):
        left = float(need)
        avail = [u for u in units if free[u[0]][k]]
        while left > min_kw and avail:
            fits = [u for u in avail if u[2] <= left + 1e-6]
            u = fits[0] if fits else min(avail, key=lambda v: v[2])
            out[u[0]][k] = 1
            left -= u[1]
            avail.remove(u)
    return out


def held_in(status: UnitStatus | None, mode: int, hold_h: float, grid: StepGrid,
             now_ts: float) -> NDArray[np.bool_]:
    """Per step, whether the unit is held in ``mode`` (it is in it now) by a minimum time in
    it of ``hold_h``: its minimum run in a running mode, its minimum down time in 0."""
    if status is None or status.mode != mode:
        return np.zeros(grid.n, bool)
    held: NDArray[np.bool_] = (now_ts + grid.start_h * 3600.0 - status.since_ts) / 3600.0 < hold_h - 1e-9
    return held


def _near_window(plant: PlantModel, grid: StepGrid, charge_ok: Mapping[str, Vec]) -> NDArray[np.bool_]:
    """Per step, whether a dual chiller started for cooling then would still be held in
    cooling mode by its minimum run time inside its store's charge window."""
    out = np.zeros(grid.n, bool)
    start, end = grid.start_h, grid.start_h + grid.dt_h
    for d in plant.dual_chillers:
        ok = np.asarray(charge_ok.get(d.ice_store, np.zeros(grid.n)), float) > 0.5
        if not ok.any():
            continue
        opens = start[ok]
        closes = end[ok]
        # the run [start, start + min_up) overlaps a window step
        out |= ((opens[None, :] < start[:, None] + d.min_up_h)
                & (closes[None, :] > start[:, None])).any(axis=1)
    return out


def _round_relaxed(plant: PlantModel, x: Mapping[str, Vec], status: Mapping[str, UnitStatus],
                   charge_ok: Mapping[str, Vec], grid: StepGrid, now_ts: float, reserve: float,
                   ice_kwh: Mapping[str, float], *, hold_frac: float = 1.0) -> dict[str, NDArray[np.int64]]:
    """Whole units for the relaxation's totals per kind; running units first, then by merit.

    ``x`` may carry ice stores' ``*.melt`` (kW) and ``*.e`` (kWh at each step's end): melt
    the store cannot release at its level (``release_frac_per_h``, which the QP bounds at
    step 0 only) is added to what the chillers must carry.
    """
    n = grid.n
    zero = np.zeros(n)
    want: dict[str, NDArray[np.int64]] = {}

    def total(names: list[str], suffix: str) -> Vec:
        return sum((np.asarray(x.get(f"{u}.{suffix}", zero), float) for u in names), zero.copy())

    def running_first(u: str) -> int:
        st = status.get(u)
        return 0 if st is not None and st.mode != 0 else 1

    yes = np.ones(n, bool)
    # ice makers in ice mode for the ice the relaxation makes (no reserve: ice is a choice)
    ice_mode: dict[str, NDArray[np.bool_]] = {d.name: np.zeros(n, bool) for d in plant.dual_chillers}
    for st in plant.ice_stores:
        makers = sorted((d for d in plant.dual_chillers if d.ice_store == st.name),
                        key=lambda d: (running_first(d.name), -d.cop_ice, d.name))
        need = total([d.name for d in makers], "ice")
        window = np.asarray(charge_ok[st.name]) > 0.5
        # as for diesel: a maker starts for at least half its minimum load, not for a
        # trace the solver left where charging and not charging cost the same
        floor_kw = 0.5 * min((d.min_load_frac * d.ice_max_kw for d in makers), default=0.0)
        # and not one its minimum run holds in cooling mode: staged for ice, it was left
        # out of the cooling staging, which then started another maker for cooling
        staged = _stage_by(need, [(d.name, d.ice_max_kw, d.min_load_frac * d.ice_max_kw) for d in makers],
                           {d.name: window & ~held_in(status.get(d.name), 1, d.min_up_h, grid, now_ts)
                            for d in makers}, min_kw=max(floor_kw, TRACE_KW))
        # no ice mode where the store has no room for it: a maker staged there would be
        # stopped by the full-store rule (_finish) and then serve nothing, while the
        # cooling staging below counted it as busy
        full = _no_room(st, [[d for d in makers if staged[d.name][k] > 0] for k in range(n)],
                        grid.dt_h, ice_kwh.get(st.name, 0.0))
        for d in makers:
            staged[d.name][full] = 0
        for d in makers:
            ice_mode[d.name] = staged[d.name] > 0
    # a maker its minimum run holds in ice mode cannot cool meanwhile, whatever the
    # rounding wants of it (min_up_down keeps it there): counted as free for cooling,
    # it left Park B's 2.8 MW morning load with no chiller at the window's end
    for d in plant.dual_chillers:
        ice_mode[d.name] |= held_in(status.get(d.name), 2, d.min_up_h, grid, now_ts)
    # chillers in cooling mode for the chillers' cooling, with reserve
    chillers = sorted(_chillers(plant), key=lambda c: (running_first(c[0]), -c[2], -c[1], c[0]))
    # An absorption chiller's cooling within the reserve of its rating is the electric
    # chillers' to back up: Park A's absorption chiller carried winter and summer cooling
    # at its 1.5 MW rating alone, and what the load rose above it was unserved
    absorbed = total([a.name for a in plant.absorption_chillers], "c") * (1.0 + reserve)
    over = np.clip(absorbed - sum(a.cool_max_kw for a in plant.absorption_chillers), 0.0, None)
    need = (total([c[0] for c in chillers], "c") * (1.0 + reserve) + over
            + _melt_short(plant, x, ice_kwh, n))
    # Step 0's units carry the load until the next tick; where it rises, towards the next
    # step's by the share of a step that is (hold_frac). Park B's morning ramp, 1.1 -> 1.8
    # -> 2.6 MW in half an hour while the dual chillers make ice, found the screw chiller
    # alone at 04:15 and left 221-228 kW unserved on two mornings at 15-min steps.
    # Not for a rise the store's melt could cover: where the plan lets the store melt less
    # next step while its cap has room, the store keeps melting until the next tick's plan
    # and the chillers need not start for it now. Counted, it started a chiller ahead of
    # the store's hand-over at Park B's summer peak (15:00) that then ran its minimum time.
    if n > 1:
        rise = need[1] - need[0]
        for st in plant.ice_stores:
            melt = x.get(f"{st.name}.melt")
            if melt is not None:
                drop = max(float(melt[0]) - float(melt[1]), 0.0)
                room = max(float(_melt_cap(st, x, ice_kwh, 2)[1]) - float(melt[1]), 0.0)
                rise -= min(drop, room)
        need[0] += hold_frac * max(rise, 0.0)
    free = {c[0]: ~ice_mode.get(c[0], np.zeros(n, bool)) for c in chillers}
    by_cop = _stage_by(need, [(c[0], c[1], c[3]) for c in chillers], free, min_kw=TRACE_KW)
    # A maker started for cooling runs its minimum time in cooling mode: started in the
    # charge window or within that time before it, it makes no ice when it could (Park B,
    # 1-min ticks: started at 22:00 for 1.7 MW of cooling, idle for ice till 23:00). There
    # the electric chillers go first, running units still before all.
    dual = {d.name for d in plant.dual_chillers}
    near = _near_window(plant, grid, charge_ok)
    if near.any():
        late = sorted(chillers, key=lambda c: (running_first(c[0]), c[0] in dual, -c[2], -c[1], c[0]))
        makers_last = _stage_by(need, [(c[0], c[1], c[3]) for c in late], free, min_kw=TRACE_KW)
        by_cop = {u: np.where(near, makers_last[u], on) for u, on in by_cop.items()}
    # A store melting within the reserve of its release cap gets a chiller on beside it, as
    # the absorption chiller does at its rating; where none is staged, the free one with the
    # smallest minimum load, since it runs for the reserve only. The reserve is for what the
    # load may rise before the next tick, so it shrinks with the tick (hold_frac). Park B
    # summer, 15-min steps: the store melting at its cap with no chiller on left 13-228 kW
    # of cooling unserved on five quarter hours (112 kWh). Staged by COP, or for the whole
    # 15 %, the reserve ran one or two 4.6-4.9 MW chillers at their 1.4-1.5 MW minimum at
    # the peak price.
    bare = ((_melt_short(plant, x, ice_kwh, n, reserve_frac=reserve * hold_frac) > TRACE_KW)
            & ~np.any([by_cop[c[0]] > 0 for c in chillers], axis=0))
    # The reserve's unit: one its minimum run holds on anyway, else the one with the smallest
    # minimum load, running or not. Running units first kept Park B's dual chiller, started
    # at 07:00 for the morning ramp, at its 1.37 MW minimum beside the store into the 08:00
    # peak, where the screw chiller holds the same room at 160 kW: summer fortnight at
    # 15-min steps 1,035,263 / 1,035,638 / 1,036,954 -> 1,034,697 / 1,034,934 / 1,036,205
    # CNY on seeds 0 / 1 / 2, winter -10 CNY.
    up_h = {u.name: u.min_up_h for u in plant.switched}
    held_on = {c[0]: held_in(status.get(c[0]), 1, up_h.get(c[0], 0.0), grid, now_ts) for c in chillers}

    def spare_at(k: int) -> list[tuple[str, float, float, float]]:
        return sorted(chillers, key=lambda c: (not held_on[c[0]][k], c[3], running_first(c[0]), -c[2], c[0]))

    spare = spare_at(0)
    for k in np.flatnonzero(bare):
        u = next((c[0] for c in spare_at(int(k)) if free[c[0]][k]), None)
        if u is not None:
            by_cop[u][k] = 1
    # Step 0's staged chillers and stores together keep STORE_RESERVE_FRAC of the cooling
    # load (hold_frac of it: the reserve is for the rise before the next tick) as room to
    # pick up a load above the forecast; short of it, the next free chiller by smallest
    # minimum load starts. The 15 % reserve above counts only the chillers' share, so a
    # store melting at its cap beside one nearly full chiller had next to no room: Park B
    # summer at 15-min steps left 14 kWh of cooling unserved (seed 0: the store at its
    # 11.9 MW cap, the screw chiller at 1.27 of its 1.6 MW, the load 3.7 % above its
    # forecast) and 8 kWh on seed 2 (the store at its release limit, 4.6 % above). Step 0
    # only: later steps are decided again by the ticks that reach them.
    if plant.ice_stores and n:
        melt0 = sum(float(np.asarray(x.get(f"{st.name}.melt", zero), float)[0]) for st in plant.ice_stores)
        cool0 = float(total([c[0] for c in chillers], "c")[0])
        room0 = float(_melt_room(plant, x, ice_kwh, n)[0])
        caps = {c[0]: c[1] for c in chillers}
        while melt0 > TRACE_KW:
            spare_kw = sum(cap for u, cap in caps.items() if by_cop[u][0] > 0) - cool0 + room0
            if spare_kw >= STORE_RESERVE_FRAC * hold_frac * (cool0 + melt0):
                break
            u = next((c[0] for c in spare if free[c[0]][0] and by_cop[c[0]][0] == 0), None)
            if u is None:
                break
            by_cop[u][0] = 1
    for name, on in by_cop.items():
        want[name] = np.where(ice_mode.get(name, np.zeros(n, bool)), 2, on).astype(np.int64)
    # CHP: reserve where it is the only heat (no boilers to take a shortfall)
    chp_reserve = reserve if not (plant.gas_boilers or plant.electric_boilers) else 0.0
    chps = sorted(plant.chps, key=lambda c: (running_first(c.name), -c.eta_elec, -c.p_max_kw, c.name))
    need = total([c.name for c in chps], "p") * (1.0 + chp_reserve)
    want.update(_stage_by(need, [(c.name, c.p_max_kw, c.min_load_frac * c.p_max_kw) for c in chps],
                          {c.name: yes for c in chps}, min_kw=TRACE_KW))
    # diesel: only for what the relaxation really wants of it (half a minimum load), not
    # for the solver's tolerance-sized traces
    dgs = sorted(plant.diesels, key=lambda d: (running_first(d.name), d.fuel_g_per_kwh, d.name))
    need = total([d.name for d in dgs], "p")
    floor_kw = 0.5 * min((d.min_load_frac * d.p_max_kw for d in dgs), default=0.0)
    want.update(_stage_by(need, [(d.name, d.p_max_kw, d.min_load_frac * d.p_max_kw) for d in dgs],
                          {d.name: yes for d in dgs}, min_kw=max(floor_kw, TRACE_KW)))
    return want


def _melt_cap(st: IceStore, x: Mapping[str, Vec], ice_kwh: Mapping[str, float], n: int) -> Vec:
    """Per step, kW the store can release: ``melt_max_kw``, and ``release_frac_per_h`` x the
    kWh it starts the step with (the plan's level, ``*.e`` at each step's end)."""
    e = x.get(f"{st.name}.e")
    if e is None:
        return np.full(n, st.melt_max_kw)
    start = np.concatenate([[ice_kwh.get(st.name, float(e[0]))], np.asarray(e[:-1], float)])
    return np.array([st.release_cap_kw(float(v)) for v in start[:n]])


def _melt_short(plant: PlantModel, x: Mapping[str, Vec], ice_kwh: Mapping[str, float],
                n: int, *, reserve_frac: float = 0.0) -> Vec:
    """Per step, kW of planned melt, plus ``reserve_frac`` of it, above what the stores can
    release (``_melt_cap``). With a reserve it says where a store melts too near its cap to
    pick up a load above the forecast (``_round_relaxed`` then keeps a chiller on beside it)."""
    short = np.zeros(n)
    for st in plant.ice_stores:
        melt = x.get(f"{st.name}.melt")
        if melt is not None:
            short += np.maximum(np.asarray(melt, float) * (1.0 + reserve_frac) - _melt_cap(st, x, ice_kwh, n), 0.0)
    return short


def _melt_room(plant: PlantModel, x: Mapping[str, Vec], ice_kwh: Mapping[str, float], n: int) -> Vec:
    """Per step, kW the stores could melt above the plan: their cap less the planned melt."""
    room = np.zeros(n)
    for st in plant.ice_stores:
        melt = x.get(f"{st.name}.melt")
        if melt is not None:
            room += np.maximum(_melt_cap(st, x, ice_kwh, n) - np.asarray(melt, float), 0.0)
    return room


def _finish(plant: PlantModel, grid: StepGrid, now_ts: float, want: dict[str, NDArray[np.int64]],
            status: Mapping[str, UnitStatus], plan_modes: Mapping[str, Vec] | None,
            ice_kwh: Mapping[str, float], charge_ok: dict[str, Vec],
            melt_ok: dict[str, Vec]) -> Commitment:
    """The plan's commitment over the wanted one, then minimum up/down and full ice stores."""
    start_s = grid.start_h * 3600.0
    n = grid.n
    if plan_modes:
        for u, m in plan_modes.items():
            if u in want:
                want[u] = np.where(np.isnan(m), want[u], np.nan_to_num(m)).astype(np.int64)

    modes: dict[str, NDArray[np.int64]] = {}
    spec = {u.name: (u.min_up_h, u.min_down_h) for u in plant.switched}
    window = {d.name: {2: np.asarray(charge_ok[d.ice_store]) > 0.0} for d in plant.dual_chillers}
    for u, w in want.items():
        now = status.get(u, UnitStatus(int(w[0]), -math.inf))
        up_h, down_h = spec[u]
        w = fill_gaps(w, now.mode, start_s, down_h, allowed=window.get(u))
        modes[u] = min_up_down(w, now, now_ts, start_s, up_h, down_h)
    # A full ice store stops its ice makers whatever their minimum run time (the store's
    # level control does it on site); holding them in ice mode would force charging into
    # a store with no room, and the QP would have no solution.
    # Likewise ice-making ends with the charge window: a maker held in ice mode past it by
    # its minimum run time makes nothing (charging is not allowed) and keeps the store in
    # charge mode, so it cannot melt; with the chillers off for the melt, Park B's
    # cooling went unserved for three steps at the window's end (winter, 1 MW).
    for st in plant.ice_stores:
        makers = [d for d in plant.dual_chillers if d.ice_store == st.name and d.name in modes]
        for d in makers:
            modes[d.name][(modes[d.name] == 2) & (np.asarray(charge_ok[st.name]) <= 0.0)] = 0
        full = _no_room(st, [[d for d in makers if modes[d.name][k] == 2] for k in range(n)],
                        grid.dt_h, ice_kwh.get(st.name, 0.0))
        for d in makers:
            modes[d.name][full & (modes[d.name] == 2)] = 0
    units = frozenset(u for u, m in modes.items() if m.any())
    return Commitment(modes, melt_ok, charge_ok, units)
