"""The two reference parks (SCENARIOS.md): their devices, weather and loads.

Choices where SCENARIOS.md leaves a figure open are stated here and in
firmware-sims/README.md; change them through ``build_park(..., options=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from . import devices as d
from . import exogenous as x

SITES = ("park-a", "park-b")


@dataclass(frozen=True)
class SiteSpec:
    """Location and plant sizes. Park locations: Shanghai (both parks are in East China)."""

    site_id: str
    lat_deg: float = 31.23
    lon_deg: float = 121.47
    utc_offset_h: float = 8.0  # Asia/Shanghai, no daylight saving
    pv_kwp: float = 8_500.0
    pv_ac_kw: float = 8_000.0
    pv_tilt_deg: float = 25.0
    pv_losses_frac: float = 0.10
    pv_gamma_per_c: float = -0.0035
    pv_inverter_eff: float = 0.96
    pv_age_years: float = 0.0
    pv_degradation_per_year: float = 0.005
    wind_count: int = 0
    wind_turbine: str = "N100/2500"  # Nordex N100/2500: cut-in 3 m/s, rated 12.5 m/s
    wind_hub_height_m: float = 100.0
    wind_ref_height_m: float = 2.0
    wind_roughness_m: float = 0.1
    grid_import_max_kw: float = 12_000.0
    grid_export_max_kw: float = 6_000.0
    load_noise_frac: float = 0.02
    # District heating network's thermal mass, kWh per K of supply temperature, and the
    # band its supply temperature may swing within (0: no network store; every heat
    # mismatch is dumped or unserved at once). Park A: SCENARIOS.md's 2 h network delay.
    heat_net_kwh_per_k: float = 0.0
    heat_net_band_k: float = 2.0
    # A charging battery's converter keeps the grid import within its limit (Park.step)
    battery_import_limiter: bool = True
    # ... and a discharging one its export limit, before PV and wind are curtailed
    battery_export_limiter: bool = True
    options: Mapping[str, float] = field(default_factory=dict)


def spec_for(site: str, options: Mapping[str, float] | None = None) -> SiteSpec:
    opts = dict(options or {})
    if site == "park-a":
        # The district heating network (4.5 MW, "2 h network delay"): at its design flow
        # for a 30 K supply-return difference (35.8 kg/s) the supply line holds 2 h of it,
        # 258 t of water, 300 kWh per K; its supply may swing +-2 K (an assumption: the
        # document gives "supply temperature gradient limits" without a figure).
        base = {"wind_count": 3, "grid_import_max_kw": 12_000.0, "grid_export_max_kw": 6_000.0,
                "heat_net_kwh_per_k": 300.0, "heat_net_band_k": 2.0}
    elif site == "park-b":
        # Rooftop PV 3 MWp (default; the paper's cases range from 0.9 % to 35 % PV share).
        base = {"pv_kwp": 3_000.0, "pv_ac_kw": 2_800.0, "pv_tilt_deg": 10.0,
                "grid_import_max_kw": 40_000.0, "grid_export_max_kw": 2_000.0}
    else:
        raise ValueError(f"unknown site {site!r}: expected one of {', '.join(SITES)}")
    base.update(opts)
    return SiteSpec(site_id=site, **base)  # type: ignore[arg-type]


def build_devices(spec: SiteSpec) -> list[d.Device]:
    """The site's devices, with their names as used in setpoint and point keys."""
    if spec.site_id == "park-a":
        return [
            d.Grid("grid1", import_max_kw=spec.grid_import_max_kw, export_max_kw=spec.grid_export_max_kw),
            d.PvPlant("pv1", ac_kw=spec.pv_ac_kw),
            d.WindFarm("wind1", rated_kw=2_500.0 * spec.wind_count),
            d.Battery("bess1"),
            d.Chp("chp1"), d.Chp("chp2"),
            d.Diesel("dg1"), d.Diesel("dg2"),
            # Absorption chiller 1.5 MW cooling (2.14 MW of heat at COP 0.7): sized to
            # use a part-loaded CHP's heat in summer.
            d.AbsorptionChiller("absc1"),
            # Electric chillers 2 x 2 MW: cover the 3.8 MW cooling peak without the
            # absorption chiller.
            d.Chiller("ch1"), d.Chiller("ch2"),
            d.DataCentre("dc1"),
        ]
    return [
        d.Grid("grid1", import_max_kw=spec.grid_import_max_kw, export_max_kw=spec.grid_export_max_kw),
        d.PvPlant("pv1", ac_kw=spec.pv_ac_kw),
        *[d.DualChiller(f"dch{i}") for i in range(1, 5)],
        d.Chiller("bch1", q_max_kw=4_924.0, cop=4.7), d.Chiller("bch2", q_max_kw=4_924.0, cop=4.7),
        d.Chiller("sch1", q_max_kw=1_597.0, cop=4.5),
        d.IceStore("ice1"),
        *[d.GasBoiler(f"gb{i}") for i in range(1, 4)],
        # Electric heat-storage boilers: 4.5 MW each with a 18 MWh (4 h) hot-water store.
        d.HeatStorageBoiler("ehb1"), d.HeatStorageBoiler("ehb2"),
    ]


