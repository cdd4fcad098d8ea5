"""Device physics without servers: balances close, limits hold, refusals change nothing."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parksim.physics import build_park, load_scalings
from parksim.physics import devices as d
from parksim.physics.exogenous import doe_shapes

START = datetime(2026, 7, 7, 0, 0, tzinfo=UTC)


def _setpoints(site: str) -> st.SearchStrategy[dict[str, float]]:
    limits = build_park(site, seed=0, start_utc=START).setpoint_limits()
    keys = sorted(limits)

    def value(key: str) -> st.SearchStrategy[float]:
        lim = limits[key]
        span = lim.max - lim.min
        # Mostly valid values, some just outside the limits, some wildly off.
        return st.one_of(
            st.sampled_from(lim.choices) if lim.choices else st.floats(lim.min, lim.max),
            st.floats(lim.min - span - 1, lim.min - 1e-3), st.floats(lim.max + 1e-3, lim.max + span + 1),
        )

    return st.lists(st.sampled_from(keys).flatmap(lambda k: value(k).map(lambda v: (k, v))),
                    max_size=8).map(dict)


def _check_step(park, flows) -> None:  # type: ignore[no-untyped-def]
    assert abs(flows.electric_imbalance_kw()) < 1e-6
    assert abs(flows.heat_imbalance_kw()) < 1e-6
    assert abs(flows.cool_imbalance_kw()) < 1e-6
    assert flows.violations == ()
    assert flows.heat_dump_kw >= 0 and flows.heat_unserved_kw >= 0
    assert flows.cool_dump_kw >= 0 and flows.cool_unserved_kw >= 0
    assert flows.elec_unserved_kw >= 0 and flows.curtailed_kw >= -1e-9
    for dev in park.devices.values():
        if isinstance(dev, d.Battery):
            assert dev.soc_min_frac - 1e-9 <= dev.soc_frac <= dev.soc_max_frac + 1e-9
            assert abs(dev.p_kw) <= dev.p_max_kw + 1e-9
        if isinstance(dev, d.IceStore):
            assert -1e-9 <= dev.stored_kwh <= dev.usable_kwh + 1e-9
            assert not (dev.q_melt_kw > 0 and dev.q_charge_kw > 0)
        if isinstance(dev, d.Chp) and dev.p_gen_kw > 0:
            assert dev.min_load_frac * dev.p_max_kw - 1e-9 <= dev.p_gen_kw <= dev.p_max_kw + 1e-9
            assert math.isclose(dev.q_kw, dev.p_gen_kw * dev.heat_ratio)


def _run(site: str, plan: list[tuple[dict[str, float], float]], hour: int) -> None:
    park = build_park(site, seed=hour, start_utc=START.replace(hour=hour), soc_frac=0.2, ice_frac=0.5)
    limits = park.setpoint_limits()
    for setpoints, dt_s in plan:
        before = {n: dict(dev.sp) for n, dev in park.devices.items()}
        remote_before = {n: dev.remote for n, dev in park.devices.items()}
        refused = park.apply(setpoints)
        for key, value in setpoints.items():
            lim = limits[key]
            valid = lim.min <= value <= lim.max and (lim.choices is None or value in lim.choices)
            assert (key in refused) == (not valid)
        for key in refused:  # a refused setpoint changes nothing
            name, point = key.split(".", 1)
            if not any(k.startswith(name + ".") and k not in refused for k in setpoints):
                assert park.devices[name].sp == before[name]
                assert park.devices[name].remote == remote_before[name]
            else:
                assert park.devices[name].sp[point] == before[name][point] or any(
                    k == key for k in setpoints if k not in refused)
        _check_step(park, park.step(dt_s))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(_setpoints("park-a"), st.sampled_from([1.0, 60.0, 900.0, 3600.0])),
                     min_size=1, max_size=12),
       hour=st.integers(0, 23))
def test_park_a_balances_and_limits(plan, hour) -> None:  # type: ignore[no-untyped-def]
    _run("park-a", plan, hour)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(_setpoints("park-b"), st.sampled_from([60.0, 900.0, 3600.0])),
                     min_size=1, max_size=12),
       hour=st.integers(0, 23))
def test_park_b_balances_and_limits(plan, hour) -> None:  # type: ignore[no-untyped-def]
    _run("park-b", plan, hour)


def test_a_week_at_15_min_closes_every_balance() -> None:
    for site in ("park-a", "park-b"):
        park = build_park(site, seed=1, start_utc=START)
        for _ in range(96 * 7):
            _check_step(park, park.step(900.0))


def test_same_seed_same_park_other_seed_other_loads() -> None:
    def loads(seed: int) -> list[float]:
        park = build_park("park-a", seed=seed, start_utc=START)
        return [park.step(900.0).loads_kw["office"] for _ in range(8)]

    assert loads(5) == loads(5)
    assert loads(5) != loads(6)


def test_battery_follows_setpoint_and_stops_at_soc_limits() -> None:
    park = build_park("park-a", seed=0, start_utc=START, soc_frac=0.5)
    park.apply({"bess1.p_set_kw": 10_000.0})
    f = park.step(900.0)
    assert f.electric_kw["bess1"] == 10_000.0
    assert math.isclose(park.devices["bess1"].soc_frac, 0.5 + 2500.0 * 0.92 / 40_000.0)
    for _ in range(10):
        f = park.step(900.0)
    bess = park.devices["bess1"]
    assert math.isclose(bess.soc_frac, 0.95) and f.electric_kw["bess1"] == 0.0
    park.fallback("bess1")
    assert park.step(900.0).electric_kw["bess1"] == 0.0


def test_diesel_honours_minimum_up_and_down_times() -> None:
    park = build_park("park-a", seed=0, start_utc=START)
    park.apply({"dg1.run_cmd": 1, "dg1.p_set_kw": -100.0})  # passive: 100 kW generated
    f = park.step(900.0)
    assert f.electric_kw["dg1"] == -600.0  # minimum load 30 % of 2 MW
    park.apply({"dg1.run_cmd": 0})
    for _ in range(7):  # 1 h 45 min more: still inside the 2 h minimum up time
        assert park.step(900.0).electric_kw["dg1"] < 0
    assert park.step(900.0).electric_kw["dg1"] == 0.0
    park.apply({"dg1.run_cmd": 1})
    assert park.step(900.0).electric_kw["dg1"] == 0.0  # minimum down time


def test_ice_store_charges_and_melts_with_its_efficiencies() -> None:
    park = build_park("park-b", seed=0, start_utc=START.replace(hour=15))  # 23:00 local
    park.apply({"ice1.mode_set": 1, "dch1.mode_set": 2, "dch1.q_set_kw": -3165.0})
    park.step(1800.0)  # mode change: first the minimum off time has long passed
    f = park.step(3600.0)
    ice = park.devices["ice1"]
    assert f.electric_kw["dch1"] == 3165.0 / 3.8
    assert ice.q_charge_kw == 3165.0
    stored = ice.stored_kwh
    park.apply({"ice1.mode_set": 2, "ice1.melt_set_kw": -2000.0, "dch1.mode_set": 0})
    f = park.step(3600.0)
    # the melt asked for, or what the night's cooling load takes of it (the store unloads)
    melt = f.cool_supply_kw["ice1"]
    assert melt > 0.0 and math.isclose(melt, min(2000.0, f.loads_kw["cool"]), rel_tol=1e-9)
    expected = stored - melt / 0.96
    assert math.isclose(ice.stored_kwh, expected * (1 - 0.005), rel_tol=1e-9)


def test_running_units_unload_to_the_load_rather_than_dump() -> None:
    # a remote chiller (and a gas boiler) set far above the load give only what the load
    # takes: the mirror of picking up a shortfall; nothing is dumped, and the electricity
    # (the gas) follows what was delivered
    park = build_park("park-b", seed=0, start_utc=START.replace(hour=18))  # 02:00 local
    park.apply({"bch1.q_set_kw": -4924.0, "bch2.q_set_kw": -4924.0, "gb1.q_set_kw": -7000.0,
                "gb2.q_set_kw": -7000.0, "gb3.q_set_kw": -7000.0})
    f = park.step(900.0)
    cool, heat = f.loads_kw["cool"], f.loads_kw["heat"]
    assert cool < 2 * 4924.0 and heat < 3 * 7000.0
    assert f.cool_dump_kw < 1e-6 and f.cool_unserved_kw < 1e-6
    assert math.isclose(math.fsum(f.cool_supply_kw.values()), cool, rel_tol=1e-9)
    assert math.isclose(f.electric_kw["bch1"], f.cool_supply_kw["bch1"] / 4.7, rel_tol=1e-9)
    assert f.heat_dump_kw < 1e-6
    gas_heat = sum(f.heat_supply_kw[g] for g in ("gb1", "gb2", "gb3"))
    assert gas_heat < 3 * 7000.0 - 1.0


def test_load_scaling_hits_the_stated_peaks_and_energies() -> None:
    sc = load_scalings("park-a")
    office = sc["office"](doe_shapes()["office"])
    assert math.isclose(office.max(), 3200.0)
    daily = office.reshape(365, 24).sum(axis=1)
    weekday = daily[np.argsort(daily)[-250:]]  # the 250-odd weekdays are the heavy days
    assert abs(weekday.mean() - 48_000.0) / 48_000.0 < 0.02
    hosp = sc["hospital"](doe_shapes()["hospital"])
    assert math.isclose(hosp.max(), 1800.0)
    assert math.isclose(hosp.reshape(365, 24).sum(axis=1).mean(), 32_000.0, rel_tol=1e-9)


def test_setpoints_take_the_passive_sign_like_the_measurements() -> None:
    """What a unit delivers is negative, in its setpoint as in its measurement."""
    park = build_park("park-a", seed=0, start_utc=START.replace(hour=4))  # 12:00 local
    limits = park.setpoint_limits()
    for key in ("chp1.p_set_kw", "dg1.p_set_kw", "ch1.q_set_kw", "absc1.q_set_kw", "wind1.p_limit_kw"):
        assert limits[key].max == 0.0 and limits[key].min < 0.0, key
    assert limits["wind1.p_limit_kw"].default == limits["wind1.p_limit_kw"].min  # no limit
    assert limits["bess1.p_set_kw"].min < 0.0 < limits["bess1.p_set_kw"].max
    assert park.check("chp1.p_set_kw", 3000.0) is not None  # the device convention is refused
    assert park.apply({"chp1.p_set_kw": -3000.0, "ch1.q_set_kw": -1500.0, "wind1.p_limit_kw": -1000.0}) == {}
    f = park.step(900.0)
    assert f.electric_kw["chp1"] == -3000.0 and park.measurements()["chp1.p_kw"] == -3000.0
    assert park.measurements()["chp1.p_set_kw"] == -3000.0
    assert f.cool_supply_kw["ch1"] == 1500.0
    assert -1000.0 - 1e-9 <= f.electric_kw["wind1"] <= 0.0
    b = build_park("park-b", seed=0, start_utc=START.replace(hour=4))
    lb = b.setpoint_limits()
    for key in ("dch1.q_set_kw", "bch1.q_set_kw", "sch1.q_set_kw", "gb1.q_set_kw", "ehb1.q_set_kw",
                "ice1.melt_set_kw"):
        assert lb[key].max == 0.0 and lb[key].min < 0.0, key
    assert lb["ehb1.p_set_kw"].min == 0.0 < lb["ehb1.p_set_kw"].max  # charging draws: positive
    assert b.apply({"gb1.q_set_kw": -2000.0, "ehb1.q_set_kw": -1000.0, "ehb1.p_set_kw": 500.0}) == {}
    f = b.step(900.0)
    # gb1 gives up to its setpoint: it unloads to what the heat load leaves it
    assert 0.0 < f.heat_supply_kw["gb1"] <= 2000.0 and f.heat_supply_kw["ehb1"] == 1000.0
    assert f.electric_kw["ehb1"] == 500.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(import_max=st.floats(0.0, 4_000.0), charge=st.floats(0.0, 10_000.0), hour=st.integers(0, 23))
def test_at_the_import_limit_unserved_is_negative_and_the_bus_closes(import_max, charge, hour) -> None:  # type: ignore[no-untyped-def]
    park = build_park("park-a", seed=hour, start_utc=START.replace(hour=hour), soc_frac=0.2)
    grid = park.devices["grid1"]
    grid.import_max_kw = import_max
    park.apply({"bess1.p_set_kw": charge, "chp1.p_set_kw": 0.0, "chp2.p_set_kw": 0.0})
    f = park.step(900.0)
    _check_step(park, f)
    e = f.electric_kw
    assert e["unserved"] <= 0.0 and math.isclose(f.elec_unserved_kw, -e["unserved"])
    if f.elec_unserved_kw > 1e-9:
        assert math.isclose(e["grid1"], -import_max)
        # what the bus needed beyond the limit is exactly what went unserved
        demand = math.fsum(v for k, v in e.items() if k not in ("grid1", "unserved", "spill"))
        assert math.isclose(demand - import_max, f.elec_unserved_kw, rel_tol=1e-9, abs_tol=1e-6)


def test_replay_at_the_import_limit_books_the_shortfall_as_unserved() -> None:
    park = build_park("park-a", seed=0, start_utc=START.replace(hour=12), soc_frac=0.2)
    park.devices["grid1"].import_max_kw = 0.0
    park.apply({"bess1.p_set_kw": 10_000.0, "chp1.p_set_kw": 0.0, "chp2.p_set_kw": 0.0})
    for _ in range(8):
        f = park.step(900.0)
        _check_step(park, f)
        assert f.grid_import_kw == 0.0
        assert f.elec_unserved_kw == -f.electric_kw["unserved"] >= 0.0


def test_running_units_pick_up_thermal_demand_beyond_their_setpoints() -> None:
    # Park B, a summer afternoon: every chiller asked for 1 kW (on), the ice store idle.
    park = build_park("park-b", seed=0, start_utc=START.replace(hour=6), ice_frac=0.5)
    sp = {f"{n}.q_set_kw": -1.0 for n in ("bch1", "bch2", "sch1")}
    sp |= {f"dch{i}.mode_set": d.MODE_COOL for i in range(1, 5)} | {f"dch{i}.q_set_kw": -1.0 for i in range(1, 5)}
    sp |= {"gb1.q_set_kw": -1.0, "gb2.q_set_kw": 0.0, "gb3.q_set_kw": 0.0}
    sp |= {"ehb1.q_set_kw": 0.0, "ehb2.q_set_kw": 0.0, "ehb1.p_set_kw": 0.0, "ehb2.p_set_kw": 0.0}
    park.apply(sp)
    f = park.step(900.0)
    _check_step(park, f)
    cool = f.loads_kw["cool"]
    cap = sum(park.devices[n].q_max_kw for n in ("bch1", "bch2", "sch1")) + 4 * park.devices["dch1"].q_cool_max_kw
    assert cool > 100.0
    assert math.isclose(f.cool_unserved_kw, max(cool - cap, 0.0), abs_tol=1e-6)
    for n in ("bch1", "bch2", "sch1", "dch1"):
        dev = park.devices[n]
        assert dev.q_kw >= 1.0 and math.isclose(f.electric_kw[n], dev.p_el_kw)   # electricity follows
    # heat: only the firing boiler (gb1) loads up, to its rating; the others stay off
    heat = f.loads_kw["heat"]
    gb1 = park.devices["gb1"]
    assert math.isclose(gb1.q_kw, min(max(heat, 1.0), gb1.q_max_kw))
    assert park.devices["gb2"].q_kw == 0.0 and park.devices["gb3"].q_kw == 0.0
    assert math.isclose(f.heat_unserved_kw, max(heat - gb1.q_max_kw, 0.0), abs_tol=1e-6)


def test_units_switched_off_do_not_pick_up() -> None:
    park = build_park("park-b", seed=0, start_utc=START.replace(hour=6))
    sp = {f"{n}.q_set_kw": 0.0 for n in ("bch1", "bch2", "sch1")}
    sp |= {f"dch{i}.mode_set": d.MODE_OFF for i in range(1, 5)}
    park.apply(sp)
    park.devices["ice1"].stored_kwh = 0.0
    for dch in ("dch1", "dch2", "dch3", "dch4"):
        park.devices[dch].mode = d.MODE_OFF
    f = park.step(900.0)
    _check_step(park, f)
    assert math.isclose(f.cool_unserved_kw, f.loads_kw["cool"])
