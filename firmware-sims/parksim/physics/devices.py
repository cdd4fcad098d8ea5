"""Device models: each enforces its own ratings, as the physical device would.

Every device holds its setpoints (``set``), their limits (``limits``) and whether
it is under remote control. ``remote`` becomes True with the first accepted
setpoint; ``fallback()`` returns it to its local default (battery idle, CHP
heat-led, chillers and boilers on their own thermostat, diesel off).

Internal powers here are magnitudes (>= 0) unless the name says otherwise; the
park's bus sign (positive = drawn from the bus) is applied in ``park.py``. The
battery's ``p_kw`` is already in bus sign: positive = charging.

Setpoints (``sp``, ``limits``) are in the park's passive sign, like the
measurements: what a unit generates or delivers is negative (``chp1.p_set_kw =
-3000`` asks for 3 MW; chillers', boilers' and the ice store's delivery
setpoints are <= 0; the wind farm's limit is <= 0), what it draws is positive
(battery charge, heat-storage boiler charge). The served register and node
tables turn them into the devices' own "output positive" convention with
``scale = -1``, exactly as they do for the measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

H = 3600.0
GAS_KWH_PER_M3 = 10.55  # SCENARIOS.md: 1 m3 natural gas ~ 10.55 kWh
DIESEL_KG_PER_L = 0.84


@dataclass(frozen=True, slots=True)
class Limit:
    """A setpoint's accepted range; ``choices`` restricts it to discrete values."""

    min: float
    max: float
    unit: str
    default: float = 0.0
    choices: tuple[float, ...] | None = None

    def accepts(self, value: float) -> bool:
        if value != value or not self.min <= value <= self.max:  # NaN or out of range
            return False
        return self.choices is None or value in self.choices


@dataclass
class Device:
    name: str
    remote: bool = field(default=False, init=False)
    sp: dict[str, float] = field(default_factory=dict, init=False)

    def limits(self) -> dict[str, Limit]:
        return {}

    def set(self, point: str, value: float) -> None:
        self.sp[point] = float(value)
        self.remote = True

    def fallback(self) -> None:
        self.remote = False
        self.sp = {k: lim.default for k, lim in self.limits().items()}

    def __post_init__(self) -> None:
        self.sp = {k: lim.default for k, lim in self.limits().items()}


@dataclass
class Battery(Device):
    """Li-ion store. ``p_kw`` > 0 charges. Local default: idle."""

    p_max_kw: float = 10_000.0
    e_kwh: float = 40_000.0
    eff_charge: float = 0.92
    eff_discharge: float = 0.92
    soc_min_frac: float = 0.10
    soc_max_frac: float = 0.95
    soc_frac: float = 0.5
    p_kw: float = 0.0
    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"p_set_kw": Limit(-self.p_max_kw, self.p_max_kw, "kW")}

    def step(self, dt_s: float, charge_cap_kw: float = math.inf,
             discharge_cap_kw: float = math.inf) -> float:
        """Advance ``dt_s`` at the setpoint, charging at most ``charge_cap_kw`` (what the
        grid's import limit leaves, ``Park.step``) and discharging at most
        ``discharge_cap_kw`` (what its export limit leaves); returns the power (> 0
        charging)."""
        target = self.sp["p_set_kw"] if self.remote else 0.0
        target = min(max(target, -self.p_max_kw, -max(discharge_cap_kw, 0.0)), self.p_max_kw,
                     max(charge_cap_kw, 0.0))
        dt_h = dt_s / H
        if target >= 0.0:
            room_kwh = max(0.0, (self.soc_max_frac - self.soc_frac) * self.e_kwh)
            p = min(target, room_kwh / (self.eff_charge * dt_h))
            self.soc_frac += p * self.eff_charge * dt_h / self.e_kwh
            self.charged_kwh += p * dt_h
        else:
            avail_kwh = max(0.0, (self.soc_frac - self.soc_min_frac) * self.e_kwh)
            p = max(target, -avail_kwh * self.eff_discharge / dt_h)
            self.soc_frac += p / self.eff_discharge * dt_h / self.e_kwh
            self.discharged_kwh += -p * dt_h
        self.soc_frac = min(max(self.soc_frac, self.soc_min_frac), self.soc_max_frac)
        self.p_kw = p
        return p