# --- loads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """One load: its shape (8760 hourly values) and the affine scaling applied to it."""

    name: str
    profile_kw: np.ndarray  # already scaled, 8760 values, local hours of the model year
    weekday_aligned: bool
    first_weekday: int = 0


class LoadModel:
    """Electric, heat and cooling demands at any UTC instant (kW magnitudes)."""

    def __init__(self, spec: SiteSpec, electric: list[LoadSpec], heat: LoadSpec,
                 cool: LoadSpec, seed: int,
                 extra: Mapping[str, Callable[[float, float], float]]) -> None:
        self.spec = spec
        self.electric = electric
        self.heat = heat
        self.cool = cool
        self.extra = extra  # name -> f(ts_s, temp_c): temperature-driven loads
        names = [ls.name for ls in electric] + list(extra) + ["heat", "cool"]
        self.noise = {n: x.noise_series(seed, f"{spec.site_id}/{n}", spec.load_noise_frac) for n in names}

    def _at(self, ls: LoadSpec, local_s: float) -> float:
        if ls.weekday_aligned:
            hi = x.aligned_hour_index(local_s, ls.first_weekday)
        else:
            dt = datetime.fromtimestamp(local_s, UTC)
            hi = min(dt.timetuple().tm_yday - 1, 364) * 24.0 + (local_s % 86400) / 3600.0
        return x.interp_hourly(ls.profile_kw, hi)

    def at(self, ts_s: float, temp_c: float) -> tuple[dict[str, float], float, float]:
        local_s = ts_s + self.spec.utc_offset_h * 3600.0
        loads = {ls.name: self._at(ls, local_s) * self.noise[ls.name].at(ts_s) for ls in self.electric}
        for name, f in self.extra.items():
            loads[name] = f(ts_s, temp_c) * self.noise[name].at(ts_s)
        heat = self._at(self.heat, local_s) * self.noise["heat"].at(ts_s)
        cool = self._at(self.cool, local_s) * self.noise["cool"].at(ts_s)
        return loads, max(heat, 0.0), max(cool, 0.0)


def _mean_weekday_sum(shape: np.ndarray, first_weekday: int) -> float:
    daily = shape.reshape(365, 24).sum(axis=1)
    return float(daily[x.weekday_days(shape, first_weekday)].mean())


def _design_day_sum(shape: np.ndarray) -> float:
    return float(shape.reshape(365, 24).sum(axis=1).max())


