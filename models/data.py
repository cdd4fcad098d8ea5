"""The training series: each target as kW per 15-min step, with its calendar.

PV and wind "actuals" are not metered: they are modelled from measured
weather through stated physical models (Park A's pvlib PVWatts plant, a
windpowerlib power curve of Park A's 3 x 2.5 MW farm); hourly and 30-min data are brought
to 15 min by linear interpolation between interval midpoints. The parks'
loads (Park A's heating, cooling, data centre, office, hospital and their
electric total; Park B's buildings, heating and cooling) have one definition,
the simulated park's (firmware-sims/parksim/physics): they are read from
``parksim.physics.build_park(site)`` itself, so the shapes, formulas and
scalings cannot drift apart (``park_load_series``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from edge.forecast.features import STEP_S, StepContext, context_for_utc, solar_geometry

DATA = Path(__file__).resolve().parent.parent / "data"
CL_DIR = DATA / "loads" / "citylearn2021"
CL_WEATHER = DATA / "weather" / "citylearn2021_weather_hourly.csv"
NSRDB = DATA / "weather" / "nsrdb_psm3_2017_30min.csv"

# CityLearn 2021's location is not in the files. Solar noon falls near 12:00
# in the data's standard-time hours (UTC-6), so longitude is about 90 W; the
# latitude is weakly constrained by the irradiance and 30 N is assumed, which
# fits the hot-humid climate (mean 21.7 °C). The geometry is used both to
# model PV and for the clear-sky features, so it is at least self-consistent.
CL_LAT, CL_LON, CL_UTC_OFFSET_H = 30.0, -90.0, -6
CL_START_UTC = dt.datetime(2014, 1, 1, 6, tzinfo=dt.UTC)  # a year whose 1 Jan is a Wednesday
NSRDB_LAT, NSRDB_LON = 40.5, -108.5

# the wind speed forecast a plan carries: the evaluation harness's error model
# (parksim/evaluate/weather.py: sigma(L) = 0.10 + 0.20 L/24, multiplicative, AR(1) 0.8 per hour),
# drawn with a seed of its own
WIND_SIGMA0, WIND_SIGMA_PER_24H, WIND_RHO_PER_H = 0.10, 0.20, 0.8
WIND_FC_SEED = 4111
# the GHI forecast a plan carries, likewise (sigma(L) = 0.05 + 0.15 L/24, multiplicative)
GHI_SIGMA0, GHI_SIGMA_PER_24H, GHI_RHO_PER_H = 0.05, 0.15, 0.8
GHI_FC_SEED = 4127


@dataclass
class Series:
    """One target's training series at 15-min steps."""

    target: str
    y_kw: np.ndarray
    ctx: StepContext
    scale_kw: float
    # weather forecast per target step, by issue lead in hours: {"ghi_w_m2": {6: arr, ...}}
    forecasts: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    location: dict[str, object] = field(default_factory=dict)
    description: dict[str, str] = field(default_factory=dict)

    @property
    def first_step(self) -> int:
        return self.ctx.first

    def date_of(self, i: int) -> str:
        """Local date of relative step i (for the model card)."""
        ts = (self.first_step + i) * STEP_S
        return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _to_quarter(values: np.ndarray, per_hour: int) -> np.ndarray:
    """Interval means at ``per_hour`` per hour to 15-min means (midpoint interpolation)."""
    n = len(values)
    q_per = 4 // per_hour
    x_src = (np.arange(n) + 0.5) * q_per
    x_dst = np.arange(n * q_per) + 0.5
    return np.interp(x_dst, x_src, values)


# ---------------------------------------------------------------- CityLearn

def _cl_weather() -> pd.DataFrame:
    w = pd.read_csv(CL_WEATHER)
    w.columns = [c.split(" [")[0] for c in w.columns]
    return w


def _cl_building(i: int) -> pd.DataFrame:
    b = pd.read_csv(CL_DIR / f"Building_{i}.csv")
    b.columns = [c.split(" [")[0] for c in b.columns]
    return b


