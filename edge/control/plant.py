"""The controller's energy model of a park, parsed from the site file's ``[assets]`` table.

Every asset names the site points it reads (``*_point`` measured) and writes
(``*_set_point``). Ratings are positive magnitudes; the sign convention of
``edge.control`` applies only where a power crosses a bus (setpoints, flows).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "AbsorptionChiller", "AssetError", "AssetsInvalid", "Battery", "Chp", "Diesel",
    "DualChiller", "ElectricBoiler", "ElectricChiller", "GasBoiler", "Grid", "IceStore",
    "Load", "Objective", "PlantModel", "Renewable", "plant_from_assets",
]

GAS_KWH_PER_M3 = 10.55
GAS_CO2_KG_PER_KWH = 0.184  # SCENARIOS.md says "0.184 kgCO2/MJ"; per kWh of fuel is the physical value
DIESEL_CO2_KG_PER_KG = 3.17
DIESEL_KG_PER_L = 0.84


@dataclass(frozen=True, slots=True)
class AssetError:
    """One problem in ``[assets]``: ``key`` is a dotted path such as ``assets.battery.bess1.capacity_kwh``."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class AssetsInvalid(ValueError):
    """Raised by :func:`plant_from_assets` with every error found, not just the first."""

    def __init__(self, errors: list[AssetError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors

    def __reduce__(self) -> tuple[type[AssetsInvalid], tuple[list[AssetError]]]:
        # rebuilt from the errors, not from the message: a process pool's pickling had
        # passed the message back in and split it into characters
        return (AssetsInvalid, (self.errors,))


@dataclass(frozen=True, slots=True)
class Battery:
    name: str
    capacity_kwh: float
    p_charge_max_kw: float
    p_discharge_max_kw: float
    eta_charge: float
    eta_discharge: float
    soc_min_frac: float
    soc_max_frac: float
    wear_cny_per_kwh: float          # per kWh charged plus per kWh discharged
    soc_point: str
    p_set_point: str
    # its converter backs off at the grid's export limit (the mirror of the inverters' export
    # limiter): asked to discharge more than the grid can take, it delivers what it can take
    export_limiter: bool = False


@dataclass(frozen=True, slots=True)
class Chp:
    name: str
    p_max_kw: float
    min_load_frac: float
    eta_elec: float
    heat_to_power: float             # kW of heat per kW electric
    start_cost_cny: float
    min_up_h: float
    min_down_h: float
    p_set_point: str
    running_point: str = ""


@dataclass(frozen=True, slots=True)
class Diesel:
    name: str
    p_max_kw: float
    min_load_frac: float
    fuel_g_per_kwh: float
    start_cost_cny: float
    min_up_h: float
    min_down_h: float
    p_set_point: str
    running_point: str = ""
    run_set_point: str = ""          # the genset's run command: 1 while committed, else 0


@dataclass(frozen=True, slots=True)
class GasBoiler:
    name: str
    q_max_kw: float
    eta: float
    q_set_point: str


@dataclass(frozen=True, slots=True)
class ElectricBoiler:
    """An electric boiler; with ``store_kwh`` > 0 it charges a hot-water store.

    Without a store, heat follows electricity at once (q = eta * p) and only
    ``q_set_point`` is written. With one (an electric heat-storage boiler), charging
    (``p_set_point``, kW drawn) and heat delivered from the store (``q_set_point``)
    are separate decisions linked by the stored energy (``stored_point``, kWh).
    """

    name: str
    q_max_kw: float
    eta: float
    q_set_point: str
    store_kwh: float = 0.0
    p_max_kw: float = 0.0            # charging power (store only)
    loss_frac_per_h: float = 0.0
    stored_point: str = ""           # kWh in the store
    p_set_point: str = ""            # charging power setpoint (>= 0, drawn)

    @property
    def stored(self) -> bool:
        return self.store_kwh > 0


@dataclass(frozen=True, slots=True)
class ElectricChiller:
    name: str
    cool_max_kw: float
    cop: float
    min_load_frac: float
    start_cost_cny: float
    min_up_h: float
    min_down_h: float
    cool_set_point: str


@dataclass(frozen=True, slots=True)
class DualChiller:
    """A chiller that either cools the loop (``cool``) or makes ice for a store (``ice``)."""

    name: str
    cool_max_kw: float
    cop_cool: float
    ice_max_kw: float
    cop_ice: float
    min_load_frac: float
    start_cost_cny: float
    min_up_h: float
    min_down_h: float
    ice_store: str
    cool_set_point: str
    mode_set_point: str              # 0 off, 1 cooling, 2 ice making


@dataclass(frozen=True, slots=True)
class AbsorptionChiller:
    name: str
    cool_max_kw: float
    cop: float                       # kW cooling per kW heat
    cool_set_point: str


@dataclass(frozen=True, slots=True)
class IceStore:
    name: str
    capacity_kwh: float              # cooling energy when full
    usable_frac: float
    charge_eff: float
    release_eff: float
    melt_max_kw: float               # after the cold-loss derating
    loss_frac_per_h: float
    charge_hours: tuple[int, int]    # local [start, end) hours, may wrap midnight
    level_point: str                 # frac of capacity
    melt_set_point: str
    mode_set_point: str = ""         # 0 idle, 1 charge (its chillers make ice), 2 melt
    # melting draws at most this fraction of the stored cold per hour (kW per kWh): ice on
    # coil releases slower as the coils bare; 0 = no such limit
    release_frac_per_h: float = 0.0

    def release_cap_kw(self, stored_kwh: float) -> float:
        """kW of cooling the store can release holding ``stored_kwh``: its rating, and where
        set, ``release_frac_per_h`` of what it holds."""
        if self.release_frac_per_h > 0:
            return min(self.melt_max_kw, self.release_frac_per_h * stored_kwh)
        return self.melt_max_kw


@dataclass(frozen=True, slots=True)
class Renewable:
    name: str
    kind: str                        # "pv" | "wind"
    p_rated_kw: float                # for a SunSpec inverter: its WMax (AC rating)
    p_set_point: str                 # curtailment limit, passive sign (<= 0); "" if by percent
    p_point: str = ""
    # SunSpec model 123: WMaxLimPct (percent of p_rated_kw) and WMaxLim_Ena (1 while limiting)
    limit_pct_point: str = ""
    limit_ena_point: str = ""
    # what the plant could deliver now (kW, >= 0), curtailed or not: the forecasts' history,
    # which would otherwise learn the curtailment the controller itself asked for
    avail_point: str = ""


@dataclass(frozen=True, slots=True)
class Grid:
    import_max_kw: float
    export_max_kw: float
    p_point: str = ""
    # the renewables curtail themselves to the export limit at the connection point (an
    # export limiter): at the limit the controller leaves the curtailing to it
    export_limiter: bool = False


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    kind: str                        # "electric" | "heat" | "cooling"
    peak_kw: float
    interruptible_frac: float = 0.0
    critical: bool = False
    p_point: str = ""
    shed_set_point: str = ""         # kW of this load switched off (>= 0)
    shed_frac_point: str = ""        # or: the fraction of it switched off (0..interruptible_frac)
    forecast: str = ""               # the forecaster's target for this load (edge.forecast)
    # A heat or cooling network whose water stores what supply and load do not match: its
    # supply temperature against the setpoint (K, > 0 above it), what a K of it holds
    # (kWh), and the time in which a deviation is made up (h). The controller adds the
    # shortfall / restore_h to step 0's demand (controller._inputs).
    network_point: str = ""
    network_kwh_per_k: float = 0.0
    network_restore_h: float = 1.0


@dataclass(frozen=True, slots=True)
class Objective:
    """Fixed weights; a plan may override prices and the plan-specific weights."""

    non_green_cny_per_kwh: float = 0.05
    # The same weight on a kWh of gas-boiler heat, as this fraction of it. DESIGN.md lists
    # grid import, CHP and diesel; with gas heat left out, heat stored from the valley's
    # imports cost more than gas heat and Park B burned gas in the evening (1.8 / 0.8 points
    # of the captured saving, summer / winter, for 8.8 / 2.9 t less CO2 a fortnight: gas
    # heat emits less than Park B's grid). 0 restores DESIGN.md's list.
    non_green_gas_heat_frac: float = 1.0
    unserved_elec_cny_per_kwh: float = 20.0
    unserved_heat_cny_per_kwh: float = 5.0
    unserved_cooling_cny_per_kwh: float = 5.0
    shed_cny_per_kwh: float = 1.2
    curtail_cny_per_kwh: float = 0.001
    dump_cny_per_kwh: float = 0.001
    smooth_cny_per_kw2: float = 1e-6
    track_cny_per_kw2: float = 0.0
    # conversion losses grow with the square of the load (I^2 R in converters and
    # transformers, part-load curves): this fraction of the flow is lost at rated power,
    # valued at loss_cny_per_kwh. It also makes the QP strongly convex, which OSQP needs.
    # Kept small: at 2 % its marginal cost (up to 0.024 CNY/kWh on each of a conversion's
    # two sides) outweighed real price gaps, e.g. Park B's valley electric heat against gas
    # (0.36 vs 0.39 CNY/kWh), and the heat-storage boilers ran at half power through the
    # valley while gas boilers burned (closed loop, docs/evaluation.md).
    loss_frac_at_rated: float = 0.001
    # Flows that carry no conversion choice (grid import and export, battery charge and
    # discharge, ice charging) lose 2 % at rated power: about a transformer's and a
    # converter's load losses, and for ice-making the approach temperature rising with
    # flow. Their price gaps are wide (peak against valley), so the term does not move a
    # decision there, and it is what keeps OSQP fast: with these flows at 0.1 % too,
    # timing ties (which valley step charges) left flat faces that cost Park A 190
    # iterations a tick and Park B up to 3,155 (QP benchmark; docs/control.md, "The
    # optimisation"). Ice melting is not among them: the stock of ice is fixed, so the
    # term spread its melt over the day's peaks, and Park B kept chillers running
    # through the morning peak to melt more in the evening, when the emptier store
    # releases less (mpc captured 83.0 % of the saving in the summer fortnight; 86.6 %
    # without the term).
    flow_loss_frac_at_rated: float = 0.02
    loss_cny_per_kwh: float = 0.6
    # Energy left in a store at the horizon's end is worth what refilling it would cost
    # (QpModel.vectors): from the grid at the horizon's cheapest import, or from a surplus
    # the park would otherwise export at the export price. A day ahead, which of the two
    # will refill it is not known; the value is taken this fraction of the way from the
    # first to the second. At 0 (the grid alone), Park A's battery took the night's wind
    # at the 0.28 CNY/kWh valley export plus 0.08 of wear to hold it to the horizon's end
    # at 0.41, and went into the next windy spell fuller than the bound, which exported
    # that night and filled from the wind (winter fortnight, 6-7 January: the export limit
    # reached for 18 h with the battery 0.36 of its capacity fuller, wind curtailed). At 1
    # (the export alone) Park A winter cost 3.4 k CNY more (not traced; below the night's
    # export a plan gains by selling its stores down by the horizon's end). A valuation
    # for Park A's tariff, not a derivation: the gain starts below its night export plus
    # wear (0.36) and ends below its night export (0.28); session 23's scan and figures are
    # in docs/controller-history.md.
    end_value_export_frac: float = 0.4


@dataclass(frozen=True, slots=True)
class PlantModel:
    timezone: ZoneInfo
    grid: Grid
    batteries: tuple[Battery, ...] = ()
    chps: tuple[Chp, ...] = ()
    diesels: tuple[Diesel, ...] = ()
    gas_boilers: tuple[GasBoiler, ...] = ()
    electric_boilers: tuple[ElectricBoiler, ...] = ()
    electric_chillers: tuple[ElectricChiller, ...] = ()
    dual_chillers: tuple[DualChiller, ...] = ()
    absorption_chillers: tuple[AbsorptionChiller, ...] = ()
    ice_stores: tuple[IceStore, ...] = ()
    renewables: tuple[Renewable, ...] = ()
    loads: tuple[Load, ...] = ()
    objective: Objective = field(default_factory=Objective)

    @property
    def generators(self) -> tuple[Chp | Diesel, ...]:
        return (*self.chps, *self.diesels)

    @property
    def heaters(self) -> tuple[GasBoiler | ElectricBoiler, ...]:
        return (*self.gas_boilers, *self.electric_boilers)

    @property
    def coolers(self) -> tuple[ElectricChiller | AbsorptionChiller, ...]:
        return (*self.electric_chillers, *self.absorption_chillers)

    @property
    def switched(self) -> tuple[Chp | Diesel | ElectricChiller | DualChiller, ...]:
        """Units with on/off decisions (CHP, diesel, chillers), in a fixed order."""
        return (*self.chps, *self.diesels, *self.electric_chillers, *self.dual_chillers)


# --- parsing -------------------------------------------------------------------------

_NAME = re.compile(r"^[a-z0-9_]+$")
_POINT = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


class _Table:
    """Reads one asset's table, collecting errors with key paths; flags unknown keys."""

    def __init__(self, data: Any, path: str, errors: list[AssetError]) -> None:
        self.path, self.errors, self.used = path, errors, set[str]()
        if not isinstance(data, Mapping):
            errors.append(AssetError(path, f"must be a table, got {type(data).__name__}"))
            data = {}
        self.data: Mapping[str, Any] = data

    def _err(self, key: str, msg: str) -> None:
        self.errors.append(AssetError(f"{self.path}.{key}", msg))

    def num(self, key: str, default: float | None = None, *, lo: float = 0.0,
            hi: float = float("inf"), lo_open: bool = False) -> float:
        self.used.add(key)
        v = self.data.get(key, default)
        if v is None:
            self._err(key, "required")
            return lo if not lo_open else 1.0
        if isinstance(v, bool) or not isinstance(v, int | float):
            self._err(key, f"must be a number, got {v!r}")
            return default if default is not None else 1.0
        x = float(v)
        if x < lo or (lo_open and x <= lo) or x > hi:
            lo_s = f"> {lo:g}" if lo_open else f">= {lo:g}"
            rng = lo_s if hi == float("inf") else f"{lo_s} and <= {hi:g}"
            self._err(key, f"{v!r} out of range: must be {rng}")
        return x

    def point(self, key: str, default: str | None = None) -> str:
        self.used.add(key)
        v = self.data.get(key, default)
        if v is None:
            self._err(key, "required (a site point 'device.point')")
            return ""
        if not isinstance(v, str) or (v and not _POINT.match(v)):
            self._err(key, f"{v!r} is not a point name 'device.point'")
            return ""
        return v

    def text(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        self.used.add(key)
        v = self.data.get(key, default)
        if not isinstance(v, str) or (choices and v not in choices):
            self._err(key, f"{v!r} must be one of {', '.join(choices)}" if choices
                      else f"{v!r} must be a string")
            return default
        return v

    def flag(self, key: str, default: bool) -> bool:
        self.used.add(key)
        v = self.data.get(key, default)
        if not isinstance(v, bool):
            self._err(key, f"{v!r} must be true or false")
            return default
        return v

    def hours(self, key: str, default: tuple[int, int]) -> tuple[int, int]:
        self.used.add(key)
        v = self.data.get(key, list(default))
        ok = (isinstance(v, list) and len(v) == 2
              and all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 24 for h in v)
              and v[0] != v[1])
        if not ok:
            self._err(key, f"{v!r} must be [start, end) local hours 0-24, start != end")
            return default
        return (int(v[0]), int(v[1]))

    def done(self) -> None:
        for k in sorted(set(self.data) - self.used):
            self._err(k, "unknown key")


def _battery(t: _Table, name: str) -> Battery:
    b = Battery(
        name=name,
        capacity_kwh=t.num("capacity_kwh", lo_open=True),
        p_charge_max_kw=t.num("p_charge_max_kw"),
        p_discharge_max_kw=t.num("p_discharge_max_kw"),
        eta_charge=t.num("eta_charge", 0.95, hi=1.0, lo_open=True),
        eta_discharge=t.num("eta_discharge", 0.95, hi=1.0, lo_open=True),
        soc_min_frac=t.num("soc_min_frac", 0.1, hi=1.0),
        soc_max_frac=t.num("soc_max_frac", 0.95, hi=1.0),
        wear_cny_per_kwh=t.num("wear_cny_per_kwh", 0.0),
        soc_point=t.point("soc_point"),
        p_set_point=t.point("p_set_point"),
        export_limiter=t.flag("export_limiter", False),
    )
    if b.soc_min_frac >= b.soc_max_frac:
        t._err("soc_min_frac", f"{b.soc_min_frac:g} must be below soc_max_frac {b.soc_max_frac:g}")
    return b


def _chp(t: _Table, name: str) -> Chp:
    return Chp(name, t.num("p_max_kw", lo_open=True), t.num("min_load_frac", 0.0, hi=1.0),
               t.num("eta_elec", hi=1.0, lo_open=True), t.num("heat_to_power"),
               t.num("start_cost_cny", 0.0), t.num("min_up_h", 0.0), t.num("min_down_h", 0.0),
               t.point("p_set_point"), t.point("running_point", ""))


def _diesel(t: _Table, name: str) -> Diesel:
    return Diesel(name, t.num("p_max_kw", lo_open=True), t.num("min_load_frac", 0.0, hi=1.0),
                  t.num("fuel_g_per_kwh", lo_open=True), t.num("start_cost_cny", 0.0),
                  t.num("min_up_h", 0.0), t.num("min_down_h", 0.0), t.point("p_set_point"),
                  t.point("running_point", ""), t.point("run_set_point", ""))


def _gas_boiler(t: _Table, name: str) -> GasBoiler:
    return GasBoiler(name, t.num("q_max_kw", lo_open=True), t.num("eta", hi=1.2, lo_open=True),
                     t.point("q_set_point"))


def _electric_boiler(t: _Table, name: str) -> ElectricBoiler:
    q_max, eta = t.num("q_max_kw", lo_open=True), t.num("eta", 0.98, hi=1.0, lo_open=True)
    store = t.num("store_kwh", 0.0)
    eb = ElectricBoiler(name, q_max, eta, t.point("q_set_point"), store,
                        t.num("p_max_kw", q_max / eta if eta > 0 else q_max),
                        t.num("loss_frac_per_h", 0.0, hi=1.0), t.point("stored_point", ""),
                        t.point("p_set_point", ""))
    if eb.stored:
        for key, v in (("stored_point", eb.stored_point), ("p_set_point", eb.p_set_point)):
            if not v:
                t._err(key, "required when store_kwh > 0")
    else:
        for key in ("p_max_kw", "loss_frac_per_h", "stored_point", "p_set_point"):
            if key in t.data:
                t._err(key, "only for a boiler with a store (store_kwh > 0)")
    return eb


def _electric_chiller(t: _Table, name: str) -> ElectricChiller:
    return ElectricChiller(name, t.num("cool_max_kw", lo_open=True), t.num("cop", lo_open=True),
                           t.num("min_load_frac", 0.0, hi=1.0), t.num("start_cost_cny", 0.0),
                           t.num("min_up_h", 0.0), t.num("min_down_h", 0.0),
                           t.point("cool_set_point"))


def _dual_chiller(t: _Table, name: str) -> DualChiller:
    return DualChiller(name, t.num("cool_max_kw", lo_open=True), t.num("cop_cool", lo_open=True),
                       t.num("ice_max_kw", lo_open=True), t.num("cop_ice", lo_open=True),
                       t.num("min_load_frac", 0.0, hi=1.0), t.num("start_cost_cny", 0.0),
                       t.num("min_up_h", 0.0), t.num("min_down_h", 0.0), t.text("ice_store", ""),
                       t.point("cool_set_point"), t.point("mode_set_point"))


def _absorption(t: _Table, name: str) -> AbsorptionChiller:
    return AbsorptionChiller(name, t.num("cool_max_kw", lo_open=True), t.num("cop", lo_open=True),
                             t.point("cool_set_point"))


def _ice_store(t: _Table, name: str) -> IceStore:
    return IceStore(name, t.num("capacity_kwh", lo_open=True),
                    t.num("usable_frac", 1.0, hi=1.0, lo_open=True),
                    t.num("charge_eff", 1.0, hi=1.0, lo_open=True),
                    t.num("release_eff", 1.0, hi=1.0, lo_open=True),
                    t.num("melt_max_kw", lo_open=True), t.num("loss_frac_per_h", 0.0, hi=1.0),
                    t.hours("charge_hours", (0, 24)), t.point("level_point"),
                    t.point("melt_set_point"), t.point("mode_set_point", ""),
                    t.num("release_frac_per_h", 0.0))


def _renewable(kind: str) -> Callable[[_Table, str], Renewable]:
    def parse(t: _Table, name: str) -> Renewable:
        r = Renewable(name, kind, t.num("p_rated_kw", lo_open=True), t.point("p_set_point", ""),
                      t.point("p_point", ""), t.point("limit_pct_point", ""),
                      t.point("limit_ena_point", ""), t.point("avail_point", ""))
        if bool(r.limit_pct_point) != bool(r.limit_ena_point):
            t._err("limit_ena_point" if r.limit_pct_point else "limit_pct_point",
                   "limit_pct_point and limit_ena_point go together")
        if not r.p_set_point and not r.limit_pct_point:
            t._err("p_set_point", "required (or limit_pct_point with limit_ena_point)")
        if r.p_set_point and r.limit_pct_point:
            t._err("limit_pct_point", "either p_set_point or limit_pct_point, not both")
        return r
    return parse


def _load(t: _Table, name: str) -> Load:
    ld = Load(name, t.text("kind", "electric", ("electric", "heat", "cooling")),
              t.num("peak_kw", lo_open=True), t.num("interruptible_frac", 0.0, hi=1.0),
              t.flag("critical", False), t.point("p_point", ""), t.point("shed_set_point", ""),
              t.point("shed_frac_point", ""), t.text("forecast", ""),
              t.point("network_point", ""), t.num("network_kwh_per_k", 0.0),
              t.num("network_restore_h", 1.0, lo_open=True))
    if ld.network_point and ld.kind == "electric":
        t._err("network_point", "only heat and cooling loads have a network")
    if ld.network_point and ld.network_kwh_per_k <= 0:
        t._err("network_kwh_per_k", "required (> 0) with network_point")
    if ld.interruptible_frac > 0 and not (ld.shed_set_point or ld.shed_frac_point):
        t._err("shed_set_point", "required when interruptible_frac > 0 (or shed_frac_point)")
    if ld.shed_set_point and ld.shed_frac_point:
        t._err("shed_frac_point", "either shed_set_point or shed_frac_point, not both")
    if ld.shed_frac_point and not ld.p_point:
        t._err("p_point", "required with shed_frac_point (the fraction is of the measured load)")
    if ld.interruptible_frac > 0 and ld.kind != "electric":
        t._err("interruptible_frac", "only electric loads can be interrupted")
    return ld


_KINDS: dict[str, Callable[[_Table, str], Any]] = {
    "battery": _battery, "chp": _chp, "diesel": _diesel, "gas_boiler": _gas_boiler,
    "electric_boiler": _electric_boiler, "electric_chiller": _electric_chiller,
    "dual_chiller": _dual_chiller, "absorption_chiller": _absorption, "ice_store": _ice_store,
    "pv": _renewable("pv"), "wind": _renewable("wind"), "load": _load,
}


def _objective(t: _Table) -> Objective:
    d = Objective()
    return Objective(**{k: t.num(k, getattr(d, k)) for k in Objective.__dataclass_fields__})


def plant_from_assets(assets: Mapping[str, Any], *, timezone: str = "UTC") -> PlantModel:
    """Parse the ``[assets]`` table; raise :class:`AssetsInvalid` listing every error."""
    errors: list[AssetError] = []
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(AssetError("site.timezone", f"{timezone!r} is not an IANA time zone"))
        tz = ZoneInfo("UTC")
    parsed: dict[str, list[Any]] = {k: [] for k in _KINDS}
    seen: dict[str, str] = {}
    grid: Grid | None = None
    objective = Objective()
    for kind, group in assets.items():
        path = f"assets.{kind}"
        if kind == "grid":
            t = _Table(group, path, errors)
            grid = Grid(t.num("import_max_kw"), t.num("export_max_kw"), t.point("p_point", ""),
                        export_limiter=t.flag("export_limiter", False))
            t.done()
        elif kind == "objective":
            t = _Table(group, path, errors)
            objective = _objective(t)
            t.done()
        elif kind in _KINDS:
            if not isinstance(group, Mapping):
                errors.append(AssetError(path, "must be a table of named assets"))
                continue
            for name, body in group.items():
                if not _NAME.match(name):
                    errors.append(AssetError(f"{path}.{name}", "asset names are [a-z0-9_]+"))
                if name in seen:
                    errors.append(AssetError(f"{path}.{name}",
                                             f"name already used by assets.{seen[name]}.{name}"))
                seen[name] = kind
                t = _Table(body, f"{path}.{name}", errors)
                parsed[kind].append(_KINDS[kind](t, name))
                t.done()
        else:
            errors.append(AssetError(path, f"unknown asset kind (known: grid, objective, "
                                           f"{', '.join(sorted(_KINDS))})"))
    if grid is None:
        errors.append(AssetError("assets.grid", "required: import_max_kw, export_max_kw"))
        grid = Grid(0.0, 0.0)
    stores = {s.name for s in parsed["ice_store"]}
    for c in parsed["dual_chiller"]:
        if c.ice_store not in stores:
            errors.append(AssetError(f"assets.dual_chiller.{c.name}.ice_store",
                                     f"{c.ice_store!r} names no assets.ice_store"))
    if errors:
        raise AssetsInvalid(errors)
    return PlantModel(
        timezone=tz, grid=grid, batteries=tuple(parsed["battery"]), chps=tuple(parsed["chp"]),
        diesels=tuple(parsed["diesel"]), gas_boilers=tuple(parsed["gas_boiler"]),
        electric_boilers=tuple(parsed["electric_boiler"]),
        electric_chillers=tuple(parsed["electric_chiller"]),
        dual_chillers=tuple(parsed["dual_chiller"]),
        absorption_chillers=tuple(parsed["absorption_chiller"]),
        ice_stores=tuple(parsed["ice_store"]),
        renewables=tuple(parsed["pv"]) + tuple(parsed["wind"]), loads=tuple(parsed["load"]),
        objective=objective,
    )
