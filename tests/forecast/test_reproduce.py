"""``make models`` reproduces the shipped models: retrain one target and compare.

Runs ``python -m models.train --check --target wind``: the smallest target
(one year of data, 7 features); the full training of the shipped model plus
its four cross-conformal calibration fits takes about 15-20 s on one core.
The check compares the fresh ONNX outputs with the shipped ones on every
held-out row, the interval calibration and the card's held-out metrics.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.forecast.features import postprocess


def test_make_models_reproduces_the_shipped_wind_model(capsys: pytest.CaptureFixture[str]) -> None:
    import windpowerlib  # noqa: F401  (the wind target's power curve: installed by the sim extra, never skipped)

    from models import train

    assert train.main(["--check", "--target", "wind", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "wind: OK" in out and "reproduction check: passed" in out


def test_postprocess_floors_the_half_widths_and_zeroes_the_night() -> None:
    raw = np.array([[0.5, 0.5, 0.5], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]], dtype=np.float32)
    leads = np.array([1, 30, 60], dtype=np.int64)
    cal = [[2.0, 1.0], [1.0, 0.5], [1.0, 1.0]]
    q = postprocess(raw, leads, cal, [24, 48, 96], (0.0, 1.0), np.array([False, False, True]), 0.01)
    np.testing.assert_allclose(q[0], [0.48, 0.5, 0.51], atol=1e-6)  # zero width -> the floor
    np.testing.assert_allclose(q[1], [0.2, 0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(q[2], [0.0, 0.0, 0.0])
