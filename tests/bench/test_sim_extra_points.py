"""The simulated park's load-test points (``SimPark(extra_points=N)``): served, valid, moving."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from parksim.protocols.extra import split
from parksim.runtime import SimPark

from drivers.client import DeviceClient
from drivers.opcua import OpcUaClient
from drivers.types import Quality, Reading
from edge.config import embedded_site_path, load_site
from edge.devices import make_client

START = datetime(2026, 7, 7, 4, 0, tzinfo=UTC)  # noon in Shanghai: PV strings carry current


def test_split_is_half_and_half_with_the_odd_point_on_modbus() -> None:
    assert split(0) == (0, 0)
    assert split(884) == (442, 442)
    assert split(101) == (51, 50)


def test_negative_extra_points_are_refused() -> None:
    with pytest.raises(ValueError, match="extra_points"):
        SimPark("park-a", base_port=0, extra_points=-1)


async def test_extra_points_are_served_valid_and_change_every_step(tmp_path: Path) -> None:
    sim = SimPark("park-a", seed=1, base_port=0, start_utc=START, extra_points=101)
    await sim.start()
    try:
        await sim.step_once(60.0)
        fragment = sim.extra_devices_toml()
        devices = tomllib.loads(fragment)["devices"]
        by_protocol = {p: sum(len(d["points"]) for d in devices if d["protocol"] == p) for p in ("modbus", "opcua")}
        assert by_protocol == {"modbus": 51, "opcua": 50}
        served = {e.device: e.url for e in sim.endpoints}
        assert all(served[d["name"]] == d["endpoint"] for d in devices)

        # The fragment appended to the real site file passes the site rules (units fit names, ...).
        site_file = tmp_path / "site.toml"
        site_file.write_text(embedded_site_path("park-a").read_text() + "\n" + fragment)
        site = load_site(site_file)
        extra = [d for d in site.devices if d.name in {"pvcb01", "pvcb02", "rack01"}]
        clients = [make_client(d) for d in extra]
        for c in clients:
            if isinstance(c, OpcUaClient):
                assert await c.wait_connected(20.0)
        try:
            first = [await _settled(c) for c in clients]
            await sim.step_once(60.0)
            second = [await _moved(c, before) for c, before in zip(clients, first, strict=True)]
        finally:
            for c in clients:
                await c.close()
        for before, after, d in zip(first, second, extra, strict=True):
            assert len(before) == len(d.points)
            assert all(r.quality is Quality.GOOD for r in [*before.values(), *after.values()])
            moved = sum(before[n].value != after[n].value for n in before)
            # Noise of a few counts: a uint16 string current repeats now and then after rounding.
            assert moved >= 0.8 * len(before), d.name
        assert all(r.value is not None and float(r.value) > 0 for r in first[0].values())  # noon
    finally:
        await sim.stop()


async def _settled(c: DeviceClient) -> dict[str, Reading]:
    """Every point good (a subscription delivers its first values shortly after subscribing)."""
    for _ in range(200):
        got = await c.read_all()
        if all(r.quality is Quality.GOOD for r in got.values()):
            return got
        await asyncio.sleep(0.05)
    return got


async def _moved(c: DeviceClient, before: dict[str, Reading]) -> dict[str, Reading]:
    """The readings once most have changed (a subscription publishes every 200 ms)."""
    for _ in range(200):
        got = await c.read_all()
        if sum(got[n].value != before[n].value for n in before) >= 0.8 * len(before):
            return got
        await asyncio.sleep(0.05)
    return got
