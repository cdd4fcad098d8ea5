"""The OPC UA address space of each park's thermal plant (documented in firmware-sims/README.md).

Objects/ParkSim/<Object>/<Variable>, every variable with a string NodeId
"<Object>.<Variable>" in the park's namespace (urn:parkedge:sim:<site>), an
EngineeringUnits property, and Double values unless stated. Writable setpoints
check their limits (BadOutOfRange otherwise); each device object has a
writable ``Heartbeat`` (UInt32) and a ``Remote`` flag (Boolean: false = on its
local default).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpcPoint:
    """One variable. Served value = park value / scale (as in the site file's ``scale``).

    Setpoints too: a client writes the device's own convention (a CHP's output
    positive) and the server hands ``written * scale`` (the park's passive sign,
    <= 0 for what a unit delivers) to the physics.
    """

    obj: str
    var: str
    key: str
    device: str
    unit: str
    scale: float = 1.0
    writable: bool = False
    vtype: str = "Double"  # Double | UInt32 | Boolean
    heartbeat: bool = False

    @property
    def node(self) -> str:
        return f"{self.obj}.{self.var}"

    @property
    def point(self) -> str:
        """The point's name in the site file."""
        return self.key.split(".", 1)[1] if not self.heartbeat else "heartbeat"


def _common(obj: str, dev: str) -> list[OpcPoint]:
    return [
        OpcPoint(obj, "Heartbeat", f"{dev}.heartbeat", dev, "1", writable=True, vtype="UInt32", heartbeat=True),
        OpcPoint(obj, "Remote", f"{dev}.remote", dev, "1", vtype="Boolean"),
        OpcPoint(obj, "RefusedTotal", f"{dev}.refused_total", dev, "1", vtype="UInt32"),
    ]


def chp(obj: str, dev: str) -> list[OpcPoint]:
    return [
        OpcPoint(obj, "ElectricPower_kW", f"{dev}.p_kw", dev, "kW", scale=-1.0),
        OpcPoint(obj, "HeatOutput_kW", f"{dev}.q_kw", dev, "kW"),
        OpcPoint(obj, "GasFlow_m3_per_h", f"{dev}.gas_m3_per_h", dev, "m3/h"),
        OpcPoint(obj, "Running", f"{dev}.running", dev, "1", vtype="Boolean"),
        OpcPoint(obj, "Starts", f"{dev}.starts_total", dev, "1", vtype="UInt32"),
        OpcPoint(obj, "PowerSetpoint_kW", f"{dev}.p_set_kw", dev, "kW", scale=-1.0, writable=True),
        *_common(obj, dev),
    ]


def chiller(obj: str, dev: str) -> list[OpcPoint]:
    return [
        OpcPoint(obj, "CoolingOutput_kW", f"{dev}.q_kw", dev, "kW"),
        OpcPoint(obj, "ElectricPower_kW", f"{dev}.p_kw", dev, "kW"),
        OpcPoint(obj, "CoolingSetpoint_kW", f"{dev}.q_set_kw", dev, "kW", scale=-1.0, writable=True),
        *_common(obj, dev),
    ]


def dual_chiller(obj: str, dev: str) -> list[OpcPoint]:
    return [
        *chiller(obj, dev),
        OpcPoint(obj, "Mode", f"{dev}.mode", dev, "1"),
        OpcPoint(obj, "ModeSetpoint", f"{dev}.mode_set", dev, "1", writable=True),
    ]


def loads(site_loads: list[tuple[str, str]]) -> list[OpcPoint]:
    pts = []
    for obj, kind in site_loads:
        pts += [OpcPoint(obj, "Demand_kW", f"load_{kind}.p_kw", f"load_{kind}", "kW"),
                OpcPoint(obj, "Dump_kW", f"{kind}.dump_kw", f"load_{kind}", "kW"),
                OpcPoint(obj, "Unserved_kW", f"{kind}.unserved_kw", f"load_{kind}", "kW")]
    return pts


