"""Properties over many ticks: no setpoint breaks a device limit, the balances close."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.control import ControllerState, Forecast, PointLimit, decide
from edge.control.scenario import T0, Park, park
from edge.model import Quality

PARKS = {"a": park("a", deadline_s=0.0), "b": park("b", deadline_s=0.0)}
_SETTINGS = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _scaled(p: Park, fc: Forecast, load: float, sun: float, wind: float) -> Forecast:
    return replace(fc, pv_kw=fc.pv_kw * sun, wind_kw=fc.wind_kw * wind,
                   elec_kw={k: v * load for k, v in fc.elec_kw.items()},
                   heat_kw=fc.heat_kw * load, cooling_kw=fc.cooling_kw * load)


@_SETTINGS
@given(name=st.sampled_from(["a", "b"]), hour=st.floats(0, 47.9), soc=st.floats(0, 1),
       ice=st.floats(0, 1), load=st.floats(0, 1.6), sun=st.floats(0, 1.3),
       wind=st.floats(0, 1.5), good=st.booleans())
def test_setpoints_within_limits_and_balances_close(name: str, hour: float, soc: float,
                                                    ice: float, load: float, sun: float,
                                                    wind: float, good: bool) -> None:
    p = PARKS[name]
    t = T0 + hour * 3600
    fc = _scaled(p, p.forecast(T0, n=300), load, sun, wind)
    snap = p.snapshot(t, soc_frac=soc, ice_frac=ice,
                      quality=Quality.GOOD if good else Quality.STALE)
    d, _ = decide(snap, fc, None, ControllerState.fresh(p.config))
    lim = p.config.all_limits()
    assert set(d.setpoints) == set(lim)
    for k, v in d.setpoints.items():
        assert np.isfinite(v) and lim[k].min - 1e-6 <= v <= lim[k].max + 1e-6, (k, v)
    if d.reason == "optimal":
        assert all(abs(r) < 1e-6 for r in d.residual_kw.values()), d.residual_kw
        for b in p.plant.batteries:              # the stored energy allows the first step
            e0 = min(max(soc, 0.0), 1.0) * b.capacity_kwh
            sp = d.setpoints[b.p_set_point]
            assert e0 + sp * b.eta_charge * 0.25 <= b.soc_max_frac * b.capacity_kwh + 1e-3 \
                or sp <= 1e-6
            assert e0 + sp / b.eta_discharge * 0.25 >= b.soc_min_frac * b.capacity_kwh - 1e-3 \
                or sp >= -1e-6
    else:
        assert not good and d.reason == "rules"


@_SETTINGS
@given(steps=st.lists(st.tuples(st.floats(0.1, 30.0), st.floats(0.05, 0.95)),
                      min_size=3, max_size=8),
       ramp=st.floats(1.0, 500.0))
def test_ramps_hold_over_a_run_of_ticks(steps: list[tuple[float, float]], ramp: float) -> None:
    p = PARKS["a"]
    cfg = replace(p.config, limits={"bess1.p_set_kw": PointLimit(-10000, 10000, ramp),
                                    "chp1.p_set_kw": PointLimit(-4000, 0, ramp)})
    state = ControllerState.fresh(cfg)
    fc = p.forecast(T0, n=200)
    t = T0 + 8 * 3600
    prev: dict[str, float] | None = None
    prev_ts = t
    for dt, soc in steps:
        t += dt
        d, state = decide(p.snapshot(t, soc_frac=soc), fc, None, state)
        if prev is not None:
            for k in ("bess1.p_set_kw", "chp1.p_set_kw"):
                assert abs(d.setpoints[k] - prev[k]) <= ramp * (t - prev_ts) + 1e-6
        prev, prev_ts = dict(d.setpoints), t


def test_a_nearly_full_ice_store_at_night_stops_ice_making() -> None:
    """Found by hypothesis: a sliver of room made the commitment start ice-making whose
    minimum load would overfill the store, and the QP had no solution (fallback to rules)."""
    p = PARKS["b"]
    fc = _scaled(p, p.forecast(T0, n=300), 0.0, 0.0, 0.0)
    for ice in (0.9999999999999999, 0.99999999, 0.9999, 1.0):
        snap = p.snapshot(T0, soc_frac=0.0, ice_frac=ice, quality=Quality.GOOD)
        d, _ = decide(snap, fc, None, ControllerState.fresh(p.config))
        assert d.reason == "optimal", (ice, d.detail)
        assert all(d.setpoints[c.mode_set_point] != 2 for c in p.plant.dual_chillers), ice


def test_a_battery_measured_above_its_band_is_planned_not_given_up_on() -> None:
    """Found by hypothesis: SOC 1.0 (max 0.95) with no load and no export room could not be
    forced back into the band in one step, so the QP had no solution."""
    p = PARKS["a"]
    fc = _scaled(p, p.forecast(T0, n=300), 0.0, 0.0, 0.0)
    for soc in (1.0, 0.99, 0.0):
        d, _ = decide(p.snapshot(T0, soc_frac=soc, ice_frac=0.0, quality=Quality.GOOD), fc, None,
                      ControllerState.fresh(p.config))
        assert d.reason == "optimal", (soc, d.detail)
        b = p.plant.batteries[0]
        if soc >= b.soc_max_frac:
            assert d.setpoints[b.p_set_point] <= 1e-6  # never charges a battery already too full
        if soc <= b.soc_min_frac:
            assert d.setpoints[b.p_set_point] >= -1e-6  # never discharges one already too empty
