"""Replayed ticks: inputs in, setpoints out, for the optimum and every fallback."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.control import ControllerState, Plan, PointLimit, decide, decide_rules
from edge.control.controller import EPS_WITHIN_FRAC, RELAXED, _eps
from edge.control.inputs import extended_daily
from edge.control.safety import clamp, plant_limits
from edge.control.scenario import T0, Park, park
from edge.model import Quality

NOON = T0 + 12 * 3600
PEAK = T0 + 9 * 3600          # 09:00 local, peak tariff in Park A
EVENING = T0 + 19 * 3600      # 19:00 local, peak tariff, no sun


def _within(p: Park, setpoints: dict[str, float]) -> None:
    lim = p.config.all_limits()
    for k, v in setpoints.items():
        assert lim[k].min - 1e-6 <= v <= lim[k].max + 1e-6, (k, v, lim[k])


def test_optimal_tick_closes_balances(park_a: Park) -> None:
    st = ControllerState.fresh(park_a.config)
    d, st2 = decide(park_a.snapshot(PEAK), park_a.forecast(T0), None, st)
    assert d.reason == "optimal" and d.detail == ""
    assert d.solve is not None and d.solve.status == "solved"
    assert all(abs(r) < 1e-6 for r in d.residual_kw.values()), d.residual_kw
    assert set(d.setpoints) == set(plant_limits(park_a.plant))
    _within(park_a, dict(d.setpoints))
    assert st2.last is not None and st2.last_setpoints == d.setpoints
    assert d.fallbacks_total == {}


def test_battery_never_discharges_below_min_soc(park_a: Park) -> None:
    st = ControllerState.fresh(park_a.config)
    snap = park_a.snapshot(PEAK, soc_frac=0.10)           # at soc_min_frac, peak price
    d, _ = decide(snap, park_a.forecast(T0), None, st)
    assert d.reason == "optimal"
    assert d.setpoints["bess1.p_set_kw"] >= -1e-6


def test_battery_never_charges_above_max_soc(park_a: Park) -> None:
    st = ControllerState.fresh(park_a.config)
    d, _ = decide(park_a.snapshot(T0 + 2 * 3600, soc_frac=0.95), park_a.forecast(T0), None, st)
    assert d.setpoints["bess1.p_set_kw"] <= 1e-6


def test_battery_discharges_at_peak_and_charges_in_valley(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    d_peak, _ = decide(park_a.snapshot(EVENING, soc_frac=0.8), fc, None,
                       ControllerState.fresh(park_a.config))
    d_night, _ = decide(park_a.snapshot(T0 + 3 * 3600, soc_frac=0.2), fc, None,
                        ControllerState.fresh(park_a.config))
    assert d_peak.setpoints["bess1.p_set_kw"] < -1000
    assert d_night.setpoints["bess1.p_set_kw"] > 1000


def test_plan_prices_override_the_tariff(park_a: Park) -> None:
    n = 96
    fc = park_a.forecast(T0)
    flat = np.full(n, 0.5)
    plan = Plan("p1", T0, 900.0, flat.copy(), np.full(n, 0.1), np.full(n, 0.58), 3.65, 82.0)
    # one meter, net metering: export is valued at no more than import costs, so the
    # spike is on both prices (an export price alone above the import price buys nothing)
    at76 = np.arange(n) == 76
    spike = replace(plan, export_cny_per_kwh=np.where(at76, 5.0, 0.1),
                    import_cny_per_kwh=np.where(at76, 5.0, 0.5))
    snap = park_a.snapshot(EVENING, soc_frac=0.6)
    d_flat, _ = decide(snap, fc, plan, ControllerState.fresh(park_a.config))
    d_spike, _ = decide(snap, fc, spike, ControllerState.fresh(park_a.config))
    # a plan's price spike at 19:00 (the tariff is not in force) sells the battery
    assert d_spike.setpoints["bess1.p_set_kw"] < d_flat.setpoints["bess1.p_set_kw"] - 3000
    assert d_spike.setpoints["bess1.p_set_kw"] < -5000
    assert d_spike.flows_kw["grid.exp"] > 5000
    expired = replace(spike, valid_until_ts=EVENING - 1)
    d_exp, _ = decide(snap, fc, expired, ControllerState.fresh(park_a.config))
    # the plan's discharge: at the export limit both setpoints are the converter's full
    # discharge (Battery.export_limiter), so the setpoints alone could not tell them apart
    assert d_exp.flows_kw["bess1.dis"] != pytest.approx(d_spike.flows_kw["bess1.dis"])


def test_stale_soc_falls_back_to_shifted_previous(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    st = ControllerState.fresh(park_a.config)
    d1, st = decide(park_a.snapshot(PEAK), fc, None, st)
    assert d1.reason == "optimal"
    d2, st = decide(park_a.snapshot(PEAK + 1, quality=Quality.STALE), fc, None, st)
    assert d2.reason == "shifted_previous"
    assert "bess1.soc_frac" in d2.detail
    assert d2.fallbacks_total == {"shifted_previous": 1}
    assert all(abs(r) < 1e-6 for r in d2.residual_kw.values())
    _within(park_a, dict(d2.setpoints))
    # an old source timestamp is stale too, even with quality good
    d3, st = decide(park_a.snapshot(PEAK + 2, age_s=60.0), fc, None, st)
    assert d3.reason == "shifted_previous" and d3.fallbacks_total["shifted_previous"] == 2


def test_solver_late_falls_back_to_shifted_previous(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    st = ControllerState.fresh(park_a.config)
    _, st = decide(park_a.snapshot(PEAK), fc, None, st)
    late = replace(st, config=replace(st.config, deadline_s=1e-9))
    # a changed reading, so that the warm start is not already the optimum
    d, _ = decide(park_a.snapshot(PEAK + 1, loads_kw={"datacentre": 300.0}), fc, None, late)
    assert d.reason == "shifted_previous"
    assert "time limit" in d.detail


def test_no_previous_solution_falls_back_to_rules_then_safe_defaults(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    snap = park_a.snapshot(PEAK, quality=Quality.COMM_LOST)
    d, _st = decide(snap, fc, None, ControllerState.fresh(park_a.config))
    assert d.reason == "rules" and "no recent solution" in d.detail
    assert d.setpoints["bess1.p_set_kw"] == 0.0           # SOC unknown: the battery idles
    _within(park_a, dict(d.setpoints))
    bare = ControllerState.fresh(replace(park_a.config, rules="none"))
    d2, st2 = decide(snap, fc, None, bare)
    assert d2.reason == "safe_defaults"
    defaults = {k: lim.default for k, lim in park_a.config.all_limits().items()}
    assert dict(d2.setpoints) == defaults
    assert st2.fallbacks == {"safe_defaults": 1}


def test_forecast_not_covering_now_is_stale(park_a: Park) -> None:
    fc = park_a.forecast(T0 - 86400.0, n=96)               # yesterday's
    d, _ = decide(park_a.snapshot(PEAK), fc, None, ControllerState.fresh(park_a.config))
    assert d.reason == "rules" and "forecast" in d.detail


def test_shift_is_too_old_after_max_age(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    st = ControllerState.fresh(park_a.config)
    _, st = decide(park_a.snapshot(PEAK), fc, None, st)
    d, _ = decide(park_a.snapshot(PEAK + 7200, quality=Quality.BAD), fc, None, st)
    assert d.reason == "rules"


def test_ramp_limits_from_site_points(park_a: Park) -> None:
    cfg = replace(park_a.config, limits={"bess1.p_set_kw": PointLimit(-8000, 8000, 100.0)})
    st = ControllerState.fresh(cfg)
    fc = park_a.forecast(T0)
    d1, st = decide(park_a.snapshot(T0 + 3 * 3600, soc_frac=0.2), fc, None, st)
    assert 0 < d1.setpoints["bess1.p_set_kw"] <= 8000      # site max narrows the plant's 10 MW
    # last written +5 MW one second ago; the optimum now is to discharge
    st = replace(st, last_setpoints={**st.last_setpoints, "bess1.p_set_kw": 5000.0},
                 last_ts=EVENING - 1)
    d2, st = decide(park_a.snapshot(EVENING, soc_frac=0.8), fc, None, st)
    assert d2.setpoints["bess1.p_set_kw"] == pytest.approx(4900.0)
    d3, _ = decide(park_a.snapshot(EVENING + 1, soc_frac=0.8), fc, None, st)
    assert abs(d3.setpoints["bess1.p_set_kw"] - d2.setpoints["bess1.p_set_kw"]) <= 100.0 + 1e-9
    assert any(c.point == "bess1.p_set_kw" and c.why == "ramp" for c in d3.clamps)


def test_clamp_reports_and_drops_points_without_limits() -> None:
    lim = {"a.p_set_kw": PointLimit(-10, 10, 1.0, default=0.0)}
    out, notes = clamp({"a.p_set_kw": 50.0, "b.p_set_kw": 1.0}, lim, {"a.p_set_kw": 0.0}, 2.0)
    assert out == {"a.p_set_kw": 2.0}
    assert {(n.point, n.why) for n in notes} == {("a.p_set_kw", "ramp"), ("b.p_set_kw", "no_limits")}
    out, _ = clamp({"a.p_set_kw": float("nan")}, lim, {}, 1.0)
    assert out == {"a.p_set_kw": 0.0}


def test_one_qp_structure_per_commitment_pattern(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    st = ControllerState.fresh(park_a.config)
    seen = []
    for i in range(6):
        _, st = decide(park_a.snapshot(PEAK + i), fc, None, st)
        seen.append({k: id(m.A) for k, m in st.cache.items()})
    # one dispatch structure, plus the commitment's relaxed QP, each built once
    assert len([k for k in st.cache if RELAXED not in k]) == 1 and RELAXED in set().union(*st.cache)
    assert len(st.cache) == 2 and all(s == seen[0] for s in seen)


def test_rules_controller_same_interface(park_a: Park, park_b: Park) -> None:
    d, st = decide_rules(park_a.snapshot(PEAK, soc_frac=0.5), park_a.forecast(T0), None,
                         ControllerState.fresh(park_a.config))
    assert d.reason == "rules" and d.setpoints["bess1.p_set_kw"] < 0     # 1.35 > 0.8
    assert d.setpoints["chp1.p_set_kw"] == 0.0          # gas 3.65 is not below 3.0
    d, _ = decide_rules(park_a.snapshot(EVENING, soc_frac=0.15), park_a.forecast(T0), None, st)
    assert d.setpoints["dg1.p_set_kw"] < 0               # price > 1.0 and SOC < 20 %
    night = park_b.snapshot(T0 + 23 * 3600, ice_frac=0.2)
    d, _ = decide_rules(night, park_b.forecast(T0), None, ControllerState.fresh(park_b.config))
    assert all(d.setpoints[f"dch{i}.mode_set"] == 2.0 for i in range(1, 5))
    assert d.setpoints["ice1.melt_set_kw"] == 0.0
    noon = park_b.snapshot(T0 + 12 * 3600, ice_frac=0.6)
    d, _ = decide_rules(noon, park_b.forecast(T0), None, ControllerState.fresh(park_b.config))
    assert d.setpoints["ice1.melt_set_kw"] == 0.0        # 11-13: base-load chillers, ice idle
    assert d.setpoints["bch1.q_set_kw"] < 0
    d, _ = decide_rules(park_b.snapshot(T0 + 9 * 3600, ice_frac=0.6), park_b.forecast(T0), None,
                        ControllerState.fresh(park_b.config))
    assert d.setpoints["ice1.melt_set_kw"] < 0           # 08-11: melt


def test_a_horizon_past_the_forecast_sees_tomorrow_as_today(park_b: Park) -> None:
    full = park_b.forecast(T0)          # the scenario's forecasts run 48 h; a forecaster's 24 h
    fc = replace(full, pv_kw=full.pv_kw[:96], wind_kw=full.wind_kw[:96], heat_kw=full.heat_kw[:96],
                 cooling_kw=full.cooling_kw[:96], elec_kw={k: v[:96] for k, v in full.elec_kw.items()})
    assert fc.cooling_p90_kw is None
    ext = extended_daily(fc, T0 + 36 * 3600)
    assert len(ext.cooling_kw) == 144 and len(ext.pv_kw) == 144
    np.testing.assert_array_equal(ext.cooling_kw[96:], fc.cooling_kw[:48])
    for name, kw in fc.elec_kw.items():
        np.testing.assert_array_equal(ext.elec_kw[name][96:], kw[:48])
    assert ext.cooling_p90_kw is None
    # a forecast that reaches the horizon, or within a step of it, is left as it is
    assert len(extended_daily(fc, T0 + 20 * 3600).cooling_kw) == 96
    assert len(extended_daily(fc, T0 + 24 * 3600 + 600).cooling_kw) == 96
    # the QP then runs over 36 h and closes its balances
    p36 = park("b", deadline_s=0.0, horizon_h=36.0)
    assert float(ControllerState.fresh(p36.config).grid.dt_h.sum()) == 36.0
    d, _ = decide(p36.snapshot(EVENING), fc, None, ControllerState.fresh(p36.config))
    assert d.reason == "optimal", d.detail
    assert all(abs(r) < 1e-6 for r in d.residual_kw.values()), d.residual_kw


def test_an_aligned_grid_ends_step_0_at_the_quarter_hour(park_a: Park) -> None:
    """Between quarter hours Park A's step 0 runs to the quarter hour and the later steps are
    the forecasts' own quarter hours; on the quarter hour, with aligned steps off or with one
    decision a step, the steps run 15 min from the tick."""
    cfg = replace(park_a.config, tick_s=300.0)
    assert cfg.align_steps                       # Park A's site file
    st = ControllerState.fresh(cfg)
    assert np.array_equal(st.grid_at(PEAK).dt_h, st.grid.dt_h)
    g = st.grid_at(PEAK + 300)
    assert np.isclose(g.dt_h[0], 10 / 60) and g.n == st.grid.n
    assert np.array_equal(g.dt_h[1:], st.grid.dt_h[1:])
    second = ControllerState.fresh(replace(cfg, tick_s=1.0))          # in whole minutes
    assert np.isclose(second.grid_at(PEAK + 301).dt_h[0], 10 / 60)
    assert np.isclose(second.grid_at(PEAK + 890).dt_h[0], 1 / 60)
    for other in (replace(cfg, align_steps=False), replace(cfg, tick_s=None)):
        assert np.array_equal(ControllerState.fresh(other).grid_at(PEAK + 300).dt_h, st.grid.dt_h)
    # each later step is one forecast step, not a blend of two (no readings: as forecast)
    from edge.control.controller import _inputs
    fc = park_a.forecast(T0)
    snap = park_a.snapshot(PEAK + 300)
    k = round((PEAK + 900 - T0) / 900)                # the forecast's 09:15-09:30 step
    want = sum(float(v[k]) for v in fc.elec_kw.values())
    aligned = _inputs(cfg, g, snap, fc, None)
    assert np.isclose(aligned.elec_kw[1], want)
    from_tick = _inputs(cfg, st.grid, snap, fc, None)
    assert not np.isclose(from_tick.elec_kw[1], want)


def test_aligned_ticks_keep_a_qp_per_phase_and_fall_back(park_a: Park) -> None:
    cfg = replace(park_a.config, tick_s=300.0)
    fc = park_a.forecast(T0)
    st = ControllerState.fresh(cfg)
    for dt in (0, 300, 600, 900):
        d, st = decide(park_a.snapshot(PEAK + dt), fc, None, st)
        assert d.reason == "optimal", d.detail
        assert all(abs(r) < 1e-6 for r in d.residual_kw.values()), d.residual_kw
        _within(park_a, dict(d.setpoints))
    keys = {k for key in st.cache for k in key if k.startswith("first:")}
    assert keys == {"first:10min", "first:5min"}
    assert st.last is not None and st.last.model_key in st.cache
    d, st = decide(park_a.snapshot(PEAK + 1200, quality=Quality.STALE), fc, None, st)
    assert d.reason == "shifted_previous" and all(abs(r) < 1e-6 for r in d.residual_kw.values())


def test_ticks_within_a_step_solve_at_a_tighter_tolerance(park_a: Park) -> None:
    """On the quarter hour the dispatch QP stops at ``eps``, at the ticks within it at
    ``EPS_WITHIN_FRAC`` of it, aligned or not; one decision a step always at ``eps``."""
    fc = park_a.forecast(T0)
    for aligned in (True, False):
        cfg = replace(park_a.config, tick_s=300.0, align_steps=aligned)
        st = ControllerState.fresh(cfg)
        for dt, within in ((0, False), (300, True), (600, True), (900, False)):
            d, st = decide(park_a.snapshot(PEAK + dt), fc, None, st)
            assert d.reason == "optimal", d.detail
            assert st.last is not None
            used = st.cache[st.last.model_key]
            assert used.eps == pytest.approx(cfg.eps * (EPS_WITHIN_FRAC if within else 1.0))
            assert used._eps_set == used.eps            # the solver ran at it
    assert _eps(park_a.config, within=False) == park_a.config.eps
    st = ControllerState.fresh(replace(park_a.config, tick_s=None))
    for dt in (0, 900):
        d, st = decide(park_a.snapshot(PEAK + dt), fc, None, st)
        assert st.last is not None and st.cache[st.last.model_key].eps == park_a.config.eps


def test_the_qp_cache_is_bounded_and_keeps_the_last_solutions(park_a: Park,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.control.controller as controller
    monkeypatch.setattr(controller, "CACHE_MODELS", 3)
    cfg = replace(park_a.config, tick_s=60.0)
    fc = park_a.forecast(T0)
    st = ControllerState.fresh(cfg)
    for i in range(8):
        d, st = decide(park_a.snapshot(PEAK + 60 * i), fc, None, st)
        assert d.reason == "optimal", d.detail
        assert len(st.cache) <= 3
        assert st.last is not None and st.last.model_key in st.cache
