"""The park: devices + exogenous inputs, stepped in virtual time with no server.

Sign convention (bus sign, as in edge/control): a positive power is drawn from
the park's electric bus (consumption, charging, export to the grid), a negative
one is delivered to it (generation, discharging, import). ``StepFlows.electric_kw``
sums to zero every step: the grid is the slack, and beyond its limits the
remainder is booked as ``unserved`` (negative: load that was not served) or
``spill`` (positive: generation that could not go anywhere after curtailing PV
and wind). Thermal balances: supply = demand + dump - unserved, for heat and
for cooling.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from . import devices as d
from . import exogenous as x
from .sites import LoadModel, SiteSpec, build_devices, build_loads, spec_for

H = 3600.0


class SetpointRefused(ValueError):
    """A setpoint outside the device's limits or for an unknown key; nothing changed."""


@dataclass(frozen=True, slots=True)
class StepFlows:
    """Average flows over one step [t_start_s, t_start_s + dt_s) and the state after it.

    electric_kw: every bus term by device ("grid1" is the slack), bus sign; plus
        "unserved" (<= 0) and "spill" (>= 0) so that the sum is exactly zero.
    elec_unserved_kw: the magnitude (>= 0) of electric_kw["unserved"].
    heat_supply_kw / heat_use_kw: producers and consumers of heat (heating load
        as "load", absorption chiller input); heat_dump_kw surplus rejected,
        heat_unserved_kw demand not met. Same for cooling.
    storage: levels after the step (bess1.soc_frac, bess1.energy_kwh, ice1.stored_kwh, ...).
    gas_m3, diesel_l: fuel burnt during the step.
    """

    t_start_s: float
    dt_s: float
    electric_kw: Mapping[str, float]
    heat_supply_kw: Mapping[str, float]
    heat_use_kw: Mapping[str, float]
    heat_dump_kw: float
    heat_unserved_kw: float
    cool_supply_kw: Mapping[str, float]
    cool_use_kw: Mapping[str, float]
    cool_dump_kw: float
    cool_unserved_kw: float
    grid_import_kw: float
    grid_export_kw: float
    elec_unserved_kw: float
    curtailed_kw: float
    storage: Mapping[str, float]
    gas_m3: float
    diesel_l: float
    loads_kw: Mapping[str, float]
    violations: tuple[str, ...] = ()

    def electric_imbalance_kw(self) -> float:
        return math.fsum(self.electric_kw.values())

    def heat_imbalance_kw(self) -> float:
        return (math.fsum(self.heat_supply_kw.values()) - math.fsum(self.heat_use_kw.values())
                - self.heat_dump_kw + self.heat_unserved_kw)

    def cool_imbalance_kw(self) -> float:
        return (math.fsum(self.cool_supply_kw.values()) - math.fsum(self.cool_use_kw.values())
                - self.cool_dump_kw + self.cool_unserved_kw)


