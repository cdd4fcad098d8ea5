"""``parkedge-sim compare A.csv B.csv``: where two traces of one window differ (B - A).

Both traces come from ``evaluate --trace`` over the same window, from any controllers and
cadences: a trace finer than 15 min (``--ticks-per-step``) is taken per 15-min step, its
amounts (``cost_cny``, ``gas_m3``, ``diesel_l``, ``co2_kg``) summed and everything else
(powers in kW, levels, prices) averaged. Printed: B - A cost by local hour of day and by
local day, and for each ``--columns`` entry its mean by local hour in A and in B. This is
how the README's traces were read ("what still misses"): e.g. mpc against perfect's
replay, or one cadence against another.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

__all__ = ["Trace", "compare", "read_trace"]

F64 = NDArray[np.float64]
STEP_S = 900.0
# per-tick amounts: a step's value is the sum of its ticks'
AMOUNTS = ("cost_cny", "gas_m3", "diesel_l", "co2_kg")


@dataclass(frozen=True)
class Trace:
    path: str
    ts: F64                       # UTC epoch seconds, start of each 15-min step
    columns: dict[str, F64]       # per 15-min step


def read_trace(path: str | Path) -> Trace:
    """A trace per 15-min step. Raises ValueError naming the file and what is wrong."""
    p = str(path)
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{p}: no rows")
    if "timestamp" not in rows[0]:
        raise ValueError(f"{p}: no 'timestamp' column (not an `evaluate --trace` file)")
    ts = np.array([datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
                   for r in rows])
    names = [k for k in rows[0] if k != "timestamp"]
    cols: dict[str, F64] = {}
    for k in names:
        try:
            cols[k] = np.array([float(r[k]) if r[k] != "" else math.nan for r in rows])
        except ValueError:
            continue                   # a text column: not compared
    step = np.floor(ts / STEP_S) * STEP_S
    keys, idx = np.unique(step, return_inverse=True)
    counts = np.bincount(idx).astype(float)
    out: dict[str, F64] = {}
    for k, v in cols.items():
        total = np.bincount(idx, weights=np.nan_to_num(v)).astype(float)
        out[k] = total if k in AMOUNTS else total / counts
    return Trace(p, keys.astype(float), out)


def compare(a: Trace, b: Trace, *, tz: str = "Asia/Shanghai",
            columns: tuple[str, ...] = ()) -> dict[str, Any]:
    """B - A: total and by local hour of day and local day of ``cost_cny``; ``columns``'
    means by local hour in each. Raises ValueError when the windows differ or a column
    is missing."""
    if len(a.ts) != len(b.ts) or not np.array_equal(a.ts, b.ts):
        raise ValueError(f"{b.path}: its steps ({_span(b)}) are not those of {a.path} "
                         f"({_span(a)}); compare traces of one window")
    for t in (a, b):
        for c in ("cost_cny", *columns):
            if c not in t.columns:
                raise ValueError(f"{t.path}: no column {c!r}")
    zone = ZoneInfo(tz)
    local = [datetime.fromtimestamp(float(t), zone) for t in a.ts]
    hour = np.array([d.hour for d in local])
    day = np.array([d.date().isoformat() for d in local])
    dc = b.columns["cost_cny"] - a.columns["cost_cny"]
    out: dict[str, Any] = {
        "a": a.path, "b": b.path, "steps": len(a.ts), "tz": tz,
        "cost_diff_cny": float(dc.sum()),
        "cost_diff_by_hour_cny": [float(dc[hour == h].sum()) for h in range(24)],
        "cost_diff_by_day_cny": {str(d): float(dc[day == d].sum()) for d in np.unique(day)},
        "columns_by_hour": {},
    }
    for c in columns:
        out["columns_by_hour"][c] = {
            "a": [float(np.mean(a.columns[c][hour == h])) if (hour == h).any() else math.nan
                  for h in range(24)],
            "b": [float(np.mean(b.columns[c][hour == h])) if (hour == h).any() else math.nan
                  for h in range(24)],
        }
    return out


def _span(t: Trace) -> str:
    if not len(t.ts):
        return "none"
    fmt = "%Y-%m-%dT%H:%MZ"
    first = datetime.fromtimestamp(float(t.ts[0]), UTC).strftime(fmt)
    last = datetime.fromtimestamp(float(t.ts[-1]), UTC).strftime(fmt)
    return f"{len(t.ts)} steps {first}..{last}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A.csv", help="`evaluate --trace` file (the reference)")
    p.add_argument("b", metavar="B.csv", help="`evaluate --trace` file of the same window")
    p.add_argument("--columns", default="", help="comma-separated trace columns to show by hour")
    p.add_argument("--tz", default="Asia/Shanghai", help="local time zone for hours and days")
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")


def run(args: argparse.Namespace) -> int:
    cols = tuple(c for c in args.columns.split(",") if c)
    res = compare(read_trace(args.a), read_trace(args.b), tz=args.tz, columns=cols)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"B - A cost over {res['steps']} steps: {res['cost_diff_cny']:,.0f} CNY "
          f"(A {res['a']}, B {res['b']})")
    print("by local hour: " + " ".join(f"{h}:{v:,.0f}"
                                       for h, v in enumerate(res["cost_diff_by_hour_cny"])))
    print("by local day:  " + " ".join(f"{d[5:]}:{v:,.0f}"
                                       for d, v in res["cost_diff_by_day_cny"].items()))
    for c, v in res["columns_by_hour"].items():
        for side in ("a", "b"):
            print(f"{c} {side.upper()}: " + " ".join(f"{x:.1f}" for x in v[side]))
    return 0
