"""Types shared by every protocol driver: a reading, its quality, a device's health.

Drivers know nothing of energy: a point is a name, a value and how good it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Quality(StrEnum):
    """How far a value can be trusted.

    good: read in this poll (or pushed by a subscription) without error.
    stale: the last good value, older than the point's staleness limit.
    bad: the device answered but refused or flagged the value (Modbus exception,
        OPC UA bad status, decode error); the value is the last good one or None.
    comm_lost: the device did not answer (timeout, connection refused, breaker open).
    """

    GOOD = "good"
    STALE = "stale"
    BAD = "bad"
    COMM_LOST = "comm_lost"


@dataclass(frozen=True, slots=True)
class Reading:
    """One point's value as a driver saw it.

    source_ts is UTC seconds since the epoch: the device's own timestamp where
    the protocol carries one (OPC UA SourceTimestamp), else the time the
    response arrived.
    """

    value: float | str | None
    quality: Quality
    source_ts: float


class DriverError(Exception):
    """A device could not be reached or answered with an error; the message is one line."""


class WriteRefused(DriverError):
    """The device refused a write (Modbus exception 03, OPC UA BadOutOfRange, ...)."""