@dataclass
class Park:
    """A steppable park. Use ``build_park``; then ``apply``, ``step``, ``measurements``."""

    spec: SiteSpec
    devices: dict[str, d.Device]
    loads: LoadModel
    weather: dict[str, x.PeriodicSeries | x.ClampedSeries]
    t_s: float
    seed: int
    refused_total: int = 0
    last: StepFlows | None = None
    load_kwh: dict[str, float] = field(default_factory=dict)
    # heat in the district heating network above its supply setpoint (kWh; < 0 below it)
    heat_net_kwh: float = 0.0
    _exo_cache: tuple[float, x.Exogenous] | None = field(default=None, repr=False)

    # --- inputs -----------------------------------------------------------------------

    def setpoint_limits(self) -> dict[str, d.Limit]:
        """Every accepted setpoint key ("device.point") and its limits."""
        return {f"{n}.{p}": lim for n, dev in self.devices.items() for p, lim in dev.limits().items()}

    def apply(self, setpoints: Mapping[str, float]) -> dict[str, str]:
        """Apply setpoints; returns {key: reason} for those refused (they change nothing).

        A refused key is counted in ``refused_total``; the others take effect and
        put their device under remote control until ``fallback``.
        """
        refused: dict[str, str] = {}
        for key, value in setpoints.items():
            name, _, point = key.partition(".")
            dev = self.devices.get(name)
            lim = dev.limits().get(point) if dev else None
            if dev is None or lim is None:
                refused[key] = "unknown setpoint"
            elif not lim.accepts(float(value)):
                refused[key] = f"{value} outside [{lim.min}, {lim.max}]" + (
                    f" or not one of {lim.choices}" if lim.choices else "")
            else:
                dev.set(point, float(value))
        self.refused_total += len(refused)
        return refused

    def check(self, key: str, value: float) -> str | None:
        """Why ``apply({key: value})`` would refuse it, or None (no side effect)."""
        name, _, point = key.partition(".")
        dev = self.devices.get(name)
        lim = dev.limits().get(point) if dev else None
        if lim is None:
            return "unknown setpoint"
        return None if lim.accepts(float(value)) else "out of range"

    def fallback(self, device: str) -> None:
        """Return a device to its local default (heartbeat lost)."""
        self.devices[device].fallback()

    # --- exogenous --------------------------------------------------------------------

    def exogenous_at(self, ts: float | datetime) -> x.Exogenous:
        """Weather, availabilities and loads at an instant (UTC seconds or aware datetime)."""
        ts_s = ts.timestamp() if isinstance(ts, datetime) else float(ts)
        if self._exo_cache and self._exo_cache[0] == ts_s:
            return self._exo_cache[1]
        w = x.WeatherPoint(*(self.weather[k].at(ts_s) for k in ("ghi", "dni", "dhi", "temp_c", "wind_m_s")))
        loads, heat, cool = self.loads.at(ts_s, w.temp_c)
        degr = 1.0 - self.spec.pv_degradation_per_year * self.spec.pv_age_years
        exo = x.Exogenous(
            ts_s=ts_s, weather=w, wind_hub_m_s=self.weather["wind_hub"].at(ts_s),
            poa_w_m2=self.weather["poa"].at(ts_s),
            pv_avail_kw=max(self.weather["pv_kw"].at(ts_s) * degr, 0.0),
            wind_avail_kw=max(self.weather["wind_kw"].at(ts_s), 0.0),
            loads_kw=loads, heat_kw=heat, cool_kw=cool,
        )
        self._exo_cache = (ts_s, exo)
        return exo

    # --- the step ---------------------------------------------------------------------

    def _of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [dev for dev in self.devices.values() if isinstance(dev, kind)]

    def step(self, dt_s: float) -> StepFlows:
        """Advance by dt_s (> 0) with the setpoints in force; exogenous values at mid-step."""
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s}")
        exo = self.exogenous_at(self.t_s + dt_s / 2.0)
        local_h = ((self.t_s + dt_s / 2.0) / H + self.spec.utc_offset_h) % 24.0
        night = local_h >= 22.0 or local_h < 6.0
        viol: list[str] = []

        # what the district heating water can hold above or below its setpoint (0: no store)
        net_cap_kwh = self.spec.heat_net_kwh_per_k * self.spec.heat_net_band_k
        # Heat: remote units at their setpoints, then local ones on the residual.
        heat_sup: dict[str, float] = {}
        residual = exo.heat_kw
        chps, gbs, ehbs = self._of(d.Chp), self._of(d.GasBoiler), self._of(d.HeatStorageBoiler)
        for dev in [u for u in chps + gbs + ehbs if u.remote]:
            q = (dev.dispatch(0.0, night, dt_s) if isinstance(dev, d.HeatStorageBoiler)
                 else dev.dispatch(0.0))
            heat_sup[dev.name] = q
            residual -= q
        for dev in [u for u in ehbs if not u.remote]:
            heat_sup[dev.name] = q = dev.dispatch(max(residual, 0.0), night, dt_s)
            residual -= q
        for dev in [u for u in chps if not u.remote]:
            heat_sup[dev.name] = q = dev.dispatch(max(residual, 0.0))
            residual -= q
        for dev in [u for u in gbs if not u.remote]:
            heat_sup[dev.name] = q = dev.dispatch(max(residual, 0.0))
            residual -= q
        # Residual heat: hot-water temperature falls and the units that are on load up
        # (remote gas boilers firing, then remote stores already releasing). CHPs hold
        # their electric setpoint.
        for dev in [u for u in gbs if u.remote] + [u for u in ehbs if u.remote]:
            if residual > 1e-9:
                add = dev.pick_up(residual) if isinstance(dev, d.GasBoiler) else dev.pick_up(residual, dt_s)
                heat_sup[dev.name] += add
                residual -= add
        heat_total = math.fsum(heat_sup.values())

        # Cooling: ice melt, absorption on surplus heat, electric chillers.
        cool_sup: dict[str, float] = {}
        cool_res = exo.cool_kw
        ice = self._of(d.IceStore)
        for st in ice:
            cool_sup[st.name] = q = st.melt(dt_s)
            cool_res -= q
        # heat the network holds above its setpoint is surplus heat too
        heat_spare = max(heat_total - exo.heat_kw + max(self.heat_net_kwh, 0.0) * H / dt_s, 0.0)
        heat_use: dict[str, float] = {"load": exo.heat_kw}
        for ab in self._of(d.AbsorptionChiller):
            cool_sup[ab.name] = q = ab.dispatch(max(cool_res, 0.0), heat_spare)
            heat_use[ab.name] = ab.heat_in_kw
            heat_spare -= ab.heat_in_kw
            cool_res -= q
        duals = self._of(d.DualChiller)
        for dc in duals:
            dc.settle_mode()
        ice_room = sum(st.room_kw(dt_s) for st in ice)
        ice_charge = 0.0
        for dc in [u for u in duals if u.mode == d.MODE_ICE]:
            ice_charge += dc.dispatch(0.0, ice_room - ice_charge)
        chillers = self._of(d.Chiller)
        cool_duals = [u for u in duals if u.mode == d.MODE_COOL]
        for dev in [u for u in chillers + cool_duals if u.remote]:
            cool_sup[dev.name] = q = (dev.dispatch(0.0, 0.0) if isinstance(dev, d.DualChiller)
                                      else dev.dispatch(0.0))
            cool_res -= q
        for dev in [u for u in chillers + cool_duals if not u.remote]:
            cool_sup[dev.name] = q = (dev.dispatch(max(cool_res, 0.0), 0.0)
                                      if isinstance(dev, d.DualChiller) else dev.dispatch(max(cool_res, 0.0)))
            cool_res -= q
        # Residual cooling: chilled-water temperature rises and what is on loads up
        # (remote electric chillers running, dual chillers in cooling mode, ice stores
        # melting), each to its rating; only the rest is unserved.
        for dev in [u for u in chillers if u.remote] + [u for u in cool_duals if u.remote] + ice:
            if cool_res > 1e-9:
                add = dev.pick_up(cool_res, dt_s) if isinstance(dev, d.IceStore) else dev.pick_up(cool_res)
                cool_sup[dev.name] += add
                cool_res -= add
        # A running absorption chiller loads up likewise, on the CHPs' surplus heat and the
        # network's stored heat down to the bottom of its band
        for ab in self._of(d.AbsorptionChiller):
            if cool_res > 1e-9:
                free = (heat_total - math.fsum(heat_use.values())
                        + (self.heat_net_kwh + net_cap_kwh) * H / dt_s)
                add = ab.pick_up(cool_res, free)
                cool_sup[ab.name] += add
                heat_use[ab.name] = ab.heat_in_kw
                cool_res -= add
        # Surplus cooling: chilled water falls below its setpoint and the units that are on
        # unload (electric chillers, dual chillers cooling, then the ice store's melt), the
        # mirror of the pick-up above: a chiller does not make cold that no load takes.
        for dev in [u for u in chillers if u.remote] + [u for u in cool_duals if u.remote] + ice:
            if cool_res < -1e-9:
                cut = dev.unload(-cool_res)
                cool_sup[dev.name] -= cut
                cool_res += cut
        for dc in duals:
            if dc.mode != d.MODE_COOL:
                cool_sup.setdefault(dc.name, 0.0)
                if dc.mode == d.MODE_OFF:
                    dc.q_kw = 0.0
            dc.tick(dt_s)
        # Surplus heat likewise: firing gas boilers, then releasing stores, give less (CHPs
        # hold their electric setpoint, as they do not pick up either).
        surplus = heat_total - math.fsum(heat_use.values())
        for dev in [u for u in gbs if u.remote] + [u for u in ehbs if u.remote]:
            if surplus > 1e-9:
                cut = dev.unload(surplus)
                heat_sup[dev.name] -= cut
                surplus -= cut
        heat_total = math.fsum(heat_sup.values())
        for st in ice:
            st.settle(dt_s, ice_charge)
        for eh in ehbs:
            eh.settle(dt_s)

        heat_bal = heat_total - math.fsum(heat_use.values())
        if net_cap_kwh > 0.0:
            # The network's water takes the mismatch: its supply temperature rises or falls
            # within the band; only beyond it is heat dumped or left unserved
            stored = min(max(self.heat_net_kwh + heat_bal * dt_s / H, -net_cap_kwh), net_cap_kwh)
            heat_use["network"] = into = (stored - self.heat_net_kwh) * H / dt_s
            self.heat_net_kwh = stored
            heat_bal -= into
        cool_sup_total = math.fsum(cool_sup.values())
        cool_bal = cool_sup_total - exo.cool_kw

        # Electricity, bus sign.
        elec: dict[str, float] = {}
        loads = dict(exo.loads_kw)
        for dcn in self._of(d.DataCentre):
            loads["datacentre"] = loads.get("datacentre", 0.0) * (1.0 - dcn.shed)
        for name, p in loads.items():
            elec[f"load_{name}"] = p
            self.load_kwh[name] = self.load_kwh.get(name, 0.0) + p * dt_s / H
        for dev in chillers + duals:
            elec[dev.name] = dev.p_el_kw
        for eh in ehbs:
            elec[eh.name] = eh.p_el_kw
        batteries = self._of(d.Battery)
        for b in batteries:
            elec[b.name] = 0.0              # stepped last, within the import limit
        for c in chps:
            elec[c.name] = -c.p_gen_kw
        gens = self._of(d.Diesel)
        for g in gens:
            elec[g.name] = -g.step(dt_s)
        pvs, winds = self._of(d.PvPlant), self._of(d.WindFarm)
        for pv in pvs:
            pv.avail_kw = exo.pv_avail_kw
            pv.p_gen_kw = pv.cap_kw(exo.pv_avail_kw)
        for w in winds:
            w.avail_kw = exo.wind_avail_kw
            w.p_gen_kw = w.cap_kw(exo.wind_avail_kw)

        grid = self._of(d.Grid)[0]
        # A charging battery's converter backs off at the grid's import limit (a demand
        # limit, the mirror of the inverters' export limiter): no load goes unserved for a
        # battery to charge. Without it, a battery set to charge at 10 MW for a quarter hour
        # left Park A's loads 356 kWh short in the summer fortnight as the load rose.
        # Likewise a discharging battery backs off at the export limit, so that it is the
        # battery's energy that waits, not PV or wind that is curtailed for it.
        other = math.fsum(elec.values()) - sum(u.p_gen_kw for u in pvs + winds)
        for b in batteries:
            cap = grid.import_max_kw - other if self.spec.battery_import_limiter else math.inf
            dcap = grid.export_max_kw + other if self.spec.battery_export_limiter else math.inf
            elec[b.name] = p_b = b.step(dt_s, charge_cap_kw=cap, discharge_cap_kw=dcap)
            other += p_b
        net = math.fsum(elec.values()) - sum(u.p_gen_kw for u in pvs + winds)
        # Export beyond the limit: the inverters' export limiter curtails PV, then wind.
        excess = -net - grid.export_max_kw
        for u in pvs + winds:
            if excess > 0.0:
                cut = min(excess, u.p_gen_kw)
                u.p_gen_kw -= cut
                excess -= cut
        for u in pvs + winds:
            elec[u.name] = -u.p_gen_kw
        net = math.fsum(elec.values())
        grid_p = -net  # > 0 export
        unserved = spill = 0.0
        if grid_p < -grid.import_max_kw:
            unserved = grid_p + grid.import_max_kw  # < 0: load the grid could not serve
            grid_p = -grid.import_max_kw
        elif grid_p > grid.export_max_kw:
            spill = grid_p - grid.export_max_kw
            grid_p = grid.export_max_kw
        elec[grid.name] = grid_p
        elec["unserved"] = unserved
        elec["spill"] = spill
        grid.p_kw = grid_p
        dt_h = dt_s / H
        grid.import_kwh += max(-grid_p, 0.0) * dt_h
        grid.export_kwh += max(grid_p, 0.0) * dt_h
        for u in pvs + winds + chps:
            u.energy_kwh += u.p_gen_kw * dt_h
        for g in gens:
            g.energy_kwh += g.p_gen_kw * dt_h

        gas_kw = sum(c.fuel_kw for c in chps) + sum(b.fuel_kw for b in gbs)
        diesel_l = sum(g.p_gen_kw for g in gens) * dt_h * 0.200 / d.DIESEL_KG_PER_L
        viol.extend(self._check_ratings())
        storage: dict[str, float] = {}
        for b in self._of(d.Battery):
            storage[f"{b.name}.soc_frac"] = b.soc_frac
            storage[f"{b.name}.energy_kwh"] = b.soc_frac * b.e_kwh
        for st in ice:
            storage[f"{st.name}.stored_kwh"] = st.stored_kwh
        for eh in ehbs:
            storage[f"{eh.name}.stored_kwh"] = eh.stored_kwh
        flows = StepFlows(
            t_start_s=self.t_s, dt_s=dt_s, electric_kw=elec,
            heat_supply_kw=heat_sup, heat_use_kw=heat_use,
            heat_dump_kw=max(heat_bal, 0.0), heat_unserved_kw=max(-heat_bal, 0.0),
            cool_supply_kw=cool_sup, cool_use_kw={"load": exo.cool_kw},
            cool_dump_kw=max(cool_bal, 0.0), cool_unserved_kw=max(-cool_bal, 0.0),
            grid_import_kw=max(-grid_p, 0.0), grid_export_kw=max(grid_p, 0.0),
            elec_unserved_kw=-unserved,
            curtailed_kw=sum(u.avail_kw - u.p_gen_kw for u in pvs + winds),
            storage=storage, gas_m3=gas_kw * dt_h / d.GAS_KWH_PER_M3, diesel_l=diesel_l,
            loads_kw={**loads, "heat": exo.heat_kw, "cool": exo.cool_kw},
            violations=tuple(viol),
        )
        self.t_s += dt_s
        self.last = flows
        return flows

    def _check_ratings(self) -> list[str]:
        """Self-check: a physical device cannot exceed its rating (empty when correct)."""
        bad: list[str] = []
        eps = 1e-6
        for dev in self.devices.values():
            pairs: list[tuple[str, float, float]] = []
            if isinstance(dev, d.Battery):
                pairs = [("p", abs(dev.p_kw), dev.p_max_kw)]
                if not dev.soc_min_frac - eps <= dev.soc_frac <= dev.soc_max_frac + eps:
                    bad.append(f"{dev.name}: soc {dev.soc_frac}")
            elif isinstance(dev, d.Chp | d.Diesel):
                pairs = [("p", dev.p_gen_kw, dev.p_max_kw)]
            elif isinstance(dev, d.Chiller | d.AbsorptionChiller | d.GasBoiler):
                pairs = [("q", dev.q_kw, dev.q_max_kw)]
            elif isinstance(dev, d.DualChiller):
                cap = dev.q_ice_max_kw if dev.mode == d.MODE_ICE else dev.q_cool_max_kw
                pairs = [("q", dev.q_kw, cap)]
            elif isinstance(dev, d.IceStore):
                pairs = [("stored", dev.stored_kwh, dev.usable_kwh), ("melt", dev.q_melt_kw, dev.melt_max_kw)]
            elif isinstance(dev, d.HeatStorageBoiler):
                pairs = [("p", dev.p_el_kw, dev.p_max_kw), ("q", dev.q_kw, dev.q_max_kw),
                         ("stored", dev.stored_kwh, dev.store_kwh)]
            elif isinstance(dev, d.PvPlant):
                pairs = [("p", dev.p_gen_kw, dev.ac_kw)]
            elif isinstance(dev, d.WindFarm):
                pairs = [("p", dev.p_gen_kw, dev.rated_kw)]
            elif isinstance(dev, d.Grid):
                pairs = [("import", -dev.p_kw, dev.import_max_kw), ("export", dev.p_kw, dev.export_max_kw)]
            bad.extend(f"{dev.name}: {k} {v:.3f} > {cap:.3f}" for k, v, cap in pairs if v > cap + eps)
            bad.extend(f"{dev.name}: {k} {v:.3f} < 0" for k, v, _ in pairs
                       if k not in ("import", "export") and v < -eps)
        return bad

    # --- outputs ----------------------------------------------------------------------

    def measurements(self) -> dict[str, float]:
        """Every served point as "device.point" -> value, bus sign for *_kw flows on the bus.

        Generators' ``p_kw`` is negative when producing; ``*_avail_kw``, ``q_kw``
        (thermal output) and energy counters are magnitudes. ``remote`` is 1 under
        remote control, 0 on the local default.
        """
        m: dict[str, float] = {}
        f = self.last
        exo = self.exogenous_at(self.t_s)
        for n, dev in self.devices.items():
            m[f"{n}.remote"] = float(dev.remote)
            for p, v in dev.sp.items():
                m[f"{n}.{p}"] = v
            if isinstance(dev, d.Battery):
                m |= {f"{n}.p_kw": dev.p_kw, f"{n}.soc_frac": dev.soc_frac,
                      f"{n}.energy_kwh": dev.soc_frac * dev.e_kwh,
                      f"{n}.charged_kwh": dev.charged_kwh, f"{n}.discharged_kwh": dev.discharged_kwh}
            elif isinstance(dev, d.PvPlant | d.WindFarm):
                m |= {f"{n}.p_kw": -dev.p_gen_kw, f"{n}.p_avail_kw": dev.avail_kw,
                      f"{n}.energy_kwh": dev.energy_kwh}
            elif isinstance(dev, d.Chp):
                m |= {f"{n}.p_kw": -dev.p_gen_kw, f"{n}.q_kw": dev.q_kw,
                      f"{n}.gas_m3_per_h": dev.fuel_kw / d.GAS_KWH_PER_M3,
                      f"{n}.running": float(dev.p_gen_kw > 0), f"{n}.starts_total": float(dev.starts_total),
                      f"{n}.energy_kwh": dev.energy_kwh}
            elif isinstance(dev, d.Diesel):
                state = 1.0 if dev.on else 0.0
                m |= {f"{n}.p_kw": -dev.p_gen_kw, f"{n}.running": state, f"{n}.locked": float(dev.locked),
                      f"{n}.fuel_l": dev.fuel_l_total, f"{n}.energy_kwh": dev.energy_kwh,
                      f"{n}.starts_total": float(dev.starts_total)}
            elif isinstance(dev, d.Chiller | d.DualChiller):
                m |= {f"{n}.q_kw": dev.q_kw, f"{n}.p_kw": dev.p_el_kw}
                if isinstance(dev, d.DualChiller):
                    m[f"{n}.mode"] = dev.mode
            elif isinstance(dev, d.AbsorptionChiller):
                m |= {f"{n}.q_kw": dev.q_kw, f"{n}.heat_in_kw": dev.heat_in_kw}
            elif isinstance(dev, d.IceStore):
                m |= {f"{n}.stored_kwh": dev.stored_kwh, f"{n}.level_frac": dev.stored_kwh / dev.usable_kwh,
                      f"{n}.q_melt_kw": dev.q_melt_kw, f"{n}.q_charge_kw": dev.q_charge_kw,
                      f"{n}.mode": dev.mode}
            elif isinstance(dev, d.GasBoiler):
                m |= {f"{n}.q_kw": dev.q_kw, f"{n}.gas_m3_per_h": dev.fuel_kw / d.GAS_KWH_PER_M3}
            elif isinstance(dev, d.HeatStorageBoiler):
                m |= {f"{n}.p_kw": dev.p_el_kw, f"{n}.q_kw": dev.q_kw, f"{n}.stored_kwh": dev.stored_kwh}
            elif isinstance(dev, d.Grid):
                m |= {f"{n}.p_kw": dev.p_kw, f"{n}.import_kwh": dev.import_kwh,
                      f"{n}.export_kwh": dev.export_kwh}
            elif isinstance(dev, d.DataCentre):
                m[f"{n}.p_kw"] = f.loads_kw.get("datacentre", 0.0) if f else 0.0
        loads = f.loads_kw if f else {**exo.loads_kw, "heat": exo.heat_kw, "cool": exo.cool_kw}
        for name, p in loads.items():
            m[f"load_{name}.p_kw"] = p
            m[f"load_{name}.energy_kwh"] = self.load_kwh.get(name, 0.0)
        if self.spec.heat_net_kwh_per_k > 0:
            m["load_heat.supply_dev_k"] = self.heat_net_kwh / self.spec.heat_net_kwh_per_k
        m["weather.ghi_w_m2"] = exo.weather.ghi_w_m2
        m["weather.temp_c"] = exo.weather.temp_c
        m["weather.wind_m_s"] = exo.wind_hub_m_s
        m["weather.poa_w_m2"] = exo.poa_w_m2
        if f:
            m["heat.dump_kw"], m["heat.unserved_kw"] = f.heat_dump_kw, f.heat_unserved_kw
            m["cool.dump_kw"], m["cool.unserved_kw"] = f.cool_dump_kw, f.cool_unserved_kw
        return m


