"""Feature rows for the forecasters: one code path for training and the edge.

Time is counted in steps of ``STEP_S`` seconds; a series value ``y[i]`` is the
mean power over step ``i`` in units of the target's scale (kW / scale_kw). A
forecast issued at the start of step ``o`` (the origin) covers leads
``1..HORIZON``: lead ``j`` is step ``o + j - 1``; the last measured value is
``y[o - 1]``. Calendar features are taken in the site's local clock time at
the middle of each step, from UTC seconds and an IANA zone, so a DST change
moves the UTC offset and never the local hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from pvlib import solarposition

from edge.forecast.holidays import day_kind

__all__ = [
    "FEATURES",
    "HISTORY_STEPS",
    "HORIZON",
    "STEP_S",
    "WEATHER_KEYS",
    "StepContext",
    "baseline",
    "context_for_utc",
    "feature_rows",
    "solar_geometry",
]

STEP_S = 900
HORIZON = 96
DAY = 96
WEEK = 7 * DAY
HISTORY_STEPS = WEEK  # the oldest value a feature reads is y[o - WEEK]
# Irradiance below this share of 1 kW/m² makes a clear-sky index meaningless.
_CS_MIN = 0.05
_K_MISSING = -1.0

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
# Per-row weather forecast keys the plan supplies (W/m², °C, m/s).
WEATHER_KEYS = ("ghi_w_m2", "temp_c", "wind_m_s")


@dataclass(frozen=True, slots=True)
class StepContext:
    """Exogenous per-step arrays over steps ``first .. first + len - 1``."""

    first: int
    hour_local: F64  # local clock hour at the step's middle, 0..24
    weekday: F64  # Mon=0
    holiday: F64
    day_off: F64
    cos_zenith: F64
    ghi_cs_w_m2: F64


def solar_geometry(utc_s: F64, latitude: float, longitude: float) -> tuple[F64, F64]:
    """Cosine of the solar zenith and Haurwitz clear-sky GHI (W/m²) at UTC seconds."""
    days = np.floor(utc_s / 86400.0).astype("datetime64[D]")
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    utc_h = (utc_s % 86400.0) / 3600.0
    decl = solarposition.declination_spencer71(doy)
    eot_min = solarposition.equation_of_time_spencer71(doy)
    hour_angle = np.radians(15.0 * utc_h + longitude + eot_min / 4.0 - 180.0)
    zen = solarposition.solar_zenith_analytical(np.radians(latitude), hour_angle, decl)
    cz = np.asarray(np.cos(zen), dtype=np.float64)
    czp = np.maximum(cz, 1e-3)
    ghi = np.asarray(np.where(cz > 0.0, 1098.0 * czp * np.exp(-0.059 / czp), 0.0), dtype=np.float64)
    return cz, ghi


def context_for_utc(
    first_step: int,
    n_steps: int,
    tz: ZoneInfo,
    country: str,
    latitude: float,
    longitude: float,
) -> StepContext:
    """Calendar and sun for ``n_steps`` steps from absolute step ``first_step`` (UTC epoch)."""
    mid = (np.arange(first_step, first_step + n_steps, dtype=np.float64) + 0.5) * STEP_S
    hour = np.empty(n_steps)
    wd = np.empty(n_steps)
    hol = np.empty(n_steps)
    off = np.empty(n_steps)
    kinds: dict[dt.date, tuple[int, int, int]] = {}
    for i, ts in enumerate(mid):
        local = dt.datetime.fromtimestamp(float(ts), tz)
        hour[i] = local.hour + local.minute / 60.0 + local.second / 3600.0
        day = local.date()
        kind = kinds.get(day)
        if kind is None:
            kind = kinds[day] = day_kind(day, country)
        wd[i], hol[i], off[i] = kind
    cz, ghi = solar_geometry(mid, latitude, longitude)
    return StepContext(first_step, hour, wd, hol, off, cz, ghi)


def _clear_sky_index(y: F64, pcs: F64) -> F64:
    ok = pcs >= _CS_MIN
    k = np.where(ok, np.clip(y / np.where(ok, pcs, 1.0), 0.0, 1.5), _K_MISSING)
    return np.asarray(k, dtype=np.float64)


def feature_rows(
    names: Sequence[str],
    y: F64,
    y_first: int,
    ctx: StepContext,
    origins: I64,
    leads: I64,
    weather: Mapping[str, F64] | None = None,
) -> NDArray[np.float32]:
    """The feature matrix, one row per (origin, lead), columns in ``names`` order.

    ``y[0]`` is absolute step ``y_first``; origins are absolute steps;
    ``weather`` holds per-row forecasts for the target step (``WEATHER_KEYS``).
    """
    s = origins + leads - 1
    c = s - ctx.first

    def yv(idx: I64) -> F64:
        return np.asarray(y[idx - y_first], dtype=np.float64)

    def pcs(idx: I64) -> F64:
        return ctx.ghi_cs_w_m2[idx - ctx.first] / 1000.0

    def mean_back(n: int) -> F64:
        cs = np.concatenate(([0.0], np.cumsum(np.nan_to_num(y))))
        o = origins - y_first
        return np.asarray((cs[o] - cs[o - n]) / n, dtype=np.float64)

    def wx(key: str) -> F64:
        if weather is None or key not in weather:
            raise KeyError(key)
        return np.asarray(weather[key], dtype=np.float64)

    def fc_k() -> F64:
        g = ctx.ghi_cs_w_m2[c]
        ok = g >= _CS_MIN * 1000.0
        k = np.where(ok, np.clip(wx("ghi_w_m2") / np.where(ok, g, 1.0), 0.0, 1.5), _K_MISSING)
        return np.asarray(k, dtype=np.float64)

    def k_recent() -> F64:
        back = origins - 4
        num = sum(yv(back + i) for i in range(4))
        den = sum(pcs(back + i) for i in range(4))
        return _clear_sky_index(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))

    table: dict[str, Callable[[], F64]] = {
        "lead_h": lambda: leads.astype(np.float64) * (STEP_S / 3600.0),
        "hour_sin": lambda: np.sin(2 * np.pi * ctx.hour_local[c] / 24.0),
        "hour_cos": lambda: np.cos(2 * np.pi * ctx.hour_local[c] / 24.0),
        "weekday": lambda: ctx.weekday[c],
        "holiday": lambda: ctx.holiday[c],
        "day_off": lambda: ctx.day_off[c],
        "day_off_yday": lambda: ctx.day_off[c - DAY],
        "y_last": lambda: yv(origins - 1),
        "y_1h": lambda: mean_back(4),
        "y_mean24": lambda: mean_back(DAY),
        "y_day": lambda: yv(s - DAY),
        "y_week": lambda: yv(s - WEEK),
        "cos_zenith": lambda: ctx.cos_zenith[c],
        "pcs": lambda: pcs(s),
        "k_day": lambda: _clear_sky_index(yv(s - DAY), pcs(s - DAY)),
        "k_recent": k_recent,
        "fc_ghi": lambda: wx("ghi_w_m2") / 1000.0,
        "fc_k": fc_k,
        "fc_temp_c": lambda: wx("temp_c"),
        "fc_wind_m_s": lambda: wx("wind_m_s"),
    }
    out = np.empty((len(s), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        out[:, j] = table[name]()
    return out


FEATURES: frozenset[str] = frozenset(
    {
        "lead_h", "hour_sin", "hour_cos", "weekday", "holiday", "day_off", "day_off_yday",
        "y_last", "y_1h", "y_mean24", "y_day", "y_week", "cos_zenith", "pcs", "k_day",
        "k_recent", "fc_ghi", "fc_k", "fc_temp_c", "fc_wind_m_s",
    }
)
WEATHER_OF: dict[str, str] = {"fc_ghi": "ghi_w_m2", "fc_k": "ghi_w_m2", "fc_temp_c": "temp_c",
                              "fc_wind_m_s": "wind_m_s"}
BASELINES = ("yesterday", "last_week", "last_value", "clear_sky_yesterday")


def baseline(
    name: str, y: F64, y_first: int, ctx: StepContext, origins: I64, leads: I64
) -> F64:
    """A naive forecast, in the series' units, for each (origin, lead)."""
    s = origins + leads - 1 - y_first
    if name == "yesterday":
        return np.asarray(y[s - DAY], dtype=np.float64)
    if name == "last_week":
        return np.asarray(y[s - WEEK], dtype=np.float64)
    if name == "last_value":
        return np.asarray(y[origins - 1 - y_first], dtype=np.float64)
    if name == "clear_sky_yesterday":
        c = origins + leads - 1 - ctx.first
        p_now = ctx.ghi_cs_w_m2[c] / 1000.0
        p_then = ctx.ghi_cs_w_m2[c - DAY] / 1000.0
        k = _clear_sky_index(np.asarray(y[s - DAY], dtype=np.float64), p_then)
        return np.asarray(np.where(k >= 0.0, p_now * k, y[s - DAY]), dtype=np.float64)
    raise ValueError(f"unknown baseline {name!r}")

