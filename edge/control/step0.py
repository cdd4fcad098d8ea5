"""Step 0 of the loads and renewables: the forecast corrected by its miss on the step just measured.

A reading is the step that ended (the evaluation harness) or the last second (the
daemon). Taken as the next step's mean it lags every ramp by a step: with exact
forecasts, Park B's heat-storage boilers were short on a rising heat load (the gas
boilers picked it up) and long on a falling one (23 MWh of heat dumped in a winter
fortnight). The forecast for the next step, moved by how much the last tick's
forecast missed the step now measured, does not lag.

Tried and dropped (closed loop, docs/evaluation.md): margins at step 0 sized by the
95th percentile of the last day's remaining misses, on Park A's heat (its CHPs
cannot pick up a shortfall) and on the grid limits the battery charges or
discharges into. They cut unserved heat from 6.8 to 0.5 MWh in the winter
fortnight but cost 8-12 points of the captured saving.
"""

from __future__ import annotations

__all__ = ["corrected"]


def corrected(forecast_kw: float, measured_kw: float | None, prev_fc0_kw: float | None) -> float:
    """The forecast's step 0 moved by its miss on the step just measured; without the last
    forecast (first tick, after a gap) the reading; without a reading the forecast."""
    if measured_kw is None:
        return forecast_kw
    if prev_fc0_kw is None:
        return measured_kw
    return max(forecast_kw + (measured_kw - prev_fc0_kw), 0.0)
