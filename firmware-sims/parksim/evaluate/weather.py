"""The harness's weather forecast: actuals plus a seeded error that grows with lead time.

Stated model (docs/evaluation.md). A forecast is issued once a day at local
midnight and covers the next 48 h; the lead time L (hours) of a value is its
time minus the issue time. For each issue and variable an AR(1) standard
normal sequence z (correlation ``rho_per_h`` per hour of forecast time, so the
error comes in spells like a misplaced front) is drawn from
``numpy.random.default_rng([seed, issue_ts // 900, variable])``, and

    ghi_fc  = max(0, ghi  * (1 + s_ghi(L)  * z_ghi))      s_ghi(L)  = 0.05 + 0.15 * L/24
    temp_fc =        temp +     s_temp(L) * z_temp          s_temp(L) = 0.3  + 1.2  * L/24  (degC)
    wind_fc = max(0, wind * (1 + s_wind(L) * z_wind))     s_wind(L) = 0.10 + 0.20 * L/24

with L capped at 48 h and every sigma multiplied by ``scale`` (0 = perfect
weather forecasts). The growth is linear in lead time like the 6/12/24 h
forecast columns of the vendored CityLearn weather file (their temperature MAE
is 0.15/0.32/0.67 degC and GHI nMAE 1.2/2.5/5.0 % at 6/12/24 h); the size is
that of day-ahead NWP forecasts (day-ahead GHI nMAE ~15-25 %, temperature MAE
~1-2 degC), because CityLearn's columns are little more than the actuals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["WeatherError", "forecast_weather"]

F64 = NDArray[np.float64]
VARS = ("ghi_w_m2", "temp_c", "wind_m_s")


@dataclass(frozen=True, slots=True)
class WeatherError:
    ghi_sigma0: float = 0.05
    ghi_sigma_per_24h: float = 0.15
    temp_sigma0_c: float = 0.3
    temp_sigma_per_24h_c: float = 1.2
    wind_sigma0: float = 0.10
    wind_sigma_per_24h: float = 0.20
    rho_per_h: float = 0.8
    lead_cap_h: float = 48.0
    scale: float = 1.0

    def sigma(self, var: str, lead_h: F64) -> F64:
        s0, s24 = {"ghi_w_m2": (self.ghi_sigma0, self.ghi_sigma_per_24h),
                   "temp_c": (self.temp_sigma0_c, self.temp_sigma_per_24h_c),
                   "wind_m_s": (self.wind_sigma0, self.wind_sigma_per_24h)}[var]
        out: F64 = self.scale * (s0 + s24 * np.minimum(lead_h, self.lead_cap_h) / 24.0)
        return out


def _ar1(rng: np.random.Generator, n: int, phi: float) -> F64:
    e = rng.standard_normal(n)
    z = np.empty(n)
    z[0] = e[0]
    s = np.sqrt(1.0 - phi * phi)
    for i in range(1, n):
        z[i] = phi * z[i - 1] + s * e[i]
    return z


def forecast_weather(actual: Callable[[float], Mapping[str, float]], issue_ts: float, step_s: float,
                     n_steps: int, seed: int, model: WeatherError) -> dict[str, F64]:
    """Forecast of ``VARS`` at the middle of each of ``n_steps`` steps from ``issue_ts``."""
    mids = issue_ts + (np.arange(n_steps) + 0.5) * step_s
    act = [actual(float(t)) for t in mids]
    lead_h = (mids - issue_ts) / 3600.0
    phi = model.rho_per_h ** (step_s / 3600.0)
    out: dict[str, F64] = {}
    for i, var in enumerate(VARS):
        a = np.array([float(w[var]) for w in act])
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(issue_ts // 900), i])
        z = _ar1(rng, n_steps, phi)
        sig = model.sigma(var, lead_h)
        if var == "temp_c":
            out[var] = a + sig * z
        else:
            out[var] = np.maximum(a * (1.0 + sig * z), 0.0)
        out[var + ":actual"] = a
    out["ts"] = mids
    return out
