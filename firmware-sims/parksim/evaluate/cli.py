"""``parkedge-sim evaluate``: arguments and the run (registered in parksim.cli.COMMANDS)."""

from __future__ import annotations

import argparse
import json
from datetime import date

from ..physics import SITES
from .harness import CONTROLLERS, EXACT_KINDS, evaluate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site", required=True, choices=SITES)
    p.add_argument("--controller", required=True, choices=CONTROLLERS)
    p.add_argument("--days", required=True, type=float, help="length of the window in days")
    p.add_argument("--start", default="2026-07-06", help="first day (local date, YYYY-MM-DD)")
    p.add_argument("--weather", default=None, metavar="FILE",
                   help="CSV timestamp, ghi_w_m2, dni_w_m2, dhi_w_m2, temp_c, wind_m_s (UTC)")
    p.add_argument("--trace", default=None, metavar="FILE", help="write every step as CSV")
    p.add_argument("--seed", type=int, default=0, help="load noise and weather forecast error")
    p.add_argument("--json", action="store_true", help="print the KPIs as one JSON document")
    p.add_argument("--pv-kwp", type=float, default=None, help="resize the PV plant (kWp; AC = 0.94 x)")
    p.add_argument("--weather-error", type=float, default=1.0,
                   help="scale of the weather forecast error (0 = perfect weather forecasts)")
    p.add_argument("--forecasts", choices=("models", "naive", "oracle"), default="models",
                   help="mpc: the shipped ONNX models, the Forecaster's naive baselines only, or "
                        "the next day exactly as it will happen (a diagnostic)")
    p.add_argument("--exact", default="", metavar="KINDS",
                   help="mpc: these forecasts exact, the others as forecast (comma-separated: "
                        f"{', '.join(EXACT_KINDS)}; a diagnostic of what each forecast's error costs)")
    p.add_argument("--lookahead-days", type=float, default=0.0,
                   help="perfect: also see this many days past the window (booked: the window), so its "
                        "stores are not emptied for the window's end; 0 = the window's exact optimum")
    p.add_argument("--warmup-days", type=int, default=7)
    p.add_argument("--ticks-per-step", type=int, default=1,
                   help="controller decisions per 15-min step, each on the tick just measured "
                        "(the daemon ticks every second; 1 sees a change up to 15 min late)")


def run(args: argparse.Namespace) -> int:
    try:
        start = date.fromisoformat(args.start)
    except ValueError as exc:
        raise ValueError(f"--start {args.start!r}: {exc}") from None
    if args.days <= 0 or args.days > 366:
        raise ValueError(f"--days {args.days}: must be in (0, 366]")
    if args.weather_error < 0:
        raise ValueError(f"--weather-error {args.weather_error}: must be >= 0")
    kpis = evaluate(args.site, args.controller, args.days, start=start, weather=args.weather,
                    trace=args.trace, seed=args.seed, pv_kwp=args.pv_kwp,
                    weather_error_scale=args.weather_error, forecasts=args.forecasts,
                    warmup_days=args.warmup_days, ticks_per_step=args.ticks_per_step,
                    exact=tuple(k.strip() for k in args.exact.split(",") if k.strip()),
                    perfect_lookahead_days=args.lookahead_days)
    if args.json:
        print(json.dumps(kpis))
    else:
        for k in ("site", "controller", "days", "cost_cny", "grid_import_kwh", "grid_export_kwh",
                  "green_share", "co2_kg", "unserved_kwh", "curtailed_kwh", "violations"):
            print(f"{k:16} {kpis[k]}")
        print(f"{'solve_ms':16} p50 {kpis['solve_ms']['p50']} p99 {kpis['solve_ms']['p99']} "
              f"max {kpis['solve_ms']['max']}")
    return 0
