"""The rolling-horizon QP, solved by OSQP with matrices built once per plant and commitment.

Internally power is in MW, energy in MWh and money in kCNY, so that an entry
of the cost vector is a price in CNY/kWh times a step in hours and the
matrices are well scaled. Every variable is a magnitude (>= 0); signs are
applied when the first step becomes setpoints.

Layout: the variables are *series* of N steps each (``bess1.ch``, ``grid.imp``,
...); the constraint rows are the variables' own bounds (an identity block,
in the same order), then the electric, heat and cooling balances, then one
dynamics row series per storage. Because everything is a series, the
previous solution (primal and dual) shifts by reshaping.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import osqp
import scipy.sparse as sp
from numpy.typing import NDArray

from edge.control.plant import (
    DIESEL_CO2_KG_PER_KG,
    DIESEL_KG_PER_L,
    GAS_CO2_KG_PER_KWH,
    GAS_KWH_PER_M3,
    Objective,
    PlantModel,
)

__all__ = ["GRADED", "QpModel", "QpResult", "StepGrid", "TickData", "make_grid"]

Vec = NDArray[np.floating[Any]]
_SOLVED = ("solved", "solved inaccurate")
_REG = 1e-6   # kCNY/MW^2 on every variable: strictly convex, unique first step
# stored energy is in units of E_MWH (and its dynamics rows divided by it): OSQP's relative
# tolerance scales with the largest row, and 40 MWh next to 10 MW loosened every row 4x
E_MWH = 10.0
# slack, dump and shedding in units of 0.1 MW: they are dear, so a small bound violation
# at zero costs much; a finer unit tightens their tolerance and shrinks the largest cost
SLACK_MW = 0.1


@dataclass(frozen=True, slots=True)
class StepGrid:
    """Optimisation steps from now: ``dt_h`` per step; fine steps of ``fine_h`` aggregate into them."""

    dt_h: Vec
    fine_h: float
    fine_count: NDArray[np.int64]       # fine steps in each step
    # the first fine step's length where it is shorter than ``fine_h`` (a grid aligned with
    # the clock's periods, ``make_grid(first_h=)``); 0: ``fine_h`` like the others
    first_fine_h: float = 0.0

    @property
    def n(self) -> int:
        return len(self.dt_h)

    def fine_starts_h(self) -> Vec:
        """Each fine step's start, h from now."""
        n = int(self.fine_count.sum())
        first = self.first_fine_h or self.fine_h
        out: Vec = np.concatenate([[0.0], first + np.arange(n - 1) * self.fine_h])
        return out

    def fine_lengths_h(self) -> Vec:
        out: Vec = np.full(int(self.fine_count.sum()), self.fine_h)
        if self.first_fine_h:
            out[0] = self.first_fine_h
        return out

    @property
    def start_h(self) -> Vec:
        out: Vec = np.concatenate([[0.0], np.cumsum(self.dt_h)[:-1]])
        return out

    def coarsen(self, fine: Vec) -> Vec:
        """Mean of per-fine-step values over each step."""
        idx = np.concatenate([[0], np.cumsum(self.fine_count)[:-1]])
        out: Vec = np.add.reduceat(fine, idx) / self.fine_count
        return out


# 8 h at the step, 8 h at twice it, the rest at four times: 56 steps for 24 h at 15 min.
# Measured against 96 uniform steps (docs/control.md): 3-day cost +0.34 % on Park A,
# -0.01 % on Park B; 2 h/4 h (34 steps) was faster but +0.8 % on Park A.
GRADED: tuple[tuple[float, int], ...] = ((8.0, 1), (8.0, 2), (24.0, 4))


def make_grid(horizon_h: float = 24.0, step_min: float = 15.0,
              layout: tuple[tuple[float, int], ...] | None = None,
              *, first_h: float | None = None) -> StepGrid:
    """Uniform steps, or a layout of (hours, multiple of ``step_min``) spans from now.

    ``GRADED`` is 8 h at ``step_min``, 8 h at twice that, the rest at four times.

    ``first_h``: the first step lasts this long (less than ``step_min``: the rest of the
    clock's current period) and every later one starts on the period's boundaries; the same
    number of steps, the horizon that much shorter. The layout's first step must be one
    period long.
    """
    fine_h = step_min / 60.0
    n_fine = round(horizon_h / fine_h)
    if not layout:
        counts = np.ones(n_fine, np.int64)
    else:
        c: list[int] = []
        used = 0
        spans = [*layout[:-1], (horizon_h, layout[-1][1])]
        for span_h, mult in spans:
            end = min(n_fine, used + round(span_h / fine_h))
            while used < end:
                k = min(mult, end - used)
                c.append(k)
                used += k
        counts = np.array(c, np.int64)
    if first_h is not None and 0.0 < first_h < fine_h - 1e-9:
        if counts[0] != 1:
            raise ValueError(f"layout {layout}: an aligned grid needs a first step of one period")
        dt = counts * fine_h
        dt[0] = first_h
        return StepGrid(dt, fine_h, counts, first_h)
    return StepGrid(counts * fine_h, fine_h, counts)


