"""Weather, renewable availability and loads: everything the park does not control.

Built once per site from the vendored real data in ``data/`` and looked up at any
UTC time (virtual or wall clock). Series are periodic over one "model year": a
timestamp in any year maps onto the same local day-of-year and hour of the data,
and the office and hospital profiles are re-aligned so that a Monday in the
simulation is a weekday in the data.

Sign convention: every value here is a magnitude (kW >= 0). The park's bus sign
(positive = drawn from the bus) is applied in ``park.py``.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[3] / "data"
YEAR_S = 365 * 86400.0

# The NSRDB file is at about 40.5 N, 108.5 W in local standard time (UTC-7).
_NSRDB_LON = -108.5
_NSRDB_UTC_OFFSET_H = -7.0
_MODEL_YEAR = 2017


@dataclass(frozen=True, slots=True)
class WeatherPoint:
    """Weather at one instant. Irradiance in W/m2, temperature in degC, wind in m/s."""

    ghi_w_m2: float
    dni_w_m2: float
    dhi_w_m2: float
    temp_c: float
    wind_m_s: float


@dataclass(frozen=True, slots=True)
class Exogenous:
    """What the park sees at one instant, every power a magnitude in kW.

    loads_kw: electric loads by name (before any demand response);
    heat_kw / cool_kw: thermal demands; pv_avail_kw / wind_avail_kw: what the
    plants could deliver (AC, after inverter), before curtailment.
    """

    ts_s: float
    weather: WeatherPoint
    wind_hub_m_s: float
    poa_w_m2: float
    pv_avail_kw: float
    wind_avail_kw: float
    loads_kw: Mapping[str, float]
    heat_kw: float
    cool_kw: float


class PeriodicSeries:
    """Values on a uniform grid, linearly interpolated, wrapping around a period."""

    def __init__(self, values: np.ndarray, t0_s: float, step_s: float) -> None:
        self.values = np.asarray(values, dtype=float)
        self.t0_s = t0_s
        self.step_s = step_s
        self.period_s = step_s * len(self.values)

    def at(self, ts_s: float) -> float:
        x = ((ts_s - self.t0_s) % self.period_s) / self.step_s
        i = int(x)
        f = x - i
        n = len(self.values)
        return float(self.values[i % n] * (1.0 - f) + self.values[(i + 1) % n] * f)


class ClampedSeries:
    """Values at given UTC times (a user's weather file), clamped at both ends."""

    def __init__(self, ts_s: np.ndarray, values: np.ndarray) -> None:
        self.ts_s = np.asarray(ts_s, dtype=float)
        self.values = np.asarray(values, dtype=float)

    def at(self, ts_s: float) -> float:
        return float(np.interp(ts_s, self.ts_s, self.values))


@dataclass(frozen=True, slots=True)
class WeatherSeries:
    """Weather columns as series; ``grid_ts_s`` are the sample instants (UTC s)."""

    grid_ts_s: np.ndarray
    ghi: np.ndarray
    dni: np.ndarray
    dhi: np.ndarray
    temp_c: np.ndarray
    wind_m_s: np.ndarray
    periodic: bool


def nsrdb_weather(lon_deg: float, utc_offset_h: float) -> WeatherSeries:
    """The vendored NSRDB year moved to the site's local solar time.

    The sun rises at the same local *solar* time everywhere, so each sample is
    shifted by the difference between the two sites' solar-time offsets; the
    result is a plausible year for the site, not a measurement of it.
    """
    path = DATA_DIR / "weather" / "nsrdb_psm3_2017_30min.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    n = len(rows)
    cols = {k: np.array([float(r[k]) for r in rows]) for k in
            ("GHI", "DNI", "DHI", "Temperature", "Wind Speed")}
    # Solar time = standard time + 4 min/deg * (lon - zone meridian).
    src_solar_min = 4.0 * (_NSRDB_LON - 15.0 * _NSRDB_UTC_OFFSET_H)
    dst_solar_min = 4.0 * (lon_deg - 15.0 * utc_offset_h)
    shift_s = (src_solar_min - dst_solar_min) * 60.0
    t0_local = datetime(_MODEL_YEAR, 1, 1, tzinfo=UTC).timestamp()
    # Sample k is at source local time k*1800 s; it belongs at the site's local time
    # k*1800 - shift_s, i.e. UTC = that - offset.
    grid = t0_local + np.arange(n) * 1800.0 - shift_s - utc_offset_h * 3600.0
    return WeatherSeries(grid, cols["GHI"], cols["DNI"], cols["DHI"],
                         cols["Temperature"], cols["Wind Speed"], periodic=True)


def csv_weather(path: str | Path) -> WeatherSeries:
    """A weather CSV (timestamp, ghi_w_m2, dni_w_m2, dhi_w_m2, temp_c, wind_m_s; UTC)."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    ts = np.array([_parse_utc(r["timestamp"]) for r in rows])
    order = np.argsort(ts)

    def col(k: str) -> np.ndarray:
        return np.array([float(r[k]) for r in rows])[order]

    return WeatherSeries(ts[order], col("ghi_w_m2"), col("dni_w_m2"), col("dhi_w_m2"),
                         col("temp_c"), col("wind_m_s"), periodic=False)


def _parse_utc(text: str) -> float:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def make_series(ws: WeatherSeries, values: np.ndarray) -> PeriodicSeries | ClampedSeries:
    if ws.periodic:
        return PeriodicSeries(values, float(ws.grid_ts_s[0]), float(ws.grid_ts_s[1] - ws.grid_ts_s[0]))
    return ClampedSeries(ws.grid_ts_s, values)


def pv_ac_kw(ws: WeatherSeries, *, lat_deg: float, lon_deg: float, kwp: float, ac_kw: float,
             tilt_deg: float, azimuth_deg: float, losses_frac: float,
             gamma_per_c: float, inverter_eff: float) -> tuple[np.ndarray, np.ndarray]:
    """PV AC output (kW) and plane-of-array irradiance (W/m2) at each weather sample.

    pvlib: solar position, Hay-Davies transposition, Faiman cell temperature,
    PVWatts DC (power temperature coefficient ``gamma_per_c``) and PVWatts
    inverter clipped at ``ac_kw``. Module efficiency enters through the rating:
    kwp = efficiency * area * 1 kW/m2, so PVWatts' pdc0 * G/1000 is eta * A * G.
    """
    import pandas as pd
    import pvlib

    times = pd.DatetimeIndex(pd.to_datetime(ws.grid_ts_s, unit="s", utc=True))
    sp = pvlib.solarposition.get_solarposition(times, lat_deg, lon_deg)
    dni_extra = pvlib.irradiance.get_extra_radiation(times)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg, azimuth_deg, sp["apparent_zenith"], sp["azimuth"],
        ws.dni, ws.ghi, ws.dhi, dni_extra=dni_extra, model="haydavies", albedo=0.2,
    )["poa_global"].fillna(0.0).clip(lower=0.0).to_numpy()
    t_cell = pvlib.temperature.faiman(poa, ws.temp_c, ws.wind_m_s)
    pdc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, kwp, gamma_per_c) * (1.0 - losses_frac)
    pac = pvlib.inverter.pvwatts(pdc, ac_kw / inverter_eff, eta_inv_nom=inverter_eff)
    return np.clip(np.nan_to_num(pac), 0.0, ac_kw), poa


def wind_farm_kw(ws: WeatherSeries, *, turbine_type: str, count: int, hub_height_m: float,
                 ref_height_m: float, roughness_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Farm output (kW) and hub-height wind (m/s) at each weather sample.

    The weather's wind speed is scaled to hub height with the logarithmic law
    v_hub = v_ref * ln(h_hub/z0) / ln(h_ref/z0) (windpowerlib.wind_speed), then
    the manufacturer's power curve from windpowerlib's bundled oedb data is
    interpolated; outside the curve (below cut-in, above cut-out) output is 0.
    Wake and electrical losses are not modelled.
    """
    from windpowerlib import WindTurbine

    curve = _power_curve(turbine_type, hub_height_m)
    v_hub = ws.wind_m_s * math.log(hub_height_m / roughness_m) / math.log(ref_height_m / roughness_m)
    p_kw = count * np.interp(v_hub, curve[0], curve[1], left=0.0, right=0.0)
    _ = WindTurbine  # imported here so that a missing windpowerlib fails at build, loudly
    return p_kw, v_hub


@functools.lru_cache(maxsize=8)
def _power_curve(turbine_type: str, hub_height_m: float) -> tuple[np.ndarray, np.ndarray]:
    from windpowerlib import WindTurbine

    t = WindTurbine(turbine_type=turbine_type, hub_height=hub_height_m)
    pc = t.power_curve
    return pc["wind_speed"].to_numpy(float), pc["value"].to_numpy(float) / 1000.0


# --- loads -----------------------------------------------------------------------------


def _read_col(path: Path, col: int | str) -> np.ndarray:
    with path.open() as f:
        r = csv.reader(f)
        header = next(r)
        idx = header.index(col) if isinstance(col, str) else col
        return np.array([float(row[idx]) for row in r])


@functools.lru_cache(maxsize=1)
def doe_shapes() -> dict[str, np.ndarray]:
    """DOE reference buildings' hourly electricity (kW), 8760 values, day 0 = a Sunday."""
    d = DATA_DIR / "loads" / "doe_refbldg"
    return {
        "office": _read_col(d / "RefBldgLargeOfficeNew2004_v1.3_7.1_5A_USA_IL_CHICAGO-OHARE.csv", 0),
        "hospital": _read_col(d / "RefBldgHospitalNew2004_7.1_5.0_3C_USA_CA_SAN_FRANCISCO.csv", 0),
    }


@functools.lru_cache(maxsize=1)
def citylearn_shapes() -> dict[str, np.ndarray]:
    """CityLearn 2021 district (Buildings 1-5 summed), first year, hourly kWh."""
    d = DATA_DIR / "loads" / "citylearn2021"
    cool = np.zeros(8760)
    dhw = np.zeros(8760)
    for i in range(1, 6):
        cool += _read_col(d / f"Building_{i}.csv", "Cooling Load [kWh]")[:8760]
        dhw += _read_col(d / f"Building_{i}.csv", "DHW Heating [kWh]")[:8760]
    return {"cooling": cool, "dhw": dhw}


def doe_first_weekday(x: np.ndarray) -> int:
    """Python weekday (Mon=0) of the data's day 0: Sunday is the least-energy weekday."""
    daily = x[: 365 * 24].reshape(365, 24).sum(axis=1)
    by_residue = [daily[r::7].mean() for r in range(7)]
    sunday_residue = int(np.argmin(by_residue))
    return (6 - sunday_residue) % 7


@dataclass(frozen=True, slots=True)
class AffineScale:
    """load_kw = base_kw + gain * shape; chosen to hit a peak and a daily energy."""

    base_kw: float
    gain: float

    def __call__(self, shape: np.ndarray) -> np.ndarray:
        return self.base_kw + self.gain * shape


def fit_affine(shape: np.ndarray, peak_kw: float, day_kwh: float, day_shape_sum: float) -> AffineScale:
    """Solve base + gain*max(shape) = peak and 24*base + gain*day_shape_sum = day_kwh.

    ``day_shape_sum`` is the reference day's sum of hourly shape values (a mean
    weekday, or the design day). A negative base is not physical: then the base is
    0 and only the peak is kept (stated in the README).
    """
    smax = float(shape.max())
    gain = (peak_kw - day_kwh / 24.0) / (smax - day_shape_sum / 24.0)
    base = peak_kw - gain * smax
    if base < 0.0 or gain <= 0.0:
        return AffineScale(0.0, peak_kw / smax)
    return AffineScale(base, gain)


def weekday_days(x: np.ndarray, first_weekday: int) -> np.ndarray:
    days = np.arange(365)
    return ((days + first_weekday) % 7) < 5


def aligned_hour_index(local_s: float, first_weekday: int) -> float:
    """Fractional hour index into an 8760 profile with the simulated date's weekday.

    The data's day nearest to the same day of the year that falls on the same
    weekday is used, so weekends stay weekends in every simulated year.
    """
    day = int(local_s // 86400)
    dt = datetime.fromtimestamp(day * 86400, UTC)
    doy = min(dt.timetuple().tm_yday - 1, 364)
    weekday = dt.weekday()
    data_weekday = (first_weekday + doy) % 7
    delta = (weekday - data_weekday) % 7
    if delta > 3:
        delta -= 7
    k = doy + delta
    if k < 0:
        k += 7
    if k > 364:
        k -= 7
    return k * 24.0 + (local_s % 86400) / 3600.0


def interp_hourly(profile: np.ndarray, hour_index: float) -> float:
    i = int(hour_index)
    f = hour_index - i
    n = len(profile)
    return float(profile[i % n] * (1.0 - f) + profile[(i + 1) % n] * f)


def noise_series(seed: int, name: str, sd_frac: float) -> PeriodicSeries:
    """Smooth multiplicative noise (1 + e), e ~ N(0, sd) every 15 min, interpolated.

    Drawn once per (seed, name) over a year, so a load's value at an instant does
    not depend on the step size used to reach it.
    """
    rng = np.random.default_rng([seed, *name.encode()])
    e = rng.normal(0.0, sd_frac, size=35040).clip(-3 * sd_frac, 3 * sd_frac)
    return PeriodicSeries(1.0 + e, 0.0, 900.0)
