"""The last thing before setpoints leave control: every value clamped to its point's limits.

Limits come from the site's ``[[devices.points]]`` (``limits = {min, max,
ramp_per_s}``, ``default``) intersected with what the plant model says the
asset can do. A ramp limit is applied against the last setpoint written;
with no last setpoint (first tick, after safe mode) only min and max apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from edge.control.plant import PlantModel

__all__ = ["Clamp", "PointLimit", "clamp", "plant_limits"]


@dataclass(frozen=True, slots=True)
class PointLimit:
    min: float = -math.inf
    max: float = math.inf
    ramp_per_s: float = math.inf
    default: float = 0.0

    def narrowed(self, other: PointLimit) -> PointLimit:
        lo, hi = max(self.min, other.min), min(self.max, other.max)
        if lo > hi:          # disagreeing sources: trust the site file's point limits
            lo, hi = other.min, other.max
        return PointLimit(lo, hi, min(self.ramp_per_s, other.ramp_per_s), other.default)


@dataclass(frozen=True, slots=True)
class Clamp:
    point: str
    wanted: float
    written: float
    why: str              # "min" | "max" | "ramp" | "not_finite"


def plant_limits(plant: PlantModel) -> dict[str, PointLimit]:
    """What each writable point may take by the plant model (passive sign)."""
    lim: dict[str, PointLimit] = {}
    for b in plant.batteries:
        lim[b.p_set_point] = PointLimit(-b.p_discharge_max_kw, b.p_charge_max_kw)
    for u in plant.generators:
        lim[u.p_set_point] = PointLimit(-u.p_max_kw, 0.0)
    for dg in plant.diesels:
        if dg.run_set_point:
            lim[dg.run_set_point] = PointLimit(0.0, 1.0)
    for g in plant.heaters:
        lim[g.q_set_point] = PointLimit(-g.q_max_kw, 0.0)
    for e in plant.electric_boilers:
        if e.stored and e.p_set_point:
            lim[e.p_set_point] = PointLimit(0.0, e.p_max_kw)
    for c in plant.electric_chillers:
        lim[c.cool_set_point] = PointLimit(-c.cool_max_kw, 0.0)
    for a in plant.absorption_chillers:
        lim[a.cool_set_point] = PointLimit(-a.cool_max_kw, 0.0)
    for d in plant.dual_chillers:
        lim[d.cool_set_point] = PointLimit(-max(d.cool_max_kw, d.ice_max_kw), 0.0)
        lim[d.mode_set_point] = PointLimit(0.0, 2.0)
    for s in plant.ice_stores:
        lim[s.melt_set_point] = PointLimit(-s.melt_max_kw, 0.0)
        if s.mode_set_point:
            lim[s.mode_set_point] = PointLimit(0.0, 2.0)
    for r in plant.renewables:
        if r.p_set_point:
            lim[r.p_set_point] = PointLimit(-r.p_rated_kw, 0.0, default=-r.p_rated_kw)
        if r.limit_pct_point:
            lim[r.limit_pct_point] = PointLimit(0.0, 100.0, default=100.0)
            lim[r.limit_ena_point] = PointLimit(0.0, 1.0, default=0.0)
    for ld in plant.loads:
        if ld.shed_set_point:
            lim[ld.shed_set_point] = PointLimit(0.0, ld.interruptible_frac * ld.peak_kw)
        if ld.shed_frac_point:
            lim[ld.shed_frac_point] = PointLimit(0.0, ld.interruptible_frac)
    return lim


def clamp(setpoints: Mapping[str, float], limits: Mapping[str, PointLimit],
          last: Mapping[str, float], dt_s: float) -> tuple[dict[str, float], list[Clamp]]:
    """Setpoints inside min/max and within ``ramp_per_s * dt_s`` of the last written value.

    A point without limits is dropped (never written) and reported, so that a
    missing limit cannot let a value through unchecked.
    """
    out: dict[str, float] = {}
    notes: list[Clamp] = []
    for point, v in setpoints.items():
        lim = limits.get(point)
        if lim is None:
            notes.append(Clamp(point, v, math.nan, "no_limits"))
            continue
        w = v
        if not math.isfinite(w):
            w, why = lim.default, "not_finite"
            notes.append(Clamp(point, v, w, why))
        prev = last.get(point)
        if prev is not None and math.isfinite(lim.ramp_per_s) and dt_s > 0:
            step = lim.ramp_per_s * dt_s
            if w > prev + step:
                w = prev + step
            elif w < prev - step:
                w = prev - step
        if w < lim.min:
            w = lim.min
        elif w > lim.max:
            w = lim.max
        if w != v and math.isfinite(v):
            within = min(max(v, lim.min), lim.max)
            why = "ramp" if w != within else ("min" if v < lim.min else "max")
            notes.append(Clamp(point, v, w, why))
        out[point] = w
    return out, notes
