"""Backoff with jitter and a circuit breaker, shared by the protocol clients.

Both take the time as an argument instead of reading a clock, so tests drive
them without sleeping and a client can use time.monotonic().
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.types import BreakerState


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": the delay is drawn from
    [d/2, d], so retries spread out yet never come back sooner than half the
    nominal delay."""

    initial_s: float
    max_s: float
    rng: Callable[[], float] = field(default=random.random)
    failures: int = 0
    not_before: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float) -> float:
        """Record a failed attempt; returns the delay until the next one."""
        self.failures += 1
        nominal = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        delay: float = nominal * (0.5 + 0.5 * self.rng())
        self.not_before = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0


@dataclass(slots=True)
class Breaker:
    """Opens after `threshold` consecutive failures; after `cooldown_s` lets
    one probe through (half-open), which closes it or opens it again."""

    threshold: int
    cooldown_s: float
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0

    def admit(self, now: float) -> bool:
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.cooldown_s:
                return False
            self.state = BreakerState.HALF_OPEN
        return True

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self.state = BreakerState.CLOSED

    def failed(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now
