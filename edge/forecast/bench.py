"""Forecaster inference timing for ``parkedge bench`` (a measurement, never a test assert)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.forecast.features import HISTORY_STEPS, HORIZON, STEP_S, context_for_utc, feature_rows
from edge.forecast.runtime import TARGETS, Forecaster

__all__ = ["bench_inference"]


def _stats_us(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "mean": float(a.mean()), "n": float(len(a))}


def bench_inference(model_dir: Path | None = None, n: int = 300, *, timezone: str = "Asia/Shanghai",
                    latitude: float = 31.2, longitude: float = 121.5) -> dict[str, Any]:
    """Per-call latency of each model's ONNX run (96 rows) and of a whole refresh, in µs."""
    model_dir = model_dir or Path(__file__).resolve().parents[2] / "models"
    fc = Forecaster(model_dir, timezone=timezone, latitude=latitude, longitude=longitude)
    step = 1_790_000_000 // STEP_S
    rng = np.random.default_rng(0)
    hist = {t: 1000.0 + 100.0 * rng.random(HISTORY_STEPS + HORIZON) for t in TARGETS}
    wx = {"ghi_w_m2": np.full(HORIZON, 400.0), "temp_c": np.full(HORIZON, 20.0),
          "wind_m_s": np.full(HORIZON, 5.0)}
    fc.refresh(step, hist, wx)
    out: dict[str, Any] = {"models": {}}

    ctx = context_for_utc(
        step - 96, 192, fc.tz, fc.country, latitude, longitude)
    leads = np.arange(1, HORIZON + 1, dtype=np.int64)
    origins = np.full(HORIZON, step, dtype=np.int64)
    for name, t in fc._targets.items():
        m = t.model
        if m is None:
            out["models"][name] = {"error": t.reason}
            continue
        y = hist[name] / m.scale_kw
        x = feature_rows(m.features, y, step - len(y), ctx, origins, leads, wx)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            m.session.run([m.output_name], {m.input_name: x})
            times.append(time.perf_counter() - t0)
        out["models"][name] = {"per_call_us": _stats_us(times), "rows": HORIZON,
                               "onnx_bytes": m.path.stat().st_size}
    times = []
    for i in range(max(n // 10, 5)):
        t0 = time.perf_counter()
        fc.refresh(step + 1 + i, hist, wx)
        times.append(time.perf_counter() - t0)
    out["refresh_all_targets_us"] = _stats_us(times)
    return out
