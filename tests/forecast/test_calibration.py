"""The P10-P90 interval calibration: the card's conformal shifts, their validation, the online adaptation."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.forecast import Forecaster, ModelError, load_model
from edge.forecast.calibration import AdaptiveInterval, parse_calibration, postprocess
from edge.forecast.features import HORIZON, STEP_S
from tests.forecast.conftest import SHIPPED, SHIPPED_TARGETS, office_history

SITE = {"timezone": "Asia/Shanghai", "latitude": 31.2, "longitude": 121.5}
T0 = dt.datetime(2026, 6, 3, 8, 0, tzinfo=dt.UTC).timestamp()


def _block(shifts: list[list[float]] | None = None, step: float = 0.0) -> dict[str, Any]:
    return {"lead_buckets": [[1, 24], [25, 48], [49, 96]],
            "shifts_scaled": shifts or [[0.0, 0.0]] * 3,
            "target_miss": [[0.1, 0.1]] * 3,
            "adaptive": {"step_scaled": [step] * 3, "max_offset_scaled": [0.05] * 3}}


def _run(d: Path, n: int = 1) -> Any:
    fc = Forecaster(d, targets=("office",), **SITE)  # type: ignore[arg-type]
    h = office_history(800 + n)
    for k in range(n):
        out = fc.update(T0 + k * STEP_S, {"office": h[: 800 + k]})
    return fc, out.targets["office"]


def _set_block(d: Path, block: Any) -> None:
    card_file = d / "office.card.json"
    card = json.loads(card_file.read_text())
    card["interval_calibration"] = block
    card_file.write_text(json.dumps(card))


def test_postprocess_shifts_clips_orders_and_never_moves_p50() -> None:
    raw = np.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.35, 0.3, 0.25], [0.2, 1.2, 1.4], [0.2, 0.3, 0.5]])
    shifts = np.array([[-0.05, 0.1], [0.2, -0.3], [0.0, 0.0], [-0.5, 0.0], [0.0, 0.0]])
    q = postprocess(raw, shifts, (0.0, 1.0), np.array([False, False, False, False, True]))
    np.testing.assert_allclose(q[0], [0.15, 0.3, 0.6])  # widened
    np.testing.assert_allclose(q[1], [0.3, 0.3, 0.3])  # shrunk past P50: held on P50
    np.testing.assert_allclose(q[2], [0.3, 0.3, 0.3])  # crossed raw quantiles: P50 kept, not sorted
    np.testing.assert_allclose(q[3], [0.0, 1.0, 1.0])  # physical bounds, P50 clipped too
    np.testing.assert_allclose(q[4], [0.0, 0.0, 0.0])  # no sun
    assert np.array_equal(q[:4, 1], np.clip(raw[:4, 1], 0.0, 1.0))


def test_card_shift_is_applied_at_runtime(model_dir: Path) -> None:
    _set_block(model_dir, _block())
    _, base = _run(model_dir)
    scale = load_model(model_dir / "office.onnx").scale_kw
    assert base.source == "model"
    above = base.p90_kw > base.p50_kw  # where the raw P90 lies above P50 (elsewhere it is held on P50)
    assert above[:24].any() and above[24:].any()
    # P10 down 1 scale (clipped at 0 kW), P90 up 0.01 in bucket 1 and 0.02 after
    _set_block(model_dir, _block([[-1.0, 0.01], [-1.0, 0.02], [-1.0, 0.02]]))
    _, o = _run(model_dir)
    assert np.array_equal(o.p50_kw, base.p50_kw)
    np.testing.assert_array_equal(o.p10_kw, 0.0)
    up = np.where(np.arange(HORIZON) < 24, 0.01, 0.02) * scale
    np.testing.assert_allclose(o.p90_kw[above], base.p90_kw[above] + up[above], rtol=1e-9)
    assert (o.p90_kw >= o.p50_kw).all() and (o.p90_kw > base.p90_kw).any()
    # shrunk past P50 on both sides: the interval collapses onto P50, never crosses it
    _set_block(model_dir, _block([[0.9, -0.9]] * 3))
    _, o = _run(model_dir)
    assert np.array_equal(o.p10_kw, base.p50_kw) and np.array_equal(o.p90_kw, base.p50_kw)
    assert np.array_equal(o.p50_kw, base.p50_kw)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.__setitem__("shifts_scaled", [[0.0, "x"], [0.0, 0.0], [0.0, 0.0]]), "shifts_scaled[0][1]"),
        (lambda b: b.__setitem__("shifts_scaled", [[0.0, 0.0]] * 2), "shifts_scaled"),
        (lambda b: b["shifts_scaled"].__setitem__(2, [3.0, 0.0]), "shifts_scaled[2][0]"),
        (lambda b: b["shifts_scaled"].__setitem__(1, [float("nan"), 0.0]), "shifts_scaled[1][0]"),
        (lambda b: b.__setitem__("lead_buckets", [[1, 24], [26, 48], [49, 96]]), "lead_buckets[1]"),
        (lambda b: b.__setitem__("lead_buckets", [[1, 24], [25, 48], [49, 95]]), "lead_buckets"),
        (lambda b: b.__setitem__("target_miss", [[0.6, 0.5]] * 3), "target_miss[0]"),
        (lambda b: b["adaptive"].__setitem__("step_scaled", [0.0, -0.1, 0.0]), "adaptive.step_scaled[1]"),
        (lambda b: b["adaptive"].pop("max_offset_scaled"), "adaptive.max_offset_scaled"),
        (lambda b: b.pop("target_miss"), "target_miss"),
    ],
)
def test_bad_block_is_a_one_line_error_naming_card_field_and_value(model_dir: Path, change: Any,
                                                                   field: str) -> None:
    block = copy.deepcopy(json.loads((SHIPPED / "office.card.json").read_text())["interval_calibration"])
    change(block)
    _set_block(model_dir, block)
    with pytest.raises(ModelError) as err:
        load_model(model_dir / "office.onnx")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{model_dir / 'office.card.json'}: invalid model card: interval_calibration.{field} = ")
    # the runtime falls back to the card's baseline and says why
    _, o = _run(model_dir)
    assert o.source.startswith("baseline:") and f"interval_calibration.{field}" in o.reason


def test_card_without_the_block_falls_back(model_dir: Path) -> None:
    card_file = model_dir / "office.card.json"
    card = json.loads(card_file.read_text())
    del card["interval_calibration"]
    card_file.write_text(json.dumps(card))
    _, o = _run(model_dir)
    assert o.source.startswith("baseline:") and "interval_calibration = None: missing" in o.reason


@pytest.mark.parametrize("target", SHIPPED_TARGETS)
def test_shipped_blocks_are_valid(target: str) -> None:
    card = json.loads((SHIPPED / f"{target}.card.json").read_text())
    cal = parse_calibration(card["interval_calibration"], HORIZON)
    assert cal.bucket_ends == (24, 48, 96)
    assert all(abs(c - 0.8) < 1e-9 for c in cal.target_coverage)
    assert card["interval_calibration"]["calibration_coverage"]["calibrated"]["all"] == pytest.approx(0.8, abs=0.01)


def test_adaptive_offsets_follow_misses_within_bounds() -> None:
    cal = parse_calibration(_block(step=0.01), HORIZON)
    ad = AdaptiveInterval(cal, HORIZON)
    lo, hi = np.full(HORIZON, 0.4), np.full(HORIZON, 0.6)
    for step in range(300):
        ad.issue(step, lo, hi)
        ad.observe(step, 0.9)  # always above P90: widen P90, shrink P10 (it never misses)
    assert ad.offset[:, 1] == pytest.approx([0.05] * 3)  # the bound
    assert ad.offset[:, 0] == pytest.approx([-0.05] * 3)
    np.testing.assert_allclose(ad.shifts(np.array([1, 30, 90]))[:, 1], 0.05)
    np.testing.assert_allclose(ad.shifts(np.array([1, 30, 90]))[:, 0], 0.05)  # P10 moved up
    st = ad.state(1000.0)
    assert st["live_coverage"] == 0.0 and st["live_above_p90"] == 1.0
    assert st["offset_p90_kw"] == [50.0] * 3 and st["offset_p10_kw"] == [50.0] * 3
    # one step with a hit on every lead: the offsets move back by step x target miss, within bounds
    before = ad.offset.copy()
    ad.observe(300, 0.5)
    np.testing.assert_allclose(ad.offset - before, [[0.0, -0.001]] * 3, atol=1e-12)  # P10 stays at its bound


def test_adaptive_ignores_unscored_steps_and_step_zero_is_static() -> None:
    ad = AdaptiveInterval(parse_calibration(_block(step=0.01), HORIZON), HORIZON)
    ad.issue(0, np.zeros(HORIZON), np.zeros(HORIZON), np.zeros(HORIZON, dtype=bool))  # all night
    ad.observe(0, 0.0)
    assert ad.updates == 0 and not ad.offset.any()
    static = AdaptiveInterval(parse_calibration(_block([[-0.1, 0.2]] * 3), HORIZON), HORIZON)
    static.issue(0, np.full(HORIZON, 0.4), np.full(HORIZON, 0.6))
    static.observe(0, 0.9)
    assert not static.offset.any()
    np.testing.assert_allclose(static.shifts(np.array([5])), [[-0.1, 0.2]])


def test_runtime_adapts_and_reports_in_state(model_dir: Path) -> None:
    fc, _ = _run(model_dir, n=12)
    st = json.loads(json.dumps(fc.state()))["targets"]["office"]["skill"]["interval"]
    assert st["model"] == "office" and st["adaptive"]
    assert st["updates"] == 11 and st["live_samples"] == sum(range(1, 12))
    assert 0.0 <= st["live_coverage"] <= 1.0 and len(st["offset_p90_kw"]) == 3


def test_replay_is_causal() -> None:
    """The held-out replay in models.train issues each origin's interval from earlier steps only."""
    from models.train import replay

    rng = np.random.default_rng(0)
    origins = np.repeat(np.arange(1000, 1400, 4), HORIZON)
    leads = np.tile(np.arange(1, HORIZON + 1), 100)
    q = np.column_stack([np.full(len(origins), 0.4), np.full(len(origins), 0.5), np.full(len(origins), 0.6)])
    y = rng.uniform(0.3, 0.7, 1600)
    cal = parse_calibration(_block(step=0.01), HORIZON)
    a = replay(q, origins, leads, y, cal, (0.0, 1.0), None)
    y2 = y.copy()
    y2[1200:] = 0.95
    b = replay(q, origins, leads, y2, cal, (0.0, 1.0), None)
    early = origins <= 1200
    assert np.array_equal(a[early], b[early]) and not np.array_equal(a[~early], b[~early])
