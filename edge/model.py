"""The daemon's vocabulary: point values, snapshots, setpoints.

Sign convention (passive): positive power is drawn from the park's bus
(consumption, charging, export to the grid); negative is delivered to it.
Power in kW, energy in kWh, fractions in 0..1. Time is UTC seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from drivers.types import Quality

__all__ = ["PointValue", "Quality", "Snapshot", "point_key"]


def point_key(device: str, point: str) -> str:
    """The site-wide name of a point: ``device.point``."""
    return f"{device}.{point}"


@dataclass(frozen=True, slots=True)
class PointValue:
    """A point as acquisition hands it to control."""

    value: float | str | None
    unit: str
    quality: Quality
    source_ts: float  # UTC seconds, from the device where it has one


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything measured at one tick; ``ts`` is the tick's UTC time in seconds."""

    ts: float
    points: Mapping[str, PointValue] = field(default_factory=dict)

    def value(self, key: str) -> float | None:
        """The numeric value of ``device.point`` if it is good, else None."""
        pv = self.points.get(key)
        if pv is None or pv.quality is not Quality.GOOD or not isinstance(pv.value, float | int):
            return None
        return float(pv.value)
