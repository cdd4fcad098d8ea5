"""Replayed ticks for what the closed loop taught: step 0 of a load, stores' end value, ice release."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.control import ControllerState, decide, project
from edge.control.commitment import _melt_short
from edge.control.controller import _AT_LIMIT_KW, _inputs, _Trace
from edge.control.scenario import T0, Park
from edge.control.step0 import CARRY_HALF_LIFE_H, anchored, carried
from edge.control.step0 import corrected as _step0
from edge.model import PointValue, Quality, Snapshot

NIGHT = T0 + 23 * 3600          # 23:00 local: Park B's valley, ice may be made
AFTERNOON = T0 + 15 * 3600      # 15:00 local: peak, ice may melt


def test_step0_is_the_forecast_corrected_by_its_last_miss() -> None:
    assert _step0(1000.0, 1200.0, 900.0) == 1300.0      # missed by +300: carried
    assert _step0(1000.0, 500.0, 900.0) == 600.0
    assert _step0(100.0, 0.0, 900.0) == 0.0             # never below zero
    assert _step0(1000.0, 1200.0, None) == 1200.0       # no last forecast: the reading
    assert _step0(1000.0, None, 900.0) == 1000.0        # no reading: the forecast


def test_a_series_anchored_on_a_reading_fades_to_the_forecast(park_b: Park) -> None:
    grid = ControllerState.fresh(park_b.config).grid
    mid = grid.start_h + grid.dt_h / 2
    fc = np.full(grid.n, 4000.0)
    out = anchored(fc, 5000.0, grid, 0.5, max_kw=7500.0)
    assert out[0] == 5000.0
    half = int(np.argmin(np.abs(mid - mid[0] - 0.5)))
    assert np.isclose(out[half], 4000.0 + 1000.0 * 0.5 ** ((mid[half] - mid[0]) / 0.5))
    assert np.all(np.diff(out) <= 0.0) and np.isclose(out[-1], 4000.0)
    assert anchored(fc, 9000.0, grid, 0.5, max_kw=7500.0).max() == 7500.0   # within the rating
    assert anchored(fc, 0.0, grid, 0.5)[1] < 4000.0
    assert np.array_equal(anchored(fc, 5000.0, grid, 0.0)[1:], fc[1:])     # step 0 only


def test_inputs_use_the_last_ticks_forecast(park_b: Park) -> None:
    grid = ControllerState.fresh(park_b.config).grid
    fc = park_b.forecast(T0, n=300)
    snap = park_b.snapshot(AFTERNOON, loads_kw={"heating": 3000.0, "cooling": 8000.0})
    first = _inputs(park_b.config, grid, snap, fc, None)
    assert first.heat_kw[0] == 3000.0 and first.cooling_kw[0] == 8000.0
    bare = _inputs(park_b.config, grid, park_b.snapshot(AFTERNOON), fc, None)   # no readings
    raw_heat, raw_cool = bare.heat_kw[0], bare.cooling_kw[0]
    prev = {"heat": _Trace(T0, 900.0, np.full(300, 2500.0)),
            "cooling": _Trace(T0, 900.0, np.full(300, 8000.0))}
    nxt = _inputs(park_b.config, grid, snap, fc, None, prev)
    assert np.isclose(nxt.heat_kw[0], raw_heat + 500.0)
    assert np.isclose(nxt.cooling_kw[0], raw_cool)
    # later steps: the +500 kW miss carried, halving every CARRY_HALF_LIFE_H of lead time
    mid = grid.start_h + grid.dt_h / 2
    fade = 0.5 ** ((mid[1:] - mid[0]) / CARRY_HALF_LIFE_H)
    assert np.allclose(nxt.heat_kw[1:], np.maximum(first.heat_kw[1:] + 500.0 * fade, 0.0))
    assert np.isclose(fade[np.argmin(np.abs(mid[1:] - mid[0] - CARRY_HALF_LIFE_H))], 0.5, atol=0.05)
    assert np.array_equal(nxt.cooling_kw[1:], first.cooling_kw[1:])  # no miss, nothing carried
    # switched off: later steps as forecast
    off = _inputs(replace(park_b.config, carry_half_life_h=0.0), grid, snap, fc, None, prev)
    assert np.array_equal(off.heat_kw[1:], first.heat_kw[1:])
    # heat with a half-life of its own (Park A's site file), the other forecasts as before
    assert park_b.config.heat_carry_half_life_h is None
    miss = {**prev, "cooling": _Trace(T0, 900.0, np.full(300, 7000.0))}
    own = _inputs(replace(park_b.config, heat_carry_half_life_h=24.0), grid, snap, fc, None, miss)
    both = _inputs(park_b.config, grid, snap, fc, None, miss)
    assert np.allclose(own.heat_kw[1:], np.maximum(first.heat_kw[1:] + 500.0 * 0.5 ** ((mid[1:] - mid[0]) / 24.0), 0.0))
    assert np.array_equal(own.cooling_kw, both.cooling_kw) and not np.array_equal(own.heat_kw, both.heat_kw)


def test_a_reading_is_compared_with_the_last_forecast_at_the_time_it_was_taken(park_b: Park) -> None:
    """Like for like at any tick: a 1 s reading against a 15-min mean had carried a ramp's
    slope into the next hours. Here the last forecast ramps 2000 -> 3000 kW over a step;
    the reading, taken a quarter of the way between the two step middles, matches it."""
    cfg = replace(park_b.config, stale_after_s=900.0)   # readings of a 15-min mean are old
    grid = ControllerState.fresh(cfg).grid
    fc = park_b.forecast(T0, n=300)
    read_ts = AFTERNOON - 450.0 + 225.0
    taken = park_b.snapshot(read_ts, loads_kw={"heating": 2250.0})
    snap = Snapshot(AFTERNOON + 300.0, dict(taken.points))      # decided 525 s after
    ramp = _Trace(AFTERNOON - 900.0, 900.0, np.array([2000.0, 3000.0, 3000.0]))
    first = _inputs(cfg, grid, snap, fc, None)
    raw = _inputs(cfg, grid, park_b.snapshot(AFTERNOON + 300.0), fc, None).heat_kw[0]  # no reading
    nxt = _inputs(cfg, grid, snap, fc, None, {"heat": ramp})
    assert np.isclose(nxt.heat_kw[0], raw)                           # no miss
    assert np.allclose(nxt.heat_kw[1:], first.heat_kw[1:])           # nothing carried
    assert np.isclose(ramp.at(read_ts), 2250.0)
    # held flat against a 15-min mean (the old comparison), the ramp is a -250 kW miss
    flat = _inputs(cfg, grid, snap, fc, None, {"heat": _Trace(AFTERNOON - 900.0, 900.0,
                                                                         np.full(3, 2500.0))})
    assert np.isclose(flat.heat_kw[0], raw - 250.0)


def test_carried_miss_fades_and_stays_in_range(park_b: Park) -> None:
    grid = ControllerState.fresh(park_b.config).grid
    base = np.full(grid.n, 1000.0)
    up = carried(base, 800.0, grid, 4.0, max_kw=1500.0)
    down = carried(base, -3000.0, grid, 4.0)
    assert up[0] == 1000.0 and down[0] == 1000.0                  # step 0 is the caller's
    assert np.all(np.diff(up[1:]) <= 1e-9) and up.max() <= 1500.0  # fades, capped
    assert np.all(down >= 0.0) and down[1] == 0.0                  # never below zero
    assert np.isclose(up[-1], 1000.0 + 800.0 * 0.5 ** ((grid.start_h[-1] + grid.dt_h[-1] / 2
                                                          - grid.dt_h[0] / 2) / 4.0))
    assert np.array_equal(carried(base, 800.0, grid, 0.0), base)


def test_decide_carries_the_forecast_step0_only_for_one_step(park_b: Park) -> None:
    fc = park_b.forecast(T0, n=300)
    st = ControllerState.fresh(park_b.config)
    _, st = decide(park_b.snapshot(AFTERNOON, ice_frac=0.5), fc, None, st)
    assert set(st.fc_trace) >= {"heat", "cooling", "buildings"}
    d, st2 = decide(park_b.snapshot(AFTERNOON + 900, ice_frac=0.5), fc, None, st)
    assert d.reason == "optimal" and st2.fc_trace
    # a gap longer than a step: the reading stands in (the last forecast is for another step)
    late = park_b.snapshot(AFTERNOON + 3 * 900, ice_frac=0.5, loads_kw={"heating": 1234.0})
    d3, _ = decide(late, fc, None, st2)
    assert d3.reason == "optimal"


def test_no_ice_is_made_for_the_horizon_end_alone(park_b: Park) -> None:
    """Winter: no cooling ahead. Ice left at the end is worth only what refilling it would
    cost, so a half-full store is not topped up (it was, at 0.9 x the mean price)."""
    fc = park_b.forecast(T0, n=300)
    fc = replace(fc, cooling_kw=np.zeros_like(fc.cooling_kw))
    st = ControllerState.fresh(park_b.config)
    for k in range(4):
        d, st = decide(park_b.snapshot(NIGHT + k * 900, ice_frac=0.5), fc, None, st)
        assert d.reason == "optimal"
        assert all(d.setpoints[f"dch{i}.mode_set"] != 2.0 for i in range(1, 5)), k
        assert sum(d.flows_kw.get(f"dch{i}.ice", 0.0) for i in range(1, 5)) < 1.0


def test_ice_store_is_filled_for_the_day_it_is_needed(park_b: Park) -> None:
    """The counterpart: with summer cooling ahead, the empty store is charged at night."""
    fc = park_b.forecast(T0, n=300)
    d, _ = decide(park_b.snapshot(NIGHT, ice_frac=0.05), fc, None,
                  ControllerState.fresh(park_b.config))
    assert any(d.setpoints[f"dch{i}.mode_set"] == 2.0 for i in range(1, 5))
    assert sum(d.flows_kw.get(f"dch{i}.ice", 0.0) for i in range(1, 5)) > 1000.0


def test_melt_is_bounded_by_the_release_rate_and_chillers_carry_the_rest(park_b: Park) -> None:
    store = park_b.plant.ice_stores[0]
    assert store.release_frac_per_h == 0.85
    ice_frac = 0.02                                     # 1,932 kWh: 1,642 kW at most
    cap_kw = 0.85 * ice_frac * store.capacity_kwh
    fc = park_b.forecast(T0, n=300)
    st = ControllerState.fresh(park_b.config)
    snap = park_b.snapshot(AFTERNOON, ice_frac=ice_frac, loads_kw={"cooling": 9000.0})
    d, _ = decide(snap, fc, None, st)
    assert d.reason == "optimal"
    assert -d.setpoints["ice1.melt_set_kw"] <= cap_kw + 1e-6
    assert d.slack_kw["cooling"] < 1.0                  # chillers staged for the rest
    chillers = sum(-d.setpoints[p] for p in d.setpoints
                   if p.endswith(".q_set_kw") and p.split(".")[0] in
                   {"bch1", "bch2", "sch1", "dch1", "dch2", "dch3", "dch4"})
    assert chillers >= 9000.0 - cap_kw - 1.0


def test_melt_short_counts_only_what_the_level_cannot_release(park_b: Park) -> None:
    n = 4
    x = {"ice1.melt": np.array([1000.0, 5000.0, 5000.0, 0.0]),
         "ice1.e": np.array([9000.0, 4000.0, 100.0, 100.0])}
    short = _melt_short(park_b.plant, x, {"ice1": 10000.0}, n)
    # starts of steps: 10,000 / 9,000 / 4,000 / 100 kWh -> caps 8,500 / 7,650 / 3,400 / 85 kW
    np.testing.assert_allclose(short, [0.0, 0.0, 1600.0, 0.0])


def test_ice_makers_stop_when_the_charge_window_ends(park_b: Park) -> None:
    # dch1 started making ice 15 min before the window's end (06:00 local): its 1 h
    # minimum run would hold it in ice mode after 06:00, where charging is not allowed
    # and the store, in charge mode, could not melt. It stops with the window instead.
    from edge.control.commitment import UnitStatus, commit

    p = park_b.plant
    grid = ControllerState.fresh(park_b.config).grid
    t = T0 + 6 * 3600 - 900                      # 05:45 local
    n = grid.n
    z = np.zeros(n)
    cm = commit(p, grid, t, heat_kw=z, cooling_kw=np.full(n, 1000.0), elec_net_kw=z,
                price_import=np.full(n, 0.9), gas_cny_per_m3=3.65, carbon_cny_per_t=82.0,
                ice_kwh={s.name: 0.3 * s.capacity_kwh for s in p.ice_stores},
                status={"dch1": UnitStatus(2, t - 900)},
                relaxed_kw={"dch1.ice": np.where(np.arange(n) == 0, 3000.0, 0.0),
                            "ice1.melt": np.where(np.arange(n) >= 1, 1000.0, 0.0)})
    mode = cm.mode["dch1"]
    assert mode[0] == 2                           # inside the window: still making ice
    assert np.all(mode[1:][cm.charge_ok["ice1"][1:] <= 0] != 2)


def test_a_maker_held_in_ice_mode_is_not_counted_for_cooling(park_b: Park) -> None:
    # 05:45 local, inside the charge window: dch3 has made ice for 45 min and its 1 h
    # minimum run holds it there. The relaxation wants 3.8 MW of chiller cooling, which
    # dch3 alone could give in cooling mode; it cannot switch, so another chiller must
    # be staged for step 0 (before: none was, and the load went unserved).
    from edge.control.commitment import UnitStatus, commit

    p = park_b.plant
    grid = ControllerState.fresh(park_b.config).grid
    t = T0 + 6 * 3600 - 900
    n = grid.n
    z = np.zeros(n)
    step0 = np.where(np.arange(n) == 0, 1.0, 0.0)
    cm = commit(p, grid, t, heat_kw=z, cooling_kw=np.full(n, 3800.0), elec_net_kw=z,
                price_import=np.full(n, 0.9), gas_cny_per_m3=3.65, carbon_cny_per_t=82.0,
                ice_kwh={s.name: 0.5 * s.capacity_kwh for s in p.ice_stores},
                status={"dch3": UnitStatus(2, t - 2700)},
                relaxed_kw={"dch3.c": 3800.0 * step0, "ice1.melt": 3800.0 * (1 - step0)})
    assert cm.mode["dch3"][0] == 2                   # held in ice mode
    cooling = [u for u, m in cm.mode.items() if m[0] == 1]
    caps = {c.name: c.cool_max_kw for c in p.electric_chillers} | {d.name: d.cool_max_kw
                                                                   for d in p.dual_chillers}
    assert sum(caps[u] for u in cooling) >= 3800.0, cooling


def test_of_two_peaks_at_one_price_the_earlier_gets_the_ice(park_b: Park) -> None:
    """Ice kept for later loses 0.5 %/h, so with cooling in the morning and the evening
    peak (same price) and ice for one and a half of them, the morning is served from the
    store. A quadratic loss on melting had spread it over both: 6.5 MW melted here and a
    chiller ran through the morning peak (Park B summer lost 3.6 points of the saving)."""
    morning = T0 + 8 * 3600
    fc = park_b.forecast(T0, n=300)
    hour = ((np.arange(300) + 0.5) * 0.25) % 24
    cooling = np.where(((hour >= 8) & (hour < 11)) | ((hour >= 18) & (hour < 21)), 8000.0, 0.0)
    fc = replace(fc, cooling_kw=cooling)
    d, _ = decide(park_b.snapshot(morning, ice_frac=36_000.0 / 96_579.0), fc, None,
                  ControllerState.fresh(park_b.config))
    assert d.reason == "optimal"
    assert -d.setpoints["ice1.melt_set_kw"] >= 0.97 * 8000.0


def test_step0_takes_the_loads_over_the_hold_of_its_setpoints(park_b: Park) -> None:
    """A tick's setpoints hold until the next tick: at a 1-min tick step 0 is the load of
    that minute, not the mean of the 15 min ahead. Taken as the mean, Park A's heat-led
    CHPs ran a falling heat load down ahead of it (2.0 MWh unserved in the winter
    fortnight at 1-min ticks)."""
    grid = ControllerState.fresh(park_b.config).grid
    k = round((AFTERNOON - T0) / 900.0)
    heat = np.full(300, 2000.0)
    heat[k + 1:] = 3000.0                   # ramps from step k's middle to step k+1's
    fc = replace(park_b.forecast(T0, n=300), heat_kw=heat)
    snap = park_b.snapshot(AFTERNOON + 450.0)                   # no readings: the forecast
    step = _inputs(park_b.config, grid, snap, fc, None).heat_kw[0]
    minute = _inputs(replace(park_b.config, tick_s=60.0), grid, snap, fc, None).heat_kw[0]
    assert np.isclose(step, 2500.0)                             # 450 s ahead
    assert np.isclose(minute, 2000.0 + 1000.0 * 30.0 / 900.0)  # 30 s ahead


def test_the_daemons_controller_holds_step0_for_its_tick() -> None:
    from edge.config import embedded_site_path, load_site
    from edge.runner import controller_config

    site = load_site(embedded_site_path("park-b"), ["control.tick_s=2.0"])
    assert controller_config(site).tick_s == 2.0


def test_every_smoothed_series_is_smoothed_against_its_last_setpoint(park_a: Park, park_b: Park) -> None:
    """Step 0 is smoothed against the last setpoint; a series without one was smoothed
    against 0 on every tick. Ice melting (one 12 MW series against seven chillers) lost
    most: Park B captured 86.6 / 91.7 % of the saving (summer / winter), 88.0 / 94.6 %
    with every last setpoint read back."""
    from edge.control.controller import _prev_kw

    for pk, t in ((park_a, T0 + 12 * 3600), (park_b, AFTERNOON)):
        fc = pk.forecast(T0, n=300)
        _, st = decide(pk.snapshot(t), fc, None, ControllerState.fresh(pk.config))
        assert st.last is not None
        model = st.cache[st.last.key]
        prev = _prev_kw(pk.plant, st.last_setpoints)
        devices = {s for s in model._smoothed_names() if not s.startswith(("slack.", "dump."))}
        assert devices <= set(prev)             # the slacks and dumps are meant to go to 0
        # and as the QP has them: a chiller's cooling now is its cooling set (passive sign
        # flipped); the ice melt is not smoothed (session 10), so it needs none
        if pk is park_b:
            assert "ice1.melt" not in model._smoothed_names()
            chillers = [s for s in devices if s.endswith(".c") and s.startswith(("bch", "sch"))]
            assert chillers
            for s in chillers:
                set_kw = -st.last_setpoints[f"{s[:-2]}.q_set_kw"]
                assert np.isclose(prev[s], set_kw)
                assert np.isclose(prev[s], model.first(st.last.x, s), atol=50.0)


def test_evening_heat_is_stored_at_night_not_left_to_gas(park_b: Park) -> None:
    """The non-green weight is on gas-boiler heat as on imports. On imports alone it made
    gas heat cheaper than heat stored from the valley's imports: at 04:00 with the stores
    empty and 6 MWh of heat due from 16:00, 2.1 MWh of it was planned on the gas boilers
    (Park B summer lost 1.9 points of the captured saving to it)."""
    hour = ((np.arange(300) + 0.5) * 0.25) % 24
    fc = replace(park_b.forecast(T0, n=300), heat_kw=np.where((hour >= 16) & (hour < 22), 1000.0, 0.0),
                 cooling_kw=np.zeros(300))

    def planned(pk: Park) -> tuple[float, float]:
        d, st = decide(pk.snapshot(T0 + 4 * 3600, heat_store_frac=0.0), fc, None,
                       ControllerState.fresh(pk.config))
        assert d.reason == "optimal" and st.last is not None
        model = st.cache[st.last.key]
        gas_kwh = sum(float((model.unit[f"{gb.name}.q"] * st.last.x[model.sl(f"{gb.name}.q")]
                             * model.grid.dt_h).sum()) * 1e3 for gb in pk.plant.gas_boilers)
        return gas_kwh, d.setpoints["ehb1.p_set_kw"] + d.setpoints["ehb2.p_set_kw"]

    gas_kwh, charging_kw = planned(park_b)
    assert gas_kwh < 100.0 and charging_kw > 2000.0
    # the weight on imports alone (DESIGN.md's list), as before
    ob = replace(park_b.plant.objective, non_green_gas_heat_frac=0.0)
    old = replace(park_b, plant=replace(park_b.plant, objective=ob),
                  config=replace(park_b.config, plant=replace(park_b.plant, objective=ob)))
    gas_kwh, charging_kw = planned(old)
    assert gas_kwh > 1000.0 and charging_kw < 2000.0


def test_stored_heat_and_cooling_are_planned_with_a_margin_towards_p90(park_a: Park, park_b: Park) -> None:
    """A store run short meets the peak at the peak price; one left with a margin keeps it
    for tomorrow. So where a store serves them, heat and cooling are planned at P50 + 0.4 x
    (P90 - P50): Park B captured 89.8 / 95.4 -> 90.9 / 95.9 % of the saving."""
    assert park_b.config.store_margin_frac == 0.4
    grid = ControllerState.fresh(park_b.config).grid
    fc = park_b.forecast(T0, n=300)
    wide_fc = replace(fc, heat_p90_kw=fc.heat_kw + 1000.0, cooling_p90_kw=fc.cooling_kw + 2000.0)
    snap = park_b.snapshot(AFTERNOON)                       # no load readings: the forecast
    base = _inputs(park_b.config, grid, snap, fc, None)
    wide = _inputs(park_b.config, grid, snap, wide_fc, None)
    assert np.allclose(wide.heat_kw, base.heat_kw + 400.0)
    assert np.allclose(wide.cooling_kw, base.cooling_kw + 800.0)
    off = _inputs(replace(park_b.config, store_margin_frac=0.0), grid, snap, wide_fc, None)
    assert np.array_equal(off.heat_kw, base.heat_kw) and np.array_equal(off.cooling_kw, base.cooling_kw)
    # Park A stores neither heat nor cooling: its loads are planned on the P50
    grid_a = ControllerState.fresh(park_a.config).grid
    fa = park_a.forecast(T0, n=300)
    snap_a = park_a.snapshot(AFTERNOON)
    a50 = _inputs(park_a.config, grid_a, snap_a, fa, None)
    a90 = _inputs(park_a.config, grid_a, snap_a, replace(fa, heat_p90_kw=fa.heat_kw + 1000.0,
                                                        cooling_p90_kw=fa.cooling_kw + 1000.0), None)
    assert np.array_equal(a90.heat_kw, a50.heat_kw) and np.array_equal(a90.cooling_kw, a50.cooling_kw)


def test_the_daemon_hands_the_heat_and_cooling_p90_to_the_controller() -> None:
    from edge.config import embedded_site_path, load_site
    from edge.runner import ControlRunner

    runner = ControlRunner(load_site(embedded_site_path("park-b")))
    p50 = {t: np.full(96, 1000.0) for t in runner.sources}
    p90 = {t: np.full(96, 1600.0) for t in runner.sources}
    fc = runner._control_forecast(T0, p50, Snapshot(T0, {}), p90)
    assert fc.heat_p90_kw is not None and np.allclose(fc.heat_p90_kw, 1.6 * fc.heat_kw)
    assert fc.cooling_p90_kw is not None and np.allclose(fc.cooling_p90_kw, 1.6 * fc.cooling_kw)
    # a target without a P90 (persisted: no complete step measured yet): no margin for it
    del p90["park_b_cooling"]
    fc = runner._control_forecast(T0, p50, Snapshot(T0, {}), p90)
    assert fc.cooling_p90_kw is None and fc.heat_p90_kw is not None


def test_a_battery_charging_against_the_import_limit_leaves_headroom(park_a: Park) -> None:
    """The battery's setpoint holds through the tick: charged against the import limit, PV
    or wind dropping within the tick had the meter short and load unserved (Park A summer
    at 1-min ticks: 82 kWh). Charging gives up 0.2 x the renewables' output below the limit."""
    assert park_a.config.import_headroom_frac == 0.2
    fc = park_a.forecast(T0, n=300)
    fc = replace(fc, pv_kw=0.3 * fc.pv_kw, wind_kw=0.3 * fc.wind_kw)     # a dull deep valley
    snap = park_a.snapshot(T0 + 14.5 * 3600, soc_frac=0.3)
    limit = park_a.plant.grid.import_max_kw
    d0, _ = decide(snap, fc, None, ControllerState.fresh(replace(park_a.config, import_headroom_frac=0.0)))
    d, _ = decide(snap, fc, None, ControllerState.fresh(park_a.config))
    assert d0.reason == d.reason == "optimal"
    assert d0.flows_kw["grid.imp"] > limit - 50.0                     # at the limit without it
    ren = d.flows_kw["pv1.p"] + d.flows_kw["wind1.p"]
    assert ren > 1000.0
    assert d.flows_kw["grid.imp"] <= limit - 0.2 * ren + 1e-6
    cut = d0.flows_kw["bess1.ch"] - d.flows_kw["bess1.ch"]
    assert np.isclose(cut, d0.flows_kw["grid.imp"] - d.flows_kw["grid.imp"], atol=1e-6) and cut > 100.0
    assert abs(d.residual_kw["electric"]) < 1e-6 and np.isclose(d.setpoints["bess1.p_set_kw"], d.flows_kw["bess1.ch"])


