"""Parsing [assets] and [tariff]: every error with its key path, not just the first."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from edge.control import AssetsInvalid, plant_from_assets, tariff_from_table
from edge.control.scenario import Park, site_tables


def park_assets(name: str) -> dict:  # type: ignore[type-arg]
    return site_tables(name)[0]


def park_tariff(name: str) -> dict:  # type: ignore[type-arg]
    return site_tables(name)[1]


def test_reference_parks_parse() -> None:
    a = plant_from_assets(park_assets("a"), timezone="Asia/Shanghai")
    b = plant_from_assets(park_assets("b"), timezone="Asia/Shanghai")
    assert [x.name for x in a.chps] == ["chp1", "chp2"]
    assert a.batteries[0].capacity_kwh == 40000 and a.batteries[0].eta_charge == 0.92
    assert a.loads[2].interruptible_frac == 0.3 and a.loads[2].shed_frac_point == "dc1.shed_frac"
    assert a.diesels[0].run_set_point == "dg1.run_cmd"
    assert a.renewables[0].limit_pct_point == "pv1.w_max_lim_pct" and not a.renewables[0].p_set_point
    assert len(b.dual_chillers) == 4 and b.ice_stores[0].charge_hours == (22, 6)
    assert [u.name for u in b.switched][:2] == ["bch1", "bch2"]
    assert b.ice_stores[0].mode_set_point == "ice1.mode_set"
    assert [e.store_kwh for e in b.electric_boilers] == [18000, 18000]


def test_every_error_has_a_key_path() -> None:
    assets = copy.deepcopy(park_assets("a"))
    del assets["battery"]["bess1"]["capacity_kwh"]
    assets["battery"]["bess1"]["colour"] = "red"
    assets["chp"]["chp1"]["eta_elec"] = 1.5
    assets["pv"]["pv1"]["p_set_point"] = "no-dot"
    del assets["load"]["datacentre"]["shed_frac_point"]
    assets["turbine"] = {}
    with pytest.raises(AssetsInvalid) as ei:
        plant_from_assets(assets, timezone="Mars/Olympus")
    keys = {e.key for e in ei.value.errors}
    assert keys >= {
        "assets.battery.bess1.capacity_kwh", "assets.battery.bess1.colour",
        "assets.chp.chp1.eta_elec", "assets.pv.pv1.p_set_point",
        "assets.load.datacentre.shed_set_point", "assets.turbine", "site.timezone",
    }
    msg = {e.key: e.message for e in ei.value.errors}
    assert msg["assets.battery.bess1.capacity_kwh"] == "required"
    assert msg["assets.battery.bess1.colour"] == "unknown key"
    assert "1.5" in msg["assets.chp.chp1.eta_elec"]
    # through a process pool (the evaluation table's) the message arrives as it left
    back = pickle.loads(pickle.dumps(ei.value))
    assert str(back) == str(ei.value) and back.errors == ei.value.errors


def test_dual_chiller_must_name_a_store_and_soc_range_ordered() -> None:
    assets = copy.deepcopy(park_assets("b"))
    assets["dual_chiller"]["dch1"]["ice_store"] = "ice9"
    assets["ice_store"]["ice1"]["charge_hours"] = [22, 22]
    with pytest.raises(AssetsInvalid) as ei:
        plant_from_assets(assets)
    keys = {e.key for e in ei.value.errors}
    assert {"assets.dual_chiller.dch1.ice_store", "assets.ice_store.ice1.charge_hours"} <= keys


def test_a_network_belongs_to_a_thermal_load_and_has_a_size() -> None:
    assets = copy.deepcopy(park_assets("a"))
    assets["load"]["office"]["network_point"] = "load_heat.supply_dev_k"
    assets["load"]["office"]["network_kwh_per_k"] = 300
    del assets["load"]["district_heat"]["network_kwh_per_k"]
    assets["load"]["central_cooling"]["network_restore_h"] = 0
    with pytest.raises(AssetsInvalid) as ei:
        plant_from_assets(assets)
    msg = {e.key: e.message for e in ei.value.errors}
    assert msg["assets.load.office.network_point"] == "only heat and cooling loads have a network"
    assert msg["assets.load.district_heat.network_kwh_per_k"] == "required (> 0) with network_point"
    assert "assets.load.central_cooling.network_restore_h" in msg


def test_tariff_periods_cover_the_day_once() -> None:
    t = tariff_from_table(park_tariff("a"))
    from zoneinfo import ZoneInfo
    # 2026-07-15 local 09:30 (peak), 13:00 (deep valley), 02:00 (valley)
    base = 1784044800.0
    imp, exp, _co2 = t.series(ZoneInfo("Asia/Shanghai"),
                             np.array([base + 9.5 * 3600, base + 13 * 3600, base + 2 * 3600]))
    assert list(imp) == [1.35, 0.32, 0.42] and list(exp) == [0.85, 0.20, 0.28]
    bad = copy.deepcopy(park_tariff("a"))
    bad["periods"][0]["hours"] = [[8, 12], [18, 21]]          # overlaps "flat" 11-12
    bad["periods"][3]["hours"] = []                            # 12-15 left uncovered
    with pytest.raises(AssetsInvalid) as ei:
        tariff_from_table(bad)
    assert any(e.key.startswith("tariff.periods") for e in ei.value.errors)
    tb = tariff_from_table(park_tariff("b"))
    imp_b, _, _ = tb.series(ZoneInfo("Asia/Shanghai"), np.array([base + 12.5 * 3600]))
    assert imp_b[0] == pytest.approx(1.5131)                   # July critical peak


def test_an_ice_stores_release_cap(park_b: Park) -> None:
    # Park B's store releases at most 85 % of what it holds an hour, within its rating;
    # a store without that limit releases at its rating whatever it holds
    from dataclasses import replace as _replace

    st = park_b.plant.ice_stores[0]
    assert st.release_cap_kw(1e9) == st.melt_max_kw
    assert st.release_cap_kw(4000.0) == 0.85 * 4000.0
    assert _replace(st, release_frac_per_h=0.0).release_cap_kw(4000.0) == st.melt_max_kw
