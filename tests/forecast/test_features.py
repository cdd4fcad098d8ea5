from __future__ import annotations

import datetime as dt
import hashlib
import json
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge.forecast.features import STEP_S, context_for_utc, feature_rows
from edge.forecast.holidays import is_day_off, is_holiday, known_year
from models import onnx_export
from tests.forecast.conftest import SHIPPED, SHIPPED_TARGETS, tiny_models


def _step(t: dt.datetime) -> int:
    return int(t.timestamp()) // STEP_S


@pytest.mark.parametrize(
    ("zone", "day_before", "day_after", "change_utc"),
    [
        ("Europe/Berlin", dt.date(2026, 3, 28), dt.date(2026, 3, 30),
         dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC)),
        ("America/New_York", dt.date(2026, 10, 31), dt.date(2026, 11, 2),
         dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC)),
    ],
)
def test_dst_change_does_not_shift_local_hour(zone: str, day_before: dt.date, day_after: dt.date,
                                              change_utc: dt.datetime) -> None:
    tz = ZoneInfo(zone)
    first = _step(dt.datetime.combine(day_before, dt.time(0), tz))
    n = _step(dt.datetime.combine(day_after, dt.time(23, 45), tz)) - first + 1
    ctx = context_for_utc(first, n, tz, "US", 45.0, 0.0)
    for i in range(n):  # every step agrees with the wall clock of the zone
        local = dt.datetime.fromtimestamp((first + i + 0.5) * STEP_S, tz)
        assert ctx.hour_local[i] == pytest.approx(local.hour + local.minute / 60 + local.second / 3600)
    # 08:00-08:15 local is the same hour feature on both sides of the change
    origins = np.array([_step(dt.datetime.combine(d, dt.time(8), tz)) for d in
                        (day_before, day_after)], dtype=np.int64)
    assert origins[1] - origins[0] != 2 * 96  # the UTC distance is not two whole days
    y = np.ones(origins[1] + 200 - (first - 700))
    x = feature_rows(["hour_sin", "hour_cos", "weekday"], y, first - 700, ctx, origins,
                     np.ones(2, dtype=np.int64))
    np.testing.assert_allclose(x[0, :2], x[1, :2], atol=1e-6)
    assert x[0, 0] == pytest.approx(np.sin(2 * np.pi * 8.125 / 24), abs=1e-6)
    # across the change itself the local hour jumps by the DST hour, not by the step
    k = _step(change_utc) - first
    jump = (ctx.hour_local[k] - ctx.hour_local[k - 1]) % 24
    assert jump == pytest.approx(0.25 + (1 if zone == "Europe/Berlin" else -1) % 24)


def test_china_holidays_and_adjusted_working_days() -> None:
    assert is_holiday(dt.date(2026, 2, 17), "CN") and is_day_off(dt.date(2026, 2, 17), "CN")
    assert not is_day_off(dt.date(2026, 2, 14), "CN")  # a Saturday worked for Spring Festival
    assert is_day_off(dt.date(2026, 3, 7), "CN")  # a plain Saturday
    assert not is_day_off(dt.date(2026, 3, 9), "CN")
    assert known_year("CN", 2026) and not known_year("CN", 2031)
    assert is_holiday(dt.date(2017, 11, 23), "US")  # Thanksgiving in the DOE buildings' year


def test_onnx_equals_sklearn_on_a_freshly_trained_model() -> None:
    models = tiny_models(7, 0.4, seed=3)
    model = onnx_export.export(models, 7, "test")
    x = np.random.default_rng(1).normal(size=(500, 7)).astype(np.float32)
    assert onnx_export.max_abs_diff(model, models, x) < 1e-5


@pytest.mark.parametrize("target", SHIPPED_TARGETS)
def test_shipped_model_matches_its_card(target: str) -> None:
    card = json.loads((SHIPPED / f"{target}.card.json").read_text())
    raw = (SHIPPED / f"{target}.onnx").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == card["onnx"]["sha256"]
    assert card["onnx"]["check"]["passed"]
    assert len(raw) < 4_000_000
    from edge.forecast import load_model

    m = load_model(SHIPPED / f"{target}.onnx")
    assert m.features == tuple(card["features"])


def test_every_target_is_shipped() -> None:
    """What ``make models`` trains is what ships, and every load target the runtime knows has a model."""
    from edge.forecast import TARGETS
    from models.train import TARGETS as TRAINED

    assert set(TRAINED) == set(SHIPPED_TARGETS)
    assert set(TARGETS) <= set(SHIPPED_TARGETS)
    assert {p.name.removesuffix(".card.json") for p in SHIPPED.glob("*.card.json")} == set(SHIPPED_TARGETS)
