"""The forecaster in the daemon: ONNX models with baseline fallback, hot swap and live skill.

``Forecaster.update(ts, history, weather)`` is called every tick and does work
only when the 15-min step rolls over. It reads no clock: the time comes in as
an argument. The only I/O is a stat of each model file at rollover (to pick
up a new model dropped in) and loading one when it changed.

The P10-P90 interval is the card's conformal calibration, adapted online to
the misses of the intervals issued before (``AdaptiveInterval``); each model
file starts from the card's shifts when it is loaded. P50 is the model's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from edge.forecast.calibration import AdaptiveInterval, postprocess
from edge.forecast.features import (
    DAY,
    HISTORY_STEPS,
    HORIZON,
    STEP_S,
    StepContext,
    baseline,
    context_for_utc,
    feature_rows,
)
from edge.forecast.holidays import known_year
from edge.forecast.models import LoadedModel, ModelError, card_path, file_signature, load_model

__all__ = ["TARGETS", "Forecast", "Forecaster", "TargetForecast"]

F64 = NDArray[np.float64]
TARGETS = ("pv", "wind", "office", "hospital", "data_centre", "heating", "cooling",
           "electric_total", "park_b_buildings", "park_b_heating", "park_b_cooling")
_GENERATION = frozenset({"pv", "wind"})
# Used when a model's card is missing too; otherwise the card's validated choice.
_DEFAULT_BASELINE = {"pv": "clear_sky_yesterday", "wind": "last_value"}
# A model that needs no weather forecast, used when the target's own model lacks it.
_NO_WEATHER_VARIANT = {"pv": "pv_clearsky", "wind": "wind_history"}
_SKILL_STEPS = 7 * DAY
# The skill guard: a model whose live nMAE is above GUARD_OFF x its baseline's, over at
# least GUARD_MIN_STEPS realised steps of the last week, stands down for the baseline;
# it comes back once it is below GUARD_ON x the baseline's (it keeps running, scored).
# When Park B's loads were forecast by models trained on other buildings (Park A's office
# and cooling; it has its own park_b_* models now), in January the cooling model said 4 MW
# against 0.3 MW, 10x the naive forecast's error, and the controller kept a 96 MWh ice
# store full for it.
#
# The comparison needs GUARD_MIN_STEPS (three days) of evidence: over one day, a day the
# baseline happened to get right benched a sound model. Park B's 6 July 2026, a cool day
# in the load series, came in at 100 MWh of cooling against the model's 180 and
# yesterday's 100; the guard put "yesterday" in force for the 7th, which forecast the cool
# day again (104 MWh against 173), and PV's model likewise. A model that is plainly broken,
# its error above the load itself (GUARD_GROSS_NMAE, the 10x case above), still stands
# down after GUARD_FAST_STEPS (a day). Park B summer at 15-min steps 1,034,697 ->
# 1,034,381 CNY (seed 0; seed 1 -222), Park A summer 295,981 -> 294,729, winter windows
# within 20 CNY (models/README.md, "The skill guard").
GUARD_OFF = 1.25
GUARD_ON = 1.05
GUARD_MIN_STEPS = 3 * DAY
GUARD_FAST_STEPS = DAY
GUARD_GROSS_NMAE = 1.0
_MAX_GAP = 4  # steps of missing history filled by interpolation


@dataclass(frozen=True, slots=True)
class TargetForecast:
    """One target's forecast: ``HORIZON`` steps, kW (thermal kW for heat and cooling)."""

    target: str
    p10_kw: F64
    p50_kw: F64
    p90_kw: F64
    source: str  # "model", "model:<variant>" (e.g. pv_clearsky without weather) or "baseline:<name>"
    reason: str  # why a baseline or a variant is in force; "" for the model


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecasts in force; step k covers [origin_ts + k*step_s, origin_ts + (k+1)*step_s)."""

    origin_ts: float
    step_s: int
    targets: Mapping[str, TargetForecast]

    def step_starts(self) -> F64:
        return self.origin_ts + self.step_s * np.arange(HORIZON, dtype=np.float64)


@dataclass
class _Skill:
    """Live errors of what was in force, the baseline and the model (when it ran), per
    realised step over the last week: the model is scored even while it stands down."""

    # (origin step, P50 in force, baseline P50, model P50 or None)
    issued: deque[tuple[int, F64, F64, F64 | None]] = field(
        default_factory=lambda: deque(maxlen=HORIZON))
    # (abs error in force, baseline, n; model abs error, model's baseline abs error, n_model; |y| n)
    steps: deque[tuple[float, float, int, float, float, int, float]] = field(
        default_factory=lambda: deque(maxlen=_SKILL_STEPS))

    def observe(self, step: int, actual_kw: float) -> None:
        em = eb = emod = ebmod = 0.0
        n = nmod = 0
        for origin, p50, base, model in self.issued:
            k = step - origin
            if 0 <= k < HORIZON:
                em += abs(float(p50[k]) - actual_kw)
                eb += abs(float(base[k]) - actual_kw)
                n += 1
                if model is not None:
                    emod += abs(float(model[k]) - actual_kw)
                    ebmod += abs(float(base[k]) - actual_kw)
                    nmod += 1
        if n:
            self.steps.append((em, eb, n, emod, ebmod, nmod, abs(actual_kw) * n))

    def model_vs_baseline(self) -> tuple[float, float, int] | None:
        """Model and baseline mean abs error (kW) on the same forecasts, and the realised
        steps they cover; None before any."""
        emod = sum(s[3] for s in self.steps)
        eb = sum(s[4] for s in self.steps)
        n = sum(s[5] for s in self.steps)
        covered = sum(1 for s in self.steps if s[5])
        if not n:
            return None
        return emod / n, eb / n, covered

    def mean_abs_actual_kw(self) -> float:
        """Mean |actual| (kW) over the realised steps, each weighted as its forecasts are."""
        n = sum(s[2] for s in self.steps)
        return sum(s[6] for s in self.steps) / n if n else 0.0

    def summary(self, norm_kw: float | None) -> dict[str, float | int | None]:
        em = sum(s[0] for s in self.steps)
        eb = sum(s[1] for s in self.steps)
        n = sum(s[2] for s in self.steps)
        norm = norm_kw if norm_kw else self.mean_abs_actual_kw()
        if not n or norm <= 0:
            return {"nmae_in_force": None, "nmae_baseline": None, "nmae_model": None, "samples": n}
        mvb = self.model_vs_baseline()
        return {"nmae_in_force": em / n / norm, "nmae_baseline": eb / n / norm,
                "nmae_model": mvb[0] / norm if mvb is not None else None, "samples": n}


@dataclass
class _Target:
    name: str
    path: Path
    model: LoadedModel | None = None
    signature: tuple[int, ...] = ()
    baseline: str = "last_week"
    residual_q: list[list[float]] | None = None  # scaled, per lead bucket
    scale_kw: float = 1.0
    source: str = "baseline"
    reason: str = ""
    refresh_total: int = 0
    fallback_total: dict[str, int] = field(default_factory=dict)
    swap_total: int = 0
    swap_rejected_total: int = 0
    last_swap_error: str = ""
    inference_seconds: float = 0.0
    skill: _Skill = field(default_factory=_Skill)
    site_scale_kw: float | None = None        # Forecaster(site_scale_kw=): overrides the card's
    interval: AdaptiveInterval | None = None  # the model's interval calibration, adapted live
    benched: bool = False                     # the skill guard has the baseline in force


class Forecaster:
    """Every target's 24 h forecast, refreshed at each step rollover."""

    def __init__(
        self,
        model_dir: Path,
        *,
        timezone: str,
        latitude: float,
        longitude: float,
        country: str = "CN",
        targets: Sequence[str] = TARGETS,
        site_scale_kw: Mapping[str, float] | None = None,
    ) -> None:
        """``site_scale_kw``: per target, this site's kW for the model's ``scale_kw`` (a PV
        plant's or wind farm's AC rating, a load's peak). The model then runs on the site's
        history over that scale and its output is scaled back by it, so a model trained on
        another plant's size forecasts this one's. Default: the card's own scale."""
        self.model_dir = Path(model_dir)
        scales = dict(site_scale_kw or {})
        for name, kw in scales.items():
            if not (math.isfinite(kw) and kw > 0):
                raise ValueError(f"site_scale_kw.{name}: must be a positive kW, got {kw!r}")
        self.tz = ZoneInfo(timezone)
        self.country = country
        self.latitude = latitude
        self.longitude = longitude
        self._targets = {t: _Target(t, self.model_dir / f"{t}.onnx",
                                    baseline=_DEFAULT_BASELINE.get(t, "last_week"),
                                    site_scale_kw=scales.get(t))
                         for t in targets}
        self._variants = {t: _Target(v, self.model_dir / f"{v}.onnx", site_scale_kw=scales.get(t))
                          for t, v in _NO_WEATHER_VARIANT.items() if t in self._targets}
        self._step: int | None = None
        self._last: Forecast | None = None
        self.notes: list[str] = []
        for t in [*self._targets.values(), *self._variants.values()]:
            self._reload(t, at_start=True)

    # ------------------------------------------------------------ models

    def _reload(self, t: _Target, at_start: bool = False) -> None:
        sig = file_signature(t.path)
        if not at_start and sig == t.signature:
            return
        t.signature = sig
        try:
            model = load_model(t.path)
        except ModelError as exc:
            if t.model is not None:  # keep the model in force; the new file is refused
                t.swap_rejected_total += 1
                t.last_swap_error = str(exc)
            else:
                t.reason = str(exc)
            self._read_fallback(t)
            return
        if model.target != t.name:
            msg = f"{card_path(t.path)}: card is for target {model.target!r}, not {t.name!r}"
            if t.model is not None:
                t.swap_rejected_total += 1
                t.last_swap_error = msg
            else:
                t.reason = msg
            return
        if t.model is not None:
            t.swap_total += 1
        if t.site_scale_kw is not None:
            model = replace(model, scale_kw=t.site_scale_kw)
        t.model = model
        t.skill = _Skill()           # a new model is scored afresh
        t.benched = False
        t.interval = AdaptiveInterval(model.interval, HORIZON)
        t.last_swap_error = ""
        t.scale_kw = model.scale_kw
        self._read_fallback(t)

    @staticmethod
    def _read_fallback(t: _Target) -> None:
        card: Mapping[str, Any] | None = t.model.card if t.model else None
        if card is None:
            try:
                import json

                card = json.loads(card_path(t.path).read_text())
            except (OSError, ValueError):
                return
        try:
            fb = card["fallback"]
            t.baseline = str(fb["baseline"])
            t.residual_q = [[float(a), float(b)] for a, b in fb["residual_quantiles_scaled"]]
            t.scale_kw = t.site_scale_kw or float(card["scale_kw"])
        except (KeyError, TypeError, ValueError):
            pass

    # ------------------------------------------------------------ refresh

    def update(self, ts: float, history: Mapping[str, Sequence[float] | F64],
               weather: Mapping[str, Sequence[float] | F64] | None = None) -> Forecast:
        """The forecast in force at UTC ``ts``; recomputed only when the step rolls over.

        ``history[target]`` holds the measured mean kW of the steps before the
        current one, oldest first, the last entry being the step that just
        ended (NaN where unknown); at least a week is needed for the models.
        ``weather`` holds the plan's forecast for the next ``HORIZON`` steps
        (``ghi_w_m2``, ``temp_c``).
        """
        step = math.floor(ts / STEP_S)
        if self._last is not None and step == self._step:
            return self._last
        return self.refresh(step, history, weather)

    def refresh(self, step: int, history: Mapping[str, Sequence[float] | F64],
                weather: Mapping[str, Sequence[float] | F64] | None = None) -> Forecast:
        self._step = step
        ctx = context_for_utc(step - DAY, DAY + HORIZON, self.tz, self.country,
                              self.latitude, self.longitude)
        year = int(np.datetime64(int(step * STEP_S), "s").astype("datetime64[Y]").astype(int)) + 1970
        self.notes = [] if known_year(self.country, year) else [
            f"no holiday table for {self.country} {year}: weekends only"]
        hist = dict(history)
        parts = ("office", "hospital", "data_centre")
        if "electric_total" not in hist and all(p in hist for p in parts):
            arrays = [np.asarray(hist[p], dtype=np.float64) for p in parts]
            n = min(len(a) for a in arrays)
            hist["electric_total"] = sum(a[len(a) - n:] for a in arrays)  # type: ignore[assignment]
        out = {}
        for v in self._variants.values():
            self._reload(v)
        for t in self._targets.values():
            self._reload(t)
            out[t.name] = self._one(t, step, ctx, hist.get(t.name), weather)
        self._last = Forecast(float(step * STEP_S), STEP_S, out)
        return self._last

    def _one(self, t: _Target, step: int, ctx: StepContext,
             history: Sequence[float] | F64 | None, weather: Mapping[str, Any] | None
             ) -> TargetForecast:
        t.refresh_total += 1
        y_kw = _prepare_history(history)
        v = self._variants.get(t.name)
        if len(y_kw) and np.isfinite(y_kw[-1]):
            t.skill.observe(step - 1, float(y_kw[-1]))
            for owner in (t, v):
                if owner is not None and owner.model is not None and owner.interval is not None:
                    owner.interval.observe(step - 1, float(y_kw[-1]) / owner.model.scale_kw)
        leads = np.arange(1, HORIZON + 1, dtype=np.int64)
        origins = np.full(HORIZON, step, dtype=np.int64)
        y_first = step - len(y_kw)
        base = self._baseline(t, y_kw, y_first, ctx, origins, leads)
        reason, category = "", ""
        fc: TargetForecast | None = None
        if t.model is None:
            reason, category = t.reason or f"{t.path}: model file missing", "missing"
        else:
            m, owner = t.model, t
            wx, why = _weather_for(m, weather)
            if why and v is not None and v.model is not None and not v.model.requires_weather:
                m, wx, owner = v.model, {}, v  # the no-weather variant: a model, though a weaker one
                reason = f"{t.name}: {why}: {v.name} model (clear sky and history) in force"
            if why and m is t.model:
                reason, category = f"{t.name}: lacks inputs: {why}", "lacks_inputs"
            elif len(y_kw) < HISTORY_STEPS or not np.isfinite(y_kw[-HISTORY_STEPS:]).all():
                reason = (f"{t.name}: lacks inputs: history needs {HISTORY_STEPS} steps without "
                          f"gaps over {_MAX_GAP}, has {int(np.isfinite(y_kw).sum())} of {len(y_kw)}")
                category = "lacks_inputs"
            else:
                note = reason
                fc, reason = self._run(t, owner, m, step, y_kw, y_first, ctx, origins, leads, wx)
                category = "inference_error" if fc is None else ""
                if fc is not None and m is not t.model:
                    t.fallback_total["no_weather_variant"] = (
                        t.fallback_total.get("no_weather_variant", 0) + 1)
                    fc = TargetForecast(t.name, fc.p10_kw, fc.p50_kw, fc.p90_kw,
                                        f"model:{m.target}", note)
        model_p50 = fc.p50_kw if fc is not None else None
        if fc is not None:
            why = self._guard(t)
            if why:
                fc, reason, category = None, why, "skill"
        if fc is None:
            t.fallback_total[category] = t.fallback_total.get(category, 0) + 1
            t.source, t.reason = f"baseline:{t.baseline}", reason
            fc = TargetForecast(t.name, base[0], base[1], base[2], t.source, reason)
        else:
            t.source, t.reason = fc.source, fc.reason
        t.skill.issued.append((step, fc.p50_kw, base[1], model_p50))
        return fc

    @staticmethod
    def _guard(t: _Target) -> str:
        """Why the model stands down for its baseline (the skill guard), or ""."""
        mvb = t.skill.model_vs_baseline()
        if mvb is None or mvb[2] < GUARD_FAST_STEPS:
            return ""
        model_kw, base_kw, steps = mvb
        factor = GUARD_ON if t.benched else GUARD_OFF
        load_kw = t.skill.mean_abs_actual_kw()
        broken = model_kw > GUARD_GROSS_NMAE * load_kw
        # under GUARD_MIN_STEPS of evidence only a plainly broken model stands down; once
        # down, it comes back on the comparison alone (GUARD_ON)
        few = not t.benched and steps < GUARD_MIN_STEPS
        t.benched = model_kw > factor * base_kw and (broken or not few)
        if not t.benched:
            return ""
        why = f" and above the load's own mean {load_kw:.1f} kW" if few else ""
        return (f"{t.name}: skill: the model's live mean error {model_kw:.1f} kW over the last "
                f"{steps} steps is above {factor:.2f}x the {t.baseline} baseline's "
                f"{base_kw:.1f} kW{why}; baseline in force until the model is back under "
                f"{GUARD_ON:.2f}x")

    def _run(self, t: _Target, owner: _Target, m: LoadedModel, step: int, y_kw: F64, y_first: int,
             ctx: StepContext, origins: NDArray[np.int64], leads: NDArray[np.int64], wx: Mapping[str, F64]
             ) -> tuple[TargetForecast | None, str]:
        """Model ``m`` (``owner``'s: the target's own or its no-weather variant) for ``t``."""
        import time

        x = feature_rows(m.features, y_kw / m.scale_kw, y_first, ctx, origins, leads, wx)
        t0 = time.perf_counter()  # a duration for metrics, never a decision input
        try:
            raw = m.session.run([m.output_name], {m.input_name: x})[0]
        except Exception as exc:  # onnxruntime's own exception types
            return None, f"{m.path}: inference failed: {' '.join(str(exc).split())[:160]}"
        t.inference_seconds = time.perf_counter() - t0
        dark = (ctx.ghi_cs_w_m2[origins + leads - 1 - ctx.first] <= 0.0
                if m.zero_without_sun else None)
        adapt = owner.interval if owner.interval is not None else AdaptiveInterval(m.interval, HORIZON)
        q = postprocess(raw, adapt.shifts(leads), m.clip_scaled, dark)
        if not np.isfinite(q).all():
            return None, f"{m.path}: model returned non-finite values"
        adapt.issue(step, q[:, 0], q[:, 2], None if dark is None else ~dark)
        q = q * m.scale_kw
        return TargetForecast(t.name, q[:, 0], q[:, 1], q[:, 2], "model", ""), ""

    def _baseline(self, t: _Target, y_kw: F64, y_first: int, ctx: StepContext,
                  origins: NDArray[np.int64], leads: NDArray[np.int64]) -> tuple[F64, F64, F64]:
        """The fallback as (P10, P50, P90) kW; degrades to the last value, then zero."""
        p50 = np.full(HORIZON, np.nan)
        need = {"yesterday": DAY, "clear_sky_yesterday": DAY, "last_week": HISTORY_STEPS,
                "last_value": 1}.get(t.baseline, HISTORY_STEPS)
        if len(y_kw) >= need:
            p50 = baseline(t.baseline, y_kw, y_first, ctx, origins, leads)
        if not np.isfinite(p50).all():
            last = y_kw[np.isfinite(y_kw)][-1:] if len(y_kw) else y_kw[:0]
            p50 = np.where(np.isfinite(p50), p50, float(last[0]) if len(last) else 0.0)
        if t.residual_q is not None:
            ends = np.asarray([24, 48, 96])
            r = np.asarray(t.residual_q)[np.searchsorted(ends, leads)] * t.scale_kw
            p10, p90 = p50 + r[:, 0], p50 + r[:, 1]
        else:
            p10, p90 = p50.copy(), p50.copy()
        q = np.sort(np.clip(np.column_stack([p10, p50, p90]), 0.0, None), axis=1)
        return q[:, 0], q[:, 1], q[:, 2]

    # ------------------------------------------------------------ state

    @property
    def forecast(self) -> Forecast | None:
        return self._last

    def state(self) -> dict[str, Any]:
        """Per target: what is in force and why, counters and live skill (JSON-able)."""
        out: dict[str, Any] = {"step_s": STEP_S, "notes": list(self.notes), "targets": {}}
        for t in self._targets.values():
            norm = t.scale_kw if t.name in _GENERATION else None
            skill: dict[str, Any] = dict(t.skill.summary(norm))
            skill["interval"] = self._interval_state(t)
            v = self._variants.get(t.name)
            if v is not None and v.interval is not None and v.interval.updates:
                skill["interval_variant"] = self._interval_state(v)
            out["targets"][t.name] = {
                "source": t.source,
                "reason": t.reason,
                "model_file": str(t.path),
                "model_sha256": t.model.sha256 if t.model else None,
                "baseline": t.baseline,
                "refresh_total": t.refresh_total,
                "fallback_total": dict(t.fallback_total),
                "swap_total": t.swap_total,
                "swap_rejected_total": t.swap_rejected_total,
                "last_swap_error": t.last_swap_error,
                "inference_seconds": t.inference_seconds,
                "skill": skill,
            }
        return out

    @staticmethod
    def _interval_state(t: _Target) -> dict[str, Any] | None:
        """The model's P10-P90 calibration in force: card shifts plus live offsets, live coverage."""
        if t.model is None or t.interval is None:
            return None
        return {"model": t.model.target, **t.interval.state(t.model.scale_kw)}


