"""The daemon in-process against the simulated park served on loopback (free ports)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from parksim.runtime import SimPark

from edge.config import SiteConfig, embedded_site_path, load_site
from edge.daemon import Daemon


async def eventually(check: Callable[[], bool], *, limit_s: float = 30.0, what: str = "condition") -> None:
    """Wait for a condition; the limit only stops a hung test, it measures nothing."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not check():
        assert loop.time() < end, f"{what} never held"
        await asyncio.sleep(0.05)


def site_for(sim: SimPark, tmp_path: Path, extra: Sequence[str] = ()) -> SiteConfig:
    """The embedded site file, pointed at this park's ports and at temporary files."""
    base = load_site(embedded_site_path(sim.site))
    by_device = {e.device: e.url for e in sim.endpoints}
    overrides = [f'devices[{i}].endpoint="{by_device[d.name]}"' for i, d in enumerate(base.devices)]
    overrides += [f'store.path="{tmp_path / "site.db"}"', f'cli.socket="{tmp_path / "ctl.sock"}"',
                  "control.tick_s=0.5", *extra]
    return load_site(embedded_site_path(sim.site), overrides)


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
