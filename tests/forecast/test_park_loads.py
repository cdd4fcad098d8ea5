"""Park A's load targets are the simulated park's loads (one definition, models/data.py)."""

from __future__ import annotations

import numpy as np

from models.data import PARK_NOISE_SEED, STEP_S, park_load_series


def test_training_targets_are_the_parks_loads() -> None:
    import datetime as dt

    from parksim.physics import build_park

    series = {s.target: s for s in park_load_series()}
    first = series["heating"].first_step
    park = build_park("park-a", seed=PARK_NOISE_SEED,
                      start_utc=dt.datetime.fromtimestamp(first * STEP_S, dt.UTC))
    for i in np.linspace(0, len(series["heating"].y_kw) - 1, 25).astype(int):
        e = park.exogenous_at(float((first + i) * STEP_S + STEP_S // 2))
        assert series["heating"].y_kw[i] == e.heat_kw
        assert series["cooling"].y_kw[i] == e.cool_kw
        assert series["data_centre"].y_kw[i] == e.loads_kw["datacentre"]
        assert series["office"].y_kw[i] == e.loads_kw["office"]
        assert series["hospital"].y_kw[i] == e.loads_kw["hospital"]


def test_park_scaling_as_stated() -> None:
    """firmware-sims/README.md: heat 4.5 MW peak, design day 82.8 MWh (base 0: 72 MWh would
    need a negative base); cooling 3.8 MW peak, design day 60 MWh. 2 % noise on top."""
    series = {s.target: s for s in park_load_series()}
    for t, peak, day_kwh in (("heating", 4500.0, 82800.0), ("cooling", 3800.0, 60000.0)):
        y = series[t].y_kw
        daily = y[: 365 * 96].reshape(365, 96).sum(axis=1) / 4.0
        assert abs(y.max() / peak - 1.0) < 0.06
        assert abs(daily.max() / day_kwh - 1.0) < 0.03


def test_park_b_targets_are_park_bs_own_loads() -> None:
    """Park B's models are trained on build_park("park-b")'s loads, not Park A's."""
    import datetime as dt

    from parksim.physics import build_park

    from models.data import PARK_B_TARGETS, park_b_load_series

    series = {s.target: s for s in park_b_load_series()}
    assert tuple(series) == PARK_B_TARGETS
    first = series["park_b_heating"].first_step
    park = build_park("park-b", seed=PARK_NOISE_SEED,
                      start_utc=dt.datetime.fromtimestamp(first * STEP_S, dt.UTC))
    for i in np.linspace(0, len(series["park_b_heating"].y_kw) - 1, 25).astype(int):
        e = park.exogenous_at(float((first + i) * STEP_S + STEP_S // 2))
        assert series["park_b_buildings"].y_kw[i] == e.loads_kw["buildings"]
        assert series["park_b_heating"].y_kw[i] == e.heat_kw
        assert series["park_b_cooling"].y_kw[i] == e.cool_kw
    # scaled by the site's peaks (edge/sites/park-b.toml): 5 MW, 12 MW, 16.4 MW, 2 % noise on top
    for t, peak in (("park_b_buildings", 5000.0), ("park_b_heating", 12000.0), ("park_b_cooling", 16400.0)):
        assert series[t].scale_kw == peak
        assert abs(series[t].y_kw.max() / peak - 1.0) < 0.06
    assert "park-b" in series["park_b_cooling"].description["source"]
