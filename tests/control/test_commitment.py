"""Commitment: min up/down, ice never charges and melts at once, night-only charging."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from edge.control import ControllerState, Decision, Plan, controller, decide
from edge.control.commitment import RESERVE_FRAC, STORE_RESERVE_FRAC, UnitStatus, commit, in_window, min_up_down
from edge.control.controller import RELAXED
from edge.control.scenario import T0, Park

STEP_S = np.arange(8) * 900.0


def test_min_up_keeps_a_fresh_unit_on() -> None:
    want = np.array([0, 0, 0, 0, 0, 0, 0, 0])
    started = UnitStatus(1, since_ts=-1800.0)          # on for 30 min, min up 1 h
    out = min_up_down(want, started, 0.0, STEP_S, 1.0, 1.0)
    assert list(out) == [1, 1, 0, 0, 0, 0, 0, 0]


def test_min_down_keeps_a_stopped_unit_off_and_spans_hold() -> None:
    want = np.array([1, 1, 1, 0, 1, 1, 1, 1])
    stopped = UnitStatus(0, since_ts=-900.0)
    out = min_up_down(want, stopped, 0.0, STEP_S, 1.0, 1.0)
    assert list(out) == [0, 0, 0, 0, 1, 1, 1, 1]        # off until 1 h, then no short gap
    # a change of mode (cooling to ice) counts as a stop and a start
    out = min_up_down(np.array([2, 2, 2, 2, 2, 2, 2, 2]), UnitStatus(1, -600.0), 0.0,
                      STEP_S, 1.0, 1.0)
    assert list(out[:4]) == [1, 1, 1, 1] and out[4] == 2      # on for 10 min + 50 min


def test_no_period_shorter_than_minimum() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        want = rng.integers(0, 2, 32)
        out = min_up_down(want, UnitStatus(int(want[0]), -1e9), 0.0, np.arange(32) * 900.0,
                          2.0, 1.0)
        changes = np.flatnonzero(np.diff(out)) + 1
        runs = np.diff(np.concatenate([changes, [32]]))
        for start, length in zip(changes[:-1], runs[:-1], strict=True):
            need = 8 if out[start] == 1 else 4         # 2 h up, 1 h down at 15 min
            assert length >= need


def test_night_window_in_local_time(park_b: Park) -> None:
    tz = park_b.plant.timezone
    ts = T0 + np.array([21.99, 22.0, 3.0, 5.99, 6.0, 12.0]) * 3600
    assert list(in_window(tz, ts, (22, 6))) == [False, True, True, True, False, False]


def test_commitment_from_plan_and_status(park_a: Park) -> None:
    fc = park_a.forecast(T0)
    n = 96
    plan = Plan("p", T0, 900.0, np.full(n, 0.9), np.full(n, 0.3), np.full(n, 0.58), 3.65, 82.0,
                commitments={"dg1": np.where(np.arange(n) < 40, 1.0, np.nan)})
    st = ControllerState.fresh(park_a.config)
    d, st = decide(park_a.snapshot(T0 + 3600), fc, plan, st)
    assert d.reason == "optimal"
    assert d.setpoints["dg1.p_set_kw"] <= -0.3 * 2000 + 1e-6    # on at least at min load
    assert st.status["dg1"].mode == 1
    # the plan now says off; the diesel's 2 h minimum up time keeps it on
    off = Plan("p2", T0, 900.0, plan.import_cny_per_kwh, plan.export_cny_per_kwh,
               plan.grid_co2_kg_per_kwh, 3.65, 82.0, commitments={"dg1": np.zeros(n)})
    d2, _ = decide(park_a.snapshot(T0 + 3600 + 1800), fc, off, st)
    assert d2.setpoints["dg1.p_set_kw"] < 0


def _day(park_b: Park, step_s: float = 900.0) -> list[tuple[float, dict[str, float]]]:
    st = ControllerState.fresh(park_b.config)
    fc = park_b.forecast(T0, n=300)
    ice = 0.1
    out = []
    for i in range(int(86400 / step_s)):
        t = T0 + i * step_s
        d, st = decide(park_b.snapshot(t, ice_frac=ice), fc, None, st)
        assert d.reason == "optimal", d.detail
        out.append((t, dict(d.setpoints)))
        f = d.flows_kw
        made = sum(f.get(f"dch{j}.ice", 0.0) for j in range(1, 5))
        ice += (made * 0.9 - f.get("ice1.melt", 0.0) / 0.96) * step_s / 3600 / 96579
        ice = min(max(ice, 0.0), 1.0)
    return out


def test_ice_never_charges_and_melts_at_once_and_only_at_night(park_b: Park) -> None:
    hours = []
    for t, sp in _day(park_b, step_s=1800.0):
        charging = any(sp[f"dch{j}.mode_set"] == 2 and sp[f"dch{j}.q_set_kw"] < -1e-6
                       for j in range(1, 5))
        melting = sp["ice1.melt_set_kw"] < -1e-6
        assert not (charging and melting)
        h = ((t - T0) / 3600) % 24
        if charging:
            assert h >= 22 or h < 6, h
        hours.append((charging, melting))
    # one charging stretch a night and no flip-flop between charging and melting: over
    # 00:00-24:00 that is night, day, next night (at most two switches)
    modes = [("c" if c else "m" if m else "-") for c, m in hours]
    switches = sum(1 for a, b in itertools.pairwise(modes) if {a, b} == {"c", "m"})
    assert "c" in modes and "m" in modes and switches <= 2


def test_short_off_gaps_are_bridged() -> None:
    from edge.control.commitment import fill_gaps
    want = np.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1])
    out = fill_gaps(want, 1, np.arange(12) * 900.0, 1.0)
    assert list(out) == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]    # 30 min gap bridged, 90 not
    assert list(fill_gaps(np.array([0, 1]), 1, np.arange(2) * 900.0, 1.0)) == [1, 1]
    # another mode after a short gap starts early: cooling -> ice goes straight over
    # (a mode change is a stop and a start; the gap would have needed the down time)
    assert list(fill_gaps(np.array([0, 2]), 1, np.arange(2) * 900.0, 1.0)) == [2, 2]
    assert list(fill_gaps(np.array([2, 0, 1, 1]), 2, np.arange(4) * 900.0, 1.0)) == [2, 1, 1, 1]
    # a long gap stays
    assert list(fill_gaps(np.array([2, 0, 0, 0, 0, 1]), 2, np.arange(6) * 900.0, 1.0)) == [2, 0, 0, 0, 0, 1]


def test_a_maker_cools_up_to_the_charge_window_rather_than_stopping_before_it() -> None:
    from edge.control.commitment import fill_gaps
    # 1-min ticks at 21:59: cooling since 21:00, ice mode wanted from 22:00 and not allowed
    # before it; stopping for that minute would hold the maker off till 23:00
    ticks = np.arange(4) * 60.0
    want = np.array([0, 2, 2, 2])
    window = {2: np.array([False, True, True, True])}
    assert list(fill_gaps(want, 1, ticks, 1.0, allowed=window)) == [1, 2, 2, 2]
    # without the window the ice mode starts early, as for any next mode
    assert list(fill_gaps(want, 1, ticks, 1.0)) == [2, 2, 2, 2]
    # a maker that is off stays off, and so does one that stops for good
    assert list(fill_gaps(want, 0, ticks, 1.0, allowed=window)) == [0, 2, 2, 2]
    assert list(fill_gaps(np.array([0, 0, 0, 0]), 1, ticks, 1.0, allowed=window)) == [0, 0, 0, 0]
    # a gap as long as the down time is a stop the maker can restart from
    steps = np.arange(6) * 900.0
    assert list(fill_gaps(np.array([0, 0, 0, 0, 2, 2]), 1, steps, 1.0,
                          allowed={2: np.array([0, 0, 0, 0, 1, 1], bool)})) == [0, 0, 0, 0, 2, 2]
    # within the gap the ice mode starts where the window allows it
    assert list(fill_gaps(np.array([0, 0, 2]), 1, ticks[:3], 1.0,
                          allowed={2: np.array([False, True, True])})) == [1, 2, 2]


def _relaxed_commit(park: Park, relaxed: dict[str, np.ndarray], status: dict[str, UnitStatus] | None = None,
                    *, at_h: float = 12.0, ice_kwh: float = 0.0,
                    hold_frac: float = 1.0) -> dict[str, np.ndarray]:
    p = park.plant
    grid = ControllerState.fresh(park.config).grid
    n = grid.n
    z = np.zeros(n)
    cm = commit(p, grid, T0 + at_h * 3600, heat_kw=z, cooling_kw=z, elec_net_kw=z, price_import=np.full(n, 0.9),
                gas_cny_per_m3=3.65, carbon_cny_per_t=82.0, ice_kwh={s.name: ice_kwh for s in p.ice_stores},
                status=status or {}, relaxed_kw={k: np.full(n, v) if np.isscalar(v) else v
                                                 for k, v in relaxed.items()},
                hold_frac=hold_frac)
    return dict(cm.mode)


def test_relaxed_small_cooling_goes_to_a_unit_that_can_run_that_low(park_b: Park) -> None:
    # 300 kW of chiller cooling: the base-load chillers (4,924 kW) cannot run below their
    # minimum load; the variable-speed screw chiller can, so it is the one started
    modes = _relaxed_commit(park_b, {"bch1.c": 300.0})
    on = [u for u, m in modes.items() if m[0] == 1]
    assert on == ["sch1"], on


def test_relaxed_totals_staged_with_reserve(park_b: Park) -> None:
    # 9,000 kW on the base-load chillers: with the 15 % reserve (10,350 kW) two 4,924 kW
    # units are not enough, a third (the screw chiller) runs too
    need = 9000.0 * (1 + RESERVE_FRAC)
    modes = _relaxed_commit(park_b, {"bch1.c": 4500.0, "bch2.c": 4500.0})
    on = sorted(u for u, m in modes.items() if m[0] == 1)
    caps = {c.name: c.cool_max_kw for c in park_b.plant.electric_chillers}
    caps |= {d.name: d.cool_max_kw for d in park_b.plant.dual_chillers}
    assert sum(caps[u] for u in on) >= need
    assert {"bch1", "bch2"} <= set(on) and len(on) == 3


def test_a_store_melting_near_its_cap_gets_a_chiller_beside_it(park_b: Park) -> None:
    # 11,500 kW of melt at noon, above the 11,900 kW release cap with the 15 % reserve and
    # no chiller cooling in the relaxation: the screw chiller (the smallest minimum load)
    # is on beside the store so that a load above the forecast finds a unit with room;
    # at 8,000 kW of melt the store's own headroom is the reserve and no chiller starts
    at_cap = _relaxed_commit(park_b, {"ice1.melt": 11500.0, "ice1.e": 60000.0}, ice_kwh=60000.0)
    assert {u for u, m in at_cap.items() if m[0] == 1} == {"sch1"}
    below = _relaxed_commit(park_b, {"ice1.melt": 8000.0, "ice1.e": 60000.0}, ice_kwh=60000.0)
    assert not any(m[0] for m in below.values())
    # deciding every minute the reserve is for a minute's rise: 11,500 kW leaves room
    minute = _relaxed_commit(park_b, {"ice1.melt": 11500.0, "ice1.e": 60000.0}, ice_kwh=60000.0,
                             hold_frac=1 / 15)
    assert not any(m[0] for m in minute.values())


def test_a_store_at_its_cap_beside_a_nearly_full_chiller_keeps_room_at_step_0(park_b: Park) -> None:
    # Park B summer, 13:30 on 12 July at 15-min steps (seed 0): the store melting at its
    # 11,900 kW cap, the screw chiller planned at 1,271 of its 1,597 kW. The chillers'
    # 15 % reserve is met (1,462 kW), but the two together have 326 kW of room for a
    # 13.2 MW load: the load came 3.7 % above its forecast and 57 kW went unserved.
    # Step 0 now keeps STORE_RESERVE_FRAC of the load as room, so a second chiller runs
    relaxed = {"ice1.melt": 11900.0, "ice1.e": 60000.0, "sch1.c": 1271.0}
    running = {"sch1": UnitStatus(1, since_ts=T0 + 10 * 3600)}      # on since 10:00
    modes = _relaxed_commit(park_b, relaxed, running, ice_kwh=60000.0)
    on = {u for u, m in modes.items() if m[0] == 1}
    caps = {c.name: c.cool_max_kw for c in park_b.plant.electric_chillers}
    caps |= {d.name: d.cool_max_kw for d in park_b.plant.dual_chillers}
    assert "sch1" in on and len(on) == 2, on
    assert sum(caps[u] for u in on) - 1271.0 >= STORE_RESERVE_FRAC * (11900.0 + 1271.0)
    # only step 0: the later steps keep the screw chiller alone (decided again later)
    assert {u for u, m in modes.items() if m[2] == 1} == {"sch1"}
    # with the store 1 MW below its cap, its own room is the reserve
    below = _relaxed_commit(park_b, {**relaxed, "ice1.melt": 10900.0}, running, ice_kwh=60000.0)
    assert {u for u, m in below.items() if m[0] == 1} == {"sch1"}
    # deciding every minute the reserve is for a minute's rise: the screw chiller's room is enough
    minute = _relaxed_commit(park_b, relaxed, running, ice_kwh=60000.0, hold_frac=1 / 15)
    assert {u for u, m in minute.items() if m[0] == 1} == {"sch1"}


def test_the_reserve_beside_a_melting_store_is_the_smallest_unit_not_the_running_one(park_b: Park) -> None:
    # Park B summer, 08:00: the store melts 11.4 MW of its 11.9 MW cap, so a chiller runs
    # beside it for the reserve. A dual chiller started at 07:00 for the morning ramp has
    # run its 1 h minimum: the screw chiller (160 kW minimum) takes the reserve and the
    # dual chiller (1,372 kW minimum) stops, instead of running at its minimum into the peak
    relaxed = {"ice1.melt": 11400.0, "ice1.e": 80000.0}
    ramp = {"dch1": UnitStatus(1, since_ts=T0 + 7 * 3600)}
    modes = _relaxed_commit(park_b, relaxed, ramp, at_h=8.0, ice_kwh=80000.0)
    assert {u for u, m in modes.items() if m[0] == 1} == {"sch1"}
    # started at 07:30, its minimum run holds it on till 08:30: it is the reserve, no second unit
    held = {"dch1": UnitStatus(1, since_ts=T0 + 7.5 * 3600)}
    modes = _relaxed_commit(park_b, relaxed, held, at_h=8.0, ice_kwh=80000.0)
    assert {u for u, m in modes.items() if m[0] == 1} == {"dch1"}


def test_step_0_is_staged_for_the_load_it_ends_on(park_b: Park) -> None:
    # a morning ramp: 1,000 kW of chiller cooling now, 2,300 kW the next step. The screw
    # chiller (1,597 kW) covers now with the reserve, not the ramp's end: step 0 is staged
    # for the next step's need too, so a base-load chiller runs from now
    n = ControllerState.fresh(park_b.config).grid.n
    ramp = np.where(np.arange(n) == 0, 1000.0, 2300.0)
    modes = _relaxed_commit(park_b, {"sch1.c": ramp})
    caps = {c.name: c.cool_max_kw for c in park_b.plant.electric_chillers}
    on = [u for u, m in modes.items() if m[0] == 1]
    assert sum(caps[u] for u in on) >= 2300.0 * (1 + RESERVE_FRAC), on
    flat = _relaxed_commit(park_b, {"sch1.c": 1000.0})
    assert [u for u, m in flat.items() if m[0] == 1] == ["sch1"]
    # deciding every minute, step 0's setpoints hold a fifteenth of the step: the ramp is
    # met by the ticks that come nearer to it
    minute = _relaxed_commit(park_b, {"sch1.c": ramp}, hold_frac=1 / 15)
    assert [u for u, m in minute.items() if m[0] == 1] == ["sch1"]


def test_the_ramp_term_leaves_out_a_melt_drop_the_store_can_carry(park_b: Park) -> None:
    # Park B summer, 14:45: the plan melts 11 MW now and hands the load to the two
    # base-load chillers at 15:00. The store could keep melting (its cap has room next
    # step), so step 0 is not staged for the hand-over: the base-load chillers start with
    # the next quarter hour's plan, not at their minimum a quarter hour early in the peak
    n = ControllerState.fresh(park_b.config).grid.n
    first = np.arange(n) == 0
    relaxed = {"ice1.melt": np.where(first, 11000.0, 0.0), "sch1.c": np.where(first, 500.0, 0.0),
               "bch1.c": np.where(first, 0.0, 4950.0), "bch2.c": np.where(first, 0.0, 4950.0)}
    full = _relaxed_commit(park_b, {**relaxed, "ice1.e": np.full(n, 60000.0)}, at_h=14.75, ice_kwh=60000.0)
    assert not {"bch1", "bch2"} & {u for u, m in full.items() if m[0] == 1}, full
    # a store nearly spent at step 0's end (3 MWh: 2.55 MW of release next step) cannot
    # carry the hand-over, and the ramp term stages the chillers for it as before
    spent = _relaxed_commit(park_b, {**relaxed, "ice1.e": np.full(n, 3000.0)}, at_h=14.75, ice_kwh=60000.0)
    assert {"bch1", "bch2"} <= {u for u, m in spent.items() if m[0] == 1}, spent


def test_no_ice_maker_started_for_cooling_where_its_minimum_run_reaches_the_window(park_b: Park) -> None:
    # 9,900 kW on the base-load chillers, 11,385 kW with the reserve: both base-load units
    # and 1,537 kW more. At noon the dual chiller (COP 4.6) takes the rest before the
    # screw chiller (4.5); at 21:30 its 1 h minimum run would reach into the 22:00 charge
    # window, so the screw chiller takes it and the maker stays free to make ice
    relaxed = {"bch1.c": 4950.0, "bch2.c": 4950.0}
    noon = {u for u, m in _relaxed_commit(park_b, relaxed).items() if m[0] == 1}
    evening = {u for u, m in _relaxed_commit(park_b, relaxed, at_h=21.5).items() if m[0] == 1}
    assert noon == {"bch1", "bch2", "dch1"}, noon
    assert evening == {"bch1", "bch2", "sch1"}, evening


def test_a_maker_held_in_cooling_cools_and_the_others_make_ice(park_b: Park) -> None:
    # 23:00, dch1 cooling for 30 min of its 1 h minimum run: it cannot make ice yet, so the
    # ice goes to the other three and dch1 carries the cooling; no chiller is started for it
    held = {"dch1": UnitStatus(1, since_ts=T0 + 22.5 * 3600)}
    relaxed = {f"dch{j}.ice": 3165.0 for j in range(1, 5)} | {"dch1.c": 1500.0}
    modes = _relaxed_commit(park_b, relaxed, held, at_h=23.0)
    assert {u: int(m[0]) for u, m in modes.items() if m[0]} == {"dch1": 1, "dch2": 2, "dch3": 2, "dch4": 2}


def test_relaxed_chp_running_unit_first_and_diesel_traces_ignored(park_a: Park) -> None:
    # 3 MW of CHP power: one unit; the one already running keeps it; 50 kW of relaxed
    # diesel is below half its minimum load (300 kW) and starts nothing
    status = {"chp2": UnitStatus(1, T0)}
    modes = _relaxed_commit(park_a, {"chp1.p": 1500.0, "chp2.p": 1500.0, "dg1.p": 50.0}, status)
    assert modes["chp2"][0] == 1 and modes["chp1"][0] == 0
    assert not modes["dg1"].any() and not modes["dg2"].any()
    # 5 MW: both CHP units (4 MW each)
    modes = _relaxed_commit(park_a, {"chp1.p": 2500.0, "chp2.p": 2500.0}, status)
    assert modes["chp1"][0] == 1 and modes["chp2"][0] == 1


def test_decide_uses_the_relaxation(park_a: Park) -> None:
    st = ControllerState.fresh(park_a.config)
    d, st = decide(park_a.snapshot(T0 + 3600), park_a.forecast(T0), None, st)
    assert d.reason == "optimal"
    relaxed = [m for k, m in st.cache.items() if RELAXED in k]
    assert len(relaxed) == 1 and relaxed[0].warm is not None


def test_schedule_binds_only_within_the_firm_hours(park_b: Park) -> None:
    # 300 kW of relaxed chiller cooling starts the screw chiller alone. With firm_h = 12
    # the schedule binds over the steps that start within 12 h; later every switched unit
    # is in the QP, available at any load (no minimum), whatever the rounding said
    from edge.control.controller import _inputs, _tick_data
    from edge.control.qp import QpModel

    p, cfg = park_b.plant, park_b.config
    grid = ControllerState.fresh(cfg).grid
    n, t = grid.n, T0 + 12 * 3600
    z = np.zeros(n)
    kw = dict(heat_kw=z, cooling_kw=z, elec_net_kw=z, price_import=np.full(n, 0.9),
              gas_cny_per_m3=3.65, carbon_cny_per_t=82.0,
              ice_kwh={s.name: 0.5 * s.capacity_kwh for s in p.ice_stores}, status={},
              relaxed_kw={"bch1.c": np.full(n, 300.0)})
    whole = commit(p, grid, t, **kw)  # type: ignore[arg-type]
    firm = commit(p, grid, t, firm_h=12.0, **kw)  # type: ignore[arg-type]
    k = int(np.argmax(grid.start_h >= 12.0 - 1e-9))
    assert whole.firm_steps is None and firm.firm_steps == k and 0 < k < n
    assert "bch2" not in whole.units
    assert firm.units == frozenset(u.name for u in p.switched)
    assert all(np.array_equal(firm.mode[u], whole.mode[u]) for u in whole.mode)

    inp = _inputs(cfg, grid, park_b.snapshot(t), park_b.forecast(t), None)
    td = _tick_data(cfg, inp, firm, {})
    assert td.firm_steps == k
    model = QpModel(p, grid, firm.units)
    _, lo, up, _ = model.vectors(td)
    bch2, sch1 = model.sl("bch2.c"), model.sl("sch1.c")
    cap = next(c.cool_max_kw for c in p.electric_chillers if c.name == "bch2") * 1e-3
    assert np.all(up[bch2][:k] == 0) and np.allclose(up[bch2][k:], cap)     # off, then available
    assert np.all(lo[bch2] == 0)
    assert np.all(lo[sch1][:k] > 0) and np.all(lo[sch1][k:] == 0)         # minimum load, then none


def _night_heat_tick(park_a: Park, heat_kw: float) -> Decision:
    """Park A at 23:00 with no cooling and ``heat_kw`` of district heat all night: the
    CHPs are the only heat source and run at 1.2 MW at least."""
    t = T0 + 23 * 3600
    fc = park_a.forecast(t, n=120)
    n = len(fc.heat_kw)
    fc = replace(fc, heat_kw=np.full(n, heat_kw), cooling_kw=np.zeros(n))
    snap = park_a.snapshot(t, loads_kw={"district_heat": heat_kw, "central_cooling": 0.0})
    d, _ = decide(snap, fc, None, ControllerState.fresh(park_a.config))
    assert d.reason == "optimal"
    return d


def test_a_chp_is_not_run_at_its_minimum_load_for_a_trace_of_heat(
        park_a: Park, monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 kW of heat: a CHP at its 1.2 MW minimum burns ~2.7 MWh of gas an hour for power
    # worth the valley price; leaving 20 kW unserved costs 100 CNY/h at the site's price
    d = _night_heat_tick(park_a, 20.0)
    assert d.setpoints["chp1.p_set_kw"] == 0.0 and d.setpoints["chp2.p_set_kw"] == 0.0
    assert d.slack_kw["heat"] == pytest.approx(20.0, abs=1.0)
    # 600 kW: unserved would cost 3,000 CNY/h; a CHP runs
    d = _night_heat_tick(park_a, 600.0)
    assert min(d.setpoints["chp1.p_set_kw"], d.setpoints["chp2.p_set_kw"]) <= -1200.0 + 1.0
    assert d.slack_kw["heat"] == pytest.approx(0.0, abs=1.0)
    # without the comparison, the rounding starts a unit for the 20 kW
    monkeypatch.setattr(controller, "_leaner", lambda *a, **k: None)
    d = _night_heat_tick(park_a, 20.0)
    assert min(d.setpoints["chp1.p_set_kw"], d.setpoints["chp2.p_set_kw"]) <= -1200.0 + 1.0


def test_the_relaxation_has_no_unit_its_minimum_down_time_holds_off(park_a: Park) -> None:
    """A CHP stopped 10 min ago (1 h down) is not in the relaxation until its hour is up:
    the relaxation had it making the absorption chiller's heat, so no electric chiller was
    staged, and with the CHP held off the cooling went unserved."""
    from edge.control.commitment import ice_windows
    from edge.control.controller import _inputs, _relaxed

    t = T0 + 14 * 3600
    st = ControllerState.fresh(park_a.config)
    inp = _inputs(park_a.config, st.grid, park_a.snapshot(t), park_a.forecast(T0), None)
    windows = ice_windows(park_a.plant, st.grid, t)
    free = _relaxed(st, inp, t, windows, {})
    held = _relaxed(replace(st, status={"chp1": UnitStatus(0, t - 600.0), "chp2": UnitStatus(0, t - 600.0)}),
                    inp, t, windows, {})
    assert free is not None and held is not None
    k = int(np.searchsorted(st.grid.start_h, 50 / 60 - 1e-9))    # steps starting within 50 min
    assert free["chp1.p"][:k].sum() + free["chp2.p"][:k].sum() > 1000.0
    assert np.all(held["chp1.p"][:k] < 1.0) and np.all(held["chp2.p"][:k] < 1.0)
    assert held["chp1.p"][k:].sum() + held["chp2.p"][k:].sum() > 1000.0     # free again later


def test_a_plan_that_leaves_cooling_unserved_starts_a_free_chiller(park_b: Park) -> None:
    from edge.control.commitment import ice_windows, with_cooling

    p = park_b.plant
    grid = ControllerState.fresh(park_b.config).grid
    n, t = grid.n, T0 + 9 * 3600                 # 09:00: no ice making
    charge_ok, melt_ok = ice_windows(p, grid, t)
    off = {u.name: np.zeros(n, np.int64) for u in p.switched}
    from edge.control.commitment import Commitment
    cm = Commitment(off, melt_ok, charge_ok, frozenset(), firm_steps=None)
    short = np.zeros(n)
    short[:2] = 400.0                            # 400 kW unserved in the first half hour
    ice = {s.name: 0.0 for s in p.ice_stores}
    # 400 kW: the screw chiller, whose minimum load (160 kW) fits; a base chiller would
    # run at its 1.5 MW minimum
    more = with_cooling(p, grid, t, cm, short, {}, ice)
    assert more is not None
    assert {u for u, m in more.mode.items() if m[:2].any()} == {"sch1"}
    assert "sch1" in more.units and not more.mode["sch1"][2:].any()
    # 2 MW: a base chiller (COP 4.7) by merit; bch1, stopped 10 min ago, is held off
    short[:2] = 2000.0
    more = with_cooling(p, grid, t, cm, short, {"bch1": UnitStatus(0, t - 600.0)}, ice)
    assert more is not None
    assert {u for u, m in more.mode.items() if m[:2].any()} == {"bch2"}
    # a trace of a shortfall starts nothing
    assert with_cooling(p, grid, t, cm, np.full(n, 5.0), {}, {}) is None


def test_a_chiller_started_now_is_tried_off_where_the_store_can_melt(park_b: Park) -> None:
    """``_unstarted``: the commitment without the chillers it starts now, for their first
    run, where a store may melt and holds a quarter hour of its release; a unit running
    now is left alone, and so is every chiller where the store is empty or charging.
    ``_store_stands_in``: that plan is taken only where it melts at step 0 with room for
    the chillers' reserve (RESERVE_FRAC of the cooling forecast) above its melt."""
    from edge.control.commitment import Commitment, ice_windows
    from edge.control.controller import _inputs, _store_stands_in, _unstarted

    p = park_b.plant
    grid = ControllerState.fresh(park_b.config).grid
    n, t = grid.n, T0 + 7.5 * 3600                   # 07:30: the morning ramp, melting allowed
    charge_ok, melt_ok = ice_windows(p, grid, t)
    modes = {u.name: np.zeros(n, np.int64) for u in p.switched}
    modes["dch1"][:3] = 1                            # started now for three quarter hours
    modes["bch1"][:] = 1                             # running since 06:00
    cm = Commitment(modes, melt_ok, charge_ok, frozenset(modes), firm_steps=None)
    status = {"bch1": UnitStatus(1, t - 5400.0), "dch1": UnitStatus(0, t - 5400.0)}
    inp = _inputs(park_b.config, grid, park_b.snapshot(t, ice_frac=0.9), park_b.forecast(T0), None)
    alt = _unstarted(park_b.config, inp, status, cm)
    assert alt is not None
    assert not alt.mode["dch1"].any() and alt.mode["bch1"].all()
    assert alt.units == cm.units and cm.mode["dch1"][:3].all()        # cm itself untouched
    # dch1 already cooling: nothing to try
    assert _unstarted(park_b.config, inp, {**status, "dch1": UnitStatus(1, t - 900.0)}, cm) is None
    # an empty store, or the night's charge window: nothing to try
    empty = _inputs(park_b.config, grid, park_b.snapshot(t, ice_frac=0.0), park_b.forecast(T0), None)
    assert _unstarted(park_b.config, empty, status, cm) is None
    night = T0 + 23 * 3600
    c_ok, m_ok = ice_windows(p, grid, night)
    assert _unstarted(park_b.config, inp, status, replace(cm, melt_ok=m_ok, charge_ok=c_ok)) is None

    class _Plan:                                     # step 0's melt as a plan vector would give it
        def __init__(self, melt_kw: float) -> None:
            self.melt_kw = melt_kw

        def first(self, x: object, series: str) -> float:
            return self.melt_kw if series.endswith(".melt") else 0.0

    cool0 = float(inp.cooling_kw[0])
    cap0 = min(p.ice_stores[0].melt_max_kw, p.ice_stores[0].release_frac_per_h * inp.ice_kwh["ice1"])
    assert _store_stands_in(p, inp, _Plan(500.0), np.zeros(1))                          # type: ignore[arg-type]
    assert not _store_stands_in(p, inp, _Plan(0.0), np.zeros(1))                        # type: ignore[arg-type]
    near_cap = cap0 - 0.5 * RESERVE_FRAC * cool0
    assert not _store_stands_in(p, inp, _Plan(near_cap), np.zeros(1))                   # type: ignore[arg-type]


