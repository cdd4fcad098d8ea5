"""Closed-loop evaluation of the controller on the simulated park (``parkedge-sim evaluate``).

    from parksim.evaluate import evaluate
    kpis = evaluate("park-a", "mpc", days=14, start=date(2026, 7, 6), trace="trace.csv")

See docs/evaluation.md for the KPIs, the trace, the weather forecast error model
and the perfect-foresight bound.
"""

from .harness import CONTROLLERS, evaluate
from .weather import WeatherError, forecast_weather

__all__ = ["CONTROLLERS", "WeatherError", "evaluate", "forecast_weather"]
