"""The plan's weather reaches the forecasters: carried by control's Plan, sampled per step."""

from __future__ import annotations

import numpy as np

from edge.control import Plan
from edge.control.plant import Objective
from edge.plan_input import control_plan
from edge.plans import ValidatedPlan

T0 = 1_767_225_600.0          # 2026-01-01 00:00 UTC, a step boundary
STEP = 900.0


def _plan(n: int, weather: dict[str, np.ndarray]) -> Plan:
    flat = np.full(n, 0.5)
    return Plan("p", T0, STEP, flat, flat, flat, 3.65, 82.0, weather=weather)


def test_weather_ahead_samples_each_covered_key_at_step_middles() -> None:
    n = 192
    plan = _plan(n, {"wind_m_s": np.arange(n, dtype=float), "temp_c": np.arange(50, dtype=float)})
    wx = plan.weather_ahead(T0 + 10 * STEP, STEP, 96)
    # temp_c covers only 50 steps: left out rather than held flat beyond its end
    assert set(wx) == {"wind_m_s"}
    np.testing.assert_array_equal(wx["wind_m_s"], np.arange(10, 106, dtype=float))
    # from mid-step: each value is the step in force at the middle of the forecaster's step
    half = plan.weather_ahead(T0 + 10.5 * STEP, STEP, 4)["wind_m_s"]
    np.testing.assert_array_equal(half, [11.0, 12.0, 13.0, 14.0])
    assert plan.weather_ahead(T0 + 150 * STEP, STEP, 96) == {}       # runs past the plan's end


def test_control_plan_carries_the_validated_weather() -> None:
    n = 96
    flat = np.full(n, 0.5)
    wx = {"ghi_w_m2": np.full(n, 300.0), "temp_c": np.full(n, 4.0), "wind_m_s": np.full(n, 6.5)}
    vp = ValidatedPlan("p", "park-a", "k1", T0, T0, T0 + n * STEP, int(STEP), flat, flat, flat,
                       wx, {}, {}, 3.65, 82.0, {}, body_text="{}")
    plan = control_plan(vp, Objective(), diesel_cny_per_l=7.5)
    got = plan.weather_ahead(T0, STEP, n)
    assert set(got) == set(wx)
    np.testing.assert_array_equal(got["wind_m_s"], wx["wind_m_s"])
