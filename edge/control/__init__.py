"""Control: the multi-energy MPC and its fallbacks, as a pure function of its inputs.

Sign convention (passive, stated once for all of edge.control): a power is
positive when it is drawn from the park's bus (consumption, charging, export
to the grid) and negative when it is delivered to it (generation,
discharging, import). The same holds on the heat and cooling buses: a boiler
or chiller setpoint is negative (it delivers), a load is positive. Ratings,
forecasts and the QP's variables are magnitudes (>= 0); the sign is applied
where a value becomes a setpoint. Power in kW, energy in kWh, money in CNY,
fractions in 0..1, time in UTC seconds (local time only via the plant's zone).

No I/O and no clock: the tick's time is ``Snapshot.ts``.

Offers:
    decide, decide_rules        one tick (optimal, or a stated fallback)
    ControllerConfig, ControllerState, Decision
    Forecast, Plan, Tariff      the inputs besides the snapshot
    plant_from_assets, PlantModel, AssetError, AssetsInvalid
    tariff_from_table
    PointLimit                  a writable point's clamp
    points (module)             decisions in the forms devices take (SunSpec %, run commands,
                                shed fractions, ice store modes, heat-storage boilers)
"""

from edge.control.controller import (
    ControllerConfig,
    ControllerState,
    Decision,
    Reason,
    SolveStats,
    decide,
    decide_rules,
)
from edge.control.inputs import Forecast, Plan, Tariff, TariffPeriod, tariff_from_table
from edge.control.plant import AssetError, AssetsInvalid, PlantModel, plant_from_assets
from edge.control.safety import PointLimit

__all__ = [
    "AssetError", "AssetsInvalid", "ControllerConfig", "ControllerState", "Decision",
    "Forecast", "Plan", "PlantModel", "PointLimit", "Reason", "SolveStats", "Tariff",
    "TariffPeriod", "decide", "decide_rules", "plant_from_assets", "tariff_from_table",
]
