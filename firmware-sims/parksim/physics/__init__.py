"""Device physics of the reference parks, steppable in virtual time without servers.

    park = build_park("park-a", seed=1, start_utc=datetime(2026, 7, 1, tzinfo=UTC))
    park.apply({"bess1.p_set_kw": 5000})      # refused keys come back with a reason
    flows = park.step(900)                     # StepFlows: every flow of the step
    park.exogenous_at(ts)                      # weather, availabilities, loads

Sign convention: positive power is drawn from the park's bus (consumption,
charging, export); negative is delivered to it.
"""

from .devices import Limit
from .exogenous import Exogenous, WeatherPoint
from .park import Park, SetpointRefused, StepFlows, build_park, load_scalings
from .sites import SITES

__all__ = ["SITES", "Exogenous", "Limit", "Park", "SetpointRefused", "StepFlows",
           "WeatherPoint", "build_park", "load_scalings"]
