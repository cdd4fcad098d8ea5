"""Today's operation as rule tables (SCENARIOS.md): the baseline to beat and the second fallback.

``park_a`` is Park A's priority table (CHP on heat and gas price, electric
chillers, backup diesel on price and SOC, battery on price thresholds);
``park_b`` is Park B's ice schedule (charge 22-06, melt 08-11, 13-15, 18-22,
base-load chillers otherwise). Thresholds are data (:class:`RuleTable`). The
rules read only the present: prices, measured state and step-0 expectations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.control.plant import PlantModel
from edge.control.points import (
    diesel_points,
    electric_boiler_points,
    ice_store_points,
    renewable_points,
    shed_points,
)

__all__ = ["RuleContext", "RuleTable", "park_a", "park_b"]


@dataclass(frozen=True, slots=True)
class RuleTable:
    chp_heat_min_kw: float = 2000.0
    chp_gas_max_cny_per_m3: float = 3.0
    chiller_cool_min_kw: float = 1000.0
    diesel_price_min_cny_per_kwh: float = 1.0
    diesel_soc_max_frac: float = 0.20
    battery_charge_below_cny_per_kwh: float = 0.3
    battery_discharge_above_cny_per_kwh: float = 0.8
    ice_charge_hours: tuple[int, int] = (22, 6)
    heat_store_charge_hours: tuple[int, int] = (22, 6)    # electric heat-storage boilers
    ice_melt_hours: tuple[tuple[int, int], ...] = ((8, 11), (13, 15), (18, 22))


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What rules see at one tick (built by the controller)."""

    local_hour: int
    price_import: float
    gas_cny_per_m3: float
    soc_frac: Mapping[str, float]       # missing: unknown, the battery idles
    ice_kwh: Mapping[str, float]
    elec_load_kw: float
    heat_kw: float
    cooling_kw: float
    renewable_kw: float
    heat_store_kwh: Mapping[str, float] = field(default_factory=dict)  # missing: unknown
    available_kw: Mapping[str, float] = field(default_factory=dict)   # per renewable asset
    shed_load_kw: Mapping[str, float] = field(default_factory=dict)   # interruptible loads, unshed


def _in(hour: int, span: tuple[int, int]) -> bool:
    a, b = span
    return a <= hour < b if a < b else (hour >= a or hour < b)


def _stage(need: float, units: list[tuple[str, float, float]]) -> dict[str, float]:
    """Cover ``need`` with units (name, max, min load kW) in order; the rest stay off."""
    out = {}
    for name, cap, low in units:
        take = min(cap, max(need, 0.0))
        out[name] = max(take, low) if take > 0 else 0.0
        need -= out[name]
    return out


def _common(plant: PlantModel, ctx: RuleContext) -> dict[str, float]:
    """No curtailment and no shedding: the rules never ask for either."""
    sp: dict[str, float] = {}
    for r in plant.renewables:
        sp.update(renewable_points(r, None, ctx.available_kw.get(r.name, r.p_rated_kw)))
    for ld in plant.loads:
        if ld.interruptible_frac > 0:
            sp.update(shed_points(ld, 0.0, ctx.shed_load_kw.get(ld.name, 0.0)))
    return sp


