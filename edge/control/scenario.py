"""Synthetic but plausible days for the reference parks: forecasts and snapshots for tests and the benchmark.

Shapes follow SCENARIOS.md (peaks and daily energies of each load, plant
sizes); weather is a clear-sky PV bell and a slow wind swing with seeded
noise. Deterministic for a given seed. Not a simulator: the park's physics
live in firmware-sims/.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from edge.control.controller import ControllerConfig
from edge.control.inputs import Forecast, local_hour_month, tariff_from_table
from edge.control.plant import PlantModel
from edge.control.qp import Vec
from edge.model import PointValue, Quality, Snapshot

__all__ = ["Park", "park", "site_tables"]

# 2026-07-15 00:00 Asia/Shanghai: a summer weekday
T0 = 1784044800.0


_NOISE_LEN = 20000


@lru_cache(maxsize=64)
def _noise(seed: int, k: int) -> Vec:
    out: Vec = np.random.default_rng([seed, k]).standard_normal(_NOISE_LEN)
    return out


def _hours(plant: PlantModel, ts: Vec) -> Vec:
    hour, _ = local_hour_month(plant.timezone, ts)
    minute = (ts % 3600.0) / 3600.0
    out: Vec = hour + minute
    return out


@dataclass(frozen=True)
class Park:
    name: str
    plant: PlantModel
    config: ControllerConfig

    def forecast(self, start_ts: float, n: int = 192, step_s: float = 900.0,
                 seed: int = 0, noise: float = 0.0) -> Forecast:
        ts = start_ts + (np.arange(n) + 0.5) * step_s
        h = _hours(self.plant, ts)
        # the error of the forecast for a given time is fixed by that time (and the seed),
        # its size grows with lead time: successive forecasts agree where they overlap
        slot = np.floor((ts - T0) / step_s).astype(np.int64)
        lead = np.sqrt(np.arange(n) / 4.0 + 1.0)
        salt = iter(range(1, 100))

        def jitter() -> Vec:
            k = next(salt)
            z = _noise(seed, k)[slot % _NOISE_LEN]
            out: Vec = 1.0 + noise * lead * z
            return out
        day = np.clip(np.sin(np.pi * (h - 6.0) / 12.0), 0.0, None)
        pv_rated = sum(r.p_rated_kw for r in self.plant.renewables if r.kind == "pv")
        wind_rated = sum(r.p_rated_kw for r in self.plant.renewables if r.kind == "wind")
        pv = 0.8 * pv_rated * day ** 1.5 * jitter()
        wind = wind_rated * np.clip(0.35 + 0.2 * np.sin(2 * np.pi * (ts - T0) / 86400.0 / 1.7),
                                    0, 1) * jitter()
        elec: dict[str, Vec] = {}
        heat = np.zeros(n)
        cool = np.zeros(n)
        for ld in self.plant.loads:
            if self.name == "a":
                shape = {
                    "office": np.where((h >= 7) & (h < 20), 1.0, 0.18),
                    "hospital": 0.74 + 0.26 * np.sin(np.pi * (h - 8) / 12).clip(0),
                    "datacentre": np.ones(n),
                    "district_heat": 0.67 + 0.33 * np.cos(2 * np.pi * (h - 6) / 24),
                    "central_cooling": 0.66 + 0.34 * np.sin(2 * np.pi * (h - 9) / 24),
                }.get(ld.name, np.full(n, 0.5))
            else:
                open_ = (h >= 8) & (h < 22)
                shape = {
                    "buildings": np.where(open_, 0.85 + 0.15 * day, 0.3),
                    "hot_water": 0.4 + 0.3 * day,
                    "cooling": np.where(open_, 0.55 + 0.35 * day, 0.12),
                }.get(ld.name, np.full(n, 0.5))
            v = np.clip(ld.peak_kw * shape * jitter(), 0, ld.peak_kw * 1.1)
            if ld.kind == "electric":
                elec[ld.name] = v
            elif ld.kind == "heat":
                heat += v
            else:
                cool += v
        return Forecast(start_ts, step_s, np.clip(pv, 0, None), np.clip(wind, 0, None), elec,
                        heat, cool, issued_ts=start_ts)

    def snapshot(self, ts: float, soc_frac: float = 0.5, ice_frac: float = 0.3,
                 quality: Quality = Quality.GOOD, age_s: float = 0.0,
                 loads_kw: dict[str, float] | None = None, heat_store_frac: float = 0.5) -> Snapshot:
        pts: dict[str, PointValue] = {}
        for b in self.plant.batteries:
            pts[b.soc_point] = PointValue(soc_frac, "frac", quality, ts - age_s)
        for s in self.plant.ice_stores:
            pts[s.level_point] = PointValue(ice_frac, "frac", quality, ts - age_s)
        for e in self.plant.electric_boilers:
            if e.stored:
                pts[e.stored_point] = PointValue(heat_store_frac * e.store_kwh, "kWh", quality,
                                                 ts - age_s)
        for name, v in (loads_kw or {}).items():
            ld = next(x for x in self.plant.loads if x.name == name)
            pts[ld.p_point] = PointValue(v, "kW", Quality.GOOD, ts)
        return Snapshot(ts, pts)


@lru_cache(maxsize=2)
def _site(name: str) -> Any:
    from edge.config import embedded_site_path, load_site  # the shipped site files

    return load_site(embedded_site_path(f"park-{name}"))


def site_tables(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies of the ``[assets]`` and ``[tariff]`` tables of edge/sites/park-{a,b}.toml."""
    raw = _site(name).raw
    return copy.deepcopy(dict(raw["assets"])), copy.deepcopy(dict(raw["tariff"]))


def park(name: str, **config: object) -> Park:
    """``park("a")`` or ``park("b")``: the site file's plant and tariff with a controller config."""
    site = _site(name)
    plant: PlantModel = site.plant
    tariff = tariff_from_table(site.raw["tariff"])
    # the site file's planning keys (horizon, step layout, margins, carries) unless given
    config = {**site.control.planning(), **config}
    return Park(name, plant, ControllerConfig(plant, tariff, **config))  # type: ignore[arg-type]