@dataclass(frozen=True, slots=True)
class TickData:
    """One tick's numbers for the QP, per step (length N), kW and CNY."""

    price_import: Vec
    price_export: Vec
    grid_co2: Vec                        # kg/kWh
    gas_cny_per_m3: float
    carbon_cny_per_t: float
    diesel_cny_per_l: float
    renewable_kw: Mapping[str, Vec]      # available, per asset
    elec_load_kw: Vec                    # all electric loads
    shed_max_kw: Mapping[str, Vec]       # per interruptible load
    heat_kw: Vec
    cooling_kw: Vec
    on: Mapping[str, Vec]                # committed units: 0..1 (dual chillers: cooling mode)
    ice_on: Mapping[str, Vec]            # dual chillers in ice mode, 0..1 (fraction of step)
    melt_ok: Mapping[str, Vec]           # ice stores: fraction of step melting is allowed
    soc_kwh: Mapping[str, float]
    ice_kwh: Mapping[str, float]
    prev_kw: Mapping[str, float]         # last first-step value per smoothed series (kW magnitude)
    objective: Objective
    grid_target_kw: Vec | None = None    # passive sign (+ export); NaN = none
    heat_store_kwh: Mapping[str, float] = field(default_factory=dict)  # electric boilers' stores
    # minimum loads dropped: the LP relaxation the commitment layer rounds (commitment.py)
    relaxed: bool = False
    # steps from now at which minimum loads hold (None: all); beyond, the commitment is
    # provisional and units run at any load (``Commitment.firm_steps``)
    firm_steps: int | None = None


@dataclass(slots=True)
class QpResult:
    ok: bool
    status: str
    x: Vec
    y: Vec
    iters: int
    solve_ms: float
    obj_kcny: float
    # the bounds the tick's data gave (``solve``): the first-step projection reuses them
    lo: Vec | None = None
    up: Vec | None = None