@pytest.mark.parametrize("soc_frac", [0.11, 0.12, 0.3, 0.6])
def test_a_battery_at_the_export_limit_is_asked_for_what_it_can_give(park_a: Park, soc_frac: float) -> None:
    """Exporting at the limit and discharging, a battery whose converter backs off at the
    limit (``export_limiter``) is asked for its rating, or what it holds above its minimum for
    the tick: it then fills the export when PV or wind fall short of their forecast within
    the tick. Without the limiter the setpoint is the plan's discharge."""
    fc = park_a.forecast(T0)
    snap = park_a.snapshot(T0 + 8 * 3600, soc_frac=soc_frac)            # 08:00, peak export
    b = park_a.plant.batteries[0]
    assert b.export_limiter
    d, _ = decide(snap, fc, None, ControllerState.fresh(park_a.config))
    assert d.reason == "optimal"
    assert d.flows_kw["grid.exp"] >= park_a.plant.grid.export_max_kw - _AT_LIMIT_KW
    assert 0.0 < d.flows_kw["bess1.dis"] < b.p_discharge_max_kw
    above_min_kwh = (soc_frac - b.soc_min_frac) * b.capacity_kwh
    fill_kw = min(b.p_discharge_max_kw, above_min_kwh * b.eta_discharge / 0.25)      # one 15-min step
    assert d.setpoints["bess1.p_set_kw"] == pytest.approx(-max(fill_kw, d.flows_kw["bess1.dis"]))
    assert d.setpoints["bess1.p_set_kw"] < -d.flows_kw["bess1.dis"] - 100.0
    plant = replace(park_a.plant, batteries=(replace(b, export_limiter=False),))
    d0, _ = decide(snap, fc, None, ControllerState.fresh(replace(park_a.config, plant=plant)))
    assert d0.setpoints["bess1.p_set_kw"] == pytest.approx(-d0.flows_kw["bess1.dis"])