def test_within_a_step_on_off_holds_unless_the_running_units_fall_short(park_b: Park) -> None:
    """``held_at_step0``: a tick within the quarter hour keeps step 0's units as they run
    (a start and a stop the rounding wants now wait for the step's end); a chiller the
    rounding starts still starts where the running chillers and the store's release cannot
    carry step 0's cooling with the reserve."""
    from edge.control.commitment import Commitment, held_at_step0, ice_windows

    p = park_b.plant
    grid = ControllerState.fresh(park_b.config).grid
    n, t = grid.n, T0 + 9 * 3600 + 300                  # 09:05: the store may melt
    charge_ok, melt_ok = ice_windows(p, grid, t)
    modes = {u.name: np.zeros(n, np.int64) for u in p.switched}
    modes["bch1"][:] = 1                                 # the rounding starts bch1 now
    modes["sch1"][:] = 1                                 # and keeps the screw chiller
    cm = Commitment(modes, melt_ok, charge_ok, frozenset(modes), firm_steps=None)
    status = {"sch1": UnitStatus(1, t - 3900.0), "bch2": UnitStatus(1, t - 7500.0),
              "bch1": UnitStatus(0, t - 7500.0)}         # bch2 on past its minimum run
    full = {s.name: 60000.0 for s in p.ice_stores}
    held = held_at_step0(p, grid, t, cm, status, full, cooling_kw0=8000.0, reserve_frac=0.05)
    assert held.mode["bch1"][0] == 0 and held.mode["bch1"][1:].all()     # starts at the step's end
    assert held.mode["bch2"][0] == 1 and not held.mode["bch2"][1:].any()  # stops then
    assert held.mode["sch1"].all()
    assert cm.mode["bch1"][0] == 1                                        # cm untouched
    # an empty store: sch1 and bch2 (6,521 kW) short of 8,000 kW and the reserve, bch1 starts
    empty = {s.name: 0.0 for s in p.ice_stores}
    short = held_at_step0(p, grid, t, cm, status, empty, cooling_kw0=8000.0, reserve_frac=0.05)
    assert short.mode["bch1"][0] == 1 and short.mode["bch2"][0] == 1
    # the night's charge window: the store cannot melt, however full it is
    night = T0 + 23 * 3600 + 300
    c_ok, m_ok = ice_windows(p, grid, night)
    at_night = held_at_step0(p, grid, night, replace(cm, melt_ok=m_ok, charge_ok=c_ok), status, full,
                             cooling_kw0=8000.0, reserve_frac=0.05)
    assert at_night.mode["bch1"][0] == 1


