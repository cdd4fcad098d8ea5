"""Train, evaluate and export the forecasters: ``python -m models.train --all``.

Per target: a direct model with the lead as a feature (one row per origin and
lead), three HistGradientBoosting quantile regressors (P10, P50, P90) merged
into one ONNX graph. The split is chronological, by target step:

- ``[0, 60 %)``, train: the calibration model is fitted here;
- ``[60 %, 80 %)``, calibration: that model's out-of-sample errors give the
  conformal shifts of P10 and P90 per lead bucket (CQR: the P10-P90 interval
  covers 80 % of the slice; for PV over steps with the sun up only). The
  shipped model is then refitted with the same settings on train and
  calibration, ``[0, 80 %)``, as before, so its P50 is unchanged; the fallback
  baseline and its residual quantiles are chosen on ``[1 week, 80 %)``;
- ``[80 %, 100 %)``: the held-out part, which no fit, calibration or choice
  has seen: every metric in the card is measured there, the intervals as
  issued by the card's shifts alone and as the runtime issues them (the same
  shifts, adapted online to the misses of the intervals issued before, which
  uses only steps already realised).

Training is deterministic (fixed seeds for the row sampling and every
estimator, one OpenMP thread): ``python -m models.train --check --all``
retrains into a temporary directory and compares the new ONNX outputs with the
shipped ones on the held-out rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two shared cores; also keeps fits bit-identical

import numpy as np
import onnx
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor

from edge.forecast.calibration import (
    MAX_SHIFT_SCALED,
    AdaptiveInterval,
    IntervalCalibration,
    parse_calibration,
    postprocess,
)
from edge.forecast.features import (
    BASELINES,
    HORIZON,
    WEEK,
    feature_rows,
)
from models import onnx_export
from models.cards import write_markdown
from models.data import Series, load_series

OUT = Path(__file__).resolve().parent
QUANTILES = (0.1, 0.5, 0.9)
BUCKETS = ((1, 24), (25, 48), (49, 96))  # leads in steps: 0-6 h, 6-12 h, 12-24 h
SPLIT = (0.6, 0.8)  # train | calibration | test (held out), by target step
SEED = 20260329
N_TRAIN_ROWS = 120_000
N_BASELINE_ROWS = 120_000  # rows drawn over [1 week, 80 %) to choose the fallback baseline
ALPHA = 0.2  # the P10-P90 interval misses 20 %, 10 % in each tail where a tail can take it
# Online adaptation, per lead bucket, in units of the bucket's mean raw P90-P10 width on the
# calibration slice: the offsets move by GAIN x (share missed - target) per realised step and
# stay within BOUND widths. Chosen on the fitting period before the held-out part was scored:
# shifts from one block of about 2.5 months replayed over the next one, all nine targets.
ADAPT_GAIN = 0.01
ADAPT_BOUND = 1.0
MAPE_FLOOR = 0.01  # scaled: MAPE leaves out steps whose actual is below 1 % of scale_kw
CHECK_TOL = 1e-4  # scaled units: reproduction tolerance on the ONNX outputs
PARAMS: dict[str, Any] = {"max_iter": 120, "learning_rate": 0.12, "max_leaf_nodes": 31,
                          "min_samples_leaf": 40, "l2_regularization": 1.0, "early_stopping": False}

_CAL = ["lead_h", "hour_sin", "hour_cos", "weekday", "holiday", "day_off", "day_off_yday"]
_HIST = ["y_last", "y_1h", "y_mean24", "y_day", "y_week"]
FEATURES: dict[str, list[str]] = {
    "pv": ["lead_h", "hour_sin", "hour_cos", "cos_zenith", "pcs", "y_last", "y_1h", "y_day",
           "k_day", "k_recent", "fc_ghi", "fc_k", "fc_temp_c"],
    # PV without the plan's weather: clear sky and the target's own history only
    "pv_clearsky": ["lead_h", "hour_sin", "hour_cos", "cos_zenith", "pcs", "y_last", "y_1h",
                    "y_mean24", "y_day", "k_day", "k_recent"],
    # wind: the plan's wind speed forecast; wind_history: without it (history only)
    "wind": ["lead_h", "hour_sin", "hour_cos", "y_last", "y_1h", "y_mean24", "y_day", "fc_wind_m_s"],
    "wind_history": ["lead_h", "hour_sin", "hour_cos", "y_last", "y_1h", "y_mean24", "y_day"],
    "cooling": _CAL + _HIST + ["fc_temp_c"],
    "heating": _CAL + _HIST + ["fc_temp_c"],
    "data_centre": _CAL + _HIST + ["fc_temp_c"],
    "office": _CAL + _HIST,
    "hospital": _CAL + _HIST,
    "electric_total": _CAL + _HIST,
    # Park B's loads, on its own simulated year: as Park A's office, heating and cooling
    "park_b_buildings": _CAL + _HIST,
    "park_b_heating": _CAL + _HIST + ["fc_temp_c"],
    "park_b_cooling": _CAL + _HIST + ["fc_temp_c"],
}
TARGETS = tuple(FEATURES)
GENERATION = {"pv", "pv_clearsky", "wind", "wind_history"}
THERMAL = {"heating", "cooling", "park_b_heating", "park_b_cooling"}
SOLAR = {"pv", "pv_clearsky"}


def _weather_rows(s: Series, origins: np.ndarray, leads: np.ndarray) -> dict[str, np.ndarray]:
    """The freshest forecast a plan could carry for each row's target step."""
    out = {}
    for key, by_lead in s.forecasts.items():
        t = origins + leads - 1
        v = np.where(leads <= 24, by_lead[6][t], np.where(leads <= 48, by_lead[12][t], by_lead[24][t]))
        out[key] = v
    return out


