"""A running simulated park: physics + clock + every protocol server, on loopback.

    sim = SimPark("park-a", seed=1, speed=10, base_port=0)   # 0: free ports
    endpoints = await sim.start()      # {"bess1": "tcp://127.0.0.1:40123", ...}
    await sim.step_once()              # or: task = asyncio.create_task(sim.run())
    sim.faults("bess1").offline = True
    await sim.stop()

Heartbeats are watched in wall-clock time (they are a communication matter):
a device under remote control falls back to its local default when no
heartbeat arrived for ``heartbeat_timeout_s``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .clock import SimClock
from .physics import Park, build_park
from .protocols import opcmap, regmap
from .protocols.extra import EXTRA_MODBUS_OFFSET, ExtraValues, devices_toml
from .protocols.faults import Faults
from .protocols.modbus_server import SimModbusServer
from .protocols.opcua_server import OpcUaOptions, SimOpcUaServer

DEFAULT_BASE_PORT = {"park-a": 15020, "park-b": 15120}


@dataclass(frozen=True)
class Endpoint:
    """A served device: where it is and how to address it."""

    device: str
    protocol: str  # modbus | opcua
    url: str
    unit: int = 0

    def line(self) -> str:
        unit = f" unit={self.unit}" if self.protocol == "modbus" else ""
        return f"{self.device:<14} {self.protocol:<6} {self.url}{unit}"


def modbus_layout(site: str) -> dict[str, tuple[int, bool, list[regmap.DeviceMap]]]:
    """Server name -> (port offset from the base port, RTU framing, its devices)."""
    if site == "park-a":
        meters = [regmap.meter("grid1", 1, "grid1", grid=True),
                  regmap.meter("load_office", 2, "load_office", grid=False),
                  regmap.meter("load_hospital", 3, "load_hospital", grid=False),
                  regmap.meter("dc1", 4, "load_datacentre", grid=False,
                               vendor=[("shed_frac", "dc1.shed_frac", "frac", "rw")])]
        return {"bess": (1, False, [regmap.battery("bess1", 1)]),
                "pv": (2, False, [regmap.pv_inverter("pv1", 1, 8000.0)]),
                "meters": (3, False, meters),
                "wind": (4, False, [regmap.wind_farm("wind1", 1)]),
                "diesel": (5, True, [regmap.diesel("dg1", 1), regmap.diesel("dg2", 2)])}
    meters = [regmap.meter("grid1", 1, "grid1", grid=True),
              regmap.meter("load_buildings", 2, "load_buildings", grid=False)]
    return {"pv": (2, False, [regmap.pv_inverter("pv1", 1, 2800.0)]),
            "meters": (3, False, meters)}


class SimPark:
    def __init__(self, site: str, *, seed: int = 0, speed: float = 1.0, step_s: float = 1.0,
                 start_utc: datetime | None = None, host: str = "127.0.0.1",
                 base_port: int | None = None, heartbeat_timeout_s: float = 10.0,
                 meas_noise_frac: float = 0.002, opcua: OpcUaOptions | None = None,
                 weather: str | None = None, options: Mapping[str, float] | None = None,
                 extra_points: int = 0) -> None:
        self.site = site
        self.host = host
        self.step_s = step_s
        self.clock = SimClock(start_utc or SimClock.default_start(), speed)
        self.park: Park = build_park(site, seed=seed, start_utc=self.clock.start_utc,
                                     weather=weather, options=options)
        self.base_port = DEFAULT_BASE_PORT[site] if base_port is None else base_port
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.meas_noise_frac = meas_noise_frac
        self._rng = np.random.default_rng([seed, 7])
        self._faults: dict[str, Faults] = {}
        self.hb_value: dict[str, float] = {}
        self.hb_seen: dict[str, float] = {}  # device -> monotonic time of the last heartbeat
        self.refused: dict[str, int] = {}
        self.fallbacks: dict[str, int] = {}
        self.extra: dict[str, float] = {}
        self.modbus: dict[str, SimModbusServer] = {}
        if extra_points < 0:
            raise ValueError(f"extra_points must be >= 0, got {extra_points}")
        # Load-test telemetry (protocols/extra.py): read-only, no effect on the physics.
        self.extra_telemetry = ExtraValues(extra_points, seed) if extra_points > 0 else None
        opc_points = opcmap.site_points(site) + (self.extra_telemetry.opcua if self.extra_telemetry else [])
        self.opcua = SimOpcUaServer(site, opc_points, self.faults, self._on_write,
                                    opcua) if opc_points else None
        self.endpoints: list[Endpoint] = []
        # Keys written by clients only (heartbeats, CtrlHb) read 0 until first written.
        self._write_only = {p.key for _, _, maps in modbus_layout(site).values()
                            for dm in maps for p in dm.points if p.access == "rw"}
        self._write_only |= {p.key for p in opcmap.site_points(site) if p.writable}
        self.steps = 0
        self._stopping = asyncio.Event()

    def faults(self, device: str) -> Faults:
        """The device's fault switches (see protocols/faults.py)."""
        return self._faults.setdefault(device, Faults())

    # --- writes and heartbeats ---------------------------------------------------------

    def _on_write(self, device: str, point: regmap.RegPoint | opcmap.OpcPoint, value: float) -> str | None:
        dev = point.key.split(".", 1)[0]
        if point.heartbeat:
            self.hb_value[point.key] = value
            self.hb_seen[dev] = time.monotonic()
            return None
        limits = self.park.setpoint_limits()
        if point.key not in limits:
            self.extra[point.key] = value  # e.g. SunSpec CtrlHb: stored, no effect
            return None
        reason = self.park.check(point.key, value)
        if reason is not None:
            self.park.refused_total += 1
            self.refused[dev] = self.refused.get(dev, 0) + 1
            return reason
        self.park.apply({point.key: value})
        self.hb_seen.setdefault(dev, time.monotonic())  # arm the watchdog
        return None

    def _watchdog(self) -> None:
        now = time.monotonic()
        for name, dev in self.park.devices.items():
            if dev.remote and name in self.hb_seen and now - self.hb_seen[name] > self.heartbeat_timeout_s:
                self.park.fallback(name)
                self.fallbacks[name] = self.fallbacks.get(name, 0) + 1
                del self.hb_seen[name]

    # --- values ------------------------------------------------------------------------

    def values(self) -> dict[str, float]:
        """Everything the servers serve, by key (park measurements + protocol extras)."""
        m = self.park.measurements()
        if self.meas_noise_frac > 0:
            for k in [k for k in m if k.endswith(".p_kw") and k.startswith(("load_", "grid1"))]:
                m[k] *= 1.0 + self._rng.normal(0.0, self.meas_noise_frac)
        for name in self.park.devices:
            m[f"{name}.refused_total"] = float(self.refused.get(name, 0))
            m[f"{name}.heartbeat_timeout_s"] = self.heartbeat_timeout_s
        for k in self._write_only:
            m.setdefault(k, 0.0)
        m.update(self.hb_value)
        m.update(self.extra)
        m["grid.hz"] = 50.0
        if self.extra_telemetry is not None:
            m.update(self.extra_telemetry.values(m))
        if "pv1.p_kw" in m:
            m["pv1.sunspec_state"] = 5.0 if m.get("pv1.w_max_lim_ena", 0) and m["pv1.remote"] else (
                4.0 if m["pv1.p_kw"] < 0 else 2.0)
        if "bess1.soc_frac" in m:
            m["bess1.local_ctl"] = 1.0 - m["bess1.remote"]
            m["bess1.soc_pct"] = 100.0 * m["bess1.soc_frac"]
        if "wind1.p_kw" in m:
            m["wind1.turbines_online"] = 3.0 if m["wind1.p_avail_kw"] > 0 else 0.0
        return m

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> list[Endpoint]:
        """Start every server (base_port 0: each on a free port); returns the endpoints."""
        self.endpoints = []
        layout = modbus_layout(self.site)
        if self.extra_telemetry is not None and self.extra_telemetry.modbus:
            layout["extra"] = (EXTRA_MODBUS_OFFSET, False, self.extra_telemetry.modbus)
        for name, (offset, rtu, maps) in layout.items():
            srv = SimModbusServer(maps, self.faults, self._on_write, rtu=rtu)
            port = await srv.start(self.host, self.base_port + offset if self.base_port else 0)
            self.modbus[name] = srv
            scheme = "rtu+tcp" if rtu else "tcp"
            self.endpoints += [Endpoint(dm.name, "modbus", f"{scheme}://{self.host}:{port}", dm.unit_id)
                               for dm in maps]
        if self.opcua is not None:
            url = await self.opcua.start(self.host, self.base_port)
            devs = dict.fromkeys(p.device for p in self.opcua.points)
            self.endpoints += [Endpoint(obj, "opcua", url) for obj in devs]
        await self.refresh()
        return self.endpoints

    async def refresh(self) -> None:
        vals = self.values()
        for srv in self.modbus.values():
            srv.refresh(vals)
        if self.opcua is not None:
            await self.opcua.refresh(vals)

    async def step_once(self, dt_s: float | None = None) -> None:
        """Advance the physics by one step (default step_s) and update every served value."""
        self._watchdog()
        self.park.step(dt_s or self.step_s)
        self.steps += 1
        await self.refresh()

    async def run(self) -> None:
        """Step on the clock until stop(); late steps are caught up, never skipped."""
        k = 0
        while not self._stopping.is_set():
            k += 1
            delay = self.clock.wall_due(k * self.step_s) - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                    break
                except TimeoutError:
                    pass
            await self.step_once()

    async def stop(self) -> None:
        self._stopping.set()
        for srv in self.modbus.values():
            await srv.stop()
        if self.opcua is not None:
            await self.opcua.stop()

    def extra_devices_toml(self) -> str:
        """The extra points as site-file ``[[devices]]`` tables, with the endpoints they are served on."""
        if self.extra_telemetry is None:
            return ""
        mb = self.modbus.get("extra")
        modbus_url = f"tcp://{self.host}:{mb.port}" if mb is not None else ""
        return devices_toml(self.extra_telemetry, modbus_url, self.opcua.url if self.opcua else "", self.site)

    @property
    def namespace_uri(self) -> str:
        return f"urn:parkedge:sim:{self.site}"


def fmt_kw(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:,.0f}"
