"""The training series: each target as kW per 15-min step, with its calendar.

PV and wind "actuals" are not metered: they are modelled from measured
weather through stated physical models (pvlib PVWatts for 8.5 MWp, a
windpowerlib power curve for 3 x 2.5 MW). Loads are EnergyPlus simulations
(DOE reference buildings, CityLearn 2021 buildings) scaled to Park A's
figures. Hourly and 30-min data are brought to 15 min by linear interpolation
between interval midpoints, which smooths what a meter would see.
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
DOE_OFFICE = DATA / "loads/doe_refbldg/RefBldgLargeOfficeNew2004_v1.3_7.1_5A_USA_IL_CHICAGO-OHARE.csv"
DOE_HOSPITAL = DATA / "loads/doe_refbldg/RefBldgHospitalNew2004_7.1_5.0_3C_USA_CA_SAN_FRANCISCO.csv"

# CityLearn 2021's location is not in the files. Solar noon falls near 12:00
# in the data's standard-time hours (UTC-6), so longitude is about 90 W; the
# latitude is weakly constrained by the irradiance and 30 N is assumed, which
# fits the hot-humid climate (mean 21.7 °C). The geometry is used both to
# model PV and for the clear-sky features, so it is at least self-consistent.
CL_LAT, CL_LON, CL_UTC_OFFSET_H = 30.0, -90.0, -6
CL_START_UTC = dt.datetime(2014, 1, 1, 6, tzinfo=dt.UTC)  # a year whose 1 Jan is a Wednesday
NSRDB_LAT, NSRDB_LON = 40.5, -108.5

PV_KWP = 8500.0
PV_ILR = 1.15  # DC/AC ratio
WIND_KW = 3 * 2500.0


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


def _affine(x: np.ndarray, peak: float, mean: float) -> np.ndarray:
    """Map x so that its max is ``peak`` and its mean is ``mean`` (base + gain·x)."""
    gain = (peak - mean) / (x.max() - x.mean())
    base = peak - gain * x.max()
    if base < 0:  # the profile is already flatter than asked: scale to the peak only
        return x * (peak / x.max())
    return base + gain * x


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
    import pvlib

    w = _cl_weather()
    n = len(w)
    times = pd.date_range(CL_START_UTC + dt.timedelta(minutes=30), periods=n, freq="1h")

    def pv_kw(dni: np.ndarray, dhi: np.ndarray, temp: np.ndarray) -> np.ndarray:
        sp = pvlib.solarposition.get_solarposition(times, CL_LAT, CL_LON)
        cz = np.cos(np.radians(sp["zenith"].to_numpy()))
        dni = np.where(cz > 0.0, dni, 0.0)
        ghi = np.clip(dni * np.clip(cz, 0, None) + dhi, 0, None)
        poa = pvlib.irradiance.get_total_irradiance(
            25.0, 180.0, sp["apparent_zenith"].to_numpy(), sp["azimuth"].to_numpy(),
            dni, ghi, dhi, dni_extra=pvlib.irradiance.get_extra_radiation(times).to_numpy(),
            model="haydavies")["poa_global"]
        poa = np.nan_to_num(np.asarray(poa, dtype=float))
        t_cell = pvlib.temperature.faiman(poa, temp, 1.0)
        dc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, PV_KWP, -0.0035) * (1 - 0.14)
        ac = pvlib.inverter.pvwatts(dc, PV_KWP / PV_ILR)
        return np.clip(np.nan_to_num(np.asarray(ac, dtype=float)), 0, None)

    p_h = pv_kw(w["Direct Solar Radiation"].to_numpy(), w["Diffuse Solar Radiation"].to_numpy(),
                w["Outdoor Drybulb Temperature"].to_numpy())
    ctx = _cl_context()
    # 15-min shape: interpolate the ratio to clear-sky GHI, not the power itself
    _, cs_h = solar_geometry(np.array([t.timestamp() for t in times]), CL_LAT, CL_LON)
    k_h = np.where(cs_h > 20.0, p_h / np.maximum(cs_h, 20.0), 0.0)
    y = np.clip(_to_quarter(k_h, 1) * ctx.ghi_cs_w_m2, 0, PV_KWP / PV_ILR)
    # the plan's forecast: GHI from CityLearn's forecast DNI/DHI and the same geometry
    dni_f = _cl_forecast_at_target(w, "Direct Solar Radiation")
    dhi_f = _cl_forecast_at_target(w, "Diffuse Solar Radiation")
    temp_f = _cl_forecast_at_target(w, "Outdoor Drybulb Temperature")
    ghi_f = {k: np.clip(dni_f[k] * np.clip(ctx.cos_zenith, 0, None) + dhi_f[k], 0, None)
             for k in dni_f}
    return Series(
        "pv", y, ctx, PV_KWP, {"ghi_w_m2": ghi_f, "temp_c": temp_f},
        {"latitude": CL_LAT, "longitude": CL_LON, "utc_offset_h": CL_UTC_OFFSET_H,
         "note": "CityLearn's site is not given; inferred from solar noon (lon) and assumed (lat)"},
        {"source": "CityLearn 2021 weather (4 years hourly: measured DNI, DHI, temperature; "
                   "6/12/24 h forecast columns with their real errors)",
         "model": "modelled, not metered: pvlib PVWatts, 8.5 MWp DC, tilt 25°, south, "
                  "Hay-Davies transposition, Faiman cell temperature (wind 1 m/s), "
                  "gamma -0.35 %/K, 14 % system losses, DC/AC 1.15 (7.39 MW AC)",
         "resampling": "hourly to 15 min through the clear-sky index"},
    )


def _cl_loads() -> tuple[StepContext, dict[str, np.ndarray], dict[str, dict[int, np.ndarray]]]:
    w = _cl_weather()
    temp = w["Outdoor Drybulb Temperature"].to_numpy()
    b = [_cl_building(i) for i in range(1, 6)]
    cooling = sum(x["Cooling Load"].to_numpy() for x in b)
    dhw = b[0]["DHW Heating"].to_numpy() + b[1]["DHW Heating"].to_numpy() + b[4]["DHW Heating"].to_numpy()
    # CityLearn's heating loads are all zero (hot climate): heat = hot water plus a
    # space-heating term on heating degree-hours below 18 °C
    space = np.clip(18.0 - temp, 0, None)
    heat = dhw / dhw.mean() + 0.6 * space / max(space.mean(), 1e-9)
    eq = b[0]["Equipment Electric Power"].to_numpy()
    eq_n = (eq - eq.min()) / (eq.max() - eq.min())
    it = 1.0 + 0.04 * eq_n
    pue = 1.15 + 0.15 * np.clip((temp - 10.0) / 25.0, 0, 1)
    dc = it * pue
    loads = {
        "cooling": _to_quarter(_affine(cooling, 3800.0, 60000.0 / 24), 1),
        "heating": _to_quarter(_affine(heat, 4500.0, 72000.0 / 24), 1),
        "data_centre": _to_quarter(dc * 1200.0 / dc.max(), 1),
    }
    return _cl_context(), loads, {"temp_c": _cl_forecast_at_target(w, "Outdoor Drybulb Temperature")}


_CL_LOC = {"latitude": CL_LAT, "longitude": CL_LON, "utc_offset_h": CL_UTC_OFFSET_H}
_CL_SRC = "CityLearn 2021 Buildings 1-5 (EnergyPlus, DOE prototype buildings, 4 years hourly)"


def cl_load_series() -> list[Series]:
    ctx, loads, fc = _cl_loads()
    desc = {
        "cooling": "sum of the five buildings' cooling loads, affine-scaled to 3.8 MW peak and "
                   "60 MWh/day mean",
        "heating": "derived: CityLearn's space-heating loads are zero (hot climate), so heat = "
                   "hot-water load of Buildings 1, 2, 5 (normalised) + 0.6 x heating degree-hours "
                   "below 18 °C on the measured temperature (normalised), affine-scaled to 4.5 MW "
                   "peak and 72 MWh/day mean",
        "data_centre": "derived: IT load flat with a 4 % business-hours ripple (Building 1's "
                       "equipment profile) times a PUE of 1.15-1.30 rising with the measured "
                       "temperature; scaled to 1.2 MW peak (mean about 1.1 MW, 26 MWh/day: the "
                       "28.8 MWh/day of the brief would need a perfectly flat 1.2 MW)",
    }
    scale = {"cooling": 3800.0, "heating": 4500.0, "data_centre": 1200.0}
    return [Series(t, loads[t], ctx, scale[t], dict(fc), dict(_CL_LOC),
                   {"source": _CL_SRC + " and CityLearn 2021 weather", "model": desc[t],
                    "resampling": "hourly to 15 min, linear between interval midpoints"})
            for t in ("cooling", "heating", "data_centre")]


# ---------------------------------------------------------------- DOE

def _doe(path: Path) -> np.ndarray:
    return pd.read_csv(path).iloc[:, 0].to_numpy(dtype=float)


def _doe_context(n_q: int, std_offset_h: int, tz: str, lat: float, lon: float) -> StepContext:
    # DOE reference buildings: 2017 calendar (1 Jan a Sunday; US holidays show in the
    # data), hours in local standard time, schedules following the local clock.
    first = int(dt.datetime(2017, 1, 1, -std_offset_h, tzinfo=dt.UTC).timestamp()) // STEP_S
    return context_for_utc(first, n_q, ZoneInfo(tz), "US", lat, lon)


def doe_series() -> list[Series]:
    office = _to_quarter(_affine(_doe(DOE_OFFICE), 3200.0, 48000.0 / 24), 1)
    hosp = _to_quarter(_affine(_doe(DOE_HOSPITAL), 1800.0, 32000.0 / 24), 1)
    ctx_o = _doe_context(len(office), -6, "America/Chicago", 41.98, -87.9)
    ctx_h = _doe_context(len(hosp), -8, "America/Los_Angeles", 37.6, -122.4)
    _, cl, _ = _cl_loads()
    dc = cl["data_centre"][: len(office)]
    src = "US DOE commercial reference buildings (EnergyPlus, TMY, 8,760 h)"
    out = [
        Series("office", office, ctx_o, 3200.0, {}, {"tz": "America/Chicago"},
               {"source": src + ": Large Office, Chicago O'Hare",
                "model": "affine-scaled to 3.2 MW peak and 48 MWh/day mean",
                "resampling": "hourly to 15 min, linear between interval midpoints"}),
        Series("hospital", hosp, ctx_h, 1800.0, {}, {"tz": "America/Los_Angeles"},
               {"source": src + ": Hospital, San Francisco",
                "model": "affine-scaled to 1.8 MW peak and 32 MWh/day mean",
                "resampling": "hourly to 15 min, linear between interval midpoints"}),
        Series("electric_total", office + hosp + dc, ctx_o, 6200.0, {}, {"tz": "America/Chicago"},
               {"source": src + " (office, hospital) + the derived data centre (CityLearn year 1)",
                "model": "office + hospital + data centre, each scaled as in its own card; "
                         "hour-of-year aligned, Chicago calendar",
                "resampling": "hourly to 15 min, linear between interval midpoints"}),
    ]
    return out


# ---------------------------------------------------------------- wind

def wind_series() -> Series:
    from windpowerlib import WindTurbine
    from windpowerlib.power_output import power_curve
    from windpowerlib.wind_speed import hellman

    n = pd.read_csv(NSRDB)
    v2 = _to_quarter(n["Wind Speed"].to_numpy(dtype=float), 2)
    hub = 110.0
    v_hub = np.asarray(hellman(pd.Series(v2), 2.0, hub, hellman_exponent=1 / 7), dtype=float)
    t = WindTurbine(hub_height=hub, turbine_type="GE120/2500")
    pc = t.power_curve
    p_w = power_curve(pd.Series(v_hub), pc["wind_speed"], pc["value"], density_correction=False)
    y = np.clip(np.asarray(p_w, dtype=float) / 1000.0 * 3 * 0.95, 0, WIND_KW)
    first = int(dt.datetime(2017, 1, 1, 7, tzinfo=dt.UTC).timestamp()) // STEP_S  # MST
    ctx = context_for_utc(first, len(y), ZoneInfo("America/Denver"), "US", NSRDB_LAT, NSRDB_LON)
    return Series(
        "wind", y, ctx, WIND_KW, {}, {"latitude": NSRDB_LAT, "longitude": NSRDB_LON,
                                     "tz": "America/Denver"},
        {"source": "NSRDB PSM3 2017, 30 min, about 40.5 N 108.5 W (measured-satellite wind speed)",
         "model": "modelled, not metered: wind speed taken as 2 m, Hellmann exponent 1/7 to a "
                  "110 m hub, windpowerlib power curve of the GE 2.5-120 (2.5 MW, cut-in 3 m/s), "
                  "3 turbines, 5 % wake and availability losses, no density correction",
         "resampling": "30 min to 15 min (wind speed, linear) before the power curve"},
    )


def pv_clearsky_series() -> Series:
    """The PV series for the variant that runs without the plan's weather forecast."""
    s = pv_series()
    return Series("pv_clearsky", s.y_kw, s.ctx, s.scale_kw, {}, s.location, s.description)


_LOADERS: dict[str, Callable[[], list[Series]]] = {
    "pv": lambda: [pv_series()],
    "pv_clearsky": lambda: [pv_clearsky_series()],
    "wind": lambda: [wind_series()],
    "cooling": cl_load_series,
    "heating": cl_load_series,
    "data_centre": cl_load_series,
    "office": doe_series,
    "hospital": doe_series,
    "electric_total": doe_series,
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