@dataclass
class QpModel:
    """The QP for one plant, step grid and set of committed units; OSQP set up once."""

    plant: PlantModel
    grid: StepGrid
    units: frozenset[str]
    eps: float = 1e-3
    polish: bool = False
    max_iter: int = 4000
    settings: dict[str, float | int | bool] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    _smooth: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        p, names = self.plant, []
        for b in p.batteries:
            names += [f"{b.name}.ch", f"{b.name}.dis", f"{b.name}.e"]
        names += ["grid.imp", "grid.exp"]
        names += [f"{u.name}.p" for u in p.generators if u.name in self.units]
        names += [f"{u.name}.q" for u in p.heaters]
        for eb in p.electric_boilers:
            if eb.stored:                # charging power and stored heat
                names += [f"{eb.name}.p", f"{eb.name}.e"]
        names += [f"{u.name}.c" for u in p.electric_chillers if u.name in self.units]
        for d in p.dual_chillers:
            if d.name in self.units:
                names += [f"{d.name}.c", f"{d.name}.ice"]
        names += [f"{u.name}.c" for u in p.absorption_chillers]
        for s in p.ice_stores:
            names += [f"{s.name}.melt", f"{s.name}.e"]
        names += [f"{r.name}.p" for r in p.renewables]
        names += [f"{ld.name}.shed" for ld in p.loads if ld.interruptible_frac > 0]
        names += ["slack.e", "slack.h", "slack.c", "dump.h", "dump.c"]
        self.series = {s: i for i, s in enumerate(names)}
        # diesel in the same fine unit: beyond the firm hours (commitment.firm_h) it is in
        # every QP at 2+ CNY/kWh, and its tolerance-sized traces there made half of Park
        # A's optimality gap (mean 0.053 %, 13 of 96 ticks over 0.1 %; 0.026 % and 1)
        dear = tuple(f"{d.name}.p" for d in p.diesels)
        self.unit = {s: (SLACK_MW if s.startswith(("slack.", "dump.")) or s.endswith((".shed", *dear))
                         else 1.0) for s in names}
        # The ice store's melt is not smoothed: at 2e-7 CNY/kW2 on a 12 MW series the
        # penalty on stopping a melt was as large as what melting now rather than at the
        # evening peak saves (0.008 CNY/kWh: 0.5 %/h standing loss and the chillers'
        # non-green and carbon cost), and successive plans kept 5-7 MWh of ice from the
        # 14:00-15:00 peak for 18:00-21:00 (Park B summer, 1-min ticks). The chillers it
        # displaces are still smoothed, so the cooling dispatch does not chatter.
        self._smooth = [s for s in names if s.endswith((".p", ".q", ".c", ".ice"))
                        and not s.startswith(tuple(f"{r.name}." for r in p.renewables))]
        self.N = self.grid.n
        self.n = len(names) * self.N
        self._build()
        self._solver: osqp.OSQP | None = None
        # the last solution (x, y, at ts) where the caller keeps it here (the relaxed model)
        self.warm: tuple[Vec, Vec, float] | None = None
        self._px: Vec | None = None
        self._limit = -1.0
        self._eps_set = self.eps

    # -- structure ---------------------------------------------------------------------

    def sl(self, s: str) -> slice:
        i = self.series[s] * self.N
        return slice(i, i + self.N)

    def _build(self) -> None:
        p, N, dt = self.plant, self.N, self.grid.dt_h
        n = self.n
        rows: list[NDArray[np.int64]] = [np.arange(n)]
        cols: list[NDArray[np.int64]] = [np.arange(n)]
        vals: list[Vec] = [np.ones(n)]
        k = np.arange(N)
        self.row_bal = {"e": n, "h": n + N, "c": n + 2 * N}
        nrow = n + 3 * N

        def put(r0: int, s: str, coef: Vec | float, shift: int = 0) -> None:
            c = self.series[s] * N + k[: N - shift]
            rows.append(r0 + k[shift:])
            cols.append(c)
            u = self.unit.get(s, 1.0)
            vals.append(np.broadcast_to(np.asarray(coef, float) * u, (N,))[shift:].copy())

        e, h, c = self.row_bal["e"], self.row_bal["h"], self.row_bal["c"]
        put(e, "grid.imp", 1.0)
        put(e, "grid.exp", -1.0)
        for b in p.batteries:
            put(e, f"{b.name}.dis", 1.0)
            put(e, f"{b.name}.ch", -1.0)
        for u in p.generators:
            if u.name in self.units:
                put(e, f"{u.name}.p", 1.0)
        for chp in p.chps:
            if chp.name in self.units:
                put(h, f"{chp.name}.p", chp.heat_to_power)
        for gb in p.gas_boilers:
            put(h, f"{gb.name}.q", 1.0)
        for eb in p.electric_boilers:
            put(h, f"{eb.name}.q", 1.0)
            if eb.stored:
                put(e, f"{eb.name}.p", -1.0)
            else:
                put(e, f"{eb.name}.q", -1.0 / eb.eta)
        for ch in p.electric_chillers:
            if ch.name in self.units:
                put(c, f"{ch.name}.c", 1.0)
                put(e, f"{ch.name}.c", -1.0 / ch.cop)
        for d in p.dual_chillers:
            if d.name in self.units:
                put(c, f"{d.name}.c", 1.0)
                put(e, f"{d.name}.c", -1.0 / d.cop_cool)
                put(e, f"{d.name}.ice", -1.0 / d.cop_ice)
        for a in p.absorption_chillers:
            put(c, f"{a.name}.c", 1.0)
            put(h, f"{a.name}.c", -1.0 / a.cop)
        for s in p.ice_stores:
            put(c, f"{s.name}.melt", 1.0)
        for r in p.renewables:
            put(e, f"{r.name}.p", 1.0)
        for ld in p.loads:
            if ld.interruptible_frac > 0:
                put(e, f"{ld.name}.shed", 1.0)
        for name, r0, sign in (("slack.e", e, 1.0), ("slack.h", h, 1.0), ("slack.c", c, 1.0),
                               ("dump.h", h, -1.0), ("dump.c", c, -1.0)):
            put(r0, name, sign)
        self.row_dyn: dict[str, int] = {}
        for b in p.batteries:
            r0 = self.row_dyn[b.name] = nrow
            nrow += N
            put(r0, f"{b.name}.e", 1.0)
            put(r0, f"{b.name}.e", -1.0, shift=1)
            put(r0, f"{b.name}.ch", -b.eta_charge * dt / E_MWH)
            put(r0, f"{b.name}.dis", dt / b.eta_discharge / E_MWH)
        for st in p.ice_stores:
            r0 = self.row_dyn[st.name] = nrow
            nrow += N
            put(r0, f"{st.name}.e", 1.0)
            put(r0, f"{st.name}.e", -(1.0 - st.loss_frac_per_h * dt), shift=1)
            put(r0, f"{st.name}.melt", dt / st.release_eff / E_MWH)
            for d in p.dual_chillers:
                if d.name in self.units and d.ice_store == st.name:
                    put(r0, f"{d.name}.ice", -st.charge_eff * dt / E_MWH)
        for eb in p.electric_boilers:
            if eb.stored:
                r0 = self.row_dyn[eb.name] = nrow
                nrow += N
                put(r0, f"{eb.name}.e", 1.0)
                put(r0, f"{eb.name}.e", -(1.0 - eb.loss_frac_per_h * dt), shift=1)
                put(r0, f"{eb.name}.p", -eb.eta * dt / E_MWH)
                put(r0, f"{eb.name}.q", dt / E_MWH)
        # A store releases at most what it held when the step began (the physics draws
        # heat from the store before the step's charge lands). Without this row the plan
        # kept the store near empty and counted on heating straight from the charger,
        # which the projection then had to cut to stored/dt: Park B's heat-storage
        # boilers ran at half power through the valley.
        self.row_release: dict[str, int] = {}
        for eb in p.electric_boilers:
            if eb.stored:
                r0 = self.row_release[eb.name] = nrow
                nrow += N
                put(r0, f"{eb.name}.q", dt / E_MWH)
                put(r0, f"{eb.name}.e", -1.0, shift=1)
        self.m = nrow
        self.A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(self.m, n))
        # smoothing rows: first differences of each smoothed series, plus step 0 alone
        # (against the last setpoint, whose value enters q each tick)
        f_rows: list[int] = []
        f_cols: list[int] = []
        f_vals: list[float] = []
        row = 0
        self._f0_rows: dict[str, int] = {}
        for name in self._smoothed_names():
            cols_ = [self.sl(s).start for s in self._smooth_parts(name)]
            signs = [sg * self.unit[s] for s, sg in zip(self._smooth_parts(name),
                                                         self._smooth_signs(name), strict=True)]
            self._f0_rows[name] = row
            for c0, sg in zip(cols_, signs, strict=True):
                f_rows.append(row)
                f_cols.append(c0)
                f_vals.append(sg)
            for kk in range(1, N):
                for c0, sg in zip(cols_, signs, strict=True):
                    f_rows += [row + kk, row + kk]
                    f_cols += [c0 + kk, c0 + kk - 1]
                    f_vals += [sg, -sg]
            row += N
        self.F = sp.csc_matrix((f_vals, (f_rows, f_cols)), shape=(row, n))
        self.FtF = (self.F.T @ self.F).tocsc()
        # tracking rows: (export - import) per step
        tr = np.concatenate([k, k])
        tc = np.concatenate([self.series["grid.exp"] * N + k, self.series["grid.imp"] * N + k])
        tv = np.concatenate([np.ones(N), -np.ones(N)])
        self.T = sp.csc_matrix((tv, (tr, tc)), shape=(N, n))

    def _smoothed_names(self) -> list[str]:
        out = [f"{b.name}.net" for b in self.plant.batteries]
        return out + self._smooth

    def _smooth_parts(self, name: str) -> list[str]:
        if name.endswith(".net"):
            b = name[:-4]
            return [f"{b}.ch", f"{b}.dis"]
        return [name]

    def _smooth_signs(self, name: str) -> list[float]:
        return [1.0, -1.0] if name.endswith(".net") else [1.0]

    def _ratings_mw(self) -> dict[str, float]:
        p = self.plant
        r: dict[str, float] = {"grid.imp": p.grid.import_max_kw, "grid.exp": p.grid.export_max_kw}
        for b in p.batteries:
            r[f"{b.name}.ch"], r[f"{b.name}.dis"] = b.p_charge_max_kw, b.p_discharge_max_kw
        for u in p.generators:
            r[f"{u.name}.p"] = u.p_max_kw
        for c in p.coolers:
            r[f"{c.name}.c"] = c.cool_max_kw
        for d in p.dual_chillers:
            r[f"{d.name}.c"], r[f"{d.name}.ice"] = d.cool_max_kw, d.ice_max_kw
        for g in p.heaters:
            r[f"{g.name}.q"] = g.q_max_kw
        for eb in p.electric_boilers:
            if eb.stored:
                r[f"{eb.name}.p"] = eb.p_max_kw
        for s in p.ice_stores:
            r[f"{s.name}.melt"] = s.melt_max_kw
        return {k: v * 1e-3 for k, v in r.items() if k in self.series and v > 0}

    def _flow_series(self) -> set[str]:
        """Series that move energy without converting it (``Objective.flow_loss_frac_at_rated``)."""
        p = self.plant
        out = {"grid.imp", "grid.exp"}
        out |= {f"{b.name}.{k}" for b in p.batteries for k in ("ch", "dis")}
        out |= {f"{d.name}.ice" for d in p.dual_chillers}
        return out

    def p_matrix(self, obj: Objective, track_mask: Vec) -> sp.csc_matrix:
        w_s = obj.smooth_cny_per_kw2 * 1e3
        w_t = obj.track_cny_per_kw2 * 1e3 * track_mask + 1e-9
        diag = np.full(self.n, _REG)
        flows = self._flow_series()
        for s, rated_mw in self._ratings_mw().items():
            # cost (kCNY) of losing frac * x^2 / rated over the step
            frac = obj.flow_loss_frac_at_rated if s in flows else obj.loss_frac_at_rated
            diag[self.sl(s)] += (obj.loss_cny_per_kwh * frac / rated_mw * self.grid.dt_h
                                 * self.unit[s] ** 2)
        P = (2.0 * w_s * self.FtF + 2.0 * (self.T.T @ sp.diags(w_t) @ self.T)
             + sp.diags(2.0 * diag, format="csc"))
        out: sp.csc_matrix = sp.triu(P, format="csc")
        out.sort_indices()
        return out

    # -- per tick ------------------------------------------------------------------------

    def vectors(self, td: TickData) -> tuple[Vec, Vec, Vec, Vec]:
        """q, l, u and the tracking mask for one tick."""
        p, N, dt, ob = self.plant, self.N, self.grid.dt_h, td.objective
        q = np.zeros(self.n)
        lo = np.zeros(self.m)
        up = np.zeros(self.m)
        mw = 1e-3
        carbon = td.carbon_cny_per_t * 1e-3          # CNY/kg
        gas_kwh = td.gas_cny_per_m3 / GAS_KWH_PER_M3 + carbon * GAS_CO2_KG_PER_KWH
        ng = ob.non_green_cny_per_kwh
        q[self.sl("grid.imp")] = (td.price_import + carbon * td.grid_co2 + ng) * dt
        # One meter, net metering: an exported kWh is valued at no more than an imported
        # one costs, so importing and exporting in the same step never pays (convex; it
        # matters where feed-in pays more than the import tariff, e.g. Park B's 0.4155
        # CNY/kWh against its 0.269 valley).
        export_value = np.minimum(td.price_export, td.price_import)
        q[self.sl("grid.exp")] = -export_value * dt
        up[self.sl("grid.imp")] = p.grid.import_max_kw * mw
        up[self.sl("grid.exp")] = p.grid.export_max_kw * mw
        # Energy left in a store at the horizon's end is worth what refilling it would cost
        # at the horizon's cheapest import (as the evaluation values it), taken part of the
        # way down to the cheapest export a surplus refilling it would forgo
        # (Objective.end_value_export_frac). Valued at 0.9 x
        # the mean price before, a store was worth more at the end than it cost to fill,
        # so Park B kept its ice store full all winter for 8 MWh a day of cooling, losing
        # 0.5 %/h of 90 MWh, and ran chillers rather than melt ice it "needed" at the end.
        refill = float(np.min(td.price_import + carbon * td.grid_co2 + ng))
        forgone = float(np.min(export_value))
        refill -= ob.end_value_export_frac * max(refill - forgone, 0.0)
        # minimum loads hold only for committed units, and only over the firm steps
        firm = np.zeros(N) if td.relaxed else (np.arange(N) < (N if td.firm_steps is None
                                                               else td.firm_steps)).astype(float)
        for b in p.batteries:
            q[self.sl(f"{b.name}.ch")] = b.wear_cny_per_kwh * dt
            q[self.sl(f"{b.name}.dis")] = b.wear_cny_per_kwh * dt
            q[self.sl(f"{b.name}.e").stop - 1] = -refill / b.eta_charge * E_MWH
            up[self.sl(f"{b.name}.ch")] = b.p_charge_max_kw * mw
            up[self.sl(f"{b.name}.dis")] = b.p_discharge_max_kw * mw
            lo[self.sl(f"{b.name}.e")] = b.soc_min_frac * b.capacity_kwh * mw / E_MWH
            up[self.sl(f"{b.name}.e")] = b.soc_max_frac * b.capacity_kwh * mw / E_MWH
            e0 = td.soc_kwh[b.name] * mw / E_MWH
            # Measured outside its band (a BMS recalibration, a manual run): the band widens
            # to include the measured level, so the plan may hold it but never go further
            # out. Forcing it back at full power is not always possible: with no load and
            # the export limit reached the discharge has nowhere to go (found by hypothesis).
            lo[self.sl(f"{b.name}.e")] = np.minimum(lo[self.sl(f"{b.name}.e")], e0)
            up[self.sl(f"{b.name}.e")] = np.maximum(up[self.sl(f"{b.name}.e")], e0)
            r0 = self.row_dyn[b.name]
            lo[r0] = up[r0] = e0
        for chp in p.chps:
            if chp.name in self.units:
                on = td.on[chp.name]
                q[self.sl(f"{chp.name}.p")] = (gas_kwh / chp.eta_elec + ng) * dt
                lo[self.sl(f"{chp.name}.p")] = firm * on * chp.min_load_frac * chp.p_max_kw * mw
                up[self.sl(f"{chp.name}.p")] = on * chp.p_max_kw * mw
        for dg in p.diesels:
            if dg.name in self.units:
                on = td.on[dg.name]
                kg = dg.fuel_g_per_kwh * 1e-3
                cost = kg / DIESEL_KG_PER_L * td.diesel_cny_per_l + carbon * kg * DIESEL_CO2_KG_PER_KG
                u = self.unit[f"{dg.name}.p"]
                q[self.sl(f"{dg.name}.p")] = (cost + ng) * dt * u
                lo[self.sl(f"{dg.name}.p")] = firm * on * dg.min_load_frac * dg.p_max_kw * mw / u
                up[self.sl(f"{dg.name}.p")] = on * dg.p_max_kw * mw / u
        # The non-green weight on a gas boiler's heat as on an import (Objective): on imports
        # alone it made gas heat cheaper than heat stored from the night's imports, moving
        # Park B's evening heat from one non-green source to the other (the green share
        # rose only because less electricity was used).
        ng_heat = ng * ob.non_green_gas_heat_frac
        for gb in p.gas_boilers:
            q[self.sl(f"{gb.name}.q")] = (gas_kwh / gb.eta + ng_heat) * dt
            up[self.sl(f"{gb.name}.q")] = gb.q_max_kw * mw
        gas_heat = min((gas_kwh / gb.eta + ng_heat for gb in p.gas_boilers), default=np.inf)
        for eb in p.electric_boilers:
            up[self.sl(f"{eb.name}.q")] = eb.q_max_kw * mw
            if not eb.stored:
                continue
            up[self.sl(f"{eb.name}.p")] = eb.p_max_kw * mw
            up[self.sl(f"{eb.name}.e")] = eb.store_kwh * mw / E_MWH
            # or less where a gas boiler makes the heat cheaper
            q[self.sl(f"{eb.name}.e").stop - 1] = -min(refill / eb.eta, gas_heat) * E_MWH
            r0 = self.row_dyn[eb.name]
            e0 = ((1.0 - eb.loss_frac_per_h * dt[0]) * td.heat_store_kwh.get(eb.name, 0.0)
                  * mw / E_MWH)
            lo[r0] = up[r0] = e0
            r1 = self.row_release[eb.name]
            lo[r1:r1 + N] = -np.inf
            up[r1] = td.heat_store_kwh.get(eb.name, 0.0) * mw / E_MWH
            reach_dn = e0 - np.cumsum(eb.q_max_kw * mw * dt) / E_MWH
            up[self.sl(f"{eb.name}.e")] = np.maximum(up[self.sl(f"{eb.name}.e")], reach_dn)
        for ch in p.electric_chillers:
            if ch.name in self.units:
                on = td.on[ch.name]
                lo[self.sl(f"{ch.name}.c")] = firm * on * ch.min_load_frac * ch.cool_max_kw * mw
                up[self.sl(f"{ch.name}.c")] = on * ch.cool_max_kw * mw
        for d in p.dual_chillers:
            if d.name in self.units:
                on, ice = td.on[d.name], td.ice_on[d.name]
                lo[self.sl(f"{d.name}.c")] = firm * np.floor(on) * d.min_load_frac * d.cool_max_kw * mw
                up[self.sl(f"{d.name}.c")] = on * d.cool_max_kw * mw
                lo[self.sl(f"{d.name}.ice")] = firm * np.floor(ice) * d.min_load_frac * d.ice_max_kw * mw
                up[self.sl(f"{d.name}.ice")] = ice * d.ice_max_kw * mw
        for a in p.absorption_chillers:
            up[self.sl(f"{a.name}.c")] = a.cool_max_kw * mw
        for st in p.ice_stores:
            up[self.sl(f"{st.name}.melt")] = td.melt_ok[st.name] * st.melt_max_kw * mw
            if st.release_frac_per_h > 0:
                # Ice on coil melts at most release_frac_per_h of what it holds an hour. Only
                # step 0 is bounded here, by the measured level: as rows over the horizon the
                # limit made the store's geometric tail a chain of active constraints that
                # took OSQP up to 1,850 iterations. Later steps' shortfall is covered by the
                # commitment, which stages chillers for it (commitment._round_relaxed).
                i0 = self.sl(f"{st.name}.melt").start
                up[i0] = min(up[i0], st.release_frac_per_h * td.ice_kwh[st.name] * mw)
            up[self.sl(f"{st.name}.e")] = st.usable_frac * st.capacity_kwh * mw / E_MWH
            cop = max((d.cop_ice for d in p.dual_chillers if d.ice_store == st.name), default=3.8)
            q[self.sl(f"{st.name}.e").stop - 1] = -refill / (cop * st.charge_eff) * E_MWH
            r0 = self.row_dyn[st.name]
            e0 = (1.0 - st.loss_frac_per_h * dt[0]) * td.ice_kwh[st.name] * mw / E_MWH
            lo[r0] = up[r0] = e0
            melt_ok = td.melt_ok[st.name]
            reach_dn = e0 - np.cumsum(st.melt_max_kw * mw * melt_ok / st.release_eff * dt) / E_MWH
            up[self.sl(f"{st.name}.e")] = np.maximum(up[self.sl(f"{st.name}.e")], reach_dn)
        for r in p.renewables:
            q[self.sl(f"{r.name}.p")] = -ob.curtail_cny_per_kwh * dt
            up[self.sl(f"{r.name}.p")] = td.renewable_kw[r.name] * mw
        for ld in p.loads:
            if ld.interruptible_frac > 0:
                q[self.sl(f"{ld.name}.shed")] = ob.shed_cny_per_kwh * dt * SLACK_MW
                up[self.sl(f"{ld.name}.shed")] = td.shed_max_kw[ld.name] * mw / SLACK_MW
        sm = SLACK_MW
        q[self.sl("slack.e")] = ob.unserved_elec_cny_per_kwh * dt * sm
        q[self.sl("slack.h")] = ob.unserved_heat_cny_per_kwh * dt * sm
        q[self.sl("slack.c")] = ob.unserved_cooling_cny_per_kwh * dt * sm
        q[self.sl("dump.h")] = ob.dump_cny_per_kwh * dt * sm
        q[self.sl("dump.c")] = ob.dump_cny_per_kwh * dt * sm
        up[self.sl("slack.e")] = td.elec_load_kw * mw / sm
        up[self.sl("slack.h")] = td.heat_kw * mw / sm
        up[self.sl("slack.c")] = td.cooling_kw * mw / sm
        up[self.sl("dump.h")] = np.inf
        up[self.sl("dump.c")] = np.inf
        for key, row in (("e", td.elec_load_kw), ("h", td.heat_kw), ("c", td.cooling_kw)):
            r0 = self.row_bal[key]
            lo[r0:r0 + N] = up[r0:r0 + N] = row * mw
        # smoothing of step 0 against the last setpoint, tracking against the plan's target
        w_s = ob.smooth_cny_per_kw2 * 1e3
        prev = np.zeros(self.F.shape[0])
        for name, i in self._f0_rows.items():
            prev[i] = td.prev_kw.get(name, 0.0) * mw
        q += -2.0 * w_s * (self.F.T @ prev)
        mask = np.zeros(N)
        if td.grid_target_kw is not None:
            tgt = np.nan_to_num(td.grid_target_kw * mw, nan=0.0)
            mask = (~np.isnan(td.grid_target_kw)).astype(float)
            q += -2.0 * ob.track_cny_per_kw2 * 1e3 * (self.T.T @ (mask * tgt))
        return q, lo, up, mask

    def solve(self, td: TickData, warm: tuple[Vec, Vec] | None = None,
              time_limit_s: float = 0.0) -> QpResult:
        q, lo, up, mask = self.vectors(td)
        t0 = time.perf_counter()
        res = self.solve_vectors(q, lo, up, self.p_matrix(td.objective, mask).data
                                 if self._needs_p(td.objective, mask) else None,
                                 warm, time_limit_s, td.objective, mask)
        res.solve_ms = (time.perf_counter() - t0) * 1e3
        res.lo, res.up = lo, up
        return res

    def _needs_p(self, obj: Objective, mask: Vec) -> bool:
        key = (obj.smooth_cny_per_kw2, obj.track_cny_per_kw2, mask.tobytes())
        if getattr(self, "_pkey", None) == key:
            return False
        self._pkey = key
        return True

    def setup(self, obj: Objective, mask: Vec, q: Vec, lo: Vec, up: Vec) -> None:
        P = self.p_matrix(obj, mask)
        self._px = P.data.copy()
        self._eps_set = self.eps
        self._solver = osqp.OSQP()
        # measured on the Park A rolling benchmark (docs/control.md): the duality-gap check
        # and adaptive rho each cost 2-3x the iterations here; Ruiz scaling made it worse
        # than the hand-picked units; polishing rarely succeeds on this near-LP. eps_rel
        # was eps / 2 while the losses were weak; with the 2 % flow losses eps gives a
        # gap of 0.04 % on Park A (0.03 % at eps / 2) in 100 iterations instead of 130
        opts: dict[str, float | int | bool] = dict(
            verbose=False, eps_abs=self.eps, eps_rel=self.eps, polishing=self.polish,
            warm_starting=True, max_iter=self.max_iter, adaptive_rho=False, rho=0.1,
            alpha=1.7, check_termination=5, check_dualgap=False, scaling=0)
        opts.update(self.settings)
        self._solver.setup(P, q, self.A, lo, up, **opts)

    def solve_vectors(self, q: Vec, lo: Vec, up: Vec, px: Vec | None,
                      warm: tuple[Vec, Vec] | None, time_limit_s: float,
                      obj: Objective, mask: Vec) -> QpResult:
        """Update the vectors (and P's values if given), warm-start and solve."""
        if self._solver is None:
            self.setup(obj, mask, q, lo, up)
        else:
            if px is not None and (self._px is None or not np.array_equal(px, self._px)):
                self._solver.update(Px=px)
                self._px = px
            self._solver.update(q=q, l=lo, u=up)
        assert self._solver is not None
        if self.eps != self._eps_set:
            # the caller asks this tick for another tolerance (controller._eps)
            self._solver.update_settings(eps_abs=self.eps, eps_rel=self.eps)
            self._eps_set = self.eps
        limit = time_limit_s if time_limit_s > 0 else 1e10
        if limit != self._limit:
            self._solver.update_settings(time_limit=limit)
            self._limit = limit
        if warm is not None:
            self._solver.warm_start(x=warm[0], y=warm[1])
        r = self._solver.solve(raise_error=False)
        ok = bool(r.info.status in _SOLVED and r.x is not None and np.all(np.isfinite(r.x)))
        if not ok and "time limit" not in str(r.info.status):
            # The fast settings (fixed rho, no scaling) occasionally stall or misreport
            # infeasibility on degenerate corners (a full store with nothing to do: found
            # by hypothesis). Retry once, cold, with OSQP's robust defaults (adaptive rho,
            # Ruiz scaling) before the controller falls back; the fast solver is kept.
            robust = osqp.OSQP()
            robust.setup(self.p_matrix(obj, mask), q, self.A, lo, up, verbose=False, eps_abs=self.eps,
                         eps_rel=self.eps, max_iter=10 * self.max_iter, polishing=False, time_limit=limit)
            r2 = robust.solve(raise_error=False)
            if r2.info.status in _SOLVED and r2.x is not None and np.all(np.isfinite(r2.x)):
                r, ok = r2, True
        x = np.asarray(r.x, float) if r.x is not None else np.zeros(self.n)
        y = np.asarray(r.y, float) if r.y is not None else np.zeros(self.m)
        return QpResult(bool(ok), str(r.info.status), x, y, int(r.info.iter),
                        float(r.info.run_time) * 1e3, float(r.info.obj_val))

    # -- the previous solution, one tick later ------------------------------------------

    def shift(self, x: Vec, y: Vec, elapsed_s: float) -> tuple[Vec, Vec]:
        """Primal and dual moved on by ``elapsed_s``; past the end the last step is held."""
        mids = self.grid.start_h + self.grid.dt_h / 2
        t = mids + elapsed_s / 3600.0
        j1 = np.clip(np.searchsorted(mids, t), 0, self.N - 1)
        j0 = np.clip(j1 - 1, 0, self.N - 1)
        span = np.where(j1 > j0, mids[j1] - mids[j0], 1.0)
        w = np.clip((t - mids[j0]) / span, 0.0, 1.0)

        def move(v: Vec) -> Vec:
            m = v.reshape(-1, self.N)
            out: Vec = (m[:, j0] * (1 - w) + m[:, j1] * w).ravel()
            return out
        return move(x), move(y)

    def adopt(self, other: QpModel, x: Vec, y: Vec, elapsed_s: float) -> tuple[Vec, Vec]:
        """Another commitment pattern's solution, shifted, as a warm start here: series by
        name (units not in ``other`` start at 0), duals of the rows both share by position
        (the three balances), the rest 0. The same units on another grid: all of it."""
        xs, ys = other.shift(x, y, elapsed_s)
        if other.units == self.units and other.n == self.n and other.m == self.m:
            # the same units on another step grid (an aligned grid's phase): the same rows
            return xs, ys
        out = np.zeros(self.n)
        for s, i in self.series.items():
            j = other.series.get(s)
            if j is not None:
                out[i * self.N:(i + 1) * self.N] = xs[j * other.N:(j + 1) * other.N]
        yo = np.zeros(self.m)
        b0, b1 = self.row_bal["e"], other.row_bal["e"]
        yo[b0:b0 + 3 * self.N] = ys[b1:b1 + 3 * other.N]
        return out, yo

    def kw(self, x: Vec, s: str) -> Vec:
        """Series ``s`` of solution ``x`` in kW per step (stored energy ``*.e``: kWh at each
        step's end)."""
        scale = E_MWH if s.endswith(".e") else self.unit[s]
        out: Vec = x[self.sl(s)] * 1e3 * scale
        return out

    def first(self, x: Vec, s: str) -> float:
        """Step 0 of series ``s`` in kW (stored energy ``*.e``: kWh at the end of step 0)."""
        return float(self.kw(x, s)[0])
