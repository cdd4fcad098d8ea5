"""edge/sites/*.toml against the running simulated park: every listed point is served.

The TOML is decoded here with its own types, orders and scales (not the sims'
codec) and compared with the park's values.
"""

from __future__ import annotations

import struct
import tomllib
from pathlib import Path

import pytest
from asyncua import Client, ua
from parksim.protocols import regmap
from parksim.runtime import SimPark, modbus_layout
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from .conftest import START, host_port

SITES_DIR = Path(__file__).resolve().parents[2] / "edge" / "sites"
WORDS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}


def _decode(point: dict, regs: list[int]) -> float:  # type: ignore[type-arg]
    t = point["type"]
    if WORDS[t] == 2 and point.get("order", "ABCD") == "CDAB":
        regs = [regs[1], regs[0]]
    raw = struct.pack(">" + "H" * len(regs), *regs)
    fmt = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}[t]
    return struct.unpack(fmt, raw)[0] * point.get("scale", 1.0) + point.get("offset", 0.0)


@pytest.mark.parametrize("site", ["park-a", "park-b"])
async def test_every_configured_point_is_served(site: str) -> None:
    cfg = tomllib.loads((SITES_DIR / f"{site}.toml").read_text())
    # the controller's model rides along; every point it names is a served point (below)
    tables = [t for kind in cfg["assets"].values()
              for t in ([kind] if not any(isinstance(v, dict) for v in kind.values()) else kind.values())]
    asset_points = {v for t in tables for k, v in t.items() if k.endswith("_point") and v}
    listed = {f"{d['name']}.{p['name']}" for d in cfg["devices"] for p in d["points"]}
    assert asset_points and asset_points <= listed, asset_points - listed
    # the site's setpoint limits are the physics' own, in the park's (passive) sign
    physics = SimPark(site, seed=2, base_port=0, start_utc=START).park.setpoint_limits()
    for d in cfg["devices"]:
        for p in d["points"]:
            key = f"{d['name']}.{p['name']}"
            if "limits" in p and key in physics:
                assert (p["limits"]["min"], p["limits"]["max"]) == (physics[key].min, physics[key].max), key
    assert cfg["site"]["id"] == site and cfg["mqtt"]["enabled"] is False
    sim = SimPark(site, seed=2, base_port=0, start_utc=START, meas_noise_frac=0.0)
    await sim.start()
    await sim.step_once(60.0)
    vals = sim.values()
    keys = {dm.name: {p.name: p.key for p in dm.points}
            for _, _, maps in modbus_layout(site).values() for dm in maps}
    served = {e.device: e for e in sim.endpoints}
    default_ports = {}
    checked = 0
    try:
        for dev in cfg["devices"]:
            ep = served[dev["name"]]
            default_ports.setdefault(dev["endpoint"], set()).add(ep.url.rsplit(":", 1)[-1].split("/")[0])
            if dev["protocol"] == "modbus":
                assert ep.unit == dev["unit"]
                assert dev["endpoint"].split("://")[0] == ep.url.split("://")[0]
                host, port = host_port(ep)
                rtu = ep.url.startswith("rtu+tcp")
                c = AsyncModbusTcpClient(host, port=port, framer=FramerType.RTU if rtu else FramerType.SOCKET)
                await c.connect()
                if dev.get("sunspec"):
                    rr = await c.read_holding_registers(regmap.SUNSPEC_BASE, count=2, device_id=ep.unit)
                    assert struct.pack(">HH", *rr.registers) == b"SunS"
                for p in dev["points"]:
                    rr = await c.read_holding_registers(p["address"], count=WORDS[p["type"]], device_id=ep.unit)
                    assert not rr.isError(), f"{dev['name']}.{p['name']} @ {p['address']}"
                    expected = vals[keys[dev["name"]][p["name"]]]
                    tol = abs(p.get("scale", 1.0)) if p["type"] != "float32" else 1e-3 * max(1.0, abs(expected))
                    assert _decode(p, rr.registers) == pytest.approx(expected, abs=tol), f"{dev['name']}.{p['name']}"
                    checked += 1
                c.close()
            else:
                assert dev["namespace_uri"] == sim.namespace_uri
                async with Client(ep.url) as cl:
                    ns = await cl.get_namespace_index(dev["namespace_uri"])
                    for p in dev["points"]:
                        node = cl.get_node(ua.NodeId.from_string(f"ns={ns};{p['node']}"))
                        v = await node.read_value()
                        eu = await node.get_child([ua.QualifiedName("EngineeringUnits", 0)])
                        assert isinstance(await eu.read_value(), ua.EUInformation)
                        if p["unit"] != "bool":
                            assert isinstance(v, float | int)
                        if "limits" in p:  # writable: the server takes its own value back
                            await node.write_value(ua.Variant(v, await node.read_data_type_as_variant_type()))
                        checked += 1
    finally:
        await sim.stop()
    assert checked == sum(len(d["points"]) for d in cfg["devices"])
    # Default endpoints: one served port per configured endpoint.
    assert all(len(ports) == 1 for ports in default_ports.values())
