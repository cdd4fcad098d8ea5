"""The QP itself: same answer as an exact solver, structure built once, shift, step grids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.control.bench import _exact, _p_full, _sequence, bench_qp
from edge.control.qp import GRADED, make_grid


def test_grids_cover_the_horizon() -> None:
    g = make_grid(24.0, 15.0, None)
    assert g.n == 96 and np.isclose(g.dt_h.sum(), 24.0)
    gg = make_grid(24.0, 15.0, GRADED)
    assert gg.n == 56 and np.isclose(gg.dt_h.sum(), 24.0)
    assert list(gg.dt_h[31:34]) == [0.25, 0.5, 0.5] and gg.dt_h[-1] == 1.0
    assert np.allclose(gg.coarsen(np.arange(96, dtype=float))[31:34], [31, 32.5, 34.5])


def test_an_aligned_grid_starts_with_the_rest_of_the_period() -> None:
    gg = make_grid(24.0, 15.0, GRADED)
    al = make_grid(24.0, 15.0, GRADED, first_h=10 / 60)
    assert al.n == gg.n and np.isclose(al.dt_h[0], 10 / 60)
    assert np.array_equal(al.dt_h[1:], gg.dt_h[1:]) and np.isclose(al.dt_h.sum(), 24.0 - 5 / 60)
    assert np.allclose(al.fine_starts_h()[:3], [0.0, 10 / 60, 10 / 60 + 0.25])
    assert np.allclose(al.fine_lengths_h()[:2], [10 / 60, 0.25])
    assert np.allclose(gg.fine_starts_h()[:2], [0.0, 0.25])
    with pytest.raises(ValueError, match="first step of one period"):
        make_grid(24.0, 15.0, ((8.0, 2), (16.0, 4)), first_h=10 / 60)


def test_loose_solution_close_to_exact_and_structure_reused() -> None:
    models, recs, info = _sequence("a", 6, GRADED, 1e-3, 0)
    assert info["failed"] == 0
    for r, x in zip(recs[2:], info["xs"][2:], strict=True):
        m = models[r.key]
        ours = 0.5 * x @ (_p_full(m, r.px) @ x) + r.q @ x
        exact = _exact(m, r)
        assert abs(ours - exact) / abs(exact) < 5e-3
    # every tick reused a model's matrices: vectors changed, A did not
    assert len(models) <= 2
    assert all(r.q.shape == recs[0].q.shape for r in recs if r.key == recs[0].key)


def test_shift_moves_one_step() -> None:
    models, recs, info = _sequence("a", 2, None, 1e-3, 0)
    m = models[recs[0].key]
    x = info["xs"][0]
    xs, _ = m.shift(x, np.zeros(m.m), 900.0)
    s = m.sl("grid.exp")
    assert np.allclose(xs[s][:-1], x[s][1:]) and xs[s][-1] == x[s][-1]


def test_bench_returns_figures_without_asserting_time() -> None:
    out = bench_qp(ticks=3, peer_ticks=1)
    for k in ("ours_ms", "setup_ms", "gap_pct", "cvxpy_osqp", "cvxpy_clarabel", "pulp_cbc_lp"):
        assert k in out
    # beyond the firm 12 h every switched unit is in the QP: Park A has 20 series
    assert out["failed"] == 0 and out["variables"] == 56 * 20
    assert "ratio_p50" in out["cvxpy_osqp"]



def test_feed_in_above_the_import_price_does_not_import_and_export_at_once() -> None:
    """One meter: with feed-in above the import tariff (Park B's 0.4155 CNY/kWh against its
    0.269 valley) the QP must not plan to buy and sell in the same step; it values an
    exported kWh at no more than an imported one costs (net metering, convex)."""
    from dataclasses import replace

    from edge.control.qp import QpModel

    pk, grid, cm, td = _park_a_tick()
    td = replace(td, price_import=np.full(grid.n, 0.05), price_export=np.full(grid.n, 0.4155), carbon_cny_per_t=0.0)
    m = QpModel(pk.plant, grid, cm.units, eps=1e-5)
    q, lo, up, mask = m.vectors(td)
    m.setup(td.objective, mask, q, lo, up)
    res = m.solve_vectors(q, lo, up, m.p_matrix(td.objective, mask).data, None, 0.0, td.objective, mask)
    assert res.ok
    both = np.minimum(res.x[m.sl("grid.imp")], res.x[m.sl("grid.exp")]) * 1e3   # kW
    assert both.max() < 50.0, both


def test_a_store_left_at_the_horizon_end_is_worth_between_a_grid_and_a_surplus_refill() -> None:
    """The battery's energy at the horizon's end is credited at the horizon's cheapest
    import (with carbon and the non-green weight), taken ``end_value_export_frac`` of the
    way down to the cheapest export a surplus would forgo: 0 credits the grid refill alone,
    1 the forgone export alone (Objective.end_value_export_frac)."""
    from dataclasses import replace

    from edge.control.qp import E_MWH, QpModel

    pk, grid, cm, td = _park_a_tick()
    imp = np.full(grid.n, 0.92)
    imp[10] = 0.32                               # the cheapest import
    exp = np.full(grid.n, 0.62)
    exp[20] = 0.20                               # the cheapest export
    td = replace(td, price_import=imp, price_export=exp, carbon_cny_per_t=0.0)
    m = QpModel(pk.plant, grid, cm.units, eps=1e-5)
    bess = pk.plant.batteries[0]
    ng = td.objective.non_green_cny_per_kwh
    for frac in (0.0, 0.4, 1.0):
        tdf = replace(td, objective=replace(td.objective, end_value_export_frac=frac))
        q, _, _, _ = m.vectors(tdf)
        grid_refill = 0.32 + ng
        want = grid_refill - frac * (grid_refill - 0.20)
        got = -q[m.sl(f"{bess.name}.e").stop - 1] * bess.eta_charge / E_MWH
        assert got == pytest.approx(want, rel=1e-9), frac


def _park_a_tick() -> tuple[Any, Any, Any, Any]:
    """Park A at 06:00 of the bench's day: the park, its grid, the commitment, the tick's data."""
    from edge.control.bench import T0, _inputs, _tick_data, park
    from edge.control.commitment import commit
    from edge.control.controller import ControllerState

    pk = park("a", deadline_s=0.0, layout=GRADED, eps=1e-4)
    grid = ControllerState.fresh(pk.config).grid
    t = T0 + 6 * 3600.0
    fc = pk.forecast(t, n=int(grid.dt_h.sum() * 4) + 8, seed=0, noise=0.0)
    inp = _inputs(pk.config, grid, pk.snapshot(t, soc_frac=0.5), fc, None)
    cm = commit(pk.plant, grid, t, heat_kw=inp.heat_kw, cooling_kw=inp.cooling_kw,
                elec_net_kw=inp.elec_kw - sum(inp.renewable_kw.values(), np.zeros(grid.n)),
                price_import=inp.price_import, gas_cny_per_m3=inp.gas,
                carbon_cny_per_t=inp.carbon, ice_kwh=inp.ice_kwh, status={})
    td = _tick_data(pk.config, inp, cm, {})
    return pk, grid, cm, td
