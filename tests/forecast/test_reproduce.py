"""``make models`` reproduces the shipped models: retrain one target and compare.

Runs ``python -m models.train --check --target wind``: the smallest target
(one year of data, 7 features); the training of the shipped model plus its
calibration model takes about 10 s on one core. The check compares the fresh
ONNX outputs with the shipped ones on every held-out row, the interval
calibration's shifts and the card's held-out metrics.
"""

from __future__ import annotations

import pytest


def test_make_models_reproduces_the_shipped_wind_model(capsys: pytest.CaptureFixture[str]) -> None:
    import windpowerlib  # noqa: F401  (the wind target's power curve: installed by the sim extra, never skipped)

    from models import train

    assert train.main(["--check", "--target", "wind", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "wind: OK" in out and "reproduction check: passed" in out


def test_calibration_leaves_p50_alone_in_the_shipped_cards() -> None:
    """P50 is the model's: nMAE, MAPE and bias agree exactly raw, static and as run."""
    import json

    from tests.forecast.conftest import SHIPPED

    for path in sorted(SHIPPED.glob("*.card.json")):
        t = json.loads(path.read_text())["metrics"]["test"]
        for key in ("nmae", "bias_kw", "mae_kw", "mape"):
            if key in t["model"]:
                assert t["model"][key] == t["model_static"][key] == t["model_uncalibrated"][key], (path, key)