@dataclass
class PvPlant(Device):
    """Inverter-limited PV. SunSpec-style curtailment: WMaxLimPct applies when enabled."""

    ac_kw: float = 8_000.0
    p_gen_kw: float = 0.0
    avail_kw: float = 0.0
    energy_kwh: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"w_max_lim_pct": Limit(0.0, 100.0, "%", 100.0),
                "w_max_lim_ena": Limit(0.0, 1.0, "1", 0.0, (0.0, 1.0))}

    def cap_kw(self, avail_kw: float) -> float:
        cap = min(avail_kw, self.ac_kw)
        if self.remote and self.sp["w_max_lim_ena"] >= 0.5:
            cap = min(cap, self.ac_kw * self.sp["w_max_lim_pct"] / 100.0)
        return cap


@dataclass
class WindFarm(Device):
    rated_kw: float = 7_500.0
    p_gen_kw: float = 0.0
    avail_kw: float = 0.0
    energy_kwh: float = 0.0

    def limits(self) -> dict[str, Limit]:
        # passive sign: the limit on what the farm delivers, -rated_kw = no limit
        return {"p_limit_kw": Limit(-self.rated_kw, 0.0, "kW", -self.rated_kw)}

    def cap_kw(self, avail_kw: float) -> float:
        cap = min(avail_kw, self.rated_kw)
        return min(cap, -self.sp["p_limit_kw"]) if self.remote else cap


@dataclass
class Chp(Device):
    """Gas engine CHP. Heat = electric * heat_ratio; fuel = electric / eff_el.

    A setpoint of 0 stops it; between 0 and the minimum load it runs at the
    minimum load (the engine controller will not run lower). Local default:
    heat-led, at least at minimum load, off when under 10 % of that is asked for.
    """

    p_max_kw: float = 4_000.0
    min_load_frac: float = 0.30
    heat_ratio: float = 0.875  # 3.5 MWth / 4 MWe
    eff_el: float = 0.45
    p_gen_kw: float = 0.0
    q_kw: float = 0.0
    fuel_kw: float = 0.0
    starts_total: int = 0
    energy_kwh: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"p_set_kw": Limit(-self.p_max_kw, 0.0, "kW")}

    def dispatch(self, heat_target_kw: float) -> float:
        """Set the operating point for this step; returns heat delivered (kW)."""
        p_min = self.min_load_frac * self.p_max_kw
        if self.remote:
            target = -self.sp["p_set_kw"]
        else:
            # Heat-led: follow the heat asked for; below the minimum load run at it
            # (surplus heat is dumped) unless almost nothing is asked for.
            target = heat_target_kw / self.heat_ratio
            if target < 0.1 * p_min:
                target = 0.0
        p = 0.0 if target <= 0.0 else min(max(target, p_min), self.p_max_kw)
        if p > 0.0 and self.p_gen_kw <= 0.0:
            self.starts_total += 1
        self.p_gen_kw = p
        self.q_kw = p * self.heat_ratio
        self.fuel_kw = p / self.eff_el
        return self.q_kw


@dataclass
class Diesel(Device):
    """Backup genset with minimum up and down times enforced by its own controller.

    A start or stop asked for inside the minimum time is held until it expires.
    Running output is at least ``min_load_frac`` of rating. Local default: off.
    """

    p_max_kw: float = 2_000.0
    min_load_frac: float = 0.30
    fuel_g_per_kwh: float = 200.0
    min_up_s: float = 7200.0
    min_down_s: float = 7200.0
    on: bool = False
    t_in_state_s: float = 1e9
    p_gen_kw: float = 0.0
    fuel_l_total: float = 0.0
    starts_total: int = 0
    energy_kwh: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"run_cmd": Limit(0.0, 1.0, "1", 0.0, (0.0, 1.0)),
                "p_set_kw": Limit(-self.p_max_kw, 0.0, "kW")}

    def step(self, dt_s: float) -> float:
        want_on = self.remote and self.sp["run_cmd"] >= 0.5
        if want_on != self.on:
            needed = self.min_up_s if self.on else self.min_down_s
            if self.t_in_state_s >= needed:
                self.on = want_on
                self.t_in_state_s = 0.0
                self.starts_total += int(want_on)
        p = 0.0
        if self.on:
            target = -self.sp["p_set_kw"] if want_on else 0.0
            p = min(max(target, self.min_load_frac * self.p_max_kw), self.p_max_kw)
        self.t_in_state_s += dt_s
        self.p_gen_kw = p
        litres = p * dt_s / H * self.fuel_g_per_kwh / 1000.0 / DIESEL_KG_PER_L
        self.fuel_l_total += litres
        return p

    @property
    def locked(self) -> bool:
        needed = self.min_up_s if self.on else self.min_down_s
        return self.t_in_state_s < needed