def test_a_battery_whose_level_is_unknown_keeps_the_plans_setpoint_at_the_limit(park_a: Park) -> None:
    """A stale state of charge: the shifted plan stands in, and the setpoint is its discharge,
    not a fill sized on a level nobody read."""
    fc = park_a.forecast(T0)
    t = T0 + 8 * 3600
    d1, st = decide(park_a.snapshot(t, soc_frac=0.6), fc, None, ControllerState.fresh(park_a.config))
    assert d1.setpoints["bess1.p_set_kw"] == pytest.approx(-park_a.plant.batteries[0].p_discharge_max_kw)
    d2, _ = decide(park_a.snapshot(t + 1, soc_frac=0.6, quality=Quality.STALE), fc, None, st)
    assert d2.reason == "shifted_previous"
    assert d2.flows_kw["grid.exp"] >= park_a.plant.grid.export_max_kw - _AT_LIMIT_KW and d2.flows_kw["bess1.dis"] > 0.0
    assert d2.setpoints["bess1.p_set_kw"] == pytest.approx(-d2.flows_kw["bess1.dis"])


def test_a_battery_below_the_export_limit_keeps_the_plans_setpoint(park_a: Park) -> None:
    """Off the limit (the evening peak with the battery low: the plan exports 3.5 MW) or
    charging, the setpoint is the plan's: an extra discharge would sell energy the plan keeps."""
    fc = park_a.forecast(T0)
    for t, soc in ((T0 + 18 * 3600, 0.3), (T0 + 10 * 3600, 0.6)):
        d, _ = decide(park_a.snapshot(t, soc_frac=soc), fc, None, ControllerState.fresh(park_a.config))
        below = d.flows_kw["grid.exp"] < park_a.plant.grid.export_max_kw - _AT_LIMIT_KW
        assert below or d.flows_kw["bess1.dis"] == 0.0
        assert d.setpoints["bess1.p_set_kw"] == pytest.approx(d.flows_kw["bess1.ch"] - d.flows_kw["bess1.dis"])


