"""The simulated devices' own Modbus register tables (deliberately not the driver's codec).

A ``RegPoint``'s ``scale`` is what a site file states: engineering value (park
bus sign, units in the name) = raw * scale. A negative scale therefore means
the device reports the opposite sign (an inverter counts generation positive);
setpoints work the same way (a genset takes its output positive, the park's
``dg1.p_set_kw`` is <= 0), so a write's raw value is decoded to the park's
value before the physics sees it.
Addresses are PDU addresses (0-based, as on the wire); SunSpec blocks start at
40000 with "SunS".
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

WORDS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "acc32": 2, "float32": 2, "sunssf": 1}


@dataclass(frozen=True)
class RegPoint:
    """One served point. ``key`` is the park's "device.point" it mirrors (or writes)."""

    name: str
    address: int
    type: str
    key: str
    scale: float = 1.0
    unit: str = "1"
    access: str = "r"
    order: str = "ABCD"  # word order for 32-bit types: ABCD (high word first) or CDAB
    heartbeat: bool = False

    @property
    def words(self) -> int:
        return WORDS[self.type]


def encode(p: RegPoint, value: float) -> list[int]:
    """Engineering value -> registers."""
    if p.type == "float32":
        raw_f = value / p.scale
        hi, lo = struct.unpack(">HH", struct.pack(">f", raw_f))
        return [hi, lo] if p.order == "ABCD" else [lo, hi]
    raw = round(value / p.scale) if math.isfinite(value) else 0
    if p.type in ("uint16",):
        return [min(max(raw, 0), 0xFFFF)]
    if p.type in ("int16", "sunssf"):
        return [min(max(raw, -0x8000), 0x7FFF) & 0xFFFF]
    if p.type in ("uint32", "acc32"):
        raw = min(max(raw, 0), 0xFFFFFFFF)
    else:
        raw = min(max(raw, -0x80000000), 0x7FFFFFFF) & 0xFFFFFFFF
    hi, lo = raw >> 16, raw & 0xFFFF
    return [hi, lo] if p.order == "ABCD" else [lo, hi]


def decode(p: RegPoint, regs: list[int]) -> float:
    """Registers -> engineering value."""
    if p.words == 2:
        hi, lo = (regs[0], regs[1]) if p.order == "ABCD" else (regs[1], regs[0])
        if p.type == "float32":
            return struct.unpack(">f", struct.pack(">HH", hi, lo))[0] * p.scale
        raw = (hi << 16) | lo
        if p.type == "int32" and raw >= 0x80000000:
            raw -= 0x100000000
        return raw * p.scale
    raw = regs[0]
    if p.type in ("int16", "sunssf") and raw >= 0x8000:
        raw -= 0x10000
    return raw * p.scale


@dataclass
class DeviceMap:
    """A device's whole register table: constants plus live points."""

    name: str
    unit_id: int
    points: list[RegPoint] = field(default_factory=list)
    constants: dict[int, int] = field(default_factory=dict)

    def add(self, p: RegPoint) -> RegPoint:
        self.points.append(p)
        return p

    def heartbeat_point(self) -> RegPoint | None:
        return next((p for p in self.points if p.heartbeat), None)


# --- SunSpec -------------------------------------------------------------------------

SUNSPEC_BASE = 40000
# Model lengths (registers after ID and L), from the SunSpec model definitions.
MODEL_LEN = {1: 66, 103: 50, 123: 24, 124: 24, 203: 105, 802: 62}
VENDOR_MODEL_ID = 64900  # vendor range; pysunspec2 scans past it without a definition


def _string(text: str, words: int) -> list[int]:
    b = text.encode()[: words * 2].ljust(words * 2, b"\0")
    return [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)]