def _cl_context() -> StepContext:
    """CityLearn's own calendar: its Day Type column (1=Sun..7=Sat, 8=holiday) and DST flag."""
    b = _cl_building(1)
    n_h = len(b)
    day_type = b["Day Type"].to_numpy().reshape(-1, 24)[:, 0].astype(int)
    # holidays hide the weekday: carry the weekly sequence through them
    wd = np.empty(len(day_type), dtype=int)
    for d, t in enumerate(day_type):
        wd[d] = (t + 5) % 7 if t != 8 else (wd[d - 1] + 1) % 7 if d else 2
    hol_d = (day_type == 8).astype(float)
    off_d = np.maximum(hol_d, (wd >= 5).astype(float))
    dst_h = b["Daylight Savings Status"].to_numpy().astype(float)
    first = int(CL_START_UTC.timestamp()) // STEP_S
    q = np.arange(n_h * 4)
    hour_std = ((q + 0.5) / 4.0) % 24
    dst_q = dst_h[q // 4]
    hour_local = (hour_std + dst_q) % 24
    # a DST hour past midnight belongs to the next day; the shift is an hour, ignore it
    day = q // 96
    mid = (first + q + 0.5) * STEP_S
    cz, ghi = solar_geometry(mid.astype(np.float64), CL_LAT, CL_LON)
    return StepContext(first, hour_local, wd[day].astype(float), hol_d[day], off_d[day], cz, ghi)


def _cl_forecast_at_target(w: pd.DataFrame, name: str) -> dict[int, np.ndarray]:
    """CityLearn's 'Nh Prediction' at row r is issued at r for r+N: realign to the target row."""
    out = {}
    for lead in (6, 12, 24):
        col = w[f"{lead}h Prediction {name}"].to_numpy(dtype=float)
        at = np.full(len(col), np.nan)
        at[lead:] = col[:-lead]
        at[:lead] = w[name].to_numpy()[:lead]  # the first hours have no earlier forecast
        out[lead] = _to_quarter(at, 1)
    return out


def pv_series() -> Series:
    """Park A's PV plant (the simulator's PVWatts chain and ratings) on CityLearn's weather."""
    from parksim.physics.exogenous import WeatherSeries, pv_ac_kw
    from parksim.physics.sites import spec_for

    w = _cl_weather()
    n = len(w)
    times = pd.date_range(CL_START_UTC + dt.timedelta(minutes=30), periods=n, freq="1h")
    ts = np.array([t.timestamp() for t in times])
    cz_h, cs_h = solar_geometry(ts, CL_LAT, CL_LON)
    dni = np.where(cz_h > 0.0, w["Direct Solar Radiation"].to_numpy(dtype=float), 0.0)
    dhi = w["Diffuse Solar Radiation"].to_numpy(dtype=float)
    ghi = np.clip(dni * np.clip(cz_h, 0, None) + dhi, 0, None)
    temp = w["Outdoor Drybulb Temperature"].to_numpy(dtype=float)
    spec = spec_for("park-a")
    # CityLearn has no wind speed: 1 m/s for the cell temperature, as before
    p_h, _ = pv_ac_kw(WeatherSeries(ts, ghi, dni, dhi, temp, np.ones(n), False), lat_deg=CL_LAT,
                      lon_deg=CL_LON, kwp=spec.pv_kwp, ac_kw=spec.pv_ac_kw, tilt_deg=spec.pv_tilt_deg,
                      azimuth_deg=180.0, losses_frac=spec.pv_losses_frac,
                      gamma_per_c=spec.pv_gamma_per_c, inverter_eff=spec.pv_inverter_eff)
    ctx = _cl_context()
    # 15-min shape: interpolate the ratio to clear-sky GHI, not the power itself
    k_h = np.where(cs_h > 20.0, p_h / np.maximum(cs_h, 20.0), 0.0)
    y = np.clip(_to_quarter(k_h, 1) * ctx.ghi_cs_w_m2, 0, spec.pv_ac_kw)
    # the plan's forecast: the measured GHI with the evaluation harness's error model (CityLearn's
    # own forecast columns are little more than the actuals, and a model fitted on them trusted
    # a day-ahead GHI that is 5-20 % off more than yesterday's output)
    ghi_q = np.clip(_to_quarter(dni, 1) * np.clip(ctx.cos_zenith, 0, None) + _to_quarter(dhi, 1), 0, None)
    ghi_f = {lead: np.maximum(ghi_q * (1.0 + (GHI_SIGMA0 + GHI_SIGMA_PER_24H * lead / 24.0) * z), 0.0)
             for lead, z in _lead_errors(len(ghi_q), GHI_FC_SEED, GHI_RHO_PER_H).items()}
    temp_f = _cl_forecast_at_target(w, "Outdoor Drybulb Temperature")
    return Series(
        "pv", y, ctx, spec.pv_ac_kw, {"ghi_w_m2": ghi_f, "temp_c": temp_f},
        {"latitude": CL_LAT, "longitude": CL_LON, "utc_offset_h": CL_UTC_OFFSET_H,
         "note": "CityLearn's site is not given; inferred from solar noon (lon) and assumed (lat)"},
        {"source": "CityLearn 2021 weather (4 years hourly: measured DNI, DHI, temperature; "
                   "its 6/12/24 h temperature forecast columns)",
         "weather_forecast": "GHI: the measured GHI x (1 + (0.05 + 0.15 L/24) z), z AR(1) 0.8 per "
                             "hour, floored at 0 (the evaluation harness's error model, seeded "
                             "apart); temperature: CityLearn's own forecast columns",
         "model": f"modelled, not metered: Park A's PV plant as the simulator has it "
                  f"(parksim.physics.exogenous.pv_ac_kw, sites.spec_for('park-a')): pvlib "
                  f"PVWatts, {spec.pv_kwp:g} kWp DC, {spec.pv_ac_kw:g} kW AC, tilt "
                  f"{spec.pv_tilt_deg:g}°, south, Hay-Davies transposition, Faiman cell "
                  f"temperature (wind 1 m/s), gamma {100 * spec.pv_gamma_per_c:g} %/K, "
                  f"{100 * spec.pv_losses_frac:g} % system losses, inverter "
                  f"{100 * spec.pv_inverter_eff:g} %; scale = the AC rating",
         "resampling": "hourly to 15 min through the clear-sky index"},
    )


# ---------------------------------------------------------------- wind

def wind_series() -> Series:
    """Park A's wind farm (the simulator's turbines, hub and height law) on the NSRDB wind."""
    from parksim.physics.exogenous import WeatherSeries, wind_farm_kw
    from parksim.physics.sites import spec_for

    n = pd.read_csv(NSRDB)
    v2 = _to_quarter(n["Wind Speed"].to_numpy(dtype=float), 2)
    spec = spec_for("park-a")
    zeros = np.zeros_like(v2)
    p_kw, _ = wind_farm_kw(WeatherSeries(zeros, zeros, zeros, zeros, zeros, v2, False),
                           turbine_type=spec.wind_turbine, count=spec.wind_count,
                           hub_height_m=spec.wind_hub_height_m, ref_height_m=spec.wind_ref_height_m,
                           roughness_m=spec.wind_roughness_m)
    rated = 2500.0 * spec.wind_count
    y = np.clip(np.asarray(p_kw, dtype=float), 0, rated)
    first = int(dt.datetime(2017, 1, 1, 7, tzinfo=dt.UTC).timestamp()) // STEP_S  # MST
    ctx = context_for_utc(first, len(y), ZoneInfo("America/Denver"), "US", NSRDB_LAT, NSRDB_LON)
    return Series(
        "wind", y, ctx, rated, {"wind_m_s": _wind_forecasts(v2, WIND_FC_SEED)},
        {"latitude": NSRDB_LAT, "longitude": NSRDB_LON, "tz": "America/Denver"},
        {"source": "NSRDB PSM3 2017, 30 min, about 40.5 N 108.5 W (measured-satellite wind speed)",
         "model": f"modelled, not metered: Park A's wind farm as the simulator has it "
                  f"(parksim.physics.exogenous.wind_farm_kw, sites.spec_for('park-a')): the "
                  f"speed taken at {spec.wind_ref_height_m:g} m, log law (roughness "
                  f"{spec.wind_roughness_m:g} m) to a {spec.wind_hub_height_m:g} m hub, "
                  f"windpowerlib's {spec.wind_turbine} power curve, {spec.wind_count} turbines, "
                  f"no wake or electrical losses. The park's weather is this NSRDB year moved "
                  f"to Shanghai's solar time, so the evaluation windows are days of the "
                  f"training year",
         "resampling": "30 min to 15 min (wind speed, linear) before the power curve",
         "weather_forecast": "the plan's wind speed (m/s, the measured 2 m speed the power is "
                             "modelled from) with the evaluation harness's error model: "
                             "v x (1 + (0.10 + 0.20 L/24) z), z AR(1) 0.8 per hour, floored at 0; "
                             "synthetic, as NSRDB has no forecasts"},
    )


def wind_history_series() -> Series:
    """The wind target for the model that needs no weather forecast (history only)."""
    s = wind_series()
    return Series("wind_history", s.y_kw, s.ctx, s.scale_kw, {}, s.location,
                  {k: v for k, v in s.description.items() if k != "weather_forecast"})


def _wind_forecasts(v: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """Forecast wind speed per target step for the 6, 12 and 24 h issue leads."""
    return {lead: np.maximum(v * (1.0 + (WIND_SIGMA0 + WIND_SIGMA_PER_24H * lead / 24.0) * z), 0.0)
            for lead, z in _lead_errors(len(v), seed, WIND_RHO_PER_H).items()}


def _lead_errors(n: int, seed: int, rho_per_h: float) -> dict[int, np.ndarray]:
    """Per issue lead (6, 12, 24 h), a standard normal AR(1) error sequence of ``n`` steps
    (correlation ``rho_per_h`` per hour), as the evaluation harness draws its errors."""
    from scipy.signal import lfilter

    phi = rho_per_h ** (STEP_S / 3600.0)
    out = {}
    for lead in (6, 12, 24):
        e = np.random.default_rng([seed, lead]).standard_normal(n)
        out[lead] = lfilter([np.sqrt(1.0 - phi * phi)], [1.0, -phi], e)
    return out


# ---------------------------------------------------------------- the parks' loads (the simulator's)

# The parks' loads are defined once, in the simulated park (firmware-sims/parksim/physics:
# sites.build_loads, sites.heating_shape, sites._datacentre_kw, sites._summer_day_cooling,
# exogenous.citylearn_shapes / doe_shapes / fit_affine / noise_series). The training targets
# are read from that model (park.exogenous_at at each step's middle, as the evaluation harness
# books them), so there is no second formula here. A park repeats one model year, so one year
# is all the data there is.
PARK_SITE = "park-a"
PARK_YEAR = 2025  # a full local calendar year; the park maps every year onto the same days
PARK_TZ = "Asia/Shanghai"
PARK_NOISE_SEED = 7919  # the park's 2 % load noise, drawn with a seed the evaluation does not use (0)
PARK_TARGETS = ("heating", "cooling", "data_centre", "office", "hospital", "electric_total")
# Park B's targets: its own loads, named apart from Park A's (a site's load names one of them)
PARK_B_TARGETS = ("park_b_buildings", "park_b_heating", "park_b_cooling")
# the temperature forecast a plan carries: the evaluation harness's error model
# (parksim/evaluate/weather.py: sigma(L) = 0.3 + 1.2 L/24 degC, AR(1) 0.8 per hour)
TEMP_SIGMA0_C, TEMP_SIGMA_PER_24H_C, TEMP_RHO_PER_H = 0.3, 1.2, 0.8
# the physics' electric load names that differ from park_actuals' keys
_ACTUAL_OF_LOAD = {"datacentre": "data_centre"}


def _park_steps(start: dt.date) -> tuple[int, int]:
    """First absolute 15-min step (UTC) of 365 local days from ``start`` and their number."""
    t0 = dt.datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(PARK_TZ)).timestamp()
    return int(t0) // STEP_S, 365 * 96


def park_actuals(site: str, seed: int, first_step: int, n: int) -> dict[str, np.ndarray]:
    """The park's loads (kW) at the middle of each 15-min step.

    Keys: ``heating``, ``cooling``, ``temp_c`` (degC) and each electric load of
    the park (Park A: ``office``, ``hospital``, ``data_centre`` and their sum
    ``electric_total``; Park B: ``buildings``). The same function serves the
    training series and the check on the park (``models/check_on_park.py``).
    """
    from parksim.physics import build_park

    start = dt.datetime.fromtimestamp(first_step * STEP_S, dt.UTC)
    park = build_park(site, seed=seed, start_utc=start)
    out = {k: np.empty(n) for k in ("heating", "cooling", "temp_c")}
    for i in range(n):
        e = park.exogenous_at(float((first_step + i) * STEP_S + STEP_S // 2))
        out["heating"][i] = e.heat_kw
        out["cooling"][i] = e.cool_kw
        for name, kw in e.loads_kw.items():
            key = _ACTUAL_OF_LOAD.get(name, name)
            if i == 0:
                out[key] = np.empty(n)
            out[key][i] = kw
        out["temp_c"][i] = e.weather.temp_c
    if all(k in out for k in ("office", "hospital", "data_centre")):
        out["electric_total"] = out["office"] + out["hospital"] + out["data_centre"]
    return out


def _temp_forecasts(temp: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """Forecast temperature per target step for the 6, 12 and 24 h issue leads."""
    return {lead: temp + (TEMP_SIGMA0_C + TEMP_SIGMA_PER_24H_C * lead / 24.0) * z
            for lead, z in _lead_errors(len(temp), seed, TEMP_RHO_PER_H).items()}


@dataclass(frozen=True)
class _ParkLoads:
    """One park's load targets: target -> park_actuals key, description and scale (kW)."""

    name: str                   # "Park A"
    actual: dict[str, str]
    desc: dict[str, str]
    scale: dict[str, float]
    weather: frozenset[str]     # the targets whose models take the plan's temperature forecast


_PARK_LOADS = {
    "park-a": _ParkLoads(
        "Park A", {t: t for t in PARK_TARGETS},
        {
            "heating": "Park A's heat: 0.3 x CityLearn 2021 hot-water load (Buildings 1-5 summed, "
                       "first year, / its max) + 0.7 x heating degree-hours below 16 °C on the site "
                       "weather's temperature (the NSRDB 2017 year moved to Shanghai's solar time, "
                       "/ its max), scaled to 4.5 MW peak (72 MWh on the design day would need a "
                       "negative base, so base 0 and the design day is 82.8 MWh; "
                       "sites.heating_shape, sites.build_loads)",
            "cooling": "Park A's cooling: CityLearn 2021 cooling loads of Buildings 1-5 summed (first "
                       "year), affine-scaled to 3.8 MW peak and 60 MWh on the design day",
            "data_centre": "Park A's data centre: IT 923 kW flat x PUE 1.15-1.30 rising between 10 "
                           "and 30 °C outdoors on the site weather (sites._datacentre_kw)",
            "office": "Park A's office: DOE Large Office (Chicago), affine-scaled to 3.2 MW peak and "
                      "48 MWh on a mean weekday, weekday-aligned to the calendar",
            "hospital": "Park A's hospital: DOE Hospital (San Francisco), affine-scaled to 1.8 MW peak "
                        "and 32 MWh on a mean day, weekday-aligned to the calendar",
            "electric_total": "office + hospital + data centre of Park A, each as in its own card",
        },
        {"heating": 4500.0, "cooling": 3800.0, "data_centre": 1200.0, "office": 3200.0,
         "hospital": 1800.0, "electric_total": 6200.0},
        frozenset({"heating", "cooling", "data_centre"})),
    # scale_kw: the loads' peak_kw in edge/sites/park-b.toml, so the site's kW are the model's
    "park-b": _ParkLoads(
        "Park B", {"park_b_buildings": "buildings", "park_b_heating": "heating",
                   "park_b_cooling": "cooling"},
        {
            "park_b_buildings": "Park B's buildings (its one electric load): DOE Large Office "
                                "(Chicago), affine-scaled to 5 MW peak and 70 MWh on a mean weekday, "
                                "weekday-aligned to the calendar (sites.build_loads)",
            "park_b_heating": "Park B's heat: Park A's shape (0.3 x CityLearn 2021 hot-water load / "
                              "its max + 0.7 x heating degree-hours below 16 °C on the site weather's "
                              "temperature / its max; sites.heating_shape), scaled to 12 MW peak "
                              "(180 MWh on the design day would need a negative base, so base 0 "
                              "and the design day is 220.6 MWh; sites.build_loads)",
            "park_b_cooling": "Park B's cooling: CityLearn 2021 cooling loads of Buildings 1-5 summed "
                              "(first year), scaled without a base so that July-August 08:00-22:00 "
                              "averages 10 MW, 16.4 MW peak (sites._summer_day_cooling)",
        },
        {"park_b_buildings": 5000.0, "park_b_heating": 12000.0, "park_b_cooling": 16400.0},
        frozenset({"park_b_heating", "park_b_cooling"})),
}


def park_load_series(start: dt.date | None = None, site: str = PARK_SITE) -> list[Series]:
    """A park's load targets over one model year from ``start`` (default 1 Jan PARK_YEAR).

    ``site`` "park-a" gives ``PARK_TARGETS``, "park-b" ``PARK_B_TARGETS``.
    Another ``start`` only rotates the same periodic year (and the calendar laid
    on it): ``models/check_on_park.py --holdout`` uses it to hold out a window.
    """
    from parksim.physics.sites import spec_for

    pl = _PARK_LOADS[site]
    spec = spec_for(site)
    first, n = _park_steps(start or dt.date(PARK_YEAR, 1, 1))
    y = park_actuals(site, PARK_NOISE_SEED, first, n)
    ctx = context_for_utc(first, n, ZoneInfo(PARK_TZ), "CN", spec.lat_deg, spec.lon_deg)
    fc = {"temp_c": _temp_forecasts(y["temp_c"], PARK_NOISE_SEED)}
    src = (f"the simulated {pl.name} (parksim.physics.build_park('{site}'), firmware-sims/README.md "
           "'Loads and their scaling'), read at the middle of every 15-min step of 365 local days "
           f"from {start or dt.date(PARK_YEAR, 1, 1)} (the park repeats the same model year), "
           f"with the park's 2 % load noise (seed {PARK_NOISE_SEED}, not the evaluation's 0)")
    loc = {"latitude": spec.lat_deg, "longitude": spec.lon_deg, "tz": PARK_TZ}
    return [Series(t, y[a], ctx, pl.scale[t], dict(fc) if t in pl.weather else {}, dict(loc),
                   {"source": src, "model": pl.desc[t],
                    "resampling": "the park's own: hourly profile linearly interpolated between "
                                  "hour starts, value at each step's middle, times the noise"})
            for t, a in pl.actual.items()]


def park_targets(site: str) -> dict[str, str]:
    """A park's load targets, each with its key in ``park_actuals``."""
    return dict(_PARK_LOADS[site].actual)


def park_b_load_series(start: dt.date | None = None) -> list[Series]:
    """Park B's load targets (``PARK_B_TARGETS``)."""
    return park_load_series(start, "park-b")


def pv_clearsky_series() -> Series:
    """The PV series for the variant that runs without the plan's weather forecast."""
    s = pv_series()
    return Series("pv_clearsky", s.y_kw, s.ctx, s.scale_kw, {}, s.location, s.description)


_LOADERS: dict[str, Callable[[], list[Series]]] = {
    "pv": lambda: [pv_series()],
    "pv_clearsky": lambda: [pv_clearsky_series()],
    "wind": lambda: [wind_series()],
    "wind_history": lambda: [wind_history_series()],
    "cooling": park_load_series,
    "heating": park_load_series,
    "data_centre": park_load_series,
    "office": park_load_series,
    "hospital": park_load_series,
    "electric_total": park_load_series,
    "park_b_buildings": park_b_load_series,
    "park_b_heating": park_b_load_series,
    "park_b_cooling": park_b_load_series,
}


def load_series(targets: Iterable[str]) -> dict[str, Series]:
    """The series of ``targets`` only, each source read once."""
    out: dict[str, Series] = {}
    for t in targets:
        if t not in out:
            for s in _LOADERS[t]():
                out.setdefault(s.target, s)
    return {t: out[t] for t in targets}


def all_series() -> dict[str, Series]:
    return load_series(_LOADERS)
