"""``parkedge-sim compare``: two real traces of one window, read per 15-min step."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from parksim.cli import main as sim_main
from parksim.evaluate import evaluate
from parksim.evaluate.compare import compare, read_trace

START = date(2026, 7, 6)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[dict[str, Any], Path]]:
    """Park B under its rules for a day, deciding every 15 min and every 5 min."""
    d = tmp_path_factory.mktemp("compare")
    out = {}
    for ticks in (1, 3):
        path = d / f"rules-{ticks}.csv"
        kpis = evaluate("park-b", "rules", 1.0, start=START, trace=str(path), warmup_days=1,
                        ticks_per_step=ticks)
        out[ticks] = (kpis, path)
    return out


def test_a_finer_trace_is_read_per_step_and_costs_add_up(
        traces: dict[int, tuple[dict[str, Any], Path]]) -> None:
    (k15, p15), (k5, p5) = traces[1], traces[3]
    a, b = read_trace(p15), read_trace(p5)
    assert len(a.ts) == len(b.ts) == 96
    assert b.columns["cost_cny"].sum() == pytest.approx(k5["cost_cny"], abs=0.05)
    res = compare(a, b, columns=("cool_ice1_kw", "price_import"))
    assert res["cost_diff_cny"] == pytest.approx(k5["cost_cny"] - k15["cost_cny"], abs=0.1)
    assert sum(res["cost_diff_by_hour_cny"]) == pytest.approx(res["cost_diff_cny"])
    assert sum(res["cost_diff_by_day_cny"].values()) == pytest.approx(res["cost_diff_cny"])
    # the tariff is the same in both: a price averaged over a step's ticks is the step's
    prices = res["columns_by_hour"]["price_import"]
    assert prices["a"] == pytest.approx(prices["b"])
    # against itself: nothing differs
    same = compare(a, a)
    assert same["cost_diff_cny"] == 0.0


def test_mismatched_windows_and_columns_are_one_line_errors(
        traces: dict[int, tuple[dict[str, Any], Path]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    p15 = traces[1][1]
    lines = p15.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:49]) + "\n")        # half the day
    assert sim_main(["compare", str(p15), str(short)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "short.csv" in err and "48 steps" in err
    assert sim_main(["compare", str(p15), str(p15), "--columns", "no_such_kw"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no column 'no_such_kw'" in err and str(p15) in err
    assert sim_main(["compare", str(p15), str(traces[3][1]), "--columns", "cool_ice1_kw"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("B - A cost over 96 steps") and "cool_ice1_kw A:" in out
