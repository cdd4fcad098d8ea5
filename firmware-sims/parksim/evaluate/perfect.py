"""The bound: the whole window solved at once with perfect foresight, as a MILP (HiGHS).

Same plant model as the controller (``edge.control.PlantModel`` from the site's
``[assets]``), the same tariff, the actual exogenous values at each step's middle
(what the physics uses). On/off decisions are binaries, so minimum loads and
minimum up/down times hold exactly (the controller's QP sees a fixed commitment).
Objective = what the KPIs count as cost (imports and exports at the prices,
gas, diesel, carbon price x scope 1+2 CO2) plus battery wear, priced shedding,
unserved energy and heat/cooling dump at the plant objective's prices, minus
the value of the energy left in storage (``terminal_cny_per_kwh``: what refilling
it would cost at the window's cheapest import price). The controller's shaping
terms (non-green weight, smoothing, quadratic losses, tracking) are left out:
they are not costs.

Differences from the controller's QP (stated in docs/evaluation.md): commitment is
optimised rather than fixed; the ice store's release is also limited to
``release_frac_per_h`` of what is stored (the physics' 15 % cold-loss term);
the standing loss of the ice store is applied after charge and melt, as the
physics does; a heat-storage boiler delivers only what was stored at the start
of the step (no pass-through of the step's charging), as the physics does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp

from edge.control import PlantModel
from edge.control.plant import DIESEL_CO2_KG_PER_KG, DIESEL_KG_PER_L, GAS_CO2_KG_PER_KWH, GAS_KWH_PER_M3

__all__ = ["PerfectInputs", "PerfectResult", "solve_perfect"]

F64 = NDArray[np.float64]


@dataclass
class PerfectInputs:
    dt_h: float
    price_import: F64
    price_export: F64
    grid_co2: F64
    gas_cny_per_m3: float
    carbon_cny_per_t: float
    diesel_cny_per_l: float
    renewable_kw: Mapping[str, F64]         # available, per plant renewable
    elec_kw: Mapping[str, F64]              # per plant electric load
    heat_kw: F64
    cool_kw: F64
    charge_ok: Mapping[str, F64]            # per ice store: 1 inside its charge window
    soc_kwh: Mapping[str, float]
    ice_kwh: Mapping[str, float]
    on0: Mapping[str, int]                  # unit -> mode before the window (dual: 0/1/2)
    terminal_cny_per_kwh: Mapping[str, float]  # battery / ice store name -> value of kWh left
    release_frac_per_h: float = 0.85
    ice_loss_per_h: Mapping[str, float] = field(default_factory=dict)
    heat_store_kwh: Mapping[str, float] = field(default_factory=dict)   # stored e-boilers


@dataclass
class PerfectResult:
    series: dict[str, F64]                  # name -> kW per step (energies: kWh at step end)
    objective_cny: float
    status: str
    mip_gap: float
    dual_bound_cny: float
    solve_ms: float
    n_vars: int
    n_binaries: int
    integers: tuple[str, ...] = ()          # names of the on/off series (to fix them in a re-solve)


class _Lp:
    def __init__(self, T: int, fixed: Mapping[str, F64] | None = None) -> None:
        self.T = T
        self.fixed = fixed
        self.n = 0
        self.idx: dict[str, NDArray[np.int64]] = {}
        self.lb: list[F64] = []
        self.ub: list[F64] = []
        self.c: list[F64] = []
        self.integ: list[F64] = []
        self.rows: list[NDArray[np.int64]] = []
        self.cols: list[NDArray[np.int64]] = []
        self.vals: list[F64] = []
        self.rlo: list[F64] = []
        self.rhi: list[F64] = []
        self.m = 0

    def var(self, name: str, lb: Any = 0.0, ub: Any = math.inf, cost: Any = 0.0,
            integer: bool = False) -> NDArray[np.int64]:
        T = self.T
        ix = np.arange(self.n, self.n + T)
        self.n += T
        self.idx[name] = ix
        if integer and self.fixed is not None:
            lb = ub = np.asarray(self.fixed[name], float)
        self.lb.append(np.broadcast_to(np.asarray(lb, float), (T,)).copy())
        self.ub.append(np.broadcast_to(np.asarray(ub, float), (T,)).copy())
        self.c.append(np.broadcast_to(np.asarray(cost, float), (T,)).copy())
        self.integ.append(np.full(T, 1.0 if integer else 0.0))
        return ix

    def rows_(self, terms: list[tuple[NDArray[np.int64], Any]], lo: Any, hi: Any,
              n: int | None = None) -> None:
        """One row per element: sum of coef * var[col] in [lo, hi]."""
        n = self.T if n is None else n
        r = np.arange(self.m, self.m + n)
        for cols, coef in terms:
            cols = np.asarray(cols)
            coef = np.broadcast_to(np.asarray(coef, float), cols.shape)
            keep = cols >= 0
            self.rows.append(r[keep])
            self.cols.append(cols[keep])
            self.vals.append(coef[keep])
        self.rlo.append(np.broadcast_to(np.asarray(lo, float), (n,)).copy())
        self.rhi.append(np.broadcast_to(np.asarray(hi, float), (n,)).copy())
        self.m += n


def _prev(ix: NDArray[np.int64], k: int = 1) -> NDArray[np.int64]:
    """Index of the same series k steps earlier; -1 before the window."""
    out = np.full(len(ix), -1)
    out[k:] = ix[:-k]
    return out


def _commit(lp: _Lp, name: str, on: NDArray[np.int64], u0: int, up_steps: int, down_steps: int) -> None:
    """Starts/stops and minimum up/down times for an on/off indicator series ``on``."""
    T = lp.T
    s = lp.var(f"{name}.start", 0, 1)
    w = lp.var(f"{name}.stop", 0, 1)
    # on_k - on_{k-1} - s_k + w_k = 0 (on_{-1} = u0)
    rhs = np.zeros(T)
    rhs[0] = u0
    lp.rows_([(on, 1.0), (_prev(on), -1.0), (s, -1.0), (w, 1.0)], rhs, rhs)
    if lp.fixed is not None:
        return      # the commitment is given (and kept its minimum times where it was made)
    for k in range(1, up_steps):       # started within the last up_steps -> still on
        lp.rows_([(on, 1.0), (_prev(s, k), -1.0)], 0.0, math.inf)
    for k in range(1, down_steps):     # stopped within the last down_steps -> still off
        lp.rows_([(on, -1.0), (_prev(w, k), -1.0)], -1.0, math.inf)


def solve_perfect(plant: PlantModel, inp: PerfectInputs, *, time_limit_s: float = 120.0,
                  mip_rel_gap: float = 1e-4, fixed: Mapping[str, F64] | None = None) -> PerfectResult:
    """The window's plan. With ``fixed`` (every on/off series by name, 0/1 per step) the
    commitment is given and only the dispatch is solved: an LP, used to re-solve a 15-min
    MILP's commitment at the physics' finer step."""
    T = len(inp.price_import)
    dt = inp.dt_h
    lp = _Lp(T, fixed)
    ob = plant.objective
    carbon = inp.carbon_cny_per_t * 1e-3
    gas_kwh = inp.gas_cny_per_m3 / GAS_KWH_PER_M3 + carbon * GAS_CO2_KG_PER_KWH
    e_terms: list[tuple[NDArray[np.int64], Any]] = []   # supply +, demand -
    h_terms: list[tuple[NDArray[np.int64], Any]] = []
    c_terms: list[tuple[NDArray[np.int64], Any]] = []

    imp = lp.var("grid.imp", 0, plant.grid.import_max_kw, (inp.price_import + carbon * inp.grid_co2) * dt)
    exp = lp.var("grid.exp", 0, plant.grid.export_max_kw, -inp.price_export * dt)
    e_terms += [(imp, 1.0), (exp, -1.0)]
    # one meter: it imports or exports, never both. Only where exporting pays more than
    # importing costs would an LP do both (e.g. Park B's 0.4155 feed-in against its 0.269 valley)
    arb = inp.price_export > inp.price_import + carbon * inp.grid_co2 - 1e-9
    if arb.any() and plant.grid.export_max_kw > 0:
        z = lp.var("grid.importing", 0, np.where(arb, 1.0, 0.0), 0.0, integer=True)
        lp.rows_([(imp, 1.0), (z, -plant.grid.import_max_kw)], -math.inf, np.where(arb, 0.0, math.inf))
        lp.rows_([(exp, 1.0), (z, plant.grid.export_max_kw)], -math.inf,
                 np.where(arb, plant.grid.export_max_kw, math.inf))
    for b in plant.batteries:
        ch = lp.var(f"{b.name}.ch", 0, b.p_charge_max_kw, b.wear_cny_per_kwh * dt)
        dis = lp.var(f"{b.name}.dis", 0, b.p_discharge_max_kw, b.wear_cny_per_kwh * dt)
        cost = np.zeros(T)
        cost[-1] = -inp.terminal_cny_per_kwh.get(b.name, 0.0)
        e = lp.var(f"{b.name}.e", b.soc_min_frac * b.capacity_kwh, b.soc_max_frac * b.capacity_kwh, cost)
        e0 = np.zeros(T)
        e0[0] = inp.soc_kwh[b.name]
        lp.rows_([(e, 1.0), (_prev(e), -1.0), (ch, -b.eta_charge * dt), (dis, dt / b.eta_discharge)], e0, e0)
        e_terms += [(dis, 1.0), (ch, -1.0)]
    steps = lambda h: max(1, round(h / dt))  # noqa: E731
    for u in plant.chps:
        p = lp.var(f"{u.name}.p", 0, u.p_max_kw, gas_kwh / u.eta_elec * dt)
        on = lp.var(f"{u.name}.on", 0, 1, 0.0, integer=True)
        lp.rows_([(p, 1.0), (on, -u.min_load_frac * u.p_max_kw)], 0.0, math.inf)
        lp.rows_([(p, 1.0), (on, -u.p_max_kw)], -math.inf, 0.0)
        _commit(lp, u.name, on, int(inp.on0.get(u.name, 0) > 0), steps(u.min_up_h), steps(u.min_down_h))
        e_terms.append((p, 1.0))
        h_terms.append((p, u.heat_to_power))
    for g in plant.diesels:
        kg = g.fuel_g_per_kwh * 1e-3
        cost = kg / DIESEL_KG_PER_L * inp.diesel_cny_per_l + carbon * kg * DIESEL_CO2_KG_PER_KG
        p = lp.var(f"{g.name}.p", 0, g.p_max_kw, cost * dt)
        on = lp.var(f"{g.name}.on", 0, 1, 0.0, integer=True)
        lp.rows_([(p, 1.0), (on, -g.min_load_frac * g.p_max_kw)], 0.0, math.inf)
        lp.rows_([(p, 1.0), (on, -g.p_max_kw)], -math.inf, 0.0)
        _commit(lp, g.name, on, int(inp.on0.get(g.name, 0) > 0), steps(g.min_up_h), steps(g.min_down_h))
        e_terms.append((p, 1.0))
    for gb in plant.gas_boilers:
        q = lp.var(f"{gb.name}.q", 0, gb.q_max_kw, gas_kwh / gb.eta * dt)
        h_terms.append((q, 1.0))
    for eb in plant.electric_boilers:
        q = lp.var(f"{eb.name}.q", 0, eb.q_max_kw)
        h_terms.append((q, 1.0))
        if not getattr(eb, "store_kwh", 0.0):
            e_terms.append((q, -1.0 / eb.eta))
            continue
        # heat-storage boiler: charge p (electric), deliver q from the store
        p = lp.var(f"{eb.name}.p", 0, eb.p_max_kw)
        cost = np.zeros(T)
        cost[-1] = -inp.terminal_cny_per_kwh.get(eb.name, 0.0)
        e = lp.var(f"{eb.name}.e", 0, eb.store_kwh, cost)
        keep = 1.0 - eb.loss_frac_per_h * dt
        e0 = np.zeros(T)
        e0[0] = keep * inp.heat_store_kwh.get(eb.name, 0.0)
        lp.rows_([(e, 1.0), (_prev(e), -keep), (p, -keep * eb.eta * dt), (q, keep * dt)], e0, e0)
        # heat leaves from what is stored at the start of the step: no pass-through of this
        # step's charging (as the physics' store)
        q0 = np.full(T, 0.0)
        q0[0] = inp.heat_store_kwh.get(eb.name, 0.0)
        lp.rows_([(q, dt), (_prev(e), -1.0)], -math.inf, q0)
        e_terms.append((p, -1.0))
    for c in plant.electric_chillers:
        q = lp.var(f"{c.name}.c", 0, c.cool_max_kw)
        if c.min_load_frac > 0:
            on = lp.var(f"{c.name}.on", 0, 1, 0.0, integer=True)
            lp.rows_([(q, 1.0), (on, -c.min_load_frac * c.cool_max_kw)], 0.0, math.inf)
            lp.rows_([(q, 1.0), (on, -c.cool_max_kw)], -math.inf, 0.0)
            _commit(lp, c.name, on, int(inp.on0.get(c.name, 0) > 0), steps(c.min_up_h), steps(c.min_down_h))
        c_terms.append((q, 1.0))
        e_terms.append((q, -1.0 / c.cop))
    for a in plant.absorption_chillers:
        q = lp.var(f"{a.name}.c", 0, a.cool_max_kw)
        c_terms.append((q, 1.0))
        h_terms.append((q, -1.0 / a.cop))
    ice_in: dict[str, list[NDArray[np.int64]]] = {s.name: [] for s in plant.ice_stores}
    for d in plant.dual_chillers:
        ok = np.asarray(inp.charge_ok.get(d.ice_store, np.ones(T)))
        q = lp.var(f"{d.name}.c", 0, d.cool_max_kw)
        ice = lp.var(f"{d.name}.ice", 0, d.ice_max_kw * ok)
        m1 = lp.var(f"{d.name}.m1", 0, 1, 0.0, integer=True)
        m2 = lp.var(f"{d.name}.m2", 0, np.where(ok > 0, 1.0, 0.0), 0.0, integer=True)
        lp.rows_([(q, 1.0), (m1, -d.min_load_frac * d.cool_max_kw)], 0.0, math.inf)
        lp.rows_([(q, 1.0), (m1, -d.cool_max_kw)], -math.inf, 0.0)
        lp.rows_([(ice, 1.0), (m2, -d.min_load_frac * d.ice_max_kw)], 0.0, math.inf)
        lp.rows_([(ice, 1.0), (m2, -d.ice_max_kw)], -math.inf, 0.0)
        onv = lp.var(f"{d.name}.on", 0, 1)
        lp.rows_([(onv, 1.0), (m1, -1.0), (m2, -1.0)], 0.0, 0.0)
        mode0 = int(inp.on0.get(d.name, 0))
        up, down = steps(d.min_up_h), steps(d.min_down_h)
        _commit(lp, d.name, onv, int(mode0 > 0), 1, down)
        _commit(lp, f"{d.name}.cool", m1, int(mode0 == 1), up, 1)
        _commit(lp, f"{d.name}.icemode", m2, int(mode0 == 2), up, 1)
        c_terms.append((q, 1.0))
        e_terms += [(q, -1.0 / d.cop_cool), (ice, -1.0 / d.cop_ice)]
        ice_in[d.ice_store].append(ice)
    for s in plant.ice_stores:
        ok = np.asarray(inp.charge_ok.get(s.name, np.zeros(T)))
        melt = lp.var(f"{s.name}.melt", 0, s.melt_max_kw * (1.0 - ok))
        cost = np.zeros(T)
        cost[-1] = -inp.terminal_cny_per_kwh.get(s.name, 0.0)
        keep = 1.0 - inp.ice_loss_per_h.get(s.name, s.loss_frac_per_h) * dt
        # the store fills to its capacity before the step's standing loss is taken (as the physics)
        e = lp.var(f"{s.name}.e", 0, keep * s.usable_frac * s.capacity_kwh, cost)
        e0 = np.zeros(T)
        e0[0] = keep * inp.ice_kwh[s.name]
        terms = [(e, 1.0), (_prev(e), -keep), (melt, keep * dt / s.release_eff)]
        terms += [(ice, -keep * s.charge_eff * dt) for ice in ice_in[s.name]]
        lp.rows_(terms, e0, e0)
        # release <= frac/h of what is stored at the start of the step (physics' cold-loss term)
        m0 = np.zeros(T)
        m0[0] = inp.release_frac_per_h * inp.ice_kwh[s.name]
        lp.rows_([(melt, 1.0), (_prev(e), -inp.release_frac_per_h)], -math.inf, m0)
        c_terms.append((melt, 1.0))
    for r in plant.renewables:
        p = lp.var(f"{r.name}.p", 0, np.maximum(inp.renewable_kw[r.name], 0.0))
        e_terms.append((p, 1.0))
    elec = np.zeros(T)
    for ld in plant.loads:
        if ld.kind != "electric":
            continue
        load = np.asarray(inp.elec_kw[ld.name])
        elec = elec + load
        if ld.interruptible_frac > 0:
            sh = lp.var(f"{ld.name}.shed", 0, ld.interruptible_frac * load, ob.shed_cny_per_kwh * dt)
            e_terms.append((sh, 1.0))
    se = lp.var("slack.e", 0, elec, ob.unserved_elec_cny_per_kwh * dt)
    sh_ = lp.var("slack.h", 0, inp.heat_kw, ob.unserved_heat_cny_per_kwh * dt)
    sc = lp.var("slack.c", 0, inp.cool_kw, ob.unserved_cooling_cny_per_kwh * dt)
    dh = lp.var("dump.h", 0, math.inf, ob.dump_cny_per_kwh * dt)
    dc = lp.var("dump.c", 0, math.inf, ob.dump_cny_per_kwh * dt)
    lp.rows_([*e_terms, (se, 1.0)], elec, elec)
    lp.rows_([*h_terms, (sh_, 1.0), (dh, -1.0)], inp.heat_kw, inp.heat_kw)
    lp.rows_([*c_terms, (sc, 1.0), (dc, -1.0)], inp.cool_kw, inp.cool_kw)

    A = sp.csr_matrix((np.concatenate(lp.vals), (np.concatenate(lp.rows), np.concatenate(lp.cols))),
                      shape=(lp.m, lp.n))
    c = np.concatenate(lp.c)
    integ = np.concatenate(lp.integ)
    t0 = time.perf_counter()
    res = milp(c, constraints=LinearConstraint(A, np.concatenate(lp.rlo), np.concatenate(lp.rhi)),
               integrality=integ, bounds=Bounds(np.concatenate(lp.lb), np.concatenate(lp.ub)),
               options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "presolve": True})
    ms = (time.perf_counter() - t0) * 1e3
    if res.x is None:
        raise RuntimeError(f"perfect: no solution ({res.message})")
    x = np.asarray(res.x)
    series = {name: x[ix] for name, ix in lp.idx.items()}
    # energy cost terms are over dt; report the objective in CNY
    gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    bound = float(getattr(res, "mip_dual_bound", float(res.fun)) or float(res.fun))
    # the terminal credit is on the energy left; add back the value of what was there at the
    # start, so the objective compares with the KPIs' credit on the change of stored energy
    const = (sum(inp.terminal_cny_per_kwh.get(b.name, 0.0) * inp.soc_kwh[b.name] for b in plant.batteries)
             + sum(inp.terminal_cny_per_kwh.get(s.name, 0.0) * inp.ice_kwh[s.name] for s in plant.ice_stores)
             + sum(inp.terminal_cny_per_kwh.get(k, 0.0) * v for k, v in inp.heat_store_kwh.items()))
    ints = tuple(name for name, ix in lp.idx.items() if integ[ix[0]] > 0)
    return PerfectResult(series, float(res.fun) + const, str(res.message), gap, bound + const, ms, lp.n,
                         int(integ.sum()), ints)
