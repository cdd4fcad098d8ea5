"""Model cards as markdown, from the JSON card (the JSON is the source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GOALS = ("Goals (issue #4), on the held-out part: day-ahead electric load MAPE <= 5 %; "
         "PV nMAE at least 35 % below persistence of yesterday; P10-P90 coverage 75-85 %.")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _row(name: str, m: dict[str, float]) -> str:
    return (f"| {name} | {_pct(m.get('nmae'))} | {_pct(m.get('mape'))} | "
            f"{_pct(m.get('pinball_norm'))} | {_pct(m.get('coverage_p10_p90'))} | "
            f"{m.get('bias_kw', 0):.1f} |")


def write_markdown(card: dict[str, Any], path: Path) -> None:
    m = card["metrics"]
    t = m["test"]
    lines = [
        f"# Model card: `{card['target']}`",
        "",
        f"24 h ahead in {card['horizon_steps']} steps of 15 min, refreshed every step; "
        f"P10/P50/P90 in {card['unit']}. File `{card['onnx']['file']}` "
        f"({card['onnx']['bytes'] / 1e6:.2f} MB), input `features` [N, {len(card['features'])}] "
        "float32, output `quantiles` [N, 3].",
        "",
        "## Data",
        "",
        *[f"- **{k}**: {v}" for k, v in card["data"].items()],
        f"- **location used for features**: {card['location']}",
        "",
        "## Features",
        "",
        "One row per lead: " + ", ".join(f"`{f}`" for f in card["features"]) + ". "
        "`y_*` are the target's measured history in units of "
        f"{card['scale_kw']:.0f} kW (last value, last hour, last 24 h mean, same step "
        "yesterday, same step last week); calendar in the site's local clock time "
        "(hour as sin/cos, weekday, holiday, day off); `cos_zenith`/`pcs` solar geometry "
        "and Haurwitz clear-sky GHI; `k_*` clear-sky indices; `fc_*` the plan's weather "
        f"forecast for the target step. Weather needed: {card['requires_weather'] or 'none'}.",
        "",
        "## Split",
        "",
        f"{card['split']['method']}. Train {card['split']['train']}, calibration folds "
        f"{card['split'].get('calibration_folds', card['split']['validation'])}, "
        f"test {card['split']['test']} "
        f"({card['split']['note']}). Rows: {card['split']['train_rows']} train (random origins "
        f"and leads), {card['split']['validation_rows']} calibration, {card['split']['test_rows']} "
        f"test ({card['split']['test_origins']}).",
        "",
        "## Metrics on the held-out part",
        "",
        f"nMAE = MAE / {m['normaliser']} ({m['normaliser_kw']:.0f} kW); pinball is the mean "
        "over the three quantiles, same normaliser. Baseline intervals are the baseline plus "
        "its residual quantiles on the calibration folds per lead bucket. "
        f"Coverage: {m.get('coverage', 'over all steps')}.",
        "",
        "| forecast | nMAE | MAPE | pinball | P10-P90 coverage | bias kW |",
        "|---|---|---|---|---|---|",
        *[_row(k, v) for k, v in t.items()],
        "",
        "By lead (steps), nMAE / MAPE / coverage:",
        "",
        "| forecast | " + " | ".join(m["test_by_lead_steps"]["model"]) + " |",
        "|---|" + "---|" * len(m["test_by_lead_steps"]["model"]),
        *[f"| {k} | " + " | ".join(
            f"{_pct(b['nmae'])} / {_pct(b.get('mape'))} / {_pct(b['coverage_p10_p90'])}"
            for b in v.values()) + " |" for k, v in m["test_by_lead_steps"].items()],
        "",
        GOALS,
        "",
        "## Runtime",
        "",
        f"Fallback when the model is missing, invalid or lacks inputs: "
        f"`{card['fallback']['baseline']}` (best baseline on the calibration folds). Interval "
        f"calibration per lead bucket {card['postprocess']['lead_buckets']}: "
        + ", ".join(f"[{a:.3f}, {b:.3f}]" for a, b in card['postprocess']['interval_calibration'])
        + f" (factors on P50-P10, P90-P50; {card['postprocess'].get('method', '')}).",
        "",
        f"ONNX check: max |onnxruntime - scikit-learn| = "
        f"{card['onnx']['check']['max_abs_diff_vs_sklearn']:.2e} on "
        f"{card['onnx']['check']['rows']} test rows (tolerance {card['onnx']['check']['tolerance']}).",
        "",
        f"Training: {card['training']['estimator']}, {card['training']['params']}, "
        f"seed {card['training']['seed']}, {card['training']['seconds']} s; "
        f"scikit-learn {card['training']['sklearn']}.",
        "",
    ]
    path.write_text("\n".join(lines))


def write_summary(cards: list[dict[str, Any]], path: Path) -> None:
    lines = [
        "# Shipped forecasters",
        "",
        "Rebuilt by `make models` (`python -m models.train --all`, about 2 min on 2 cores) from "
        "the vendored data; training is deterministic, and `python -m models.train --check --all` "
        "retrains into a temporary directory and compares the new ONNX outputs with the shipped "
        "ones on every held-out row (tolerance 1e-4 in scaled units), the interval calibration "
        "and the card's held-out metrics (`tests/forecast/test_reproduce.py` does this for "
        "`wind`). One card per model (`<target>.card.json`, `<target>.card.md`). PV and wind "
        "\"actuals\" are modelled from measured weather, not metered. Park A's loads "
        "(heating, cooling, data_centre, office, hospital, electric_total) have one "
        "definition, the simulated park's: `models/data.py` reads them from "
        "`parksim.physics.build_park(\"park-a\")` at the middle of every 15-min step "
        "(firmware-sims/README.md, \"Loads and their scaling\"), one local year from "
        "2025-01-01 with the park's 2 % load noise drawn with seed 7919 (the evaluation uses "
        "0), and a plan temperature forecast with the evaluation harness's error model. The "
        "park repeats one model year, so that year is all the data: 80 % is Jan-Oct, the "
        "held-out part 19 Oct-31 Dec.",
        "",
        GOALS,
        "",
        "All metrics are on the held-out final 20 % (never used in fitting, calibration or "
        "choice). Intervals are calibrated cross-conformally on the first 80 % (see the cards). "
        "PV coverage is over the steps with the sun up (at night PV and its interval are "
        "exactly 0, which would inflate coverage); the all-steps figure is in the cards. "
        "`pv_clearsky` is the PV model the runtime uses when the plan carries no weather "
        "forecast (clear sky and the PV history only). MAPE leaves out steps whose actual is "
        "below 1 % of the model's scale (Park A's heat is 0 kW on some summer nights).",
        "",
        "| target | model nMAE | yesterday nMAE | best baseline (nMAE) | model MAPE "
        "| coverage P10-P90 | MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cards:
        t = c["metrics"]["test"]
        bases = {k: v for k, v in t.items() if not k.startswith("model")}
        best = min(bases, key=lambda k: bases[k]["nmae"])
        solar = c["postprocess"].get("zero_without_sun", False)
        lines.append(
            f"| {c['target']} | {_pct(t['model']['nmae'])} | {_pct(t['yesterday']['nmae'])} "
            f"| {best} ({_pct(bases[best]['nmae'])}) "
            f"| {_pct(t['model'].get('mape'))} | {_pct(t['model']['coverage_p10_p90'])}"
            f"{' (sun up)' if solar else ''} | {c['onnx']['bytes'] / 1e6:.2f} |")
    miss = [f"{c['target']} ({_pct(c['metrics']['test']['model']['coverage_p10_p90'])})"
            for c in cards if not 0.75 <= c["metrics"]["test"]["model"]["coverage_p10_p90"] <= 0.85]
    if miss:
        lines += [
            "",
            "Coverage outside 75-85 % on the held-out part: " + ", ".join(miss) + ". Known causes: "
            "wind output is exactly 0 kW on about a third of the held-out steps (below cut-in), "
            "so a correct P10 sits at 0 and covers them (no step falls below it; the upper tail "
            "misses about 8 %), and a P10-P90 coverage near 80 % would need a P10 above 0 where "
            "calm is likely; for the loads the held-out months differ from the calibration "
            "period (the calibration sees every season before the test part, the test part is "
            "one stretch of the year: for Park A's loads late autumn and early winter only; "
            "heating's and cooling's uncalibrated coverage there is 65-67 %), and the test part "
            "was not used to correct it.",
        ]
    check = path.parent / "check_on_park.json"
    if check.exists():
        import json

        res = json.loads(check.read_text())
        lines += [
            "",
            "## On the simulated park",
            "",
            "`python -m models.check_on_park` (figures in `check_on_park.json`): the shipped "
            "models through `edge.forecast.Forecaster` on `build_park(\"park-a\", seed=0)`'s "
            "own loads, 14 days from local midnight, a forecast at every step (eight days of "
            "history, the harness's temperature forecast), scored like the harness's skill: "
            "nMAE = MAE / mean actual over the issued steps inside the window. Caveat: the park "
            "repeats one model year, so the shipped models have seen these days of the year "
            "(with other noise and other forecast errors); `--holdout` trains models whose "
            "held-out part contains each window and is the out-of-sample figure.",
            "",
            "| models | window | target | model nMAE | yesterday nMAE |",
            "|---|---|---|---|---|",
        ]
        for kind, by_w in res.items():
            for w, r in by_w.items():
                for tg, x in r.items():
                    if not tg.startswith("_"):
                        lines.append(f"| {kind} | {w} | {tg} | {_pct(x['model_nmae'])} "
                                     f"| {_pct(x['yesterday_nmae'])} |")
    lines.append("")
    path.write_text("\n".join(lines))
