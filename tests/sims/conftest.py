"""Fixtures: the simulated park running on loopback, every server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from parksim.runtime import Endpoint, SimPark

# Noon in Shanghai on a July weekday: PV, wind, cooling and loads all non-zero.
START = datetime(2026, 7, 7, 4, 0, tzinfo=UTC)


@pytest.fixture
async def park_a() -> AsyncIterator[SimPark]:
    sim = SimPark("park-a", seed=3, base_port=0, start_utc=START, meas_noise_frac=0.0,
                  heartbeat_timeout_s=0.5)
    await sim.start()
    await sim.step_once(60.0)
    yield sim
    await sim.stop()


def host_port(ep: Endpoint) -> tuple[str, int]:
    host, port = ep.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def endpoint(sim: SimPark, device: str) -> Endpoint:
    return next(e for e in sim.endpoints if e.device == device)
