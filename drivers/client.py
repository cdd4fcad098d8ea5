"""The interface acquisition and actuation use, whatever the protocol."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from drivers.types import Health, Reading


class DeviceClient(Protocol):
    """One device's connection. Each device is polled from its own task.

    read_all: every readable point. A point that failed carries its last good
    value (or None) with quality bad or comm_lost and the last good timestamp;
    it never raises for a device that is down.
    read_points: the same for some points (actuation's read-back); KeyError
    for a name the device does not have.
    write: raises ValueError for a read-only point or a value its type cannot
    hold, WriteRefused when the device refuses, DriverError when unreachable.
    """

    @property
    def name(self) -> str: ...

    async def read_all(self) -> dict[str, Reading]: ...

    async def read_points(self, names: Iterable[str]) -> dict[str, Reading]: ...

    async def write(self, point: str, value: float | str) -> None: ...

    def health(self) -> Health: ...

    async def close(self) -> None: ...