def heating_shape(ws: x.WeatherSeries, spec: SiteSpec) -> np.ndarray:
    """0.3 * hot water (CityLearn DHW, normalised) + 0.7 * heating degree-hours below 16 degC.

    CityLearn 2021's space-heating column is zero in every building, so the
    space-heating part follows the site weather's temperature instead.
    """
    dhw = x.citylearn_shapes()["dhw"]
    temp = x.make_series(ws, ws.temp_c)
    t0 = datetime(2017, 1, 1, tzinfo=UTC).timestamp() - spec.utc_offset_h * 3600.0
    temps = np.array([temp.at(t0 + h * 3600.0) for h in range(8760)])
    hdh = np.clip(16.0 - temps, 0.0, None)
    return 0.3 * dhw / dhw.max() + 0.7 * hdh / max(hdh.max(), 1e-9)


def build_loads(spec: SiteSpec, ws: x.WeatherSeries, seed: int) -> tuple[LoadModel, dict[str, x.AffineScale]]:
    """The site's loads and the scalings used (reported in the README)."""
    doe = x.doe_shapes()
    cl = x.citylearn_shapes()
    scales: dict[str, x.AffineScale] = {}

    def weekday_load(name: str, shape: np.ndarray, peak: float, day_kwh: float,
                     every_day: bool = False) -> LoadSpec:
        fw = x.doe_first_weekday(shape)
        ref = float(shape.reshape(365, 24).sum(axis=1).mean()) if every_day else _mean_weekday_sum(shape, fw)
        sc = x.fit_affine(shape, peak, day_kwh, ref)
        scales[name] = sc
        return LoadSpec(name, sc(shape), True, fw)

    def design_load(name: str, shape: np.ndarray, peak: float, day_kwh: float) -> LoadSpec:
        sc = x.fit_affine(shape, peak, day_kwh, _design_day_sum(shape))
        scales[name] = sc
        return LoadSpec(name, sc(shape), False)

    heat_shape = heating_shape(ws, spec)
    extra: dict[str, Callable[[float, float], float]] = {}
    if spec.site_id == "park-a":
        electric = [weekday_load("office", doe["office"], 3_200.0, 48_000.0),
                    weekday_load("hospital", doe["hospital"], 1_800.0, 32_000.0, every_day=True)]
        extra["datacentre"] = _datacentre_kw
        heat = design_load("heat", heat_shape, 4_500.0, 72_000.0)
        cool = design_load("cool", cl["cooling"], 3_800.0, 60_000.0)
    else:
        electric = [weekday_load("buildings", doe["office"], 5_000.0, 70_000.0)]
        heat = design_load("heat", heat_shape, 12_000.0, 180_000.0)
        cool = _summer_day_cooling(cl["cooling"], 10_000.0)
        scales["cool"] = x.AffineScale(0.0, float(cool.profile_kw.max() / cl["cooling"].max()))
    return LoadModel(spec, electric, heat, cool, seed, extra), scales


def _datacentre_kw(ts_s: float, temp_c: float) -> float:
    """IT load 923 kW flat; PUE 1.15 rising to 1.3 between 10 and 30 degC outdoors.

    Peak 1.2 MW = 923 kW * 1.3 (SCENARIOS.md's PUE < 1.3); 28.8 MWh a day is
    reached on the hottest days only (about 25.5 MWh on a cold day).
    """
    pue = 1.15 + 0.15 * min(max((temp_c - 10.0) / 20.0, 0.0), 1.0)
    return 1_200.0 / 1.3 * pue


def _summer_day_cooling(shape: np.ndarray, day_mean_kw: float) -> LoadSpec:
    """Scale so that July-August 08:00-22:00 cooling averages ``day_mean_kw`` (Park B)."""
    hours = np.arange(8760)
    doy = hours // 24
    hod = hours % 24
    mask = (doy >= 181) & (doy < 243) & (hod >= 8) & (hod < 22)
    gain = day_mean_kw / float(shape[mask].mean())
    return LoadSpec("cool", shape * gain, False)
