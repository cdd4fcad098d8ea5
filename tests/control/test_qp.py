"""The QP itself: same answer as an exact solver, structure built once, shift, step grids."""

from __future__ import annotations

import numpy as np

from edge.control.bench import _exact, _p_full, _sequence, bench_qp
from edge.control.qp import GRADED, make_grid


def test_grids_cover_the_horizon() -> None:
    g = make_grid(24.0, 15.0, None)
    assert g.n == 96 and np.isclose(g.dt_h.sum(), 24.0)
    gg = make_grid(24.0, 15.0, GRADED)
    assert gg.n == 56 and np.isclose(gg.dt_h.sum(), 24.0)
    assert list(gg.dt_h[31:34]) == [0.25, 0.5, 0.5] and gg.dt_h[-1] == 1.0
    assert np.allclose(gg.coarsen(np.arange(96, dtype=float))[31:34], [31, 32.5, 34.5])


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
    assert out["failed"] == 0 and out["variables"] == 56 * 18
    assert "ratio_p50" in out["cvxpy_osqp"]
