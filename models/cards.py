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
        f"{card['split']['method']}. Train {card['split']['train']}, validation "
        f"{card['split']['validation']}, test {card['split']['test']} "
        f"({card['split']['note']}). Rows: {card['split']['train_rows']} train (random origins "
        f"and leads), {card['split']['validation_rows']} validation, {card['split']['test_rows']} "
        f"test ({card['split']['test_origins']}).",
        "",
        "## Metrics on the held-out part",
        "",
        f"nMAE = MAE / {m['normaliser']} ({m['normaliser_kw']:.0f} kW); pinball is the mean "
        "over the three quantiles, same normaliser. Baseline intervals are the baseline plus "
        "its validation residual quantiles per lead bucket.",
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
        f"`{card['fallback']['baseline']}` (best baseline on validation). Interval calibration "
        f"per lead bucket {card['postprocess']['lead_buckets']}: "
        f"{card['postprocess']['interval_calibration']} (factors on P50-P10, P90-P50).",
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
        "Rebuilt by `make models` (`python -m models.train --all`) from the vendored data. "
        "One card per model (`<target>.card.json`, `<target>.card.md`). PV and wind "
        "\"actuals\" are modelled from measured weather, not metered; loads are building "
        "simulations scaled to Park A.",
        "",
        GOALS,
        "",
        "| target | model nMAE | best baseline (nMAE) | model MAPE | coverage P10-P90 | MB |",
        "|---|---|---|---|---|---|",
    ]
    for c in cards:
        t = c["metrics"]["test"]
        bases = {k: v for k, v in t.items() if not k.startswith("model")}
        best = min(bases, key=lambda k: bases[k]["nmae"])
        lines.append(
            f"| {c['target']} | {_pct(t['model']['nmae'])} | {best} ({_pct(bases[best]['nmae'])}) "
            f"| {_pct(t['model'].get('mape'))} | {_pct(t['model']['coverage_p10_p90'])} "
            f"| {c['onnx']['bytes'] / 1e6:.2f} |")
    lines.append("")
    path.write_text("\n".join(lines))
