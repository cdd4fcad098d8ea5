"""A device worker stops when cancelled even if a driver swallowed the cancel.

A full ``parkedge bench`` run showed two device workers still alive 5 s after the
daemon's stop: some call below them had caught their cancel (not pinned down). The
client below does that: it catches the cancel and returns readings. This fake
stands in for a library behaviour that cannot be produced on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from drivers.types import BreakerState, Health
from edge.acquisition import DeviceWorker
from edge.config import embedded_site_path, load_site
from edge.metrics import Metrics


class SwallowingClient:
    def __init__(self) -> None:
        self.swallowed = 0
        self.reads = 0
        self.closed = False
        self.reading = asyncio.Event()

    @property
    def name(self) -> str:
        return "swallower"

    async def read_all(self) -> dict:  # type: ignore[type-arg]
        self.reads += 1
        self.reading.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.swallowed += 1           # the lost cancel: the read "completes"
        return {}

    async def read_points(self, names: Iterable[str]) -> dict:  # type: ignore[type-arg]
        return {}

    async def write(self, point: str, value: float | str) -> None:
        return None

    def health(self) -> Health:
        return Health(True, 0, BreakerState.CLOSED, self.reads, 0, None)

    async def close(self) -> None:
        self.closed = True


async def test_worker_stops_although_the_driver_swallowed_the_cancel() -> None:
    cfg = load_site(embedded_site_path("park-a")).devices[0]
    client = SwallowingClient()
    worker = DeviceWorker(cfg, client, Metrics())  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    await client.reading.wait()
    await asyncio.sleep(0.01)                      # inside read_all
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    if not done:                                   # failed: stop it for the next tests
        task.cancel()
        await asyncio.wait([task], timeout=2.0)
    assert done, "the worker kept polling after its cancel"
    assert client.swallowed == 1
    assert task.cancelled()
