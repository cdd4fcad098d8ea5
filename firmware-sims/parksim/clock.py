"""The sim clock: virtual UTC time running at ``speed`` times wall-clock time.

Anchored on time.monotonic(), so step instants never drift with the work done
in between: step k is due at wall time t0 + k * step_s / speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class SimClock:
    start_utc: datetime
    speed: float = 1.0
    _t0_wall: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    def now_s(self) -> float:
        """Virtual UTC seconds now."""
        return self.start_utc.timestamp() + (time.monotonic() - self._t0_wall) * self.speed

    def wall_due(self, sim_elapsed_s: float) -> float:
        """The monotonic wall time at which ``sim_elapsed_s`` of virtual time has passed."""
        return self._t0_wall + sim_elapsed_s / self.speed

    @staticmethod
    def default_start() -> datetime:
        now = datetime.now(UTC)
        return now.replace(microsecond=0)
