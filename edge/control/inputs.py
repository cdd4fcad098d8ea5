"""What control is given besides the snapshot: forecasts, the plan in force, the site tariff.

Series are per step from ``start_ts`` (UTC seconds) every ``step_s``; a value
is held for its whole step. Forecast quantities are magnitudes (>= 0): what
PV and wind could deliver, what each load will draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from edge.control.plant import AssetError, AssetsInvalid, Objective

__all__ = ["Forecast", "Plan", "Tariff", "TariffPeriod", "extended_daily", "local_hour_month",
           "sample", "tariff_from_table"]

Vec = NDArray[np.floating[Any]]


def sample(values: Vec, start_ts: float, step_s: float, ts: Vec) -> Vec:
    """Step-held values at times ``ts``; before the start the first, after the end the last."""
    idx = np.floor((ts - start_ts) / step_s).astype(np.int64)
    out: Vec = values[np.clip(idx, 0, len(values) - 1)]
    return out


def covered(start_ts: float, step_s: float, n: int, ts: Vec) -> NDArray[np.bool_]:
    """Which of ``ts`` fall inside a series of ``n`` steps."""
    rel = ts - start_ts
    mask: NDArray[np.bool_] = (rel >= 0) & (rel < n * step_s)
    return mask


@dataclass(frozen=True, slots=True)
class Forecast:
    start_ts: float
    step_s: float
    pv_kw: Vec                       # all PV assets together; split by rating
    wind_kw: Vec
    elec_kw: Mapping[str, Vec]       # per electric load asset
    heat_kw: Vec
    cooling_kw: Vec
    issued_ts: float = 0.0
    # the forecaster's P90 of the heat and cooling loads (kW), where it gives one: stores
    # are planned with a margin towards it (ControllerConfig.store_margin_frac)
    heat_p90_kw: Vec | None = None
    cooling_p90_kw: Vec | None = None
    # PV's and wind's P90 (kW, all assets of the kind), where a model gives one (a naive
    # baseline's is not passed, edge.runner.margin_p90): planned towards it where the park
    # could be export-limited (ControllerConfig.renewable_margin_frac); a wind forecast with
    # one is a model's, whose first steps start from the farm's last output (wind_anchor_half_life_h)
    pv_p90_kw: Vec | None = None
    wind_p90_kw: Vec | None = None


DAY_S = 86_400.0


def extended_daily(fc: Forecast, until_ts: float) -> Forecast:
    """``fc`` with every series continued to ``until_ts`` by repeating its own last day
    ("tomorrow like today"), for a horizon longer than the forecasters' 24 h. A series
    shorter than a day, or one that reaches within a step of ``until_ts`` (a tick between
    two forecasts; there its last value holds, as before the extension), is left as it is."""
    need = math.ceil((until_ts - fc.start_ts) / fc.step_s - 1e-9)
    per_day = round(DAY_S / fc.step_s)

    def kept(a: Vec) -> bool:
        return len(a) + 1 >= need or len(a) < per_day

    if all(kept(a) for a in (fc.pv_kw, fc.wind_kw, fc.heat_kw, fc.cooling_kw, *fc.elec_kw.values())):
        return fc                   # every tick on a horizon the forecasts cover

    def ext(a: Vec) -> Vec:
        v = np.asarray(a, float)
        if kept(v):
            return v
        idx = np.arange(len(v), need)
        last_day = len(v) - per_day
        out: Vec = np.concatenate([v, v[last_day + (idx - last_day) % per_day]])
        return out

    def opt(a: Vec | None) -> Vec | None:
        return None if a is None else ext(a)

    return replace(fc, pv_kw=ext(fc.pv_kw), wind_kw=ext(fc.wind_kw),
                   elec_kw={k: ext(v) for k, v in fc.elec_kw.items()},
                   heat_kw=ext(fc.heat_kw), cooling_kw=ext(fc.cooling_kw),
                   heat_p90_kw=opt(fc.heat_p90_kw), cooling_p90_kw=opt(fc.cooling_p90_kw),
                   pv_p90_kw=opt(fc.pv_p90_kw), wind_p90_kw=opt(fc.wind_p90_kw))


@dataclass(frozen=True, slots=True)
class Plan:
    """The cloud's day-ahead plan as control uses it (sync validates and converts the envelope)."""

    plan_id: str
    start_ts: float
    step_s: float
    import_cny_per_kwh: Vec
    export_cny_per_kwh: Vec
    grid_co2_kg_per_kwh: Vec
    gas_cny_per_m3: float
    carbon_cny_per_t: float
    diesel_cny_per_l: float = 7.5
    valid_until_ts: float = float("inf")
    # passive sign: positive = export; NaN where no target
    grid_p_target_kw: Vec | None = None
    # per committable unit: 0 off, 1 on (dual-mode chillers: 1 cooling, 2 ice); NaN = free
    commitments: Mapping[str, Vec] = field(default_factory=dict)
    objective: Objective | None = None
    # the plan's weather forecast per step (``ghi_w_m2`` W/m², ``temp_c`` degC, ``wind_m_s``):
    # what the forecasters take (``weather_ahead``); control itself does not read it
    weather: Mapping[str, Vec] = field(default_factory=dict)

    def weather_ahead(self, start_ts: float, step_s: float, n: int) -> dict[str, Vec]:
        """The weather at the middle of ``n`` steps from ``start_ts``, per key, for the keys
        whose series covers every one of them (a partial series would be extrapolated)."""
        mids = start_ts + (np.arange(n) + 0.5) * step_s
        return {k: sample(np.asarray(v, dtype=float), self.start_ts, self.step_s, mids)
                for k, v in self.weather.items()
                if len(v) and covered(self.start_ts, self.step_s, len(v), mids).all()}


