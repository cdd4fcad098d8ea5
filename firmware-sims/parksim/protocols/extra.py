"""Extra read-only points for load tests (``SimPark(extra_points=N)``, ``serve --extra-points N``).

A real park has far more telemetry than the points its controller acts on.
These add it, half on Modbus and half on OPC UA, every value moving every step:

- Modbus: PV string combiner boxes ``pvcbNN`` (one server, unit ids 1..k,
  holding registers from 0): per string the DC current (uint16, 0.01 A),
  following the PV inverter's output with a fixed per-string mismatch and
  measurement noise.
- OPC UA: battery racks ``rackNN`` (object ``BessRackNN``): per module the
  temperature (Double, degC), ambient plus a heating term from the battery's
  power, with noise.

They are read-only and have no effect on the physics.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .opcmap import OpcPoint
from .regmap import DeviceMap, RegPoint

STRINGS_PER_BOX = 48  # one read of 48 registers a box
MODULES_PER_RACK = 48
EXTRA_MODBUS_OFFSET = 6  # port offset from the base port of the combiner-box server
_STRINGS_TOTAL_NOMINAL = 850  # Park A: 8.5 MWp in 10 kW strings
_STRING_V = 1000.0  # V, string voltage at MPP


def split(n: int) -> tuple[int, int]:
    """(Modbus, OPC UA) counts of ``n`` extra points: half each, the odd one on Modbus."""
    return n - n // 2, n // 2


def _chunks(n: int, size: int) -> list[int]:
    return [min(size, n - i) for i in range(0, n, size)]


def combiner_boxes(n: int) -> list[DeviceMap]:
    maps = []
    for b, count in enumerate(_chunks(n, STRINGS_PER_BOX), start=1):
        dm = DeviceMap(f"pvcb{b:02d}", b)
        for s in range(count):
            dm.add(RegPoint(f"s{s + 1:02d}_i_a", s, "uint16", f"pvcb{b:02d}.s{s + 1:02d}_i_a",
                            scale=0.01, unit="A"))
        maps.append(dm)
    return maps


def rack_points(n: int) -> list[OpcPoint]:
    pts = []
    for r, count in enumerate(_chunks(n, MODULES_PER_RACK), start=1):
        obj, dev = f"BessRack{r:02d}", f"rack{r:02d}"
        pts += [OpcPoint(obj, f"Module{m + 1:02d}Temp_C", f"{dev}.m{m + 1:02d}_temp_c", dev, "degC")
                for m in range(count)]
    return pts


class ExtraValues:
    """The extra points' values from the park's measurements, one draw of noise a step."""

    def __init__(self, n: int, seed: int) -> None:
        n_mb, n_opc = split(n)
        self.modbus = combiner_boxes(n_mb)
        self.opcua = rack_points(n_opc)
        self._strings = [p.key for dm in self.modbus for p in dm.points]
        self._modules = [p.key for p in self.opcua]
        rng = np.random.default_rng([seed, 11])
        self._mismatch = 1.0 + rng.normal(0.0, 0.03, len(self._strings))
        self._offset_c = rng.normal(0.0, 0.8, len(self._modules))
        self._rng = rng

    def values(self, m: Mapping[str, float]) -> dict[str, float]:
        pv_kw = max(0.0, -m.get("pv1.p_kw", 0.0))
        amps = pv_kw * 1000.0 / _STRINGS_TOTAL_NOMINAL / _STRING_V
        # Noise of a few counts keeps every register moving, as a real string current does.
        i_a = np.maximum(0.0, amps * self._mismatch + self._rng.normal(0.0, 0.05, len(self._strings)))
        bess_kw = abs(m.get("bess1.p_kw", 0.0))
        ambient_c = m.get("weather.temp_c", 20.0)
        t_c = (ambient_c + 5.0 + 10.0 * bess_kw / 10_000.0 + self._offset_c
               + self._rng.normal(0.0, 0.05, len(self._modules)))
        out = dict(zip(self._strings, i_a.tolist(), strict=True))
        out.update(zip(self._modules, t_c.tolist(), strict=True))
        return out


def devices_toml(extra: ExtraValues, modbus_url: str, opcua_url: str, site: str) -> str:
    """The extra devices as site-file ``[[devices]]`` tables (appended to a site file by load tests)."""
    out: list[str] = []
    for dm in extra.modbus:
        out += ["[[devices]]", f'name = "{dm.name}"', 'protocol = "modbus"', f'endpoint = "{modbus_url}"',
                f"unit = {dm.unit_id}", "poll_ms = 200", "timeout_ms = 500", ""]
        for p in dm.points:
            out += ["[[devices.points]]", f'name = "{p.name}"', f"address = {p.address}",
                    f'type = "{p.type}"', f"scale = {p.scale!r}", f'unit = "{p.unit}"', ""]
    racks: dict[str, list[OpcPoint]] = {}
    for p in extra.opcua:
        racks.setdefault(p.device, []).append(p)
    for dev, pts in racks.items():
        out += ["[[devices]]", f'name = "{dev}"', 'protocol = "opcua"', f'endpoint = "{opcua_url}"',
                f'namespace_uri = "urn:parkedge:sim:{site}"', "poll_ms = 500", "timeout_ms = 1000",
                "subscription = { publishing_ms = 200, sampling_ms = 100 }", ""]
        for p in pts:
            out += ["[[devices.points]]", f'name = "{p.point}"', f'node = "s={p.node}"',
                    f'unit = "{p.unit}"', ""]
    return "\n".join(out)
