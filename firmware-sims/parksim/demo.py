"""Start a simulated park and show live readings read back over Modbus and OPC UA.

    python -m parksim.demo --site park-a [--speed 60] [--duration 10]

Plain pymodbus and asyncua clients (not the daemon's drivers) read a few points
of each device every second and print a refreshing table. Ctrl-C exits cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import struct
import sys
from datetime import UTC, datetime

from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from .runtime import SimPark


def _i16(r: int) -> int:
    return r - 0x10000 if r >= 0x8000 else r


def _f32(regs: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", regs[0], regs[1]))[0]


class _Reader:
    """What the table shows: (label, unit, async read) per row."""

    def __init__(self, sim: SimPark) -> None:
        self.sim = sim
        self.clients: dict[str, AsyncModbusTcpClient] = {}
        self.ua: Client | None = None
        self.ns = 0

    async def connect(self) -> None:
        for e in self.sim.endpoints:
            if e.protocol == "modbus" and e.url not in self.clients:
                host, port = e.url.split("//")[1].rsplit(":", 1)
                framer = FramerType.RTU if e.url.startswith("rtu") else FramerType.SOCKET
                c = AsyncModbusTcpClient(host, port=int(port), framer=framer, timeout=1)
                await c.connect()
                self.clients[e.url] = c
        ua_url = next((e.url for e in self.sim.endpoints if e.protocol == "opcua"), None)
        if ua_url:
            self.ua = Client(ua_url)
            await self.ua.connect()
            self.ns = await self.ua.get_namespace_index(self.sim.namespace_uri)

    async def modbus(self, device: str, address: int, count: int) -> list[int]:
        e = next(e for e in self.sim.endpoints if e.device == device)
        r = await self.clients[e.url].read_holding_registers(address, count=count, device_id=e.unit)
        return list(r.registers)

    async def node(self, name: str) -> float:
        assert self.ua is not None
        return float(await self.ua.get_node(f"ns={self.ns};s={name}").read_value())

    async def rows(self) -> list[tuple[str, str, float]]:
        rows: list[tuple[str, str, float]] = []
        rows.append(("grid1 import(-)/export(+)", "kW", -_i16((await self.modbus("grid1", 40088, 1))[0])))
        rows.append(("pv1 generation", "kW", _i16((await self.modbus("pv1", 40084, 1))[0])))
        rows.append(("bess1 SOC", "%", (await self.modbus("bess1", 40081, 1))[0] / 100))
        rows.append(("bess1 power (+charge)", "kW", _f32(await self.modbus("bess1", 40168, 2))))
        if self.sim.site == "park-a":
            rows.append(("wind1 generation", "kW", _f32(await self.modbus("wind1", 100, 2))))
            rows.append(("dg1 power", "kW", _i16((await self.modbus("dg1", 3, 1))[0])))
            rows.append(("load_office", "kW", _i16((await self.modbus("load_office", 40088, 1))[0])))
            rows.append(("load_hospital", "kW", _i16((await self.modbus("load_hospital", 40088, 1))[0])))
            for n, label in (("Chp1.ElectricPower_kW", "chp1 electric"), ("Chp1.HeatOutput_kW", "chp1 heat"),
                             ("Chiller1.CoolingOutput_kW", "ch1 cooling"),
                             ("AbsChiller1.CoolingOutput_kW", "absc1 cooling"),
                             ("HeatingLoad.Demand_kW", "heat demand"), ("CoolingLoad.Demand_kW", "cooling demand")):
                rows.append((label, "kW", await self.node(n)))
        else:
            rows.append(("load_buildings", "kW", _i16((await self.modbus("load_buildings", 40088, 1))[0])))
            for n, label in (("BaseChiller1.CoolingOutput_kW", "bch1 cooling"),
                             ("DualChiller1.CoolingOutput_kW", "dch1 cooling"),
                             ("IceStore1.Stored_kWh", "ice1 stored (kWh)"),
                             ("GasBoiler1.HeatOutput_kW", "gb1 heat"),
                             ("CoolingLoad.Demand_kW", "cooling demand")):
                rows.append((label, "kW", await self.node(n)))
        return rows

    async def close(self) -> None:
        for c in self.clients.values():
            c.close()
        if self.ua is not None:
            with contextlib.suppress(Exception):
                await self.ua.disconnect()


async def run(site: str, speed: float, duration_s: float | None, seed: int) -> int:
    if site == "park-b":
        pass
    sim = SimPark(site, seed=seed, speed=speed, base_port=0)
    await sim.start()
    for e in sim.endpoints:
        print(e.line())
    stepper = asyncio.create_task(sim.run())
    reader = _Reader(sim)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    interactive = sys.stdout.isatty()
    try:
        await reader.connect()
        t_end = loop.time() + duration_s if duration_s else None
        while not stop.is_set() and (t_end is None or loop.time() < t_end):
            rows = await reader.rows()
            ts = datetime.fromtimestamp(sim.park.t_s, UTC).isoformat(timespec="seconds")
            lines = [f"{site}  virtual time {ts}  speed x{speed:g}  (Ctrl-C to quit)"]
            lines += [f"  {label:<28} {value:>12,.1f} {unit}" for label, unit, value in rows]
            print(("\x1b[H\x1b[J" if interactive else "") + "\n".join(lines), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await reader.close()
        await sim.stop()
        await stepper
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m parksim.demo")
    p.add_argument("--site", default="park-a", choices=("park-a", "park-b"))
    p.add_argument("--speed", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=None, help="seconds to run, then exit")
    a = p.parse_args(argv)
    return asyncio.run(run(a.site, a.speed, a.duration, a.seed))


if __name__ == "__main__":
    sys.exit(main())
