"""Helpers for tests that run the daemon against the simulated park."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from parksim.runtime import SimPark

from edge.config import SiteConfig, embedded_site_path, load_site


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
