"""The load forecasters on a simulated park's own loads: model vs "yesterday".

    python -m models.check_on_park                       # the shipped models in models/
    python -m models.check_on_park --site park-b         # Park B's (park_b_* targets)
    python -m models.check_on_park --model-dir DIR       # another set (e.g. an older one)
    python -m models.check_on_park --holdout             # models that never saw the windows
    (add --json models/check_on_park.json to record the figures for models/README.md)

For each window (14 days from local midnight, Asia/Shanghai; the evaluation's
summer 2026-07-06 and winter 2026-01-05) the park is built with
``parksim.physics.build_park(site, seed=0, start_utc=...)`` and its loads
are read at the middle of every 15-min step (``park.exogenous_at(ts)``, as the
evaluation harness books them; ``models.data.park_actuals``). At every step of
the window ``edge.forecast.Forecaster`` gets the eight days before as history
and the plan's temperature forecast (the harness's: issued at local midnight
for 48 h, ``parksim.evaluate.weather.forecast_weather``, seed 0, its default
error model), and issues 96 steps. Scored like the harness's ``skill``: every
issued step that falls inside the window, nMAE = MAE / mean actual over those
steps, next to "yesterday" (the actual 96 steps earlier) on the same steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge.forecast.features import DAY, HORIZON, STEP_S
from models.data import PARK_SITE, PARK_TZ, park_actuals, park_targets

WINDOWS = {"summer": dt.date(2026, 7, 6), "winter": dt.date(2026, 1, 5)}
TARGETS = ("heating", "cooling", "data_centre", "office", "hospital")  # Park A's
SITE_TARGETS = {"park-a": TARGETS, "park-b": tuple(park_targets("park-b"))}
HISTORY_DAYS = 8
PLAN_STEPS = 48 * 4


def check_window(model_dir: Path, start: dt.date, days: int, seed: int,
                 site: str = PARK_SITE) -> dict[str, Any]:
    from parksim.evaluate.weather import WeatherError, forecast_weather
    from parksim.physics.sites import spec_for

    from edge.forecast import Forecaster

    spec = spec_for(site)
    targets = SITE_TARGETS[site]
    t0 = dt.datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(PARK_TZ)).timestamp()
    first_win = int(t0) // STEP_S
    n_win = days * DAY
    first = first_win - HISTORY_DAYS * DAY
    n = HISTORY_DAYS * DAY + n_win + DAY
    actuals = park_actuals(site, seed, first, n)
    temp = actuals["temp_c"]
    y = {t: actuals[a] for t, a in park_targets(site).items() if t in targets}

    def actual(ts: float) -> dict[str, float]:  # weather at an instant (mid-step grid only)
        i = int(ts // STEP_S) - first
        return {"ghi_w_m2": 0.0, "temp_c": float(temp[i]), "wind_m_s": 0.0}

    fc = Forecaster(model_dir, timezone=PARK_TZ, latitude=spec.lat_deg, longitude=spec.lon_deg,
                    targets=targets)
    werr = WeatherError()
    em = {t: 0.0 for t in targets}
    ey = {t: 0.0 for t in targets}
    ys = {t: 0.0 for t in targets}
    cnt = 0
    sources: dict[str, set[str]] = {t: set() for t in targets}
    wf: dict[str, np.ndarray] | None = None
    for j in range(n_win):
        step = first_win + j
        i = step - first  # index of the origin step in y
        if j % DAY == 0:  # the plan's weather forecast, issued at local midnight for 48 h
            wf = forecast_weather(actual, float(step * STEP_S), STEP_S, PLAN_STEPS, seed, werr)
        assert wf is not None
        k0 = j % DAY
        weather = {"temp_c": wf["temp_c"][k0:k0 + HORIZON],
                   "ghi_w_m2": wf["ghi_w_m2"][k0:k0 + HORIZON]}
        hist = {t: y[t][i - HISTORY_DAYS * DAY:i] for t in targets}
        out = fc.refresh(step, hist, weather)
        k = np.arange(HORIZON)
        ok = j + k < n_win
        s = i + k[ok]
        for t in targets:
            tf = out.targets[t]
            sources[t].add(tf.source)
            a = y[t][s]
            em[t] += float(np.abs(tf.p50_kw[k[ok]] - a).sum())
            ey[t] += float(np.abs(y[t][s - DAY] - a).sum())
            ys[t] += float(a.sum())
        cnt += int(ok.sum())
    res: dict[str, Any] = {}
    for t in targets:
        mean = ys[t] / cnt
        res[t] = {"model_nmae": round(em[t] / cnt / mean, 4),
                  "yesterday_nmae": round(ey[t] / cnt / mean, 4),
                  "mean_kw": round(mean, 1), "source": sorted(sources[t])}
    res["_scored_steps"] = cnt
    return res


# --holdout: models trained on 365 days from these dates, so that the window lies in
# the held-out final 20 % of their series (the park repeats one model year, so the
# shipped models, trained on 2025, have seen the same days of the year, with other noise)
HOLDOUT_START = {"summer": dt.date(2025, 9, 1), "winter": dt.date(2025, 3, 1)}


def _holdout_models(window: str, targets: tuple[str, ...], out: Path, jobs: int,
                    site: str = PARK_SITE) -> None:
    import multiprocessing as mp

    from models import train
    from models.data import park_load_series

    series = {s.target: s for s in park_load_series(HOLDOUT_START[window], site)}
    train._SERIES.clear()
    train._SERIES.update({t: series[t] for t in targets})
    n = len(series[targets[0]].y_kw)
    test0 = dt.datetime.fromtimestamp((series[targets[0]].first_step + int(n * train.SPLIT[1]))
                                      * STEP_S, dt.UTC).date()
    print(f"({window} hold-out models: 365 days from {HOLDOUT_START[window]}, held out from "
          f"{test0})", file=sys.stderr)
    with mp.get_context("fork").Pool(jobs) as pool:
        pool.map(train._train_one, [(t, str(out)) for t in targets])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.check_on_park")
    ap.add_argument("--model-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0, help="the park's noise seed and the weather seed")
    ap.add_argument("--site", default=PARK_SITE, choices=sorted(SITE_TARGETS),
                    help="the simulated park and its load targets (default park-a)")
    ap.add_argument("--json", type=Path,
                    help="also write the figures here (models/check_on_park.json feeds README.md)")
    ap.add_argument("--holdout", action="store_true",
                    help="train temporary models whose held-out part contains each window "
                         "(see HOLDOUT_START) and check those instead of --model-dir")
    ap.add_argument("--jobs", type=int, default=2, help="--holdout: targets trained in parallel")
    a = ap.parse_args(argv)
    out: dict[str, Any] = {}
    targets = SITE_TARGETS[a.site]
    print(f"models: {'hold-out (temporary)' if a.holdout else a.model_dir}; {a.site} seed {a.seed}; "
          f"{a.days} days from local midnight")
    print("| window | target | mean kW | model nMAE | yesterday nMAE | forecast source |")
    print("|---|---|---|---|---|---|")
    for w, start in WINDOWS.items():
        t_start = time.time()
        if a.holdout:
            import tempfile
            import warnings

            warnings.filterwarnings("ignore")
            with tempfile.TemporaryDirectory(prefix="parkedge-holdout-") as tmp:
                _holdout_models(w, targets, Path(tmp), a.jobs, a.site)
                r = check_window(Path(tmp), start, a.days, a.seed, a.site)
        else:
            r = check_window(a.model_dir, start, a.days, a.seed, a.site)
        out[w] = r
        for t in targets:
            x = r[t]
            print(f"| {w} {start} | {t} | {x['mean_kw']:.0f} | {x['model_nmae']:.2%} | "
                  f"{x['yesterday_nmae']:.2%} | {', '.join(x['source'])} |")
        print(f"({w}: {r['_scored_steps']} scored steps per target, {time.time() - t_start:.0f} s)",
              file=sys.stderr)
    if a.json:  # merged into the file under "holdout", "shipped" or the model directory
        key = "holdout" if a.holdout else (
            "shipped" if a.model_dir.resolve() == Path(__file__).resolve().parent else str(a.model_dir))
        if a.site != PARK_SITE:
            key = f"{a.site} {key}"
        old = json.loads(a.json.read_text()) if a.json.exists() else {}
        old[key] = out
        a.json.write_text(json.dumps(old, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
