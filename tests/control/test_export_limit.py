"""Replayed ticks for a park that can be export-limited: the renewables' limit and their margin."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge.control import ControllerState, decide
from edge.control.controller import _export_risk, _inputs
from edge.control.inputs import Forecast
from edge.control.scenario import T0, Park

N = 300
NIGHT = T0 + 3 * 3600           # 03:00 local: valley, no PV


def _windy(park_a: Park, wind_kw: float = 7400.0) -> Forecast:
    fc = park_a.forecast(T0, n=N)
    return replace(fc, wind_kw=np.full(N, wind_kw), pv_kw=np.zeros(N), heat_kw=np.full(N, 4000.0))


def test_at_the_export_limit_the_limiter_curtails_not_a_limit_at_the_plan(park_a: Park) -> None:
    """A windy night with the battery nearly full: the plan exports at the limit and curtails
    wind. A limit written at the plan's wind output also curtails what the forecast missed
    while the grid could still take it (Park A winter, 15-min steps: 0.8 MWh); with the
    site's export limiter the wind runs free and the limiter takes only what the grid cannot."""
    fc = _windy(park_a)
    limit = park_a.plant.grid.export_max_kw
    for soc in (0.9, 0.95):
        snap = park_a.snapshot(NIGHT, soc_frac=soc)
        assert park_a.plant.grid.export_limiter
        d, _ = decide(snap, fc, None, ControllerState.fresh(park_a.config))
        no_lim = replace(park_a.plant, grid=replace(park_a.plant.grid, export_limiter=False))
        d0, _ = decide(snap, fc, None, ControllerState.fresh(replace(park_a.config, plant=no_lim)))
        assert d.reason == d0.reason == "optimal"
        for dec in (d, d0):
            assert np.isclose(dec.flows_kw["grid.exp"], limit)
            assert dec.flows_kw["wind1.p"] < 7400.0 - 500.0              # curtailed in the plan
            assert abs(dec.residual_kw["electric"]) < 1e-6
        assert d.setpoints["wind1.p_limit_kw"] == -park_a.plant.renewables[1].p_rated_kw
        assert np.isclose(d0.setpoints["wind1.p_limit_kw"], -d0.flows_kw["wind1.p"])
        # everything else is the same decision
        assert {k: v for k, v in d.setpoints.items() if k != "wind1.p_limit_kw"} == \
               {k: v for k, v in d0.setpoints.items() if k != "wind1.p_limit_kw"}


def test_below_the_export_limit_a_wanted_curtailment_is_still_written(park_a: Park) -> None:
    """The limiter acts only at the export limit: where the grid takes less (here it may take
    nothing), the plan's curtailment is the limit the wind gets."""
    fc = _windy(park_a)
    shut = replace(park_a.plant, grid=replace(park_a.plant.grid, export_max_kw=0.0))
    cfg = replace(park_a.config, plant=shut)
    d, _ = decide(park_a.snapshot(NIGHT, soc_frac=0.95), fc, None, ControllerState.fresh(cfg))
    assert d.reason == "optimal"
    assert d.flows_kw["grid.exp"] == 0.0
    # at the (zero) limit: the limiter's; the grid's own export point is what it holds
    assert d.setpoints["wind1.p_limit_kw"] == -park_a.plant.renewables[1].p_rated_kw
    no_lim = replace(shut, grid=replace(shut.grid, export_limiter=False))
    d0, _ = decide(park_a.snapshot(NIGHT, soc_frac=0.95), fc, None,
                   ControllerState.fresh(replace(cfg, plant=no_lim)))
    assert np.isclose(d0.setpoints["wind1.p_limit_kw"], -d0.flows_kw["wind1.p"])
    assert d0.flows_kw["wind1.p"] < 7400.0 - 1000.0


def test_export_risk_is_where_the_p90_surplus_reaches_the_export_limit(park_a: Park) -> None:
    """Loads 5 MW, heat 3.5 MW (the CHPs' 4 MW of electricity when heat-led, at 0.875 kW of
    heat per kW), no PV: wind whose P90 is 7 MW leaves 6 MW, Park A's export limit."""
    fc = park_a.forecast(T0, n=N)
    loads = {name: np.full(N, kw) for name, kw in (("office", 2000.0), ("hospital", 1800.0),
                                                      ("datacentre", 1200.0))}
    wind90 = np.full(N, 2000.0)
    wind90[10:20] = 7000.0
    fc = replace(fc, elec_kw=loads, heat_kw=np.full(N, 3500.0), pv_kw=np.zeros(N),
                 wind_kw=np.full(N, 1500.0), wind_p90_kw=wind90, pv_p90_kw=np.zeros(N))
    risk = _export_risk(park_a.plant, fc)
    assert risk[10:20].all() and not risk[:10].any() and not risk[20:].any()
    # 1 kW less wind at its P90, or no P90 at all (P50 1.5 MW): no risk
    assert not _export_risk(park_a.plant, replace(fc, wind_p90_kw=wind90 - 1.0)).any()
    assert not _export_risk(park_a.plant, replace(fc, wind_p90_kw=None)).any()
    # 500 kW more electric load takes it under the limit
    more = {**loads, "office": loads["office"] + 500.0}
    assert not _export_risk(park_a.plant, replace(fc, elec_kw=more)).any()