@dataclass
class ThermalUnit(Device):
    """A unit delivering heat or cooling ``q_kw`` up to ``q_max_kw`` at ``q_set_kw``
    (passive sign, <= 0). Local default: follow the residual load (thermostat)."""

    q_max_kw: float = 0.0
    q_kw: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"q_set_kw": Limit(-self.q_max_kw, 0.0, "kW")}

    def dispatch(self, residual_kw: float) -> float:
        target = -self.sp["q_set_kw"] if self.remote else residual_kw
        self.q_kw = min(max(target, 0.0), self.q_max_kw)
        return self.q_kw

    def pick_up(self, extra_kw: float) -> float:
        """A running unit's own controller loads up on its water temperature (a chiller on
        rising chilled water, a boiler on falling hot water), up to its rating."""
        add = min(max(extra_kw, 0.0), self.q_max_kw - self.q_kw) if self.q_kw > 0.0 else 0.0
        self.q_kw += add
        return add

    def unload(self, surplus_kw: float) -> float:
        """The other way: on falling chilled water (rising hot water) the unit gives less
        than its setpoint, down to nothing, rather than make what no load takes."""
        cut = min(max(surplus_kw, 0.0), self.q_kw)
        self.q_kw -= cut
        return cut


@dataclass
class Chiller(ThermalUnit):
    """Electric chiller: cooling q_kw at a fixed COP."""

    q_max_kw: float = 2_000.0
    cop: float = 4.0

    @property
    def p_el_kw(self) -> float:
        return self.q_kw / self.cop


@dataclass
class AbsorptionChiller(Device):
    """Single-effect absorption chiller fed by CHP heat: cooling = heat_in * cop."""

    q_max_kw: float = 1_500.0
    cop: float = 0.7
    q_kw: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"q_set_kw": Limit(-self.q_max_kw, 0.0, "kW")}

    def dispatch(self, residual_kw: float, heat_avail_kw: float) -> float:
        target = -self.sp["q_set_kw"] if self.remote else residual_kw
        self.q_kw = min(max(target, 0.0), self.q_max_kw, max(heat_avail_kw, 0.0) * self.cop)
        return self.q_kw

    def pick_up(self, extra_kw: float, heat_free_kw: float) -> float:
        """Running, its own controller loads up on rising chilled water, as an electric
        chiller's does, up to its rating and what the ``heat_free_kw`` drives."""
        if self.q_kw <= 0.0:
            return 0.0
        add = max(min(extra_kw, self.q_max_kw - self.q_kw, heat_free_kw * self.cop), 0.0)
        self.q_kw += add
        return add

    @property
    def heat_in_kw(self) -> float:
        return self.q_kw / self.cop


MODE_OFF, MODE_COOL, MODE_ICE = 0.0, 1.0, 2.0