@dataclass(frozen=True, slots=True)
class TariffPeriod:
    name: str
    hours: tuple[tuple[int, int], ...]
    import_cny_per_kwh: float
    export_cny_per_kwh: float
    grid_co2_kg_per_kwh: float
    months: tuple[int, ...] = tuple(range(1, 13))


@dataclass(frozen=True, slots=True)
class Tariff:
    periods: tuple[TariffPeriod, ...]
    gas_cny_per_m3: float
    carbon_cny_per_t: float
    diesel_cny_per_l: float
    # (month-1, hour) -> period index, built once
    table: NDArray[np.int64] = field(default_factory=lambda: np.zeros((12, 24), np.int64))

    def series(self, tz: ZoneInfo, ts: Vec) -> tuple[Vec, Vec, Vec]:
        """Import price, export price and grid CO2 at each of ``ts``."""
        hour, month = local_hour_month(tz, ts)
        idx = self.table[month - 1, hour]
        imp = np.array([p.import_cny_per_kwh for p in self.periods])[idx]
        exp = np.array([p.export_cny_per_kwh for p in self.periods])[idx]
        co2 = np.array([p.grid_co2_kg_per_kwh for p in self.periods])[idx]
        return imp, exp, co2


def local_hour_month(tz: ZoneInfo, ts: Vec) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Local hour (0-23) and month (1-12) of UTC seconds ``ts``, vectorised.

    The UTC offset is looked up per distinct UTC day, so a horizon over a DST
    change is right to the day, which is enough for hourly tariffs.
    """
    days = np.floor(ts / 86400.0)
    hour = np.empty(len(ts), np.int64)
    month = np.empty(len(ts), np.int64)
    for d in np.unique(days):
        m = days == d
        off = datetime.fromtimestamp(float(d) * 86400.0 + 43200.0, UTC).astimezone(tz)
        offset_s = off.utcoffset()
        local = ts[m] + (offset_s.total_seconds() if offset_s else 0.0)
        hour[m] = np.floor(local / 3600.0).astype(np.int64) % 24
        for i in np.unique(np.floor(local / 86400.0)):
            mi = np.floor(local / 86400.0) == i
            sel = np.flatnonzero(m)[mi]
            month[sel] = datetime.fromtimestamp(float(i) * 86400.0, UTC).month
    return hour, month


def tariff_from_table(t: Mapping[str, Any]) -> Tariff:
    """Parse the site's ``[tariff]``; raise :class:`AssetsInvalid` listing every error."""
    errors: list[AssetError] = []

    def num(tab: Mapping[str, Any], key: str, path: str, default: float | None = None) -> float:
        v = tab.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            errors.append(AssetError(f"{path}.{key}", f"{v!r} must be a number >= 0"))
            return 0.0
        return float(v)

    periods = []
    table = np.full((12, 24), -1, np.int64)
    raw = t.get("periods", [])
    if not isinstance(raw, list) or not raw:
        errors.append(AssetError("tariff.periods", "at least one [[tariff.periods]] required"))
        raw = []
    for i, p in enumerate(raw):
        path = f"tariff.periods[{i}]"
        hours = p.get("hours", [])
        months = tuple(p.get("months", range(1, 13)))
        ok = isinstance(hours, list) and all(
            isinstance(h, list) and len(h) == 2 and 0 <= h[0] < h[1] <= 24 for h in hours)
        if not ok or not all(isinstance(m, int) and 1 <= m <= 12 for m in months):
            errors.append(AssetError(f"{path}.hours", f"{hours!r} must be [[start, end], ...] "
                                                      "local hours 0-24 with months 1-12"))
            continue
        overlap: tuple[int, int, int] | None = None  # reported once a period, not once a month
        for m in months:
            for h0, h1 in hours:
                if overlap is None and (table[m - 1, h0:h1] >= 0).any():
                    overlap = (h0, h1, m)
                table[m - 1, h0:h1] = i
        if overlap is not None:
            h0, h1, m = overlap
            errors.append(AssetError(f"{path}.hours", f"[{h0}, {h1}] overlaps another period in month {m}"))
        periods.append(TariffPeriod(
            str(p.get("name", f"p{i}")), tuple((int(a), int(b)) for a, b in hours),
            num(p, "import_cny_per_kwh", path), num(p, "export_cny_per_kwh", path),
            num(p, "grid_co2_kg_per_kwh", path), months))
    if raw and not errors and (table < 0).any():
        m, h = np.argwhere(table < 0)[0]
        errors.append(AssetError("tariff.periods",
                                 f"hour {h} of month {m + 1} is in no period (must cover 0-24)"))
    gas = num(t, "gas_cny_per_m3", "tariff", 3.65)
    carbon = num(t, "carbon_cny_per_t", "tariff", 82.0)
    diesel = num(t, "diesel_cny_per_l", "tariff", 7.5)
    if errors:
        raise AssetsInvalid(errors)
    return Tariff(tuple(periods), gas, carbon, diesel, table)