def test_renewables_are_planned_at_their_p90_only_where_the_park_could_be_export_limited(
        park_a: Park) -> None:
    """The margin is the P90 where the screen says the export limit is within reach, the
    P50 elsewhere; without a P90 or with the margin off, the P50 everywhere."""
    grid = ControllerState.fresh(park_a.config).grid
    snap = park_a.snapshot(NIGHT)           # no readings of the renewables: step 0 as forecast
    fc = park_a.forecast(T0, n=N)
    fc = replace(fc, wind_p90_kw=np.clip(fc.wind_kw + 1500.0, 0, 7500.0), pv_p90_kw=fc.pv_kw * 1.2)
    base = _inputs(park_a.config, grid, snap, fc, None)
    p50 = _inputs(replace(park_a.config, renewable_margin_frac=0.0), grid, snap, fc, None)
    # the export limit far out of reach: the P50
    wide = replace(park_a.plant, grid=replace(park_a.plant.grid, export_max_kw=1e6))
    far = _inputs(replace(park_a.config, plant=wide), grid, snap, fc, None)
    for name in ("pv1", "wind1"):
        assert np.array_equal(far.renewable_kw[name], p50.renewable_kw[name])
    # always within reach: the P90 everywhere, as if the P90 were the forecast
    zero = replace(park_a.plant, grid=replace(park_a.plant.grid, export_max_kw=-1e6))
    at90 = _inputs(replace(park_a.config, plant=zero), grid, snap, fc, None)
    as_fc = _inputs(replace(park_a.config, plant=zero), grid, snap,
                    replace(fc, wind_kw=fc.wind_p90_kw, pv_kw=fc.pv_p90_kw), None)
    for name in ("pv1", "wind1"):
        assert np.allclose(at90.renewable_kw[name], as_fc.renewable_kw[name])
    assert (at90.renewable_kw["wind1"] > p50.renewable_kw["wind1"] + 100.0).any()
    # the shipped site: some steps of this forecast at risk, some not
    risk = _export_risk(park_a.plant, fc)
    assert risk.any() and not risk.all()
    assert (base.renewable_kw["wind1"] >= p50.renewable_kw["wind1"] - 1e-9).all()
    assert (base.renewable_kw["wind1"] > p50.renewable_kw["wind1"] + 100.0).any()
    assert (base.renewable_kw["wind1"] < at90.renewable_kw["wind1"] - 100.0).any()
    # no P90 (a baseline forecast): the P50
    bare = _inputs(park_a.config, grid, snap, replace(fc, wind_p90_kw=None, pv_p90_kw=None), None)
    assert np.array_equal(bare.renewable_kw["wind1"], p50.renewable_kw["wind1"])
    # other loads are untouched
    assert np.array_equal(base.elec_kw, p50.elec_kw) and np.array_equal(base.heat_kw, p50.heat_kw)


def test_the_daemon_hands_the_renewables_p90_to_the_controller() -> None:
    from edge.config import embedded_site_path, load_site
    from edge.model import Snapshot
    from edge.runner import ControlRunner

    runner = ControlRunner(load_site(embedded_site_path("park-a")))
    assert runner.config.renewable_margin_frac == 1.0
    p50 = {t: np.full(96, 1000.0) for t in runner.sources}
    p50.update(pv=np.full(96, 2000.0), wind=np.full(96, 3000.0))
    p90 = {"pv": np.full(96, 2500.0), "wind": np.full(96, -1.0)}
    fc = runner._control_forecast(T0, p50, Snapshot(T0, {}), p90)
    assert fc.pv_p90_kw is not None and np.allclose(fc.pv_p90_kw, 2500.0)
    assert fc.wind_p90_kw is not None and np.allclose(fc.wind_p90_kw, 0.0)   # clipped
    fc = runner._control_forecast(T0, p50, Snapshot(T0, {}), {})
    assert fc.pv_p90_kw is None and fc.wind_p90_kw is None


def test_a_solver_trace_under_the_forecast_is_not_written_as_a_limit(park_b: Park) -> None:
    """Park B imports all day, so its PV is never worth curtailing. OSQP leaves the PV a few
    kW under its bound at some ticks; with a 1 kW tolerance that was written as a limit at
    the plan's output, capping the PV at its forecast while the park imported at the peak
    price (2 of these 96 ticks; 968 kWh curtailed in the summer fortnight). Below
    ``TRACE_KW`` under the forecast the PV runs free."""
    fc = park_b.forecast(T0, n=N)
    st = ControllerState.fresh(park_b.config)
    sunny = 0
    for k in range(96):
        d, st = decide(park_b.snapshot(T0 + k * 900.0), fc, None, st)
        assert d.reason == "optimal"
        assert d.flows_kw["grid.imp"] > 1000.0 and d.flows_kw["grid.exp"] == 0.0
        assert d.setpoints["pv1.w_max_lim_ena"] == 0.0 and d.setpoints["pv1.w_max_lim_pct"] == 100.0
        sunny += d.flows_kw["pv1.p"] > 100.0
    assert sunny > 30