def test_on_off_is_decided_on_the_quarter_hour_with_ticks_finer_than_a_step(park_b: Park) -> None:
    from edge.control.controller import _within_step

    grid = ControllerState.fresh(park_b.config).grid
    five = replace(park_b.config, tick_s=300.0)
    nine = T0 + 9 * 3600
    assert _within_step(five, grid, nine + 300, nine)               # 09:05 after 09:00: held
    assert _within_step(five, grid, nine + 840, nine + 600)         # 09:14 after 09:10
    assert not _within_step(five, grid, nine + 900, nine + 600)     # 09:15: a new step decides
    assert not _within_step(five, grid, nine + 300, None)           # the first tick decides
    assert not _within_step(five, grid, nine + 3900, nine)          # after a gap
    # one decision a step (no tick period, or a tick of a whole step): every tick decides
    assert not _within_step(park_b.config, grid, nine + 300, nine)
    assert not _within_step(replace(park_b.config, tick_s=900.0), grid, nine + 300, nine)


def test_a_tick_within_the_step_starts_no_chiller_the_running_units_do_not_need(park_b: Park) -> None:
    # 07:30 decides with one cooling forecast; at 07:35 the forecast is twice that, which
    # the rounding meets with another chiller (a tick on the quarter hour does), while the
    # store's release carries it: the units stay as 07:30 left them until 07:45
    five = replace(park_b.config, tick_s=300.0)
    t = T0 + 7.5 * 3600
    fc = park_b.forecast(T0)
    d0, st = decide(park_b.snapshot(t, ice_frac=0.9), fc, None, ControllerState.fresh(five))
    assert d0.reason == "optimal"
    more = replace(fc, cooling_kw=np.asarray(fc.cooling_kw) * 2.0)
    snap = park_b.snapshot(t + 300, ice_frac=0.9)
    d_held, st_held = decide(snap, more, None, st)
    d_new, st_new = decide(snap, more, None, replace(st, last_ts=t - 300.0))
    assert d_held.reason == d_new.reason == "optimal"
    running = {u for u, s in st.status.items() if s.mode == 1}
    assert {u for u, s in st_held.status.items() if s.mode == 1} == running
    assert {u for u, s in st_new.status.items() if s.mode == 1} != running
    assert all(abs(r) < 1e-6 for r in d_held.residual_kw.values())


