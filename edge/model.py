"""The daemon's vocabulary: point values, snapshots, setpoints.

Sign convention (passive): positive power is drawn from the park's bus
(consumption, charging, export to the grid); negative is delivered to it.
Power in kW, energy in kWh, fractions in 0..1. Time is UTC seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from drivers.types import Quality

__all__ = ["PointValue", "Quality", "Snapshot", "point_key", "utc_text"]


def utc_text(ts: float, tz: ZoneInfo | None = None) -> str:
    """UTC seconds as people read them: ``2026-12-07T17:30:00Z``, and with ``tz`` the
    site's wall clock after it (``(01:30 Asia/Shanghai)``). JSON keeps the seconds."""
    t = datetime.fromtimestamp(ts, UTC)
    text = f"{t:%Y-%m-%dT%H:%M:%S}Z"
    return text if tz is None else f"{text} ({t.astimezone(tz):%H:%M} {tz.key})"


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