@dataclass
class DualChiller(Device):
    """Dual-mode centrifugal chiller: chilled water (cooling) or glycol for ice.

    Mode changes honour minimum on and off times (a request inside them is held).
    In ice mode the output goes to the ice store and only while the store charges.
    Local default: cooling mode on its thermostat.
    """

    q_cool_max_kw: float = 4_572.0
    cop_cool: float = 4.6
    q_ice_max_kw: float = 3_165.0
    cop_ice: float = 3.8
    min_on_s: float = 1800.0
    min_off_s: float = 1800.0
    mode: float = MODE_OFF
    t_in_state_s: float = 1e9
    q_kw: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"mode_set": Limit(0.0, 2.0, "1", MODE_COOL, (MODE_OFF, MODE_COOL, MODE_ICE)),
                "q_set_kw": Limit(-self.q_cool_max_kw, 0.0, "kW")}

    def settle_mode(self) -> None:
        want = self.sp["mode_set"] if self.remote else MODE_COOL
        if want != self.mode:
            needed = self.min_off_s if self.mode == MODE_OFF else self.min_on_s
            if self.t_in_state_s >= needed:
                self.mode = want
                self.t_in_state_s = 0.0

    def dispatch(self, residual_kw: float, ice_room_kw: float) -> float:
        """Cooling (or ice) output this step. ``ice_room_kw``: what the store can take."""
        if self.mode == MODE_OFF:
            self.q_kw = 0.0
        elif self.mode == MODE_ICE:
            target = -self.sp["q_set_kw"] if self.remote else 0.0
            self.q_kw = min(max(target, 0.0), self.q_ice_max_kw, max(ice_room_kw, 0.0))
        else:
            target = -self.sp["q_set_kw"] if self.remote else residual_kw
            self.q_kw = min(max(target, 0.0), self.q_cool_max_kw)
        return self.q_kw

    def pick_up(self, extra_kw: float) -> float:
        """In cooling mode (committed) the unit loads up on rising chilled-water temperature."""
        add = (min(max(extra_kw, 0.0), self.q_cool_max_kw - self.q_kw)
               if self.mode == MODE_COOL else 0.0)
        self.q_kw += add
        return add

    def unload(self, surplus_kw: float) -> float:
        """In cooling mode the unit unloads on falling chilled-water temperature."""
        cut = min(max(surplus_kw, 0.0), self.q_kw) if self.mode == MODE_COOL else 0.0
        self.q_kw -= cut
        return cut

    def tick(self, dt_s: float) -> None:
        self.t_in_state_s += dt_s

    @property
    def p_el_kw(self) -> float:
        if self.mode == MODE_ICE:
            return self.q_kw / self.cop_ice
        return self.q_kw / self.cop_cool


STORE_IDLE, STORE_CHARGE, STORE_MELT = 0.0, 1.0, 2.0


@dataclass
class IceStore(Device):
    """Ice-on-coil store; ``stored_kwh`` counts usable cold (capacity * K).

    Charging stores ``eff_charge`` of the chillers' ice-mode output; melting
    delivers ``q`` and removes q / eff_release. The release rate is limited to
    ``melt_max_kw`` and to (1 - 0.15) of the stored cold per hour (the 15 %
    cold-loss term), so the store slows as it empties. Standing loss
    ``loss_per_h`` of what is stored. One mode at a time: it never charges and
    melts at once. Local default: idle.
    """

    capacity_kwh: float = 101_700.0
    usable_frac: float = 0.95
    eff_charge: float = 0.90
    eff_release: float = 0.96
    release_loss_frac: float = 0.15
    loss_per_h: float = 0.005
    melt_max_kw: float = 12_000.0
    stored_kwh: float = 0.0
    q_melt_kw: float = 0.0
    q_charge_kw: float = 0.0
    loss_kwh_total: float = 0.0

    @property
    def usable_kwh(self) -> float:
        return self.capacity_kwh * self.usable_frac

    def limits(self) -> dict[str, Limit]:
        return {"mode_set": Limit(0.0, 2.0, "1", STORE_IDLE, (STORE_IDLE, STORE_CHARGE, STORE_MELT)),
                "melt_set_kw": Limit(-self.melt_max_kw, 0.0, "kW")}

    @property
    def mode(self) -> float:
        return self.sp["mode_set"] if self.remote else STORE_IDLE

    def room_kw(self, dt_s: float) -> float:
        """Ice-mode chiller output the store can still take this step."""
        if self.mode != STORE_CHARGE:
            return 0.0
        return max(0.0, self.usable_kwh - self.stored_kwh) / (self.eff_charge * dt_s / H)

    def melt(self, dt_s: float) -> float:
        if self.mode != STORE_MELT:
            self.q_melt_kw = 0.0
            return 0.0
        dt_h = dt_s / H
        cap = min(self.melt_max_kw, (1.0 - self.release_loss_frac) * self.stored_kwh,
                  self.stored_kwh * self.eff_release / dt_h)
        self.q_melt_kw = min(max(-self.sp["melt_set_kw"], 0.0), cap)
        return self.q_melt_kw

    def pick_up(self, extra_kw: float, dt_s: float) -> float:
        """In melt mode more cold is released when the return water warms, up to the release cap."""
        if self.mode != STORE_MELT:
            return 0.0
        dt_h = dt_s / H
        cap = min(self.melt_max_kw, (1.0 - self.release_loss_frac) * self.stored_kwh,
                  self.stored_kwh * self.eff_release / dt_h)
        add = min(max(extra_kw, 0.0), max(cap - self.q_melt_kw, 0.0))
        self.q_melt_kw += add
        return add

    def unload(self, surplus_kw: float) -> float:
        """Less cold is released when the return water comes back cold."""
        cut = min(max(surplus_kw, 0.0), self.q_melt_kw) if self.mode == STORE_MELT else 0.0
        self.q_melt_kw -= cut
        return cut

    def settle(self, dt_s: float, q_charge_kw: float) -> None:
        dt_h = dt_s / H
        self.q_charge_kw = q_charge_kw
        self.stored_kwh += q_charge_kw * self.eff_charge * dt_h - self.q_melt_kw / self.eff_release * dt_h
        loss = self.stored_kwh * self.loss_per_h * dt_h
        self.stored_kwh = min(max(self.stored_kwh - loss, 0.0), self.usable_kwh)
        self.loss_kwh_total += loss