def test_a_unit_off_at_the_first_tick_is_not_held_off_by_a_down_time_nobody_saw(park_b: Park) -> None:
    # after a restart the controller knows no unit's history: the chillers it leaves off at
    # its first tick may start at the next one (stamped "now", they counted as just stopped
    # and 11 MW of a doubled cooling forecast went unserved for an hour); a unit it runs
    # keeps its minimum run
    t = T0 + 10 * 3600
    fc = park_b.forecast(T0)
    _, st = decide(park_b.snapshot(t, ice_frac=0.9), fc, None, ControllerState.fresh(park_b.config))
    off = {u for u, s in st.status.items() if s.mode == 0}
    assert off and all(st.status[u].since_ts == -np.inf for u in off)
    assert all(s.since_ts == t for s in st.status.values() if s.mode != 0)
    more = replace(fc, cooling_kw=np.asarray(fc.cooling_kw) * 2.0)
    d1, st1 = decide(park_b.snapshot(t + 900, ice_frac=0.9), more, None, st)
    assert d1.reason == "optimal" and d1.slack_kw["cooling"] < 1.0, d1.slack_kw
    assert {u for u, s in st1.status.items() if s.mode == 1} & off


def test_the_quarter_hours_relaxation_warm_starts_from_the_last_quarter_hour(park_b: Park) -> None:
    # ticks every 5 min: the relaxation the quarter hour rounds on/off from is solved on the
    # quarter hours only (its warm start shifted a whole step); the ticks within the step
    # solve the other one, for the schedule's later steps
    from edge.control.controller import RELAXED_STEP

    st = ControllerState.fresh(replace(park_b.config, tick_s=300.0))
    fc = park_b.forecast(T0)
    nine = T0 + 9 * 3600
    for k in range(5):                                   # 09:00 ... 09:20
        _, st = decide(park_b.snapshot(nine + 300 * k, ice_frac=0.8), fc, None, st)
    (step_model,) = [m for key, m in st.cache.items() if RELAXED_STEP in key]
    (tick_model,) = [m for key, m in st.cache.items() if RELAXED in key]
    assert step_model.warm is not None and step_model.warm[2] == nine + 900       # 09:15
    assert tick_model.warm is not None and tick_model.warm[2] == nine + 1200      # 09:20