WEATHER = [
    OpcPoint("Weather", "Ghi_W_m2", "weather.ghi_w_m2", "weather", "W/m2"),
    OpcPoint("Weather", "Temperature_C", "weather.temp_c", "weather", "degC"),
    OpcPoint("Weather", "HubWind_m_s", "weather.wind_m_s", "weather", "m/s"),
]


def site_points(site: str) -> list[OpcPoint]:
    if site == "park-a":
        return [
            *chp("Chp1", "chp1"), *chp("Chp2", "chp2"),
            OpcPoint("AbsChiller1", "CoolingOutput_kW", "absc1.q_kw", "absc1", "kW"),
            OpcPoint("AbsChiller1", "HeatInput_kW", "absc1.heat_in_kw", "absc1", "kW"),
            OpcPoint("AbsChiller1", "CoolingSetpoint_kW", "absc1.q_set_kw", "absc1", "kW", scale=-1.0,
                     writable=True),
            *_common("AbsChiller1", "absc1"),
            *chiller("Chiller1", "ch1"), *chiller("Chiller2", "ch2"),
            *loads([("HeatingLoad", "heat"), ("CoolingLoad", "cool")]),
            # the district heating network's supply temperature against its setpoint
            OpcPoint("HeatingLoad", "SupplyDeviation_K", "load_heat.supply_dev_k", "load_heat", "K"),
            *WEATHER,
        ]
    pts: list[OpcPoint] = []
    for i in range(1, 5):
        pts += dual_chiller(f"DualChiller{i}", f"dch{i}")
    pts += chiller("BaseChiller1", "bch1") + chiller("BaseChiller2", "bch2") + chiller("ScrewChiller1", "sch1")
    pts += [
        OpcPoint("IceStore1", "Stored_kWh", "ice1.stored_kwh", "ice1", "kWh"),
        OpcPoint("IceStore1", "Level_frac", "ice1.level_frac", "ice1", "frac"),
        OpcPoint("IceStore1", "Melt_kW", "ice1.q_melt_kw", "ice1", "kW"),
        OpcPoint("IceStore1", "Charge_kW", "ice1.q_charge_kw", "ice1", "kW"),
        OpcPoint("IceStore1", "Mode", "ice1.mode", "ice1", "1"),
        OpcPoint("IceStore1", "ModeSetpoint", "ice1.mode_set", "ice1", "1", writable=True),
        OpcPoint("IceStore1", "MeltSetpoint_kW", "ice1.melt_set_kw", "ice1", "kW", scale=-1.0, writable=True),
        *_common("IceStore1", "ice1"),
    ]
    for i in range(1, 4):
        o, dv = f"GasBoiler{i}", f"gb{i}"
        pts += [OpcPoint(o, "HeatOutput_kW", f"{dv}.q_kw", dv, "kW"),
                OpcPoint(o, "GasFlow_m3_per_h", f"{dv}.gas_m3_per_h", dv, "m3/h"),
                OpcPoint(o, "HeatSetpoint_kW", f"{dv}.q_set_kw", dv, "kW", scale=-1.0, writable=True),
                *_common(o, dv)]
    for i in range(1, 3):
        o, dv = f"HeatStorageBoiler{i}", f"ehb{i}"
        pts += [OpcPoint(o, "ElectricPower_kW", f"{dv}.p_kw", dv, "kW"),
                OpcPoint(o, "HeatOutput_kW", f"{dv}.q_kw", dv, "kW"),
                OpcPoint(o, "Stored_kWh", f"{dv}.stored_kwh", dv, "kWh"),
                OpcPoint(o, "ChargeSetpoint_kW", f"{dv}.p_set_kw", dv, "kW", writable=True),
                OpcPoint(o, "HeatSetpoint_kW", f"{dv}.q_set_kw", dv, "kW", scale=-1.0, writable=True),
                *_common(o, dv)]
    pts += loads([("HeatingLoad", "heat"), ("CoolingLoad", "cool")]) + WEATHER
    return pts
