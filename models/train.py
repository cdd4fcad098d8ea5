"""Train, evaluate and export the forecasters: ``python -m models.train --all``.

Per target: a direct model with the lead as a feature (one row per origin and
lead), three HistGradientBoosting quantile regressors (P10, P50, P90) merged
into one ONNX graph, an interval calibration and the fallback baseline chosen
on the validation part, and the metrics of model and baselines on the
held-out final part, which no fit or choice has seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two shared cores

import numpy as np
import onnx
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor

from edge.forecast.features import (
    BASELINES,
    HORIZON,
    WEEK,
    feature_rows,
    postprocess,
)
from models import onnx_export
from models.cards import write_markdown
from models.data import Series, all_series

OUT = Path(__file__).resolve().parent
QUANTILES = (0.1, 0.5, 0.9)
BUCKETS = ((1, 24), (25, 48), (49, 96))  # leads in steps: 0-6 h, 6-12 h, 12-24 h
SPLIT = (0.7, 0.8)  # train | validation | test (held out) by time
SEED = 20260329
N_TRAIN_ROWS = 120_000
N_VAL_ROWS = 80_000
PARAMS: dict[str, Any] = {"max_iter": 120, "learning_rate": 0.12, "max_leaf_nodes": 31,
                          "min_samples_leaf": 40, "l2_regularization": 1.0, "early_stopping": False}

_CAL = ["lead_h", "hour_sin", "hour_cos", "weekday", "holiday", "day_off", "day_off_yday"]
_HIST = ["y_last", "y_1h", "y_mean24", "y_day", "y_week"]
FEATURES: dict[str, list[str]] = {
    "pv": ["lead_h", "hour_sin", "hour_cos", "cos_zenith", "pcs", "y_last", "y_1h", "y_day",
           "k_day", "k_recent", "fc_ghi", "fc_k", "fc_temp_c"],
    "wind": ["lead_h", "hour_sin", "hour_cos", "y_last", "y_1h", "y_mean24", "y_day"],
    "cooling": _CAL + _HIST + ["fc_temp_c"],
    "heating": _CAL + _HIST + ["fc_temp_c"],
    "data_centre": _CAL + _HIST + ["fc_temp_c"],
    "office": _CAL + _HIST,
    "hospital": _CAL + _HIST,
    "electric_total": _CAL + _HIST,
}
KIND = {"pv": "generation", "wind": "generation"}


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


def _metrics(y: np.ndarray, q: np.ndarray, norm: float, load: bool, scale: float) -> dict[str, float]:
    """y and q in units of scale; norm in kW."""
    e = (q[:, 1] - y) * scale
    out = {"nmae": float(np.abs(e).mean() / norm), "bias_kw": float(e.mean()),
           "mae_kw": float(np.abs(e).mean())}
    if load:
        out["mape"] = float(np.mean(np.abs(e) / (y * scale)))
    pin = 0.0
    for i, tau in enumerate(QUANTILES):
        d = (y - q[:, i]) * scale
        pin += float(np.mean(np.maximum(tau * d, (tau - 1) * d)))
    out["pinball_norm"] = pin / len(QUANTILES) / norm
    out["coverage_p10_p90"] = float(np.mean((y >= q[:, 0]) & (y <= q[:, 2])))
    return out


def _calibrate(y: np.ndarray, q: np.ndarray, leads: np.ndarray) -> list[list[float]]:
    """Per lead bucket, the factors on (P50-P10, P90-P50) that give 10 % in each tail."""
    out = []
    b = _bucket_index(leads)
    for i in range(len(BUCKETS)):
        m = b == i
        lo, hi = q[m, 1] - q[m, 0], q[m, 2] - q[m, 1]
        ok_lo, ok_hi = lo > 1e-3, hi > 1e-3
        c_lo = np.quantile((q[m, 1] - y[m])[ok_lo] / lo[ok_lo], 0.9) if ok_lo.any() else 1.0
        c_hi = np.quantile((y[m] - q[m, 1])[ok_hi] / hi[ok_hi], 0.9) if ok_hi.any() else 1.0
        out.append([float(np.clip(c_lo, 0.5, 3.0)), float(np.clip(c_hi, 0.5, 3.0))])
    return out


def apply_calibration(q: np.ndarray, leads: np.ndarray, cal: list[list[float]],
                      clip: tuple[float, float], dark: np.ndarray | None) -> np.ndarray:
    return postprocess(q, leads, cal, [b[1] for b in BUCKETS], clip, dark)


def _resid_quantiles(y: np.ndarray, b: np.ndarray, leads: np.ndarray) -> list[list[float]]:
    idx = _bucket_index(leads)
    return [[float(np.quantile(y[idx == i] - b[idx == i], 0.1)),
             float(np.quantile(y[idx == i] - b[idx == i], 0.9))] for i in range(len(BUCKETS))]


def _baseline_q(b: np.ndarray, leads: np.ndarray, rq: list[list[float]], clip: tuple[float, float]
                ) -> np.ndarray:
    r = np.asarray(rq)[_bucket_index(leads)]
    return np.sort(np.clip(np.column_stack([b + r[:, 0], b, b + r[:, 1]]), clip[0], clip[1]), axis=1)


def train_target(s: Series, out_dir: Path = OUT, n_train: int = N_TRAIN_ROWS,
                 params: dict[str, Any] | None = None) -> dict[str, Any]:
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    n = len(s.y_kw)
    n_tr, n_va = _splits(n)
    load = s.target not in KIND
    clip = (0.0, float(s.y_kw.max() / s.scale_kw * (1.0 if not load else 1.5)))
    names = FEATURES[s.target]
    # training rows: random origins and leads whose targets lie in the training part
    o = rng.integers(WEEK, n_tr - 1, size=n_train * 2)
    ld = rng.integers(1, HORIZON + 1, size=n_train * 2)
    keep = (o + ld - 1) < n_tr
    o, ld = o[keep][:n_train], ld[keep][:n_train]
    x_tr, y_tr = _rows(s, o, ld)
    p = dict(PARAMS, **(params or {}))
    models = [HistGradientBoostingRegressor(loss="quantile", quantile=qq, random_state=SEED, **p)
              .fit(x_tr, y_tr) for qq in QUANTILES]
    fit_s = time.time() - t0

    def predict(x: np.ndarray) -> np.ndarray:
        return np.column_stack([m.predict(x) for m in models])

    # validation: calibration of the interval and the choice of the fallback baseline
    o_va, l_va = _all_pairs(n_tr, n_va, 4)
    if len(o_va) > N_VAL_ROWS:
        pick = np.sort(rng.choice(len(o_va), N_VAL_ROWS, replace=False))
        o_va, l_va = o_va[pick], l_va[pick]
    x_va, y_va = _rows(s, o_va, l_va)
    cal = _calibrate(y_va, predict(x_va), l_va)
    names_b = [b for b in BASELINES if b != "clear_sky_yesterday" or s.target == "pv"]
    val_b = {b: _baseline_rows(s, b, o_va, l_va) for b in names_b}
    val_nmae = {b: float(np.abs(v - y_va).mean()) for b, v in val_b.items()}
    fallback = min(val_nmae, key=lambda b: val_nmae[b])
    resid = {b: _resid_quantiles(y_va, v, l_va) for b, v in val_b.items()}

    # test: the held-out final part, hourly origins, every lead
    o_te, l_te = _all_pairs(n_va, n, 4)
    x_te, y_te = _rows(s, o_te, l_te)
    dark = (s.ctx.ghi_cs_w_m2[o_te + l_te - 1] <= 0.0) if s.target == "pv" else None
    q_te = apply_calibration(predict(x_te), l_te, cal, clip, dark)
    norm = s.scale_kw if not load else float(s.y_kw[n_va:].mean())
    bidx = _bucket_index(l_te)
    res: dict[str, Any] = {"model": _metrics(y_te, q_te, norm, load, s.scale_kw)}
    res["model_uncalibrated"] = _metrics(y_te, np.sort(predict(x_te), axis=1), norm, load, s.scale_kw)
    by_lead: dict[str, Any] = {"model": {}}
    for b in names_b:
        bq = _baseline_q(_baseline_rows(s, b, o_te, l_te), l_te, resid[b], clip)
        res[b] = _metrics(y_te, bq, norm, load, s.scale_kw)
        by_lead[b] = {}
        for i, (lo, hi) in enumerate(BUCKETS):
            by_lead[b][f"{lo}-{hi}"] = _metrics(y_te[bidx == i], bq[bidx == i], norm, load, s.scale_kw)
    for i, (lo, hi) in enumerate(BUCKETS):
        by_lead["model"][f"{lo}-{hi}"] = _metrics(y_te[bidx == i], q_te[bidx == i], norm, load,
                                                  s.scale_kw)
    if s.target == "pv":
        day = s.ctx.ghi_cs_w_m2[o_te + l_te - 1] > 50.0
        res["model_daylight"] = _metrics(y_te[day], q_te[day], norm, load, s.scale_kw)

    # export and check against scikit-learn
    model = onnx_export.export(models, len(names), f"Park Edge forecaster '{s.target}'")
    path = out_dir / f"{s.target}.onnx"
    raw = model.SerializeToString()
    path.write_bytes(raw)
    sample = x_te[rng.choice(len(x_te), 2000, replace=False)]
    diff = onnx_export.max_abs_diff(model, models, sample)
    card = {
        "schema": "parkedge.model_card/1",
        "target": s.target,
        "unit": "kW" if s.target not in ("heating", "cooling") else "kW (thermal)",
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
        "postprocess": {"interval_calibration": cal, "lead_buckets": [list(b) for b in BUCKETS],
                        "clip_scaled": list(clip), "zero_without_sun": s.target == "pv"},
        "fallback": {"baseline": fallback, "residual_quantiles_scaled": resid[fallback],
                     "validation_nmae_scaled": val_nmae},
        "data": s.description,
        "location": s.location,
        "split": {
            "method": "chronological: train on the first 70 %, calibrate and choose the fallback "
                      "on the next 10 %, report on the final 20 % (held out)",
            "steps": n, "train": [s.date_of(0), s.date_of(n_tr - 1)],
            "validation": [s.date_of(n_tr), s.date_of(n_va - 1)],
            "test": [s.date_of(n_va), s.date_of(n - 1)],
            "note": "dates are the data's pseudo-calendar (CityLearn and DOE years are synthetic)",
            "train_rows": len(y_tr), "validation_rows": len(y_va), "test_rows": len(y_te),
            "test_origins": "every hour, all 96 leads"},
        "metrics": {"normaliser_kw": norm,
                    "normaliser": "capacity" if not load else "mean actual load over the test part",
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.train")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    series = all_series()
    targets = list(series) if a.all else a.target
    if not targets:
        ap.error("give --all or --target NAME")
    summary = {}
    for t in targets:
        if t not in series:
            print(f"unknown target {t!r}; known: {', '.join(series)}", file=sys.stderr)
            return 2
        card = train_target(series[t], a.out)
        m = card["metrics"]["test"]
        summary[t] = {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in m.items()}
        print(t, json.dumps(summary[t]), f"{card['training']['seconds']} s",
              f"onnx diff {card['onnx']['check']['max_abs_diff_vs_sklearn']:.2e}", flush=True)
    if a.all:
        from models.cards import write_summary

        write_summary([json.loads((a.out / f"{t}.card.json").read_text()) for t in targets],
                      a.out / "README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