def _rows(s: Series, origins: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yn = s.y_kw / s.scale_kw
    a_o = origins + s.first_step
    x = feature_rows(FEATURES[s.target], yn, s.first_step, s.ctx, a_o, leads,
                     _weather_rows(s, origins, leads))
    return x, yn[origins + leads - 1]


def _splits(n: int) -> tuple[int, int]:
    return int(n * SPLIT[0]), int(n * SPLIT[1])


def _all_pairs(lo: int, hi: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``every``-th origin in [lo, hi - HORIZON] with all leads (targets stay below hi)."""
    o = np.arange(max(lo, WEEK), hi - HORIZON + 1, every)
    leads = np.tile(np.arange(1, HORIZON + 1), len(o))
    return np.repeat(o, HORIZON), leads


def _baseline_rows(s: Series, name: str, origins: np.ndarray, leads: np.ndarray) -> np.ndarray:
    from edge.forecast.features import baseline

    return baseline(name, s.y_kw / s.scale_kw, s.first_step, s.ctx, origins + s.first_step, leads)


def _bucket_index(leads: np.ndarray) -> np.ndarray:
    return np.searchsorted([b[1] for b in BUCKETS], leads)


def _sun_up(s: Series, origins: np.ndarray, leads: np.ndarray) -> np.ndarray | None:
    """For PV, the rows whose target step has the sun above the horizon; None otherwise."""
    if s.target not in SOLAR:
        return None
    return np.asarray(s.ctx.ghi_cs_w_m2[origins + leads - 1] > 0.0)


def _metrics(y: np.ndarray, q: np.ndarray, norm: float, load: bool, scale: float,
             cov_mask: np.ndarray | None = None) -> dict[str, float]:
    """y and q in units of scale; norm in kW; coverage over ``cov_mask`` rows when given."""
    e = (q[:, 1] - y) * scale
    out = {"nmae": float(np.abs(e).mean() / norm), "bias_kw": float(e.mean()),
           "mae_kw": float(np.abs(e).mean())}
    if load:  # over the steps whose actual is at least MAPE_FLOOR of scale (heat can be 0)
        m_pos = y >= MAPE_FLOOR
        out["mape"] = float(np.mean(np.abs(e[m_pos]) / (y[m_pos] * scale)))
    pin = 0.0
    for i, tau in enumerate(QUANTILES):
        d = (y - q[:, i]) * scale
        pin += float(np.mean(np.maximum(tau * d, (tau - 1) * d)))
    out["pinball_norm"] = pin / len(QUANTILES) / norm
    inside = (y >= q[:, 0]) & (y <= q[:, 2])
    m = np.ones(len(y), dtype=bool) if cov_mask is None else cov_mask
    out["coverage_p10_p90"] = float(np.mean(inside[m]))
    if cov_mask is not None:
        out["coverage_p10_p90_all_steps"] = float(np.mean(inside))
    return out


def _conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The split-conformal (1 - alpha) quantile: rank ceil((n + 1)(1 - alpha)) of n."""
    n = len(scores)
    if n == 0:
        return 1.0
    level = min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)
    return float(np.quantile(scores, level, method="higher"))


def _scores(y: np.ndarray, q: np.ndarray, clip: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Conformal scores of the interval as ``postprocess`` issues it, for each side.

    y lies inside the issued lower bound min(clip(P10 + d), P50) iff d <= -s_lo,
    inside the upper one max(clip(P90 + d), P50) iff d >= s_hi (P50 clipped).
    A side that cannot miss (y on P50's other side, or a bound clipped to y's
    physical limit) scores -inf; a side no shift can reach, +inf.
    """
    mid = np.clip(q[:, 1], *clip)
    s_lo = np.where(y < mid, np.where(y < clip[0], np.inf, q[:, 0] - y), -np.inf)
    s_hi = np.where(y > mid, np.where(y > clip[1], np.inf, y - q[:, 2]), -np.inf)
    return s_lo, s_hi


def _calibrate(y: np.ndarray, q: np.ndarray, leads: np.ndarray, mask: np.ndarray | None,
               clip: tuple[float, float]) -> dict[str, Any]:
    """Per lead bucket, signed shifts of P10 and P90 (scaled) for ALPHA outside the interval.

    Asymmetric CQR (Romano et al. 2019) on the scores of the interval as
    issued: the lower shift leaves ALPHA/2 below P10 at the conformal rank;
    the upper one leaves above P90 what the lower tail could not take. When
    the lower scores pile up on a point mass (wind: P10 is 0 kW and a third of
    the steps are exactly 0 kW) no lower bound misses just ALPHA/2: P10 stays
    where it is and the upper bound takes the whole ALPHA. Shifts are bounded
    by MAX_SHIFT_SCALED (a bound shrunk that far sits on P50).
    """
    shifts, miss, width = [], [], []
    b = _bucket_index(leads)
    keep = np.ones(len(y), dtype=bool) if mask is None else mask
    s_lo_all, s_hi_all = _scores(y, q, clip)
    for i in range(len(BUCKETS)):
        m = (b == i) & keep
        s_lo, s_hi = s_lo_all[m], s_hi_all[m]
        e_lo = _conformal_quantile(s_lo, ALPHA / 2)
        miss_lo = float(np.mean(s_lo > e_lo))
        e_hi = _conformal_quantile(s_hi, ALPHA - miss_lo)
        shifts.append([float(np.clip(-e_lo, -MAX_SHIFT_SCALED, MAX_SHIFT_SCALED)),
                       float(np.clip(e_hi, -MAX_SHIFT_SCALED, MAX_SHIFT_SCALED))])
        miss.append([miss_lo, ALPHA - miss_lo])
        width.append(float(np.mean(q[m, 2] - q[m, 0])))
    return {"shifts": shifts, "target_miss": miss, "raw_width": width}


def calibrated(q: np.ndarray, leads: np.ndarray, cal: IntervalCalibration, clip: tuple[float, float],
               dark: np.ndarray | None) -> np.ndarray:
    """The card's static shifts applied as the runtime applies them (no online offsets)."""
    return postprocess(q, AdaptiveInterval(cal, HORIZON).shifts(leads), clip, dark)


def replay(q: np.ndarray, origins: np.ndarray, leads: np.ndarray, yn: np.ndarray, cal: IntervalCalibration,
           clip: tuple[float, float], dark: np.ndarray | None) -> np.ndarray:
    """The intervals as the runtime issues them, over rows sorted by origin with leads 1..HORIZON.

    Origin by origin in time order: every step realised before the origin is
    observed first (``yn`` is the series in scaled units, indexed like the
    origins), then the origin's intervals are issued with the offsets learnt
    so far, as ``Forecaster`` does at each step (here at the rows' origins).
    """
    ad = AdaptiveInterval(cal, HORIZON)
    out = np.empty((len(q), 3))
    uo, starts = np.unique(origins, return_index=True)
    ends = np.append(starts[1:], len(origins))
    t = int(uo[0])
    for o, a, z in zip(uo, starts, ends, strict=True):
        if not np.array_equal(leads[a:z], np.arange(1, HORIZON + 1)) or not np.all(origins[a:z] == o):
            raise ValueError("replay needs rows grouped by origin with leads 1..HORIZON")
        for step in range(t, int(o)):
            ad.observe(step, float(yn[step]))
        t = int(o)
        d = None if dark is None else dark[a:z]
        out[a:z] = postprocess(q[a:z], ad.shifts(leads[a:z]), clip, d)
        ad.issue(int(o), out[a:z, 0], out[a:z, 2], None if d is None else ~d)
    return out


def _resid_quantiles(y: np.ndarray, b: np.ndarray, leads: np.ndarray) -> list[list[float]]:
    idx = _bucket_index(leads)
    return [[float(np.quantile(y[idx == i] - b[idx == i], ALPHA / 2)),
             float(np.quantile(y[idx == i] - b[idx == i], 1 - ALPHA / 2))] for i in range(len(BUCKETS))]


def _baseline_q(b: np.ndarray, leads: np.ndarray, rq: list[list[float]], clip: tuple[float, float],
                dark: np.ndarray | None) -> np.ndarray:
    r = np.asarray(rq)[_bucket_index(leads)]
    out = np.sort(np.clip(np.column_stack([b + r[:, 0], b, b + r[:, 1]]), clip[0], clip[1]), axis=1)
    if dark is not None:
        out[dark] = 0.0
    return out


def _fit(s: Series, hi: int, n_rows: int, seed: int, params: dict[str, Any],
         hole: tuple[int, int] | None = None) -> tuple[list[HistGradientBoostingRegressor], int]:
    """The three quantile models on random (origin, lead) rows whose targets lie below ``hi``.

    With ``hole`` no row's target, nor any history a row reads (a week back),
    falls in [hole[0], hole[1]). For PV only rows with the sun up at the
    target step are drawn.
    """
    rng = np.random.default_rng(seed)
    o = rng.integers(WEEK, hi - 1, size=n_rows * 3)
    ld = rng.integers(1, HORIZON + 1, size=n_rows * 3)
    t = o + ld - 1
    keep = t < hi
    if hole is not None:
        keep &= (t < hole[0]) | (o - WEEK >= hole[1])
    sun = _sun_up(s, o, ld)
    if sun is not None:  # PV: night steps are exactly 0 by postprocess, and with more than
        keep &= sun      # half the rows at 0 the P50 fit can collapse to 0
    o, ld = o[keep][:n_rows], ld[keep][:n_rows]
    x, y = _rows(s, o, ld)
    return [HistGradientBoostingRegressor(loss="quantile", quantile=qq, random_state=seed, **params)
            .fit(x, y) for qq in QUANTILES], len(y)


def _predict(models: list[HistGradientBoostingRegressor], x: np.ndarray) -> np.ndarray:
    return np.column_stack([m.predict(x) for m in models])


def test_rows(s: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The held-out rows: hourly origins in the final part, every lead (o, lead, x, y)."""
    n = len(s.y_kw)
    _, n_va = _splits(n)
    o_te, l_te = _all_pairs(n_va, n, 4)
    x_te, y_te = _rows(s, o_te, l_te)
    return o_te, l_te, x_te, y_te


def train_target(s: Series, out_dir: Path = OUT, n_train: int = N_TRAIN_ROWS,
                 params: dict[str, Any] | None = None) -> dict[str, Any]:
    t0 = time.time()
    n = len(s.y_kw)
    n_cal, n_va = _splits(n)
    load = s.target not in GENERATION
    clip = (0.0, float(s.y_kw.max() / s.scale_kw * (1.0 if not load else 1.5)))
    names = FEATURES[s.target]
    p = dict(PARAMS, **(params or {}))
    yn = s.y_kw / s.scale_kw

    # 1. the calibration model: the same settings fitted on the train part only;
    #    its errors on the calibration slice (hourly origins, every lead) are
    #    out of sample and give the conformal shifts
    cal_models, cal_fit_rows = _fit(s, n_cal, n_train, SEED + 10, p)
    o_ca, l_ca = _all_pairs(n_cal, n_va, 4)
    x_ca, y_ca = _rows(s, o_ca, l_ca)
    q_ca = _predict(cal_models, x_ca)
    sun_ca = _sun_up(s, o_ca, l_ca)
    found = _calibrate(y_ca, q_ca, l_ca, sun_ca, clip)
    width = np.asarray(found["raw_width"])
    block: dict[str, Any] = {
        "method": "split-conformal quantile regression (CQR, asymmetric), per lead bucket: "
                  "P10' = P10 + shift[0], P90' = P90 + shift[1] (model units, signed: the interval "
                  "may shrink as well as widen), then clipped to clip_scaled and held at or "
                  "below / above P50; P50 is the model's",
        "target_coverage": 1.0 - ALPHA,
        "lead_buckets": [list(b) for b in BUCKETS],
        "shifts_scaled": found["shifts"],
        "shifts_kw": [[round(a * s.scale_kw, 1), round(b * s.scale_kw, 1)] for a, b in found["shifts"]],
        "target_miss": found["target_miss"],
        "adaptive": {
            "method": "online, per lead bucket and side (adaptive conformal inference, quantile "
                      "tracking): after each realised step, offset += step_scaled x (share of the "
                      "intervals issued for it that missed on that side - target_miss), within "
                      "+-max_offset_scaled; offsets widen when positive and start at 0 when a "
                      "model is loaded",
            "gain": ADAPT_GAIN, "bound": ADAPT_BOUND,
            "step_scaled": [ADAPT_GAIN * w for w in width],
            "max_offset_scaled": [ADAPT_BOUND * w for w in width],
            "units": "gain and bound in units of the bucket's mean raw P90-P10 width on the "
                     "calibration slice; chosen on the fitting period before the held-out part "
                     "was scored",
        },
        "calibration_period": [s.date_of(n_cal), s.date_of(n_va - 1)],
        "calibration_model": "the shipped settings fitted on the train part only "
                             f"({s.date_of(0)} to {s.date_of(n_cal - 1)}); the shipped model is "
                             "refitted on train and calibration together, so P50 is that of the "
                             "model before calibration",
        "calibration_rows": int(len(y_ca) if sun_ca is None else sun_ca.sum()),
    }
    if sun_ca is not None:
        block["scored_steps"] = "sun above the horizon (at night the interval is exactly [0, 0])"
    low = [i for i, (a, _) in enumerate(found["target_miss"]) if a < ALPHA / 4]
    if low:
        block["note"] = (
            "interval calibrated to 80 % two-sided coverage. With a point mass at the lower bound "
            "(here: 0 kW, which P10 sits on) a lower bound above it misses every step at the mass "
            "at once, so the lower tail takes only its achieved share (target_miss[0]) and the upper "
            "bound the rest: P10 is not raised above 0 kW and P90 is not a calibrated 90 % quantile "
            f"(lead buckets {[list(BUCKETS[i]) for i in low]})")
    cal = parse_calibration(block, HORIZON)  # the runtime's own validation

    def coverage_by_bucket(y: np.ndarray, q: np.ndarray, leads: np.ndarray, m: np.ndarray | None
                           ) -> dict[str, float]:
        inside = (y >= q[:, 0]) & (y <= q[:, 2])
        keep = np.ones(len(y), dtype=bool) if m is None else m
        bi = _bucket_index(leads)
        return {"all": float(inside[keep].mean()),
                **{f"{lo}-{hi}": float(inside[keep & (bi == i)].mean()) for i, (lo, hi) in enumerate(BUCKETS)}}

    dark_ca = None if sun_ca is None else ~sun_ca
    zero = np.zeros((len(y_ca), 2))
    block["calibration_coverage"] = {
        "raw": coverage_by_bucket(y_ca, postprocess(q_ca, zero, clip, dark_ca), l_ca, sun_ca),
        "calibrated": coverage_by_bucket(y_ca, calibrated(q_ca, l_ca, cal, clip, dark_ca), l_ca, sun_ca)}

    # 2. the fallback baseline and its residual quantiles, over [1 week, 80 %)
    rng = np.random.default_rng(SEED + 2)
    o_va, l_va = _all_pairs(WEEK, n_va, 4)
    if len(o_va) > N_BASELINE_ROWS:
        pick = np.sort(rng.choice(len(o_va), N_BASELINE_ROWS, replace=False))
        o_va, l_va = o_va[pick], l_va[pick]
    y_va = yn[o_va + l_va - 1]
    sun_va = _sun_up(s, o_va, l_va)
    names_b = [b for b in BASELINES if b != "clear_sky_yesterday" or s.target in SOLAR]
    val_b = {b: _baseline_rows(s, b, o_va, l_va) for b in names_b}
    val_nmae = {b: float(np.abs(v - y_va).mean()) for b, v in val_b.items()}
    fallback = min(val_nmae, key=lambda b: val_nmae[b])
    resid = {b: _resid_quantiles(y_va if sun_va is None else y_va[sun_va],
                                 v if sun_va is None else v[sun_va],
                                 l_va if sun_va is None else l_va[sun_va])
             for b, v in val_b.items()}

    # 3. the shipped model: same settings, fitted on everything before the held-out part
    models, n_rows = _fit(s, n_va, n_train, SEED, p)
    fit_s = time.time() - t0

    # 4. the held-out final part, hourly origins, every lead
    o_te, l_te, x_te, y_te = test_rows(s)
    sun = _sun_up(s, o_te, l_te)
    dark = None if sun is None else ~sun
    raw_te = _predict(models, x_te)
    q_raw = postprocess(raw_te, np.zeros((len(y_te), 2)), clip, dark)
    q_static = calibrated(raw_te, l_te, cal, clip, dark)
    q_te = replay(raw_te, o_te, l_te, yn, cal, clip, dark)
    norm = s.scale_kw if not load else float(s.y_kw[n_va:].mean())
    bidx = _bucket_index(l_te)

    def metrics(rows: np.ndarray | slice, q: np.ndarray) -> dict[str, float]:
        return _metrics(y_te[rows], q[rows], norm, load, s.scale_kw,
                        None if sun is None else sun[rows])

    every = slice(None)
    res: dict[str, Any] = {"model": metrics(every, q_te), "model_static": metrics(every, q_static),
                           "model_uncalibrated": metrics(every, q_raw)}
    by_lead: dict[str, Any] = {}
    for k, q in (("model", q_te), ("model_static", q_static), ("model_uncalibrated", q_raw)):
        by_lead[k] = {f"{lo}-{hi}": metrics(bidx == i, q) for i, (lo, hi) in enumerate(BUCKETS)}
    for b in names_b:
        bq = _baseline_q(_baseline_rows(s, b, o_te, l_te), l_te, resid[b], clip, dark)
        res[b] = metrics(every, bq)
        by_lead[b] = {f"{lo}-{hi}": metrics(bidx == i, bq) for i, (lo, hi) in enumerate(BUCKETS)}
    if sun is not None:
        res["model_daylight"] = _metrics(y_te[sun], q_te[sun], norm, load, s.scale_kw)

    # export and check against scikit-learn
    model = onnx_export.export(models, len(names), f"Park Edge forecaster '{s.target}'")
    path = out_dir / f"{s.target}.onnx"
    raw = model.SerializeToString()
    path.write_bytes(raw)
    sample = x_te[np.random.default_rng(SEED + 3).choice(len(x_te), 2000, replace=False)]
    diff = onnx_export.max_abs_diff(model, models, sample)
    cov_note = ("P10-P90 coverage over the steps with the sun above the horizon (at night the "
                "interval is exactly [0, 0] and would inflate it; the all-steps figure is "
                "coverage_p10_p90_all_steps); nMAE and pinball over all steps"
                if sun is not None else "P10-P90 coverage over all steps")
    card = {
        "schema": "parkedge.model_card/2",
        "target": s.target,
        "unit": "kW" if s.target not in THERMAL else "kW (thermal)",
        "scale_kw": s.scale_kw,
        "step_s": 900,
        "horizon_steps": HORIZON,
        "quantiles": list(QUANTILES),
        "onnx": {"file": path.name, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
                 "opset": onnx_export.OPSET,
                 "inputs": [{"name": onnx_export.INPUT, "shape": [None, len(names)],
                             "dtype": "float32"}],
                 "outputs": [{"name": onnx_export.OUTPUT, "shape": [None, len(QUANTILES)],
                              "dtype": "float32"}],
                 "check": {"max_abs_diff_vs_sklearn": diff, "rows": len(sample), "tolerance": 1e-4,
                           "passed": diff <= 1e-4}},
        "features": names,
        "requires_weather": sorted({k for f in names for k in _weather_keys(f)}),
        "postprocess": {"clip_scaled": list(clip), "zero_without_sun": sun is not None,
                        "order": "P50 = the model's P50 clipped to clip_scaled; P10 and P90 after "
                                 "interval_calibration, clipped, then min(P10, P50) and max(P90, P50)"},
        "interval_calibration": block,
        "fallback": {"baseline": fallback, "residual_quantiles_scaled": resid[fallback],
                     "validation_nmae_scaled": val_nmae},
        "data": s.description,
        "location": s.location,
        "split": {
            "method": "chronological by target step: train (first 60 %) | calibration (60-80 %) | "
                      "test (final 20 %). The calibration model is fitted on train and scored on "
                      "calibration for the conformal shifts; the shipped model is fitted on train "
                      "and calibration with the same settings; the fallback baseline is chosen on "
                      "the first 80 % too; every metric is on the final 20 % (held out, never "
                      "used in fitting, calibration or choice)",
            "steps": n, "train": [s.date_of(0), s.date_of(n_cal - 1)],
            "calibration": [s.date_of(n_cal), s.date_of(n_va - 1)],
            "shipped_fit": [s.date_of(0), s.date_of(n_va - 1)],
            "baseline_choice": [s.date_of(WEEK), s.date_of(n_va - 1)],
            "test": [s.date_of(n_va), s.date_of(n - 1)],
            "note": "UTC dates on the series' calendar (the CityLearn and NSRDB years are laid "
                    f"on synthetic calendars; {'Park B' if s.target.startswith('park_b_') else 'Park A'}"
                    "'s loads are the park's periodic model year laid on local dates from the start "
                    "given in the data section)",
            "train_rows": n_rows, "calibration_fit_rows": cal_fit_rows,
            "calibration_rows": len(y_ca), "baseline_rows": len(y_va), "test_rows": len(y_te),
            "calibration_origins": "every hour, all 96 leads",
            "test_origins": "every hour, all 96 leads"},
        "metrics": {"normaliser_kw": norm,
                    "normaliser": "capacity" if not load else "mean actual load over the test part",
                    "coverage": cov_note,
                    "mape": f"over the steps whose actual is at least {MAPE_FLOOR:.0%} of scale_kw",
                    "rows": {"model": "as the runtime issues them: the card's shifts adapted online "
                                      "from the held-out steps already realised at each origin",
                             "model_static": "the card's shifts alone",
                             "model_uncalibrated": "the raw ONNX quantiles, clipped and ordered"},
                    "test": res, "test_by_lead_steps": by_lead},
        "training": {"estimator": "sklearn HistGradientBoostingRegressor(loss='quantile') x 3",
                     "params": p, "seed": SEED, "seconds": round(time.time() - t0, 1),
                     "fit_seconds": round(fit_s, 1), "sklearn": sklearn.__version__,
                     "onnx": onnx.__version__, "python": platform.python_version()},
    }
    (out_dir / f"{s.target}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_markdown(card, out_dir / f"{s.target}.card.md")
    return card


def _weather_keys(feature: str) -> list[str]:
    from edge.forecast.features import WEATHER_OF

    return [WEATHER_OF[feature]] if feature in WEATHER_OF else []


# ---------------------------------------------------------------- reproduction check

def _onnx_out(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run([onnx_export.OUTPUT], {onnx_export.INPUT: x.astype(np.float32)})[0])


def check_target(s: Series, shipped_dir: Path, new_dir: Path, tol: float = CHECK_TOL
                 ) -> tuple[bool, str]:
    """Compare a fresh build of ``s.target`` in new_dir with the one in shipped_dir.

    Passes when the ONNX outputs agree within ``tol`` (scaled units) on every
    held-out row, the features and the interval calibration's shifts match and
    the card's held-out model metrics (as run and static) agree within 1e-3.
    """
    t = s.target
    old_card = json.loads((shipped_dir / f"{t}.card.json").read_text())
    new_card = json.loads((new_dir / f"{t}.card.json").read_text())
    problems = []
    if old_card["features"] != new_card["features"]:
        problems.append("features differ")
        return False, f"{t}: " + "; ".join(problems)
    _, _, x_te, _ = test_rows(s)
    d = float(np.abs(_onnx_out(shipped_dir / f"{t}.onnx", x_te)
                     - _onnx_out(new_dir / f"{t}.onnx", x_te)).max())
    if not d <= tol:
        problems.append(f"ONNX outputs differ by {d:.2e} > {tol:.0e}")
    dc = float(np.abs(np.asarray(old_card["interval_calibration"]["shifts_scaled"])
                      - np.asarray(new_card["interval_calibration"]["shifts_scaled"])).max())
    if not dc <= 1e-3:
        problems.append(f"calibration differs by {dc:.2e}")
    om, nm = old_card["metrics"]["test"], new_card["metrics"]["test"]
    dm = max(abs(float(om[r][k]) - float(nm[r][k])) for r in ("model", "model_static")
             for k in ("nmae", "pinball_norm", "coverage_p10_p90"))
    if not dm <= 1e-3:
        problems.append(f"held-out metrics differ by {dm:.2e}")
    same = old_card["onnx"]["sha256"] == new_card["onnx"]["sha256"]
    msg = (f"{t}: {'OK' if not problems else 'MISMATCH'}: max |new - shipped| = {d:.2e} on "
           f"{len(x_te)} held-out rows, calibration diff {dc:.1e}, metric diff {dm:.1e}, "
           f"ONNX {'bit-identical' if same else 'not bit-identical'}")
    return not problems, msg + ("" if not problems else " (" + "; ".join(problems) + ")")


# ---------------------------------------------------------------- command line

_SERIES: dict[str, Series] = {}


def _train_one(args: tuple[str, str]) -> dict[str, Any]:
    t, out = args
    return train_target(_SERIES[t], Path(out))


def _run(targets: list[str], out: Path, jobs: int, report: Callable[[dict[str, Any]], None]
         ) -> list[dict[str, Any]]:
    """Train ``targets`` into ``out``, ``jobs`` processes at a time (results in order)."""
    work = [(t, str(out)) for t in targets]
    if jobs <= 1 or len(work) == 1:
        cards = []
        for w in work:
            cards.append(_train_one(w))
            report(cards[-1])
        return cards
    import multiprocessing as mp

    with mp.get_context("fork").Pool(jobs) as pool:  # children inherit the loaded series
        cards = []
        for c in pool.imap(_train_one, work):
            report(c)
            cards.append(c)
    return cards


def _print_card(card: dict[str, Any]) -> None:
    m = card["metrics"]["test"]
    summary = {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in m.items()
               if k.startswith("model")}
    print(card["target"], json.dumps(summary), f"{card['training']['seconds']} s",
          f"onnx diff {card['onnx']['check']['max_abs_diff_vs_sklearn']:.2e}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.train")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--jobs", type=int, default=2, help="targets trained in parallel (default 2)")
    ap.add_argument("--check", action="store_true",
                    help="retrain into a temporary directory and compare with the models in --out")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    targets = list(TARGETS) if a.all else a.target
    if not targets:
        ap.error("give --all or --target NAME")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(f"unknown target {unknown[0]!r}; known: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    _SERIES.update(load_series(targets))
    if a.check:
        with tempfile.TemporaryDirectory(prefix="parkedge-models-") as tmp:
            _run(targets, Path(tmp), a.jobs, lambda c: None)
            ok = True
            for t in targets:
                passed, msg = check_target(_SERIES[t], a.out, Path(tmp))
                ok &= passed
                print(msg, flush=True)
        print(f"reproduction check: {'passed' if ok else 'FAILED'} ({len(targets)} models)")
        return 0 if ok else 1
    _run(targets, a.out, a.jobs, _print_card)
    if a.all:
        from models.cards import write_summary

        write_summary([json.loads((a.out / f"{t}.card.json").read_text()) for t in targets],
                      a.out / "README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
