"""Forecasts for the controller: ONNX models trained offline (``models/``), run here.

``Forecaster`` gives every target's P10/P50/P90 for the next 96 steps of
15 min, refreshed at each step rollover; it falls back to the best naive
baseline, and says why, when a model is missing, invalid or lacks inputs,
picks up a new model file at the next step, and keeps a live skill score.
The P10-P90 interval is the card's conformal calibration, adapted online to
live misses (``calibration``); P50 is the model's own.
``bench_inference`` measures the models' latency for ``parkedge bench``.
Runtime dependencies: numpy, onnxruntime, pvlib (solar geometry), stdlib.
"""

from edge.forecast.bench import bench_inference
from edge.forecast.features import HORIZON, STEP_S, context_for_utc, feature_rows
from edge.forecast.models import LoadedModel, ModelError, load_model
from edge.forecast.runtime import TARGETS, Forecast, Forecaster, TargetForecast

__all__ = [
    "HORIZON",
    "STEP_S",
    "TARGETS",
    "Forecast",
    "Forecaster",
    "LoadedModel",
    "ModelError",
    "TargetForecast",
    "bench_inference",
    "context_for_utc",
    "feature_rows",
    "load_model",
]