def test_a_shortfall_within_the_solvers_tolerance_is_served_not_called_unserved(park_b: Park) -> None:
    """OSQP stops at a loose tolerance: at 03:00 a few kW of heat came out of the QP a few
    watts short, and the projection called the rest unserved with the gas boilers idle
    (Park B summer at 15-min steps: 68 kWh of heat unserved in the fortnight, 0.06 after).
    Heaters and chillers with room take such a shortfall first."""
    fc = replace(park_b.forecast(T0, n=300), heat_kw=np.zeros(300))
    for load_kw in (5.0, 20.0):
        snap = park_b.snapshot(T0 + 3 * 3600, loads_kw={"heating": load_kw}, heat_store_frac=0.05)
        d, _ = decide(snap, fc, None, ControllerState.fresh(park_b.config))
        assert d.reason == "optimal"
        heat = sum(v for k, v in d.flows_kw.items()
                   if k.endswith(".q") and k.split(".")[0].startswith(("gb", "ehb")))
        assert d.slack_kw["heat"] == 0.0 and heat >= load_kw - 1e-9, (load_kw, d.slack_kw, heat)
        assert abs(d.residual_kw["heat"]) < 1e-6


def _gas_setpoints_over_a_day(park_b: Park, store_frac: float = 0.5) -> list[float]:
    st = ControllerState.fresh(park_b.config)
    out: list[float] = []
    for h in range(24):
        t = T0 + h * 3600
        d, st = decide(park_b.snapshot(t, heat_store_frac=store_frac), park_b.forecast(t, n=120),
                       None, st)
        out += [-d.setpoints[f"gb{i}.q_set_kw"] for i in (1, 2, 3)]
    return out


