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
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from edge.control.inputs import local_hour_month
from edge.control.plant import GAS_CO2_KG_PER_KWH, GAS_KWH_PER_M3, DualChiller, IceStore, PlantModel
from edge.control.qp import StepGrid, Vec

__all__ = ["Commitment", "UnitStatus", "commit", "in_window", "min_up_down"]



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

    def status_after_first(self, now_ts: float,
                           prev: Mapping[str, UnitStatus]) -> dict[str, UnitStatus]:
        """Unit statuses once step 0 is applied."""
        out = {}
        for u, m in self.mode.items():
            old = prev.get(u)
            mode = int(m[0])
            out[u] = old if old is not None and old.mode == mode else UnitStatus(mode, now_ts)
        return out


def in_window(tz: object, ts: Vec, hours: tuple[int, int]) -> NDArray[np.bool_]:
    """Whether each UTC time is inside local hours [start, end), wrapping midnight."""
    from zoneinfo import ZoneInfo
    assert isinstance(tz, ZoneInfo)
    hour, _ = local_hour_month(tz, ts)
    h0, h1 = hours
    res: NDArray[np.bool_] = (hour >= h0) & (hour < h1) if h0 < h1 else (hour >= h0) | (hour < h1)
    return res


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
              min_down_h: float) -> NDArray[np.int64]:
    """Bridge off-gaps shorter than the minimum down time when the same mode resumes after.

    Stopping for a gap the unit could not restart from would leave the load
    unserved when it comes back; staying on through it is the cheaper error.
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
        if end < n and out[end] == prev and (t_end - step_start_s[k]) / 3600.0 < min_down_h:
            out[k:end] = prev
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
           plan_modes: Mapping[str, Vec] | None = None) -> Commitment:
    """The horizon's on/off schedule; ``elec_net_kw`` is electric load less renewables."""
    start_s = grid.start_h * 3600.0
    n = grid.n
    want: dict[str, NDArray[np.int64]] = {}

    # ice stores: night-only charging as step fractions; step 0 is decided by "now" alone
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
    deficit = np.maximum(0.0, elec_net_kw + need_cool / 4.0 - firm)
    for dg, on in zip(plant.diesels, _stage(deficit, [d.p_max_kw for d in plant.diesels]),
                      strict=True):
        want[dg.name] = on

    if plan_modes:
        for u, m in plan_modes.items():
            if u in want:
                want[u] = np.where(np.isnan(m), want[u], np.nan_to_num(m)).astype(np.int64)

    modes: dict[str, NDArray[np.int64]] = {}
    spec = {u.name: (u.min_up_h, u.min_down_h) for u in plant.switched}
    for u, w in want.items():
        now = status.get(u, UnitStatus(int(w[0]), -math.inf))
        up_h, down_h = spec[u]
        w = fill_gaps(w, now.mode, start_s, down_h)
        modes[u] = min_up_down(w, now, now_ts, start_s, up_h, down_h)
    # A full ice store stops its ice makers whatever their minimum run time (the store's
    # level control does it on site); holding them in ice mode would force charging into
    # a store with no room, and the QP would have no solution.
    for st in plant.ice_stores:
        room = st.usable_frac * st.capacity_kwh - ice_kwh.get(st.name, 0.0)
        makers = [d for d in plant.dual_chillers if d.ice_store == st.name and d.name in modes]
        per_step = sum(d.ice_max_kw for d in makers) * st.charge_eff * grid.dt_h
        for k in range(n):
            making = [d for d in makers if modes[d.name][k] == 2]
            if not making:
                continue
            if room < _min_charge_kwh(st, making, grid.dt_h[k]):
                for d in making:
                    modes[d.name][k] = 0
            else:
                room -= per_step[k]
    units = frozenset(u for u, m in modes.items() if m.any())
    return Commitment(modes, melt_ok, charge_ok, units)
