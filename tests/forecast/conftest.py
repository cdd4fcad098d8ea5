from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from models import onnx_export

SHIPPED = Path(__file__).resolve().parents[2] / "models"
# every shipped model (models.train.TARGETS; test_every_target_is_shipped keeps the two in step)
SHIPPED_TARGETS = ("pv", "pv_clearsky", "wind", "wind_history", "office", "hospital", "data_centre",
                   "heating", "cooling", "electric_total", "park_b_buildings", "park_b_heating", "park_b_cooling")


def tiny_models(n_features: int, level: float, seed: int = 0) -> list[HistGradientBoostingRegressor]:
    """Three quick quantile models predicting about ``level`` (scaled units)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, n_features)).astype(np.float32)
    y = level + 0.05 * x[:, 0] + 0.01 * rng.normal(size=600)
    return [HistGradientBoostingRegressor(loss="quantile", quantile=q, max_iter=8,
                                          early_stopping=False).fit(x, y) for q in (0.1, 0.5, 0.9)]


def write_model(dst: Path, target: str, level: float, seed: int = 0) -> Path:
    """A small valid model and card for ``target`` (card copied from the shipped one)."""
    card = json.loads((SHIPPED / f"{target}.card.json").read_text())
    n = len(card["features"])
    model = onnx_export.export(tiny_models(n, level, seed), n, "test model")
    path = dst / f"{target}.onnx"
    tmp = dst / f".{target}.onnx.tmp"
    tmp.write_bytes(model.SerializeToString())
    (dst / f"{target}.card.json").write_text(json.dumps(card))
    tmp.replace(path)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    for t in ("office", "pv"):
        shutil.copy(SHIPPED / f"{t}.onnx", tmp_path)
        shutil.copy(SHIPPED / f"{t}.card.json", tmp_path)
    return tmp_path


def office_history(n: int = 800, base: float = 2000.0) -> np.ndarray:
    t = np.arange(n)
    return base + 800.0 * np.clip(np.sin(2 * np.pi * (t % 96) / 96 - 1.2), 0, None)