def test_within_a_step_a_chp_still_starts_where_the_running_one_cannot_carry_the_heat(park_a: Park) -> None:
    # Park A's heat is its CHPs' alone: held off till the quarter hour, a second CHP the
    # rounding starts would leave the heat above the first one's unserved meanwhile
    from edge.control.commitment import Commitment, held_at_step0, ice_windows

    p = park_a.plant
    grid = ControllerState.fresh(park_a.config).grid
    n, t = grid.n, T0 + 9 * 3600 + 300
    charge_ok, melt_ok = ice_windows(p, grid, t)
    modes = {u.name: np.zeros(n, np.int64) for u in p.switched}
    chp1, chp2 = p.chps[0], p.chps[1]
    modes[chp1.name][:] = 1
    modes[chp2.name][:] = 1                               # the rounding starts chp2 now
    cm = Commitment(modes, melt_ok, charge_ok, frozenset(modes), firm_steps=None)
    status = {chp1.name: UnitStatus(1, t - 7200.0), chp2.name: UnitStatus(0, t - 7200.0)}
    one_kw = chp1.p_max_kw * chp1.heat_to_power
    held = held_at_step0(p, grid, t, cm, status, {}, heat_kw0=0.8 * one_kw, reserve_frac=0.05)
    assert held.mode[chp2.name][0] == 0 and held.mode[chp2.name][1:].all()
    short = held_at_step0(p, grid, t, cm, status, {}, heat_kw0=1.5 * one_kw, reserve_frac=0.05)
    assert short.mode[chp2.name][0] == 1
    # a trace of heat with every CHP off (a summer night): what the quarter hour chose to
    # leave unserved rather than run a CHP at its minimum load, so nothing starts
    both_off = {chp1.name: UnitStatus(0, t - 7200.0), chp2.name: UnitStatus(0, t - 7200.0)}
    trace = held_at_step0(p, grid, t, cm, both_off, {}, heat_kw0=40.0, reserve_frac=0.05)
    assert trace.mode[chp1.name][0] == 0 and trace.mode[chp2.name][0] == 0
    # the electric side likewise: a load above the import limit, the battery and chp1
    elec = p.grid.import_max_kw + sum(b.p_discharge_max_kw for b in p.batteries) + chp1.p_max_kw
    power = held_at_step0(p, grid, t, cm, status, {}, elec_net_kw0=1.1 * elec, reserve_frac=0.05)
    assert power.mode[chp2.name][0] == 1