class SunSpecBuilder:
    """Lays SunSpec models one after the other from 40000 and records their points."""

    def __init__(self, dm: DeviceMap, model_name: str, serial: str) -> None:
        self.dm = dm
        self.addr = SUNSPEC_BASE + 2
        dm.constants[SUNSPEC_BASE] = 0x5375  # "Su"
        dm.constants[SUNSPEC_BASE + 1] = 0x6E53  # "nS"
        start = self.model(1)
        for off, regs in ((2, _string("ParkEdge-Sim", 16)), (18, _string(model_name, 16)),
                          (34, _string("", 8)), (42, _string("1.0", 8)), (50, _string(serial, 16))):
            self.const(start + off, regs)
        self.const(start + 66, [dm.unit_id, 0x8000])

    def model(self, mid: int, length: int | None = None) -> int:
        """Open a model; returns the address of its ID register (offsets count from it)."""
        start = self.addr
        n = MODEL_LEN[mid] if length is None else length
        self.const(start, [mid, n])
        for a in range(start + 2, start + 2 + n):
            self.dm.constants.setdefault(a, 0)
        self.addr = start + 2 + n
        return start

    def const(self, addr: int, regs: list[int]) -> None:
        for i, r in enumerate(regs):
            self.dm.constants[addr + i] = r & 0xFFFF

    def sf(self, addr: int, exponent: int) -> None:
        self.const(addr, [exponent & 0xFFFF])

    def end(self) -> None:
        self.const(self.addr, [0xFFFF, 0])

    def vendor(self, floats: list[tuple[str, str, str, str]]) -> int:
        """Vendor block: heartbeat, remote flag, refused count, then float32 (ABCD) points.

        floats: (name, key, unit, access).
        """
        start = self.model(VENDOR_MODEL_ID, 4 + 2 * len(floats))
        n = self.dm.name
        self.dm.add(RegPoint("heartbeat", start + 2, "uint16", f"{n}.heartbeat", access="rw", heartbeat=True))
        self.dm.add(RegPoint("remote", start + 3, "uint16", f"{n}.remote"))
        self.dm.add(RegPoint("refused_total", start + 4, "uint16", f"{n}.refused_total"))
        self.dm.add(RegPoint("heartbeat_timeout_s", start + 5, "uint16", f"{n}.heartbeat_timeout_s", unit="s"))
        for i, (name, key, unit, access) in enumerate(floats):
            self.dm.add(RegPoint(name, start + 6 + 2 * i, "float32", key, unit=unit, access=access))
        return start


def pv_inverter(name: str, unit_id: int, ac_kw: float) -> DeviceMap:
    """SunSpec 1 + 103 (three-phase inverter) + 123 (immediate controls) + vendor block."""
    dm = DeviceMap(name, unit_id)
    sb = SunSpecBuilder(dm, "PV-INV-8000", f"{name}-0001")
    m = sb.model(103)
    # W and WH with SF 3: raw kW and kWh. The inverter counts generation positive.
    dm.add(RegPoint("p_kw", m + 14, "int16", f"{name}.p_kw", scale=-1.0, unit="kW"))
    sb.sf(m + 15, 3)
    sb.const(m + 10, [2300, 2300, 2300])  # PhV 230.0 V with V_SF -1
    sb.sf(m + 13, -1)
    sb.const(m + 16, [5000])  # 50.00 Hz
    sb.sf(m + 17, -2)
    dm.add(RegPoint("energy_kwh", m + 24, "acc32", f"{name}.energy_kwh", unit="kWh"))
    sb.sf(m + 26, 3)
    sb.sf(m + 6, 0)
    sb.sf(m + 37, -1)
    dm.add(RegPoint("state", m + 38, "uint16", f"{name}.sunspec_state"))
    c = sb.model(123)
    sb.const(c + 4, [1])  # Conn: connected
    dm.add(RegPoint("w_max_lim_pct", c + 5, "uint16", f"{name}.w_max_lim_pct", scale=0.1, unit="%", access="rw"))
    dm.add(RegPoint("w_max_lim_ena", c + 9, "uint16", f"{name}.w_max_lim_ena", access="rw"))
    sb.sf(c + 23, -1)  # WMaxLimPct in 0.1 %
    sb.vendor([("p_avail_kw", f"{name}.p_avail_kw", "kW", "r"),
               ("poa_w_m2", "weather.poa_w_m2", "W/m2", "r")])
    sb.end()
    _ = ac_kw
    return dm


def battery(name: str, unit_id: int) -> DeviceMap:
    """SunSpec 1 + 802 (battery) + 124 (storage) + vendor block with p_set_kw."""
    dm = DeviceMap(name, unit_id)
    sb = SunSpecBuilder(dm, "BESS-10MW-40MWh", f"{name}-0001")
    m = sb.model(802)
    sb.const(m + 3, [4000])  # WHRtg 40 000 kWh with WHRtg_SF 4
    sb.sf(m + 53, 4)
    sb.const(m + 4, [10000, 10000])  # WChaRteMax, WDisChaRteMax in kW (SF 3)
    sb.sf(m + 54, 3)
    sb.const(m + 7, [9500, 1000])  # SoCMax, SoCMin in 0.01 %
    dm.add(RegPoint("soc_frac", m + 11, "uint16", f"{name}.soc_frac", scale=0.0001, unit="frac"))
    sb.sf(m + 56, -2)
    dm.add(RegPoint("local_ctl", m + 17, "uint16", f"{name}.local_ctl"))
    dm.add(RegPoint("ctrl_hb", m + 19, "uint16", f"{name}.ctrl_hb", access="rw", heartbeat=False))
    sb.const(m + 21, [4, 3])  # Typ lithium-ion, State connected
    # W: SunSpec battery power, discharge positive (our p_kw is charge positive).
    dm.add(RegPoint("p_kw", m + 47, "int16", f"{name}.p_kw", scale=-1.0, unit="kW"))
    sb.sf(m + 63, 3)
    for off in (59, 60, 61, 62):
        sb.sf(m + off, 0)
    s = sb.model(124)
    sb.const(s + 2, [10000])  # WChaMax kW (SF 3)
    sb.sf(s + 18, 3)
    dm.add(RegPoint("cha_state_pct", s + 8, "uint16", f"{name}.soc_pct", scale=0.01, unit="%"))
    sb.sf(s + 22, -2)
    sb.vendor([("p_set_kw", f"{name}.p_set_kw", "kW", "rw"),
               ("p_kw_f", f"{name}.p_kw", "kW", "r"),
               ("soc_frac_f", f"{name}.soc_frac", "frac", "r"),
               ("energy_kwh", f"{name}.energy_kwh", "kWh", "r")])
    sb.end()
    return dm


