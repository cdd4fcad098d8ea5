"""Decisions in the forms the devices take: SunSpec curtailment, run commands, shed fractions,
ice store modes and heat-storage boilers; every setpoint a writable point of the site file."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.config import embedded_site_path, load_site
from edge.control import ControllerState, Plan, decide, decide_rules
from edge.control.controller import _inputs
from edge.control.plant import Diesel, Load, Renewable
from edge.control.points import diesel_points, renewable_points, shed_points
from edge.control.scenario import T0, Park
from edge.model import PointValue, Quality

NOON = T0 + 12 * 3600
EVENING = T0 + 19 * 3600


def _writable(site: str) -> dict[str, tuple[float, float]]:
    cfg = load_site(embedded_site_path(site))
    hb = {f"{d.name}.{d.heartbeat.point}" for d in cfg.devices if d.heartbeat}
    return {f"{d.name}.{p.name}": (p.limits.min, p.limits.max) for d in cfg.devices for p in d.points
            if p.writable and p.limits is not None and f"{d.name}.{p.name}" not in hb}


def test_renewable_forms() -> None:
    pv = Renewable("pv1", "pv", 8000.0, "", "pv1.p_kw", "pv1.w_max_lim_pct", "pv1.w_max_lim_ena")
    assert renewable_points(pv, 5000.0, 5000.5) == {"pv1.w_max_lim_pct": 100.0, "pv1.w_max_lim_ena": 0.0}
    assert renewable_points(pv, 2000.0, 5000.0) == {"pv1.w_max_lim_pct": 25.0, "pv1.w_max_lim_ena": 1.0}
    assert renewable_points(pv, None, 5000.0)["pv1.w_max_lim_ena"] == 0.0
    wind = Renewable("wind1", "wind", 7500.0, "wind1.p_limit_kw")
    assert renewable_points(wind, 1000.0, 3000.0) == {"wind1.p_limit_kw": -1000.0}
    assert renewable_points(wind, 3000.0, 3000.0) == {"wind1.p_limit_kw": -7500.0}
    # a plan a solver trace under the forecast is no curtailment: a limit there would cap
    # the plant at the forecast, whatever it gives above it
    assert renewable_points(wind, 2991.0, 3000.0) == {"wind1.p_limit_kw": -7500.0}
    assert renewable_points(wind, 2990.0, 3000.0) == {"wind1.p_limit_kw": -2990.0}
    assert renewable_points(pv, 4995.0, 5000.0)["pv1.w_max_lim_ena"] == 0.0


def test_diesel_and_shed_forms() -> None:
    dg = Diesel("dg1", 2000.0, 0.3, 200.0, 0.0, 2.0, 2.0, "dg1.p_set_kw", "dg1.running", "dg1.run_cmd")
    assert diesel_points(dg, 900.0, True) == {"dg1.p_set_kw": -900.0, "dg1.run_cmd": 1.0}
    assert diesel_points(dg, 0.0, False) == {"dg1.p_set_kw": 0.0, "dg1.run_cmd": 0.0}
    dc = Load("datacentre", "electric", 1200.0, 0.3, p_point="dc1.p_kw", shed_frac_point="dc1.shed_frac")
    assert shed_points(dc, 240.0, 1200.0) == {"dc1.shed_frac": pytest.approx(0.2)}
    assert shed_points(dc, 900.0, 1200.0) == {"dc1.shed_frac": 0.3}     # never past the contract
    assert shed_points(dc, 100.0, 0.0) == {"dc1.shed_frac": 0.0}


@pytest.mark.parametrize(("name", "site"), [("a", "park-a"), ("b", "park-b")])
def test_every_setpoint_is_a_writable_site_point_within_its_limits(name: str, site: str,
                                                                  request: pytest.FixtureRequest) -> None:
    park: Park = request.getfixturevalue(f"park_{name}")
    writable = _writable(site)
    st = ControllerState.fresh(park.config)
    fc = park.forecast(T0, n=300)
    for h in range(0, 24, 3):
        d, st = decide(park.snapshot(T0 + h * 3600), fc, None, st)
        assert d.reason == "optimal", d.detail
        for rule in (False, True):
            sps = d.setpoints if not rule else decide_rules(
                park.snapshot(T0 + h * 3600), fc, None, ControllerState.fresh(park.config))[0].setpoints
            assert set(sps) <= set(writable), set(sps) - set(writable)
            for k, v in sps.items():
                lo, hi = writable[k]
                assert lo - 1e-6 <= v <= hi + 1e-6, (h, rule, k, v)


def test_pv_is_curtailed_through_sunspec_percent(park_a: Park) -> None:
    # a noon with nowhere to put the power: batteries full, export price negative
    fc = park_a.forecast(T0, n=300)
    n = 200
    plan = Plan("neg", T0, 900.0, np.full(n, 0.1), np.full(n, -0.5), np.full(n, 0.5), 3.65, 82.0)
    d, _ = decide(park_a.snapshot(NOON, soc_frac=0.95), fc, plan, ControllerState.fresh(park_a.config))
    assert d.reason == "optimal"
    sp = d.setpoints
    assert sp["pv1.w_max_lim_ena"] == 1.0 and 0.0 <= sp["pv1.w_max_lim_pct"] < 100.0
    # the percentage is the QP's PV output over the inverter's rating
    assert sp["pv1.w_max_lim_pct"] == pytest.approx(100.0 * d.flows_kw["pv1.p"] / 8000.0, abs=1e-6)
    # without a reason to curtail the limit is off
    d2, _ = decide(park_a.snapshot(NOON, soc_frac=0.3), fc, None, ControllerState.fresh(park_a.config))
    assert d2.setpoints["pv1.w_max_lim_ena"] == 0.0 and d2.setpoints["pv1.w_max_lim_pct"] == 100.0


def test_diesel_run_command_follows_commitment(park_a: Park) -> None:
    fc = park_a.forecast(T0, n=300)
    n = 200
    plan = Plan("dg", T0, 900.0, np.full(n, 1.3), np.full(n, 0.2), np.full(n, 0.6), 3.65, 82.0,
                commitments={"dg1": np.ones(n), "dg2": np.zeros(n)})
    d, _ = decide(park_a.snapshot(EVENING, soc_frac=0.5), fc, plan, ControllerState.fresh(park_a.config))
    assert d.reason == "optimal"
    assert d.setpoints["dg1.run_cmd"] == 1.0 and d.setpoints["dg1.p_set_kw"] <= -600.0 + 1e-6
    assert d.setpoints["dg2.run_cmd"] == 0.0 and d.setpoints["dg2.p_set_kw"] == 0.0
    r, _ = decide_rules(park_a.snapshot(EVENING, soc_frac=0.15), fc, None, ControllerState.fresh(park_a.config))
    assert r.setpoints["dg1.run_cmd"] == 1.0 and r.setpoints["dg1.p_set_kw"] < 0


def test_shed_fraction_is_of_the_unshed_load(park_a: Park) -> None:
    """dc1.p_kw is metered after shedding: the readback of dc1.shed_frac adds it back."""
    cfg = park_a.config
    snap = park_a.snapshot(EVENING, loads_kw={"datacentre": 840.0})
    snap.points["dc1.shed_frac"] = PointValue(0.3, "frac", Quality.GOOD, EVENING)
    inp = _inputs(cfg, ControllerState.fresh(cfg).grid, snap, park_a.forecast(T0, n=300), None)
    assert inp.shed_max_kw["datacentre"][0] == pytest.approx(0.3 * 1200.0)


def _day(park: Park, step_s: float = 1800.0) -> list[tuple[float, dict[str, float], dict[str, float]]]:
    st = ControllerState.fresh(park.config)
    fc = park.forecast(T0, n=300)
    out = []
    ice, heat = 0.1, 0.2
    for i in range(int(86400 / step_s)):
        t = T0 + i * step_s
        d, st = decide(park.snapshot(t, ice_frac=ice, heat_store_frac=heat), fc, None, st)
        assert d.reason == "optimal", d.detail
        f = d.flows_kw
        out.append((t, dict(d.setpoints), dict(f)))
        made = sum(f.get(f"dch{j}.ice", 0.0) for j in range(1, 5))
        ice = min(max(ice + (made * 0.9 - f.get("ice1.melt", 0.0) / 0.96) * step_s / 3600 / 96579, 0.0), 1.0)
        e = sum(f.get(f"ehb{j}.p", 0.0) * 0.98 - f.get(f"ehb{j}.q", 0.0) for j in (1, 2)) / 2
        heat = min(max(heat + e * step_s / 3600 / 18000, 0.0), 1.0)
    return out


def test_ice_store_mode_follows_its_chillers_and_the_melt(park_b: Park) -> None:
    seen = set()
    for _, sp, _ in _day(park_b):
        making = any(sp[f"dch{j}.mode_set"] == 2.0 for j in range(1, 5))
        melting = sp["ice1.melt_set_kw"] < 0
        # not charging, the store stands by in melt mode (at a 0 setpoint if none is
        # planned) to pick up what the running chillers cannot
        expected = 1.0 if making else 2.0
        assert sp["ice1.mode_set"] == expected
        assert not (making and melting)
        seen.add(expected)
    assert {1.0, 2.0} <= seen


def test_ice_store_points_idle_without_standby() -> None:
    from edge.control.points import ice_store_points
    from edge.control.scenario import park

    p = park("b", deadline_s=0.0).plant
    st, makers = p.ice_stores[0], [(d, 0.0) for d in p.dual_chillers]
    assert ice_store_points(st, 0.0, makers) == {"ice1.melt_set_kw": 0.0, "ice1.mode_set": 0.0}
    assert ice_store_points(st, 0.0, makers, standby=True) == {"ice1.melt_set_kw": 0.0,
                                                                "ice1.mode_set": 2.0}
    assert ice_store_points(st, 500.0, makers)["ice1.mode_set"] == 2.0
    charging = [(d, 2.0) for d in p.dual_chillers]
    assert ice_store_points(st, 500.0, charging, standby=True) == {"ice1.melt_set_kw": 0.0,
                                                                    "ice1.mode_set": 1.0}


def test_heat_storage_boilers_charge_in_the_valley_and_deliver_from_the_store(park_b: Park) -> None:
    day = _day(park_b)
    charge_by_hour = np.zeros(24)
    heat_out = 0.0
    for t, sp, f in day:
        h = int(((t - T0) / 3600) % 24)
        for j in (1, 2):
            assert 0.0 <= sp[f"ehb{j}.p_set_kw"] <= 4500.0 and -4500.0 <= sp[f"ehb{j}.q_set_kw"] <= 0.0
            charge_by_hour[h] += sp[f"ehb{j}.p_set_kw"]
            heat_out += -sp[f"ehb{j}.q_set_kw"]
            assert sp[f"ehb{j}.p_set_kw"] == pytest.approx(f[f"ehb{j}.p"], abs=1e-6)
    valley = np.r_[charge_by_hour[22:], charge_by_hour[:6]].sum()
    assert valley > 0.8 * charge_by_hour.sum() > 0      # charging is shifted to the 0.269 valley
    assert heat_out > 0


def test_heat_store_level_is_an_input_like_soc(park_b: Park) -> None:
    snap = park_b.snapshot(NOON)
    stale = replace(snap, points={**snap.points, "ehb1.stored_kwh": PointValue(
        9000.0, "kWh", Quality.STALE, NOON - 60.0)})
    d, _ = decide(stale, park_b.forecast(T0), None, ControllerState.fresh(park_b.config))
    assert d.reason != "optimal" and "ehb1.stored_kwh" in d.detail


def test_step_zero_is_priced_now_and_later_steps_at_their_time_average(park_a: Park) -> None:
    """A tick five minutes before a tariff change (the daemon ticks every second): step 0
    at the price in force (its setpoints hold until the next tick), step 1, which spans
    the change, at the time average. Priced at their middles, the battery charged at
    10 MW in the last minutes of a mid-peak period."""
    cfg = park_a.config
    grid = ControllerState.fresh(cfg).grid
    t = T0 + 11 * 3600 + 55 * 60                     # 11:55 local: mid-peak until 12:00
    inp = _inputs(cfg, grid, park_a.snapshot(t), park_a.forecast(T0, n=300), None)
    before, after = (float(cfg.tariff.series(cfg.plant.timezone, np.array([x]))[0][0])
                     for x in (t, t + 600))
    assert before != after
    assert inp.price_import_now == before == inp.price_import[0]
    t = T0 + 11 * 3600 + 40 * 60                     # step 1 from 11:55 to 12:10
    inp = _inputs(cfg, grid, park_a.snapshot(t), park_a.forecast(T0, n=300), None)
    assert inp.price_import[0] == before
    assert inp.price_import[1] == pytest.approx((5 * before + 10 * after) / 15)
    on_step = _inputs(cfg, grid, park_a.snapshot(T0 + 12 * 3600), park_a.forecast(T0, n=300), None)
    assert on_step.price_import[0] == pytest.approx(after)