@functools.lru_cache(maxsize=4)
def _renewables(key: tuple) -> tuple[x.WeatherSeries, dict[str, np.ndarray]]:  # type: ignore[type-arg]
    spec_items, weather_path = key
    spec = SiteSpec(**dict(spec_items))
    import warnings

    # pvlib and windpowerlib use pandas APIs that newer pandas deprecates; not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _renewables_uncached(spec, weather_path)


def _renewables_uncached(spec: SiteSpec, weather_path: str | None) -> tuple[x.WeatherSeries, dict[str, np.ndarray]]:
    ws = x.csv_weather(weather_path) if weather_path else x.nsrdb_weather(spec.lon_deg, spec.utc_offset_h)
    pv, poa = x.pv_ac_kw(ws, lat_deg=spec.lat_deg, lon_deg=spec.lon_deg, kwp=spec.pv_kwp,
                         ac_kw=spec.pv_ac_kw, tilt_deg=spec.pv_tilt_deg, azimuth_deg=180.0,
                         losses_frac=spec.pv_losses_frac, gamma_per_c=spec.pv_gamma_per_c,
                         inverter_eff=spec.pv_inverter_eff)
    if spec.wind_count:
        wind, v_hub = x.wind_farm_kw(ws, turbine_type=spec.wind_turbine, count=spec.wind_count,
                                     hub_height_m=spec.wind_hub_height_m,
                                     ref_height_m=spec.wind_ref_height_m, roughness_m=spec.wind_roughness_m)
    else:
        wind, v_hub = np.zeros_like(pv), np.zeros_like(pv)
    return ws, {"pv_kw": pv, "poa": poa, "wind_kw": wind, "wind_hub": v_hub}