def meter(name: str, unit_id: int, key: str, *, grid: bool,
          vendor: list[tuple[str, str, str, str]] | None = None) -> DeviceMap:
    """SunSpec 1 + 203 (wye meter). W: import (consumption) positive, as SunSpec meters count."""
    dm = DeviceMap(name, unit_id)
    sb = SunSpecBuilder(dm, "METER-203", f"{name}-0001")
    m = sb.model(203)
    sb.const(m + 7, [2300, 2300, 2300, 2300])
    sb.sf(m + 15, -1)
    dm.add(RegPoint("hz", m + 16, "int16", "grid.hz", scale=0.01, unit="Hz"))
    sb.sf(m + 17, -2)
    dm.add(RegPoint("p_kw", m + 18, "int16", f"{key}.p_kw", scale=-1.0 if grid else 1.0, unit="kW"))
    sb.sf(m + 22, 3)
    sb.sf(m + 6, 0)
    if grid:
        dm.add(RegPoint("export_kwh", m + 38, "acc32", f"{key}.export_kwh", unit="kWh"))
        dm.add(RegPoint("import_kwh", m + 46, "acc32", f"{key}.import_kwh", unit="kWh"))
    else:
        dm.add(RegPoint("energy_kwh", m + 46, "acc32", f"{key}.energy_kwh", unit="kWh"))
    sb.sf(m + 54, 3)
    if vendor:
        sb.vendor(vendor)
    sb.end()
    return dm


def wind_farm(name: str, unit_id: int) -> DeviceMap:
    """A simple custom map (holding registers) of the wind farm controller."""
    dm = DeviceMap(name, unit_id)
    n = name
    dm.add(RegPoint("p_kw", 100, "float32", f"{n}.p_kw", scale=-1.0, unit="kW"))
    dm.add(RegPoint("p_avail_kw", 102, "float32", f"{n}.p_avail_kw", unit="kW"))
    dm.add(RegPoint("wind_m_s", 104, "float32", "weather.wind_m_s", unit="m/s"))
    # The farm's limit is what it may deliver: positive on the wire, <= 0 in the park's sign.
    dm.add(RegPoint("p_limit_kw", 106, "float32", f"{n}.p_limit_kw", scale=-1.0, unit="kW", access="rw"))
    dm.add(RegPoint("turbines_online", 108, "uint16", f"{n}.turbines_online"))
    dm.add(RegPoint("heartbeat", 109, "uint16", f"{n}.heartbeat", access="rw", heartbeat=True))
    dm.add(RegPoint("remote", 110, "uint16", f"{n}.remote"))
    dm.add(RegPoint("refused_total", 111, "uint16", f"{n}.refused_total"))
    # Energy counter in CDAB word order (low word first): a quirk of this controller.
    dm.add(RegPoint("energy_kwh", 112, "uint32", f"{n}.energy_kwh", unit="kWh", order="CDAB"))
    return dm


def diesel(name: str, unit_id: int) -> DeviceMap:
    """Genset controller behind a serial gateway (RTU framing over TCP): integer registers."""
    dm = DeviceMap(name, unit_id)
    n = name
    dm.add(RegPoint("run_cmd", 0, "uint16", f"{n}.run_cmd", access="rw"))
    # Output setpoint, generation positive on the wire (uint16 0..2000); <= 0 in the park's sign.
    dm.add(RegPoint("p_set_kw", 1, "uint16", f"{n}.p_set_kw", scale=-1.0, unit="kW", access="rw"))
    dm.add(RegPoint("running", 2, "uint16", f"{n}.running"))
    dm.add(RegPoint("p_kw", 3, "int16", f"{n}.p_kw", scale=-1.0, unit="kW"))
    dm.add(RegPoint("heartbeat", 4, "uint16", f"{n}.heartbeat", access="rw", heartbeat=True))
    dm.add(RegPoint("remote", 5, "uint16", f"{n}.remote"))
    dm.add(RegPoint("refused_total", 6, "uint16", f"{n}.refused_total"))
    dm.add(RegPoint("locked", 7, "uint16", f"{n}.locked"))
    dm.add(RegPoint("fuel_l", 8, "uint32", f"{n}.fuel_l", scale=0.1, unit="l"))
    dm.add(RegPoint("energy_kwh", 10, "uint32", f"{n}.energy_kwh", unit="kWh"))
    return dm
