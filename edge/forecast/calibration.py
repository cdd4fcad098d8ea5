"""The P10-P90 interval: a conformal shift from the model card, adapted online to live misses.

The card's ``interval_calibration`` block holds, per lead bucket, two signed
shifts in model units (units of ``scale_kw``) added to the raw P10 and P90:
split-conformal quantile regression (CQR) on a calibration slice, so the
P10-P90 interval covers ``target_coverage`` of it. A shift may widen or shrink
the interval. P50 is never touched: it is the model's, clipped to the
physical bounds; P10 and P90 are clipped too and held on their side of P50.

``AdaptiveInterval`` then adapts the shifts to live data (adaptive conformal
inference in its quantile-tracking form): after each realised step, per lead
bucket and per side, ``offset += step * (share missed - target miss)`` over
every interval issued for that step, each offset bounded by
``max_offset_scaled``. A positive offset widens. ``step_scaled`` 0 turns it off.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["AdaptiveInterval", "CalibrationError", "IntervalCalibration", "bucket_index",
           "parse_calibration", "postprocess"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B8 = NDArray[np.bool_]
MAX_SHIFT_SCALED = 1.0  # a shift or an offset bound of more than scale_kw is not a calibration
LIVE_WINDOW_STEPS = 7 * 96  # the live coverage in ``state()`` is over the last week of steps


class CalibrationError(ValueError):
    """An invalid ``interval_calibration`` block: ``field`` (dotted path) and its value."""

    def __init__(self, field: str, value: Any, why: str) -> None:
        text = repr(value)
        text = text[:60] + ("..." if len(text) > 60 else "")
        super().__init__(f"interval_calibration{'.' + field if field else ''} = {text}: {why}")
        self.field = field


@dataclass(frozen=True, slots=True)
class IntervalCalibration:
    """The validated block; every per-bucket tuple has one entry per lead bucket."""

    bucket_ends: tuple[int, ...]  # last lead (steps) of each bucket
    shifts: tuple[tuple[float, float], ...]  # added to (P10, P90), model units
    target_miss: tuple[tuple[float, float], ...]  # share of steps below P10, above P90
    step: tuple[float, ...]  # adaptive step per step of data, model units; 0 = off
    max_offset: tuple[float, ...]  # bound on each adaptive offset, model units

    @property
    def target_coverage(self) -> tuple[float, ...]:
        return tuple(1.0 - a - b for a, b in self.target_miss)


def bucket_index(leads: I64 | NDArray[Any], bucket_ends: Sequence[int]) -> I64:
    """The lead bucket of each lead (steps, from 1)."""
    return np.searchsorted(np.asarray(bucket_ends), leads).astype(np.int64)


def postprocess(q: NDArray[np.float32] | F64, shifts: F64, clip: tuple[float, float],
                dark: B8 | None = None) -> F64:
    """(P10, P50, P90) from the raw model output ``q`` [N, 3] and per-row ``shifts`` [N, 2].

    P50 is the model's, clipped to ``clip``; P10 + shift and P90 + shift are
    clipped and then held at or below, and at or above, P50 (never sorted, so
    P50 stays the model's); ``dark`` marks steps without sun, all zero.
    """
    qq = np.asarray(q, dtype=np.float64)
    mid = np.clip(qq[:, 1], clip[0], clip[1])
    lo = np.minimum(np.clip(qq[:, 0] + shifts[:, 0], clip[0], clip[1]), mid)
    hi = np.maximum(np.clip(qq[:, 2] + shifts[:, 1], clip[0], clip[1]), mid)
    out = np.column_stack([lo, mid, hi])
    if dark is not None:
        out[dark] = 0.0
    return out


def _number(field: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        raise CalibrationError(field, v, "not a finite number")
    if not lo <= float(v) <= hi:
        raise CalibrationError(field, v, f"outside [{lo:g}, {hi:g}]")
    return float(v)


def _list(field: str, v: Any, n: int | None = None) -> list[Any]:
    if not isinstance(v, list):
        raise CalibrationError(field, v, "not a list")
    if n is not None and len(v) != n:
        raise CalibrationError(field, v, f"has {len(v)} entries, the lead buckets {n}")
    return v


def parse_calibration(block: Any, horizon: int) -> IntervalCalibration:
    """Validate a card's ``interval_calibration`` block; raise CalibrationError naming the field."""
    if not isinstance(block, Mapping):
        raise CalibrationError("", block, "missing or not an object")

    def get(key: str) -> Any:
        if key not in block:
            raise CalibrationError(key, None, "missing")
        return block[key]

    buckets = _list("lead_buckets", get("lead_buckets"))
    if not buckets:
        raise CalibrationError("lead_buckets", buckets, "empty")
    ends: list[int] = []
    for i, b in enumerate(buckets):
        f = f"lead_buckets[{i}]"
        if (not isinstance(b, list) or len(b) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in b)):
            raise CalibrationError(f, b, "not a pair of integer leads")
        if b[0] != (ends[-1] + 1 if ends else 1) or b[1] < b[0]:
            raise CalibrationError(f, b, "buckets must run from lead 1 without gaps or overlaps")
        ends.append(int(b[1]))
    if ends[-1] != horizon:
        raise CalibrationError("lead_buckets", buckets, f"must end at the horizon, {horizon} steps")
    n = len(ends)
    shifts = tuple(
        (_number(f"shifts_scaled[{i}][0]", p[0], -MAX_SHIFT_SCALED, MAX_SHIFT_SCALED),
         _number(f"shifts_scaled[{i}][1]", p[1], -MAX_SHIFT_SCALED, MAX_SHIFT_SCALED))
        for i, p in enumerate(_pairs("shifts_scaled", get("shifts_scaled"), n)))
    miss = tuple(
        (_number(f"target_miss[{i}][0]", p[0], 0.0, 1.0), _number(f"target_miss[{i}][1]", p[1], 0.0, 1.0))
        for i, p in enumerate(_pairs("target_miss", get("target_miss"), n)))
    for i, (a, b) in enumerate(miss):
        if a + b >= 1.0:
            raise CalibrationError(f"target_miss[{i}]", [a, b], "misses add up to 1 or more")
    ad = get("adaptive")
    if not isinstance(ad, Mapping):
        raise CalibrationError("adaptive", ad, "not an object")
    for key in ("step_scaled", "max_offset_scaled"):
        if key not in ad:
            raise CalibrationError(f"adaptive.{key}", None, "missing")
    step = tuple(_number(f"adaptive.step_scaled[{i}]", v, 0.0, MAX_SHIFT_SCALED)
                 for i, v in enumerate(_list("adaptive.step_scaled", ad["step_scaled"], n)))
    bound = tuple(_number(f"adaptive.max_offset_scaled[{i}]", v, 0.0, MAX_SHIFT_SCALED)
                  for i, v in enumerate(_list("adaptive.max_offset_scaled", ad["max_offset_scaled"], n)))
    return IntervalCalibration(tuple(ends), shifts, miss, step, bound)


