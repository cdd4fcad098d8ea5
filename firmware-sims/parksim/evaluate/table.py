"""The result tables of docs/evaluation.md and the README, recomputed.

    python -m parksim.evaluate.table --out var/eval            # both parks, summer and winter
    python -m parksim.evaluate.table --out var/eval --paper    # Park B at the paper's PV shares

Every run's KPIs go to ``OUT/<name>.json``; the markdown tables are printed.
Runs already in OUT are reused (delete them to rerun).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from .harness import evaluate

WINDOWS = {"summer": date(2026, 7, 6), "winter": date(2026, 1, 5)}
CONTROLLERS = ("rules", "mpc", "perfect")
# table rows: name -> evaluate() arguments
# mpc_oracle: mpc handed the next 24 h exactly, the controller's own share of the gap
ROWS = {"rules": {"controller": "rules"}, "mpc": {"controller": "mpc"},
        "mpc_naive": {"controller": "mpc", "forecasts": "naive"},
        "mpc_oracle": {"controller": "mpc", "forecasts": "oracle"}, "perfect": {"controller": "perfect"},
        # perfect seeing a day past the window, booked on the window: no stores emptied for its end
        "perfect_ahead": {"controller": "perfect", "perfect_lookahead_days": 1.0}}
# SCENARIOS.md, Park B: case -> (PV share of plant electricity, ice ratio, carbon cut, cost cut)
PAPER = {1: (0.0, 0.4877, None, None), 2: (0.0092, 0.2901, 0.1126, 0.0253),
         3: (0.1534, 0.1592, 0.2289, 0.2042), 4: (0.3471, 0.1256, 0.4361, 0.4554)}
DAYS = 14.0


def _run(job: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    name, kw = job
    return name, evaluate(**kw)


def _runs(out: Path, jobs: dict[str, dict[str, Any]], workers: int) -> dict[str, dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    done = {n: json.loads((out / f"{n}.json").read_text()) for n in jobs if (out / f"{n}.json").exists()}
    todo = [(n, kw) for n, kw in jobs.items() if n not in done]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for name, k in ex.map(_run, todo):
            (out / f"{name}.json").write_text(json.dumps(k, indent=1))
            done[name] = k
            print(f"done {name}: cost {k['cost_cny']:.0f} in {k['wall_s']} s", file=sys.stderr)
    return done


def captured(r: dict[str, Any], m: dict[str, Any], p: dict[str, Any], key: str = "cost_adj_cny") -> float | None:
    saving = r[key] - p[key]
    return (r[key] - m[key]) / saving if saving > 0 else None


def _fmt_share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def main_table(res: dict[str, dict[str, Any]]) -> str:
    lines = ["| park | window | controller | cost CNY | cost incl. storage change CNY | green share | CO2 t | "
             "violations | unserved kWh (e/h/c) | decide p50/p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    goals = ["", "| park | window | mpc's share of perfect's saving over rules (cost incl. storage) | "
             "same, on the objective (+ wear, unserved, shedding) | green share gap perfect - mpc | "
             "cost share against perfect_ahead (a day past the window) |",
             "|---|---|---|---|---|---|"]
    for site in ("park-a", "park-b"):
        for w in WINDOWS:
            ks = {c: res.get(f"{site}-{w}-{c}") for c in ROWS}
            for c, k in ks.items():
                if k is None:
                    continue
                u = k["unserved_by_kind_kwh"]
                ms = (f"{k['solve_ms']['p50']:.1f} / {k['solve_ms']['p99']:.1f}" if k["controller"] != "perfect"
                      else f"one MILP: {k['solve_ms']['max'] / 1000:.1f} s")
                lines.append(f"| {site} | {w} | {c} | {k['cost_cny']:,.0f} | {k['cost_adj_cny']:,.0f} | "
                             f"{100 * k['green_share']:.1f} % | {k['co2_kg'] / 1000:,.1f} | {k['violations']} | "
                             f"{u['electric']:.0f} / {u['heat']:.0f} / {u['cooling']:.0f} | {ms} |")
            r, p, pa = ks["rules"], ks["perfect"], ks["perfect_ahead"]
            for name in ("mpc", "mpc_naive", "mpc_oracle"):
                m = ks[name]
                if r and m and p:
                    goals.append(f"| {site} | {w} ({name}) | {_fmt_share(captured(r, m, p))} | "
                                 f"{_fmt_share(captured(r, m, p, 'objective_cny'))} | "
                                 f"{100 * (p['green_share'] - m['green_share']):+.1f} pp | "
                                 f"{_fmt_share(captured(r, m, pa)) if pa else '-'} |")
    return "\n".join(lines + goals)


def paper_table(res: dict[str, dict[str, Any]], kwp: dict[int, float]) -> str:
    ref = res.get("paper-1-rules")
    lines = ["| case | PV kWp | PV share (ours / paper) | cost cut mpc vs rules, same PV | "
             "cost cut vs case 1 rules: mpc / perfect / paper | carbon cut vs case 1 rules: mpc / perfect / paper |"
             " green share rules / mpc |",
             "|---|---|---|---|---|---|---|"]
    for case, (share, _ice, ccut, kcut) in PAPER.items():
        r, m, p = (res.get(f"paper-{case}-{c}") for c in CONTROLLERS)
        if not (r and m and p and ref):
            continue
        ours = r["pv_kwh"] / r["electricity_consumed_kwh"] if r["electricity_consumed_kwh"] else 0.0

        def cut(a: dict[str, Any], key: str) -> str:
            return f"{100 * (1 - a[key] / ref[key]):.1f} %"
        lines.append(
            f"| {case} | {kwp[case]:,.0f} | {100 * ours:.2f} % / {100 * share:.2f} % | "
            f"{100 * (1 - m['cost_adj_cny'] / r['cost_adj_cny']):.1f} % | "
            f"{cut(m, 'cost_adj_cny')} / {cut(p, 'cost_adj_cny')} / "
            f"{'-' if kcut is None else f'{100 * kcut:.2f} %'} | "
            f"{cut(m, 'co2_kg')} / {cut(p, 'co2_kg')} / {'-' if ccut is None else f'{100 * ccut:.2f} %'} | "
            f"{100 * r['green_share']:.1f} % / {100 * m['green_share']:.1f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parksim.evaluate.table")
    ap.add_argument("--out", default="var/eval")
    ap.add_argument("--days", type=float, default=DAYS)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--paper", action="store_true", help="Park B at the paper's four PV shares")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paper-forecasts", choices=("models", "naive"), default="naive")
    ap.add_argument("--ticks-per-step", type=int, default=1,
                    help="controller decisions per 15-min step, every row (evaluate(ticks_per_step=))")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if not a.paper:
        jobs = {f"{s}-{w}-{c}": {"site": s, **kw, "days": a.days, "start": d, "seed": a.seed,
                                 "ticks_per_step": a.ticks_per_step}
                for s in ("park-a", "park-b") for w, d in WINDOWS.items() for c, kw in ROWS.items()}
        print(main_table(_runs(out, jobs, a.workers)))
        return 0
    # size PV so that its share of the plant's electricity (today's operation) matches each case
    base_kwp = 3000.0
    probe = _runs(out, {"paper-probe": {"site": "park-b", "controller": "rules", "days": a.days,
                                        "start": WINDOWS["summer"], "seed": a.seed, "pv_kwp": base_kwp}},
                  a.workers)["paper-probe"]
    per_kwp = probe["pv_kwh"] / base_kwp
    kwp = {c: max(PAPER[c][0] * probe["electricity_consumed_kwh"] / per_kwp, 1.0) for c in PAPER}
    jobs = {f"paper-{case}-{c}": {"site": "park-b", "controller": c, "days": a.days,
                                  "start": WINDOWS["summer"], "seed": a.seed, "pv_kwp": round(kwp[case], 1),
                                  "ticks_per_step": a.ticks_per_step,
                                  **({"forecasts": a.paper_forecasts} if c == "mpc" else {})}
            for case in PAPER for c in CONTROLLERS}
    print(paper_table(_runs(out, jobs, a.workers), kwp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