@dataclass
class GasBoiler(ThermalUnit):
    """Gas hot-water boiler: heat q_kw at a fixed efficiency."""

    q_max_kw: float = 5_600.0
    eff: float = 0.92

    @property
    def fuel_kw(self) -> float:
        return self.q_kw / self.eff


@dataclass
class HeatStorageBoiler(Device):
    """Electric boiler charging a hot-water store; heat is drawn from the store.

    p_set_kw: electric charging power (drawn, >= 0); q_set_kw: heat delivered from
    the store (passive sign, <= 0).
    Local default: charge at full power 22:00-06:00 local until full, and cover
    the residual heat demand from the store by day.
    """

    p_max_kw: float = 4_500.0
    q_max_kw: float = 4_500.0
    store_kwh: float = 18_000.0
    eff: float = 0.98
    loss_per_h: float = 0.005
    stored_kwh: float = 9_000.0
    p_el_kw: float = 0.0
    q_kw: float = 0.0

    def limits(self) -> dict[str, Limit]:
        return {"p_set_kw": Limit(0.0, self.p_max_kw, "kW"),
                "q_set_kw": Limit(-self.q_max_kw, 0.0, "kW")}

    def dispatch(self, residual_kw: float, night: bool, dt_s: float) -> float:
        dt_h = dt_s / H
        if self.remote:
            p_target, q_target = self.sp["p_set_kw"], -self.sp["q_set_kw"]
        else:
            p_target = self.p_max_kw if night else 0.0
            q_target = 0.0 if night else residual_kw
        q = min(max(q_target, 0.0), self.q_max_kw, self.stored_kwh / dt_h)
        room = self.store_kwh - (self.stored_kwh - q * dt_h)
        p = min(max(p_target, 0.0), self.p_max_kw, max(room, 0.0) / (self.eff * dt_h))
        self.p_el_kw, self.q_kw = p, q
        return q

    def pick_up(self, extra_kw: float, dt_s: float) -> float:
        """A store already releasing (q > 0) releases more, up to its rating and what it holds."""
        if self.q_kw <= 0.0:
            return 0.0
        add = min(max(extra_kw, 0.0), self.q_max_kw - self.q_kw,
                  max(self.stored_kwh / (dt_s / H) - self.q_kw, 0.0))
        self.q_kw += add
        return add

    def unload(self, surplus_kw: float) -> float:
        """A releasing store releases less when the hot water comes back hot; the heat stays in."""
        cut = min(max(surplus_kw, 0.0), self.q_kw)
        self.q_kw -= cut
        return cut

    def settle(self, dt_s: float) -> None:
        dt_h = dt_s / H
        self.stored_kwh += (self.p_el_kw * self.eff - self.q_kw) * dt_h
        self.stored_kwh -= self.stored_kwh * self.loss_per_h * dt_h
        self.stored_kwh = min(max(self.stored_kwh, 0.0), self.store_kwh)


@dataclass
class DataCentre(Device):
    """The data centre's load; ``shed_frac`` of it may be interrupted (up to 30 %)."""

    interruptible_frac: float = 0.30

    def limits(self) -> dict[str, Limit]:
        return {"shed_frac": Limit(0.0, self.interruptible_frac, "frac")}

    @property
    def shed(self) -> float:
        return self.sp["shed_frac"] if self.remote else 0.0


@dataclass
class Grid(Device):
    """Point of connection: the slack of the electric balance, within its limits."""

    import_max_kw: float = 12_000.0
    export_max_kw: float = 6_000.0
    p_kw: float = 0.0  # bus sign: > 0 export
    import_kwh: float = 0.0
    export_kwh: float = 0.0