def park_a(plant: PlantModel, ctx: RuleContext, table: RuleTable = RuleTable()) -> dict[str, float]:
    sp = _common(plant, ctx)
    heat_kw = 0.0
    chp_on = ctx.heat_kw > table.chp_heat_min_kw and ctx.gas_cny_per_m3 < table.chp_gas_max_cny_per_m3
    chp_units = [(c.name, c.p_max_kw, c.min_load_frac * c.p_max_kw) for c in plant.chps]
    htp = {c.name: c.heat_to_power for c in plant.chps}
    need_e = ctx.heat_kw / max(min(htp.values(), default=1.0), 1e-6) if chp_on else 0.0
    run = _stage(need_e, chp_units)
    for c in plant.chps:
        sp[c.p_set_point] = -run[c.name]
        heat_kw += run[c.name] * c.heat_to_power
    for g in plant.gas_boilers:                      # not in Park A; heat-following if present
        q = min(g.q_max_kw, max(0.0, ctx.heat_kw - heat_kw))
        sp[g.q_set_point] = -q
        heat_kw += q
    spare_heat = max(0.0, heat_kw - ctx.heat_kw)
    cool = ctx.cooling_kw
    for a in plant.absorption_chillers:
        made = min(a.cool_max_kw, cool, spare_heat * a.cop)
        sp[a.cool_set_point] = -made
        cool -= made
    # the table starts electric chillers on cooling > 1 MW in the valley; outside it they
    # still must carry the load, so they follow it (no other cooling source is given)
    chill = _stage(cool, [(c.name, c.cool_max_kw, c.min_load_frac * c.cool_max_kw)
                          for c in plant.electric_chillers])
    for ch in plant.electric_chillers:
        sp[ch.cool_set_point] = -chill[ch.name]
    soc = min(ctx.soc_frac.values(), default=1.0)
    net = ctx.elec_load_kw - ctx.renewable_kw - sum(run.values())
    diesel_on = ctx.price_import > table.diesel_price_min_cny_per_kwh and soc < table.diesel_soc_max_frac
    dg = _stage(net if diesel_on else 0.0,
                [(d.name, d.p_max_kw, d.min_load_frac * d.p_max_kw) for d in plant.diesels])
    for d in plant.diesels:
        sp.update(diesel_points(d, dg[d.name], dg[d.name] > 0))
    for b in plant.batteries:
        s = ctx.soc_frac.get(b.name)
        p = 0.0
        if s is not None and ctx.price_import < table.battery_charge_below_cny_per_kwh:
            p = b.p_charge_max_kw if s < b.soc_max_frac else 0.0
        elif s is not None and ctx.price_import > table.battery_discharge_above_cny_per_kwh:
            p = -b.p_discharge_max_kw if s > b.soc_min_frac else 0.0
        sp[b.p_set_point] = p
    return sp


def park_b(plant: PlantModel, ctx: RuleContext, table: RuleTable = RuleTable()) -> dict[str, float]:
    sp = _common(plant, ctx)
    h = ctx.local_hour
    cool = ctx.cooling_kw
    charging = _in(h, table.ice_charge_hours)
    melting = any(_in(h, span) for span in table.ice_melt_hours)
    for st in plant.ice_stores:
        level = ctx.ice_kwh.get(st.name, 0.0)
        makers = [d for d in plant.dual_chillers if d.ice_store == st.name]
        full = level >= st.usable_frac * st.capacity_kwh - 1.0
        for d in makers:
            ice = charging and not full
            sp[d.mode_set_point] = 2.0 if ice else 0.0
            sp[d.cool_set_point] = -d.ice_max_kw if ice else 0.0
        making = charging and not full and bool(makers)    # the store cannot melt meanwhile
        melt = min(st.melt_max_kw, cool, level * st.release_eff * 4.0) if melting and not making else 0.0
        sp.update(ice_store_points(st, melt, [(d, 2.0 if making else 0.0) for d in makers]))
        cool -= melt
    units = [(c.name, c.cool_max_kw, c.min_load_frac * c.cool_max_kw, c.cool_set_point, "")
             for c in sorted(plant.electric_chillers, key=lambda c: -c.cool_max_kw)]
    if not charging:
        units += [(d.name, d.cool_max_kw, d.min_load_frac * d.cool_max_kw, d.cool_set_point,
                   d.mode_set_point) for d in plant.dual_chillers]
    run = _stage(cool, [(u[0], u[1], u[2]) for u in units])
    for name, _, _, point, mode in units:
        sp[point] = -run[name]
        if mode:
            sp[mode] = 1.0 if run[name] > 0 else 0.0
    heat = ctx.heat_kw
    night = _in(h, table.heat_store_charge_hours)
    for e in plant.electric_boilers:
        # storage boilers: charge at full power by night, cover the heat from the store by day
        # (as their own controller does); a plain electric boiler stays off (gas is cheaper)
        if not e.stored:
            sp.update(electric_boiler_points(e, 0.0))
            continue
        stored = ctx.heat_store_kwh.get(e.name, 0.0)
        q = 0.0 if night else min(e.q_max_kw, max(0.0, heat), stored * 4.0)
        sp.update(electric_boiler_points(e, q, e.p_max_kw if night else 0.0))
        heat -= q
    for g in plant.gas_boilers:
        q = min(g.q_max_kw, max(0.0, heat))
        sp[g.q_set_point] = -q
        heat -= q
    for b in plant.batteries:
        sp[b.p_set_point] = 0.0
    return sp
