"""The daemon in-process against the simulated park served on loopback (free ports)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from parksim.runtime import SimPark

from edge.config import SiteConfig
from edge.daemon import Daemon


@pytest.fixture
async def park() -> AsyncIterator[Callable[..., Awaitable[SimPark]]]:
    sims: list[tuple[SimPark, asyncio.Task[None]]] = []

    async def start(site: str = "park-a", **kw: Any) -> SimPark:
        sim = SimPark(site, seed=1, speed=1.0, base_port=0, **kw)
        await sim.start()
        sims.append((sim, asyncio.create_task(sim.run())))
        return sim

    yield start
    for sim, task in sims:
        await sim.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def daemon() -> AsyncIterator[Callable[[SiteConfig], Awaitable[Daemon]]]:
    running: list[tuple[Daemon, asyncio.Task[None]]] = []

    async def start(site: SiteConfig) -> Daemon:
        d = Daemon(site, serve_metrics=False)
        running.append((d, asyncio.create_task(d.run(handle_signals=False))))
        return d

    yield start
    for d, task in running:
        d.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