@functools.lru_cache(maxsize=8)
def _loads_cached(key: tuple, seed: int) -> tuple[LoadModel, dict[str, x.AffineScale]]:  # type: ignore[type-arg]
    ws, _ = _renewables(key)
    return build_loads(SiteSpec(**dict(key[0])), ws, seed)


def build_park(site: str, *, seed: int, start_utc: datetime, weather: str | None = None,
               options: Mapping[str, float] | None = None, soc_frac: float = 0.5,
               ice_frac: float = 0.0) -> Park:
    """A park at ``start_utc`` (timezone-aware) with every device on its local default.

    site: "park-a" or "park-b"; seed: drives load noise (same seed, same loads);
    weather: path of a CSV (timestamp, ghi_w_m2, dni_w_m2, dhi_w_m2, temp_c,
    wind_m_s; UTC) replacing the built-in NSRDB year; options: SiteSpec fields
    to override (e.g. {"pv_kwp": 5000, "pv_ac_kw": 4700} for Park B).
    """
    if start_utc.tzinfo is None:
        raise ValueError("start_utc must be timezone-aware (UTC)")
    spec = spec_for(site, options)
    items = tuple(sorted((k, v) for k, v in spec.__dict__.items() if k != "options"))
    key = (items, weather)
    ws, ren = _renewables(key)
    loads, _ = _loads_cached(key, seed)
    series = {"ghi": ws.ghi, "dni": ws.dni, "dhi": ws.dhi, "temp_c": ws.temp_c,
              "wind_m_s": ws.wind_m_s, **ren}
    wx = {k: x.make_series(ws, v) for k, v in series.items()}
    devs = {dev.name: dev for dev in build_devices(spec)}
    for dev in devs.values():
        if isinstance(dev, d.Battery):
            dev.soc_frac = soc_frac
        if isinstance(dev, d.IceStore):
            dev.stored_kwh = ice_frac * dev.usable_kwh
    return Park(spec=spec, devices=devs, loads=loads, weather=wx, t_s=start_utc.timestamp(), seed=seed)


def load_scalings(site: str, seed: int = 0) -> dict[str, x.AffineScale]:
    """The affine scalings applied to the data shapes (for the README and tests)."""
    spec = spec_for(site)
    items = tuple(sorted((k, v) for k, v in spec.__dict__.items() if k != "options"))
    return _loads_cached((items, None), seed)[1]