def _prepare_history(history: Sequence[float] | F64 | None) -> F64:
    """As float array, short gaps (<= _MAX_GAP steps) filled linearly; longer gaps stay NaN."""
    if history is None:
        return np.zeros(0)
    y = np.asarray(history, dtype=np.float64).copy()
    bad = ~np.isfinite(y)
    if not bad.any() or bad.all():
        return y
    idx = np.arange(len(y))
    filled = np.interp(idx, idx[~bad], y[~bad])
    # runs of NaN longer than _MAX_GAP stay missing; so do leading/trailing runs
    run_start = None
    for i in range(len(y) + 1):
        if i < len(y) and bad[i]:
            run_start = i if run_start is None else run_start
            continue
        if run_start is not None:
            inner = run_start > 0 and i < len(y)
            if inner and i - run_start <= _MAX_GAP:
                y[run_start:i] = filled[run_start:i]
            run_start = None
    return y


def _weather_for(m: LoadedModel, weather: Mapping[str, Any] | None) -> tuple[dict[str, F64], str]:
    out: dict[str, F64] = {}
    for key in m.requires_weather:
        if weather is None or key not in weather:
            return {}, f"no weather forecast '{key}' in the plan"
        v = np.asarray(weather[key], dtype=np.float64)
        if v.shape != (HORIZON,) or not np.isfinite(v).all():
            return {}, f"weather '{key}' must be {HORIZON} finite values, got shape {v.shape}"
        out[key] = v
    return out, ""
