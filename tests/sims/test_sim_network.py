"""Park A's local loops: the district heating network's water as a store, the absorption
chiller loading up on it, and the battery's converter holding the grid's import and export
limits."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from parksim.physics import build_park

WINTER = datetime(2026, 1, 7, 2, 0, tzinfo=UTC)      # 10:00 local
STEP_S = 900.0


def _heat_at_mid(park) -> float:  # type: ignore[no-untyped-def]
    return float(park.exogenous_at(park.t_s + STEP_S / 2.0).heat_kw)


def _chp_for_heat(heat_kw: float) -> dict[str, float]:
    """Both CHPs sharing ``heat_kw`` of heat (heat = electric x 0.875); the absorption
    chiller asked for nothing, so every kW of CHP heat is the district's."""
    p = heat_kw / 0.875 / 2.0
    return {"chp1.p_set_kw": -p, "chp2.p_set_kw": -p, "absc1.q_set_kw": 0.0,
            "ch1.q_set_kw": -2000.0, "ch2.q_set_kw": -2000.0}


def _network(f) -> float:  # type: ignore[no-untyped-def]
    return float(f.heat_use_kw.get("network", 0.0))


def test_a_shortfall_within_the_band_is_taken_from_the_network_not_left_unserved() -> None:
    park = build_park("park-a", seed=0, start_utc=WINTER)
    load = _heat_at_mid(park)
    assert load > 2_000.0
    park.apply(_chp_for_heat(load - 200.0))
    f = park.step(STEP_S)
    assert abs(f.heat_imbalance_kw()) < 1e-6
    assert f.heat_unserved_kw < 1e-9 and f.heat_dump_kw < 1e-9
    assert _network(f) == pytest.approx(-200.0, abs=1e-6)          # the water gave 200 kW
    # 50 kWh out of 300 kWh per K: the supply runs 1/6 K below its setpoint
    assert park.measurements()["load_heat.supply_dev_k"] == pytest.approx(-50.0 / 300.0, abs=1e-9)


def test_beyond_the_band_heat_is_unserved_and_a_surplus_is_stored_then_dumped() -> None:
    park = build_park("park-a", seed=0, start_utc=WINTER)
    park.apply(_chp_for_heat(0.0) | {"chp1.p_set_kw": 0.0, "chp2.p_set_kw": 0.0})
    f = park.step(STEP_S)
    load = f.loads_kw["heat"]
    # the network gives its whole band (600 kWh: 2 K at 300 kWh per K) in the quarter hour
    assert _network(f) == pytest.approx(-600.0 / 0.25)
    assert f.heat_unserved_kw == pytest.approx(load - 600.0 / 0.25)
    assert park.measurements()["load_heat.supply_dev_k"] == pytest.approx(-2.0)
    f = park.step(STEP_S)                                             # empty: all unserved
    assert f.heat_unserved_kw == pytest.approx(f.loads_kw["heat"]) and _network(f) == 0.0
    # 1 MW above the load for 1.5 h: 1,200 kWh refill the network from -2 K to its
    # setpoint and on to +2 K, and only the other 300 kWh are dumped
    dumped = stored = 0.0
    for _ in range(6):
        park.apply(_chp_for_heat(_heat_at_mid(park) + 1_000.0))
        f = park.step(STEP_S)
        assert abs(f.heat_imbalance_kw()) < 1e-6 and f.heat_unserved_kw < 1e-9
        dumped += f.heat_dump_kw * 0.25
        stored += _network(f) * 0.25
    assert stored == pytest.approx(1_200.0)
    assert dumped == pytest.approx(6 * 1_000.0 * 0.25 - 1_200.0)
    assert park.measurements()["load_heat.supply_dev_k"] == pytest.approx(2.0)