def _pairs(field: str, v: Any, n: int) -> list[list[Any]]:
    out = _list(field, v, n)
    for i, p in enumerate(out):
        if not isinstance(p, list) or len(p) != 2:
            raise CalibrationError(f"{field}[{i}]", p, "not a pair [P10, P90]")
    return out


class AdaptiveInterval:
    """The card's shifts plus offsets learnt from live misses (model units throughout).

    ``issue`` records an interval as issued; ``observe`` scores every recorded
    interval that covers a realised step and moves the offsets. Call
    ``observe`` for a step before issuing the next forecast, as the runtime does.
    """

    def __init__(self, cal: IntervalCalibration, horizon: int) -> None:
        self.cal = cal
        self.horizon = horizon
        n = len(cal.bucket_ends)
        self.offset = np.zeros((n, 2))  # widening: P10 - offset[b, 0], P90 + offset[b, 1]
        self._shift = np.asarray(cal.shifts, dtype=np.float64)
        self._miss = np.asarray(cal.target_miss, dtype=np.float64)
        self._step = np.asarray(cal.step, dtype=np.float64)
        self._bound = np.asarray(cal.max_offset, dtype=np.float64)
        self._bucket_of_k = bucket_index(np.arange(1, horizon + 1), cal.bucket_ends)
        self._issued: deque[tuple[int, F64, F64, B8]] = deque()
        self._live: deque[tuple[int, int, int]] = deque(maxlen=LIVE_WINDOW_STEPS)  # (n, below, above)
        self.updates = 0

    def shifts(self, leads: I64) -> F64:
        """Per row, the shifts [N, 2] to add to the raw (P10, P90) now."""
        s = self._shift + self.offset * np.array([-1.0, 1.0])
        return np.asarray(s[bucket_index(leads, self.cal.bucket_ends)], dtype=np.float64)

    def issue(self, origin: int, lo: F64, hi: F64, scored: B8 | None = None) -> None:
        """Record an interval issued at ``origin`` (index k covers step origin + k).

        ``scored`` marks the steps whose outcome counts (for PV: sun up).
        """
        mask = np.ones(len(lo), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
        self._issued.append((origin, np.asarray(lo, dtype=np.float64).copy(),
                             np.asarray(hi, dtype=np.float64).copy(), mask.copy()))
        while self._issued and self._issued[0][0] + self.horizon <= origin:
            self._issued.popleft()

    def observe(self, step: int, actual: float) -> None:
        """Score the intervals issued for ``step`` against ``actual`` and adapt the offsets."""
        if not math.isfinite(actual):
            return
        nb = len(self.cal.bucket_ends)
        count = np.zeros(nb)
        below = np.zeros(nb)
        above = np.zeros(nb)
        for origin, lo, hi, mask in self._issued:
            k = step - origin
            if 0 <= k < len(lo) and mask[k]:
                b = self._bucket_of_k[k]
                count[b] += 1
                below[b] += actual < lo[k]
                above[b] += actual > hi[k]
        seen = count > 0
        if not seen.any():
            return
        share = np.column_stack([below, above])[seen] / count[seen, None]
        bound = self._bound[seen, None]
        self.offset[seen] = np.clip(self.offset[seen] + self._step[seen, None] * (share - self._miss[seen]),
                                    -bound, bound)
        self.updates += 1
        self._live.append((int(count.sum()), int(below.sum()), int(above.sum())))

    def state(self, scale_kw: float) -> dict[str, Any]:
        """Offsets in kW per lead bucket and the live coverage of the issued intervals (JSON-able)."""
        n = sum(x[0] for x in self._live)
        below = sum(x[1] for x in self._live)
        above = sum(x[2] for x in self._live)
        return {
            "adaptive": any(s > 0 for s in self.cal.step),
            "lead_buckets_end": list(self.cal.bucket_ends),
            "target_coverage": [round(c, 4) for c in self.cal.target_coverage],
            "offset_p10_kw": [round(-float(v) * scale_kw, 3) for v in self.offset[:, 0]],
            "offset_p90_kw": [round(float(v) * scale_kw, 3) for v in self.offset[:, 1]],
            "updates": self.updates,
            "live_samples": n,
            "live_coverage": None if n == 0 else (n - below - above) / n,
            "live_below_p10": None if n == 0 else below / n,
            "live_above_p90": None if n == 0 else above / n,
        }