def test_a_chiller_starts_for_cooling_drawn_now_that_nothing_would_pick_up(park_b: Park) -> None:
    """A winter night: the store charges (it cannot melt) and the park draws 15 kW. The
    night's cooling forecast jumps from step to step: at 23:15 it said 72 kW, at 23:30 it
    says 0 for the next half hour, and the last miss carried on it (15 - 72) keeps step 0 at
    0. The screw chiller, on for two hours, was stopped there and the load went unserved
    (Park B winter, 71 kWh a fortnight); a chiller now runs whatever the forecast."""
    n = 300
    t = T0 + 23.5 * 3600
    high = replace(park_b.forecast(T0, n=n), cooling_kw=np.full(n, 72.0))
    zero = replace(park_b.forecast(T0, n=n), cooling_kw=np.zeros(n))
    chillers = {c.name for c in (*park_b.plant.electric_chillers, *park_b.plant.dual_chillers)}

    def chillers_on(load_kw: float) -> set[str]:
        _, st = decide(park_b.snapshot(t - 900, ice_frac=0.3, loads_kw={"cooling": load_kw}), high,
                       None, ControllerState.fresh(park_b.config))
        st = replace(st, status={**st.status, "sch1": UnitStatus(1, since_ts=t - 7200)})
        d, st = decide(park_b.snapshot(t, ice_frac=0.3, loads_kw={"cooling": load_kw}), zero, None, st)
        assert d.reason == "optimal"
        return {u for u, s in st.status.items() if u in chillers and s.mode == 1}   # 1: cooling

    assert chillers_on(15.0) == {"sch1"}       # kept on: the smallest minimum load
    assert chillers_on(5.0) == set()           # a trace is not a load to run for