def test_a_running_absorption_chiller_loads_up_on_the_networks_heat() -> None:
    park = build_park("park-a", seed=0, start_utc=WINTER)
    heat = _heat_at_mid(park)
    cool = float(park.exogenous_at(park.t_s + STEP_S / 2.0).cool_kw)
    assert 600.0 < cool < 1_500.0
    # CHP heat for the district plus 100 kW for the absorption chiller, asked for 70 kW
    # of cooling; the electric chillers off
    park.apply(_chp_for_heat(heat + 100.0) | {"absc1.q_set_kw": -70.0, "ch1.q_set_kw": 0.0,
                                               "ch2.q_set_kw": 0.0})
    f = park.step(STEP_S)
    assert abs(f.cool_imbalance_kw()) < 1e-6 and abs(f.heat_imbalance_kw()) < 1e-6
    # it carries the whole cooling load: 100 kW of heat spare, the rest of its heat from
    # the network's water, well within the band
    assert f.cool_unserved_kw < 1e-9
    assert f.cool_supply_kw["absc1"] == pytest.approx(cool)
    assert f.heat_use_kw["absc1"] == pytest.approx(cool / 0.7)
    assert _network(f) == pytest.approx(100.0 - cool / 0.7)
    assert f.heat_unserved_kw < 1e-9
    # switched off (a setpoint of 0) it does not start by itself
    park.apply({"absc1.q_set_kw": 0.0})
    f = park.step(STEP_S)
    assert f.cool_supply_kw["absc1"] == 0.0 and f.cool_unserved_kw > 0.0


@pytest.mark.parametrize("limiter", [True, False])
def test_a_charging_battery_backs_off_at_the_import_limit(limiter: bool) -> None:
    park = build_park("park-a", seed=0, start_utc=WINTER, soc_frac=0.2,
                      options={"battery_import_limiter": limiter})
    park.devices["grid1"].import_max_kw = 8_000.0
    # no CHP, PV or wind: the loads draw from the grid
    park.apply({"bess1.p_set_kw": 10_000.0, "chp1.p_set_kw": 0.0, "chp2.p_set_kw": 0.0,
                "wind1.p_limit_kw": 0.0, "pv1.w_max_lim_ena": 1.0, "pv1.w_max_lim_pct": 0.0})
    f = park.step(STEP_S)
    assert abs(f.electric_imbalance_kw()) < 1e-6
    others = math.fsum(v for k, v in f.electric_kw.items()
                       if k not in ("grid1", "unserved", "spill", "bess1"))
    assert 0.0 < others < 8_000.0
    if limiter:
        # the battery takes what the limit leaves: no load goes short for it
        assert f.elec_unserved_kw == 0.0 and f.grid_import_kw == pytest.approx(8_000.0)
        assert f.electric_kw["bess1"] == pytest.approx(8_000.0 - others)
    else:
        assert f.electric_kw["bess1"] == 10_000.0
        assert f.elec_unserved_kw == pytest.approx(others + 10_000.0 - 8_000.0)


@pytest.mark.parametrize("limiter", [True, False])
def test_a_discharging_battery_backs_off_at_the_export_limit(limiter: bool) -> None:
    def park_at(export_max_kw: float):  # type: ignore[no-untyped-def]
        park = build_park("park-a", seed=0, start_utc=WINTER, soc_frac=0.8,
                          options={"battery_export_limiter": limiter})
        park.devices["grid1"].export_max_kw = export_max_kw
        park.apply({"bess1.p_set_kw": -10_000.0, "chp1.p_set_kw": -2_000.0, "chp2.p_set_kw": -2_000.0})
        return park

    # the bus without the battery, from an identical park with the battery idle
    probe = park_at(50_000.0)
    probe.apply({"bess1.p_set_kw": 0.0})
    f0 = probe.step(STEP_S)
    others = math.fsum(v for k, v in f0.electric_kw.items() if k not in ("grid1", "unserved", "spill", "bess1"))
    renewables = -(f0.electric_kw["pv1"] + f0.electric_kw["wind1"])
    assert f0.curtailed_kw == 0.0 and renewables > 500.0
    # an export limit that leaves the battery 2 MW of its 10 MW setpoint
    export_max = -others + 2_000.0
    f = park_at(export_max).step(STEP_S)
    assert abs(f.electric_imbalance_kw()) < 1e-6 and f.grid_export_kw == pytest.approx(export_max)
    if limiter:
        # the battery's energy waits; PV and wind are not curtailed for it
        assert f.electric_kw["bess1"] == pytest.approx(-2_000.0)
        assert f.curtailed_kw == 0.0
    else:
        assert f.electric_kw["bess1"] == -10_000.0
        assert f.curtailed_kw == pytest.approx(min(8_000.0, renewables))


def test_park_b_has_no_network_store() -> None:
    park = build_park("park-b", seed=0, start_utc=WINTER)
    f = park.step(STEP_S)
    assert "network" not in f.heat_use_kw
    assert "load_heat.supply_dev_k" not in park.measurements()