def test_a_gas_boiler_is_not_left_firing_at_a_solver_trace(
        park_b: Park, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the plant a boiler that fires at all picks up heat above the forecast before
    the stores do; at OSQP's traces (0.03-1 kW here) Park B burned gas for heat its stores
    held. With the stores half full every gas setpoint is 0 or a real plan."""
    sp = _gas_setpoints_over_a_day(park_b)
    assert all(v == 0.0 or v >= project.TRACE_KW for v in sp)
    # gas is still planned where it is due: stores at 5 % cannot carry the heat
    assert any(v >= 100.0 for v in _gas_setpoints_over_a_day(park_b, 0.05))
    monkeypatch.setattr(project, "TRACE_KW", 0.0)          # no trace zeroed
    assert any(0.0 < v < 10.0 for v in _gas_setpoints_over_a_day(park_b))


def test_a_gas_boiler_fires_where_the_stores_cannot_carry_the_reserve(park_b: Park) -> None:
    """22:15, the valley: the heat-storage boilers take the night's heat, but their stores
    are nearly dry (36 kWh each against 300 kW of load). A boiler that fires at all is the
    unit that picks up heat above the forecast, so one is kept firing at a trace (Park B
    summer at 15-min steps left 12 kW unserved there with every boiler cold)."""
    n = 300
    fc = replace(park_b.forecast(T0, n=n), heat_kw=np.full(n, 300.0))
    t = T0 + 22.25 * 3600
    snap = park_b.snapshot(t, loads_kw={"heating": 300.0}, heat_store_frac=0.002)
    d, _ = decide(snap, fc, None, ControllerState.fresh(park_b.config))
    assert d.reason == "optimal"
    gas = [-d.setpoints[f"gb{i}.q_set_kw"] for i in (1, 2, 3)]
    assert max(gas) >= project.TRACE_KW, gas
    assert abs(d.residual_kw["heat"]) < 1e-6 and d.slack_kw["heat"] < 1e-9


def test_a_gas_boiler_fires_where_the_stores_are_dry_whatever_the_forecast(park_b: Park) -> None:
    """00:30, a summer night: the stores hold 9 kWh each and the heat forecast is 5 kW, under
    the trace. Stores that hold less than an hour of a trace cannot pick up a load above the
    forecast, so a boiler is kept firing at one (Park B summer, 48-h horizon: 10 kW
    forecast, 53 kW came, 2.4 kWh unserved with every boiler cold)."""
    n = 300
    fc = replace(park_b.forecast(T0, n=n), heat_kw=np.full(n, 5.0))
    t = T0 + 0.5 * 3600
    snap = park_b.snapshot(t, loads_kw={"heating": 5.0}, heat_store_frac=9.0 / 18000.0)
    d, _ = decide(snap, fc, None, ControllerState.fresh(park_b.config))
    assert d.reason == "optimal"
    gas = [-d.setpoints[f"gb{i}.q_set_kw"] for i in (1, 2, 3)]
    assert max(gas) >= project.TRACE_KW, gas
    assert abs(d.residual_kw["heat"]) < 1e-6 and d.slack_kw["heat"] < 1e-9


def test_the_heat_networks_deviation_is_made_up_at_step0(park_a: Park) -> None:
    """Park A's district heating water stores what the CHPs and the load do not match; the
    controller reads its supply temperature and makes the deficit up over restore_h."""
    heat = next(ld for ld in park_a.plant.loads if ld.kind == "heat")
    assert heat.network_point == "load_heat.supply_dev_k" and heat.network_kwh_per_k == 300.0
    assert heat.network_restore_h == 4.0
    grid = ControllerState.fresh(park_a.config).grid
    fc = park_a.forecast(T0, n=300)
    snap = park_a.snapshot(AFTERNOON)
    base = _inputs(park_a.config, grid, snap, fc, None).heat_kw

    def with_dev(dev_k: float) -> np.ndarray:
        pts = dict(snap.points)
        pts[heat.network_point] = PointValue(dev_k, "K", Quality.GOOD, snap.ts)
        return _inputs(park_a.config, grid, Snapshot(snap.ts, pts), fc, None).heat_kw

    # 1 K below: 300 kWh short, made up over 4 h: 75 kW more at step 0; later steps as forecast
    low = with_dev(-1.0)
    assert low[0] == pytest.approx(base[0] + 75.0)
    assert np.array_equal(low[1:], base[1:])
    # 2 K above: the step asks 150 kW less, never below nothing
    assert with_dev(2.0)[0] == pytest.approx(max(base[0] - 150.0, 0.0))
    assert with_dev(50.0)[0] == 0.0
    # a stale reading is no reading
    pts = dict(snap.points)
    pts[heat.network_point] = PointValue(-1.0, "K", Quality.GOOD, snap.ts - 3600.0)
    assert _inputs(park_a.config, grid, Snapshot(snap.ts, pts), fc, None).heat_kw[0] == base[0]


def test_the_absorption_chillers_cooling_near_its_rating_is_backed_by_an_electric_chiller(
        park_a: Park) -> None:
    from edge.control.commitment import RESERVE_FRAC, _round_relaxed

    grid = ControllerState.fresh(park_a.config).grid
    n = grid.n
    rating = park_a.plant.absorption_chillers[0].cool_max_kw
    charge_ok: dict[str, np.ndarray] = {}
    for kw, started in ((rating / (1.0 + RESERVE_FRAC) - 50.0, False),
                        (rating / (1.0 + RESERVE_FRAC) + 50.0, True), (rating, True)):
        x = {"absc1.c": np.full(n, kw), "ch1.c": np.zeros(n), "ch2.c": np.zeros(n)}
        want = _round_relaxed(park_a.plant, x, {}, charge_ok, grid, T0, RESERVE_FRAC, {})
        assert bool(want["ch1"][0] or want["ch2"][0]) is started, kw


def test_a_wind_model_starts_from_the_farms_output_and_fades_to_the_model(park_a: Park) -> None:
    """The wind model reads the farm's last output but is worse than it held flat for the
    first 45 min, so its steps start from the reading and lean on it less every half-life
    (Park A winter, 15-min steps: -964 / -241 / -1,706 CNY on three seeds); the last
    tick's forecast plays no part (its miss carried on had counted twice, session 14). PV,
    and wind on a naive baseline (no P90: yesterday's output), take their miss at step 0
    and carry it on."""
    grid = ControllerState.fresh(park_a.config).grid
    naive = park_a.forecast(T0, n=300)
    fc = replace(naive, wind_p90_kw=1.2 * np.asarray(naive.wind_kw), pv_p90_kw=None)  # a model's
    base = park_a.snapshot(AFTERNOON)
    pts = dict(base.points)
    for r in park_a.plant.renewables:
        pts[r.avail_point] = PointValue(3000.0, "kW", Quality.GOOD, AFTERNOON)
    snap = Snapshot(AFTERNOON, pts)
    names = {r.kind: r.name for r in park_a.plant.renewables}
    prev = {n: _Trace(T0, 900.0, np.full(300, 2500.0)) for n in names.values()}   # +500 kW miss
    pv, wind = names["pv"], names["wind"]
    hl = park_a.config.wind_anchor_half_life_h
    assert hl > 0
    mid = grid.start_h + grid.dt_h / 2
    weight = 0.5 ** ((mid - mid[0]) / hl)
    for f in (fc, naive):
        first = _inputs(park_a.config, grid, snap, f, None)
        nxt = _inputs(park_a.config, grid, snap, f, None, prev)
        bare = _inputs(park_a.config, grid, base, f, None)                        # no readings
        assert np.isclose(nxt.renewable_kw[pv][0], bare.renewable_kw[pv][0] + 500.0)
        assert np.all(nxt.renewable_kw[pv][1:4] > first.renewable_kw[pv][1:4] + 100.0)
        if f is fc:
            model = bare.renewable_kw[wind]
            want = np.clip(model + (3000.0 - model[0]) * weight, 0.0, None)
            want[0] = 3000.0
            for got in (first, nxt):                   # the last tick's forecast plays no part
                assert np.allclose(got.renewable_kw[wind], want)
            assert abs(want[0] - model[0]) > 100.0     # the case moves something
            far = mid - mid[0] > 6.0
            assert np.allclose(nxt.renewable_kw[wind][far], model[far], atol=1.0)
        else:                                          # the baseline has not seen the miss
            assert np.isclose(nxt.renewable_kw[wind][0], bare.renewable_kw[wind][0] + 500.0)
            assert np.all(nxt.renewable_kw[wind][1:4] > first.renewable_kw[wind][1:4] + 100.0)
    # the half-life at 0: the reading for step 0 only, the model's from step 1
    off = _inputs(replace(park_a.config, wind_anchor_half_life_h=0.0), grid, snap, fc, None, prev)
    bare = _inputs(park_a.config, grid, base, fc, None)
    assert off.renewable_kw[wind][0] == 3000.0
    assert np.allclose(off.renewable_kw[wind][1:], bare.renewable_kw[wind][1:])
