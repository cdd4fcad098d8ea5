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


class BreakerState(StrEnum):
    """A device's circuit breaker.

    closed: requests flow. open: recent failures; no I/O until the cooldown ends,
    readings come back comm_lost at once so a dead device costs nothing.
    half_open: the cooldown ended; the next request is the probe that closes or
    reopens the breaker.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Health:
    """A device connection's health, as a snapshot for status, logs and metrics.

    consecutive_failures counts failed polls (timeouts, lost connections), not
    exception responses: a device that answers is alive. last_ok_ts is UTC
    seconds of the last successful exchange, None before the first.
    """

    connected: bool
    consecutive_failures: int
    breaker_state: BreakerState
    requests: int
    errors: int
    last_ok_ts: float | None
