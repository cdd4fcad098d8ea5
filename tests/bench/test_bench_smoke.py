"""`parkedge bench --quick` end to end: the report's shape and sanity, never a time threshold.

One quick run (simulated park in a subprocess, the daemon in-process and as
`parkedge run`) is shared by every test of the module.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from edge.bench import TARGET_POINTS, run_benchmarks
from edge.config import embedded_site_path, load_site

SECTIONS = ("machine", "acquisition", "tick", "store", "daemon_rss_bytes", "qp", "qp_park_b", "forecast",
            "outbox_drain")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_benchmarks(quick=True)


def _site_points() -> tuple[int, dict[str, int]]:
    site = load_site(embedded_site_path("park-a"))
    by = {p: sum(len(d.points) for d in site.devices if d.protocol == p) for p in ("modbus", "opcua")}
    return sum(by.values()), by


def _latency_sane(stats: dict[str, Any], n: int) -> None:
    assert stats["n"] == n
    assert 0 <= stats["p50"] <= stats["p99"] <= stats["max"]
    assert all(math.isfinite(stats[k]) for k in ("p50", "p99", "max"))


def test_every_section_is_there_and_none_failed(report: dict[str, Any]) -> None:
    assert tuple(report) == SECTIONS
    for name in SECTIONS:
        assert isinstance(report[name], dict), name
        assert "error" not in report[name], f"{name}: {report[name].get('error')}"


def test_machine(report: dict[str, Any]) -> None:
    m = report["machine"]
    assert m["nproc"] >= 1 and m["python"].count(".") == 2
    assert m["started_utc"] <= m["finished_utc"]


def test_acquisition_reads_every_configured_point_of_both_protocols(report: dict[str, Any]) -> None:
    acq = report["acquisition"]
    assert acq["modbus"]["points"] + acq["opcua"]["points"] == TARGET_POINTS
    for protocol in ("modbus", "opcua"):
        got = acq[protocol]
        assert got["points"] > 0 and got["devices"] > 0
        assert got["readings"] == got["points"] * got["polls"]
        assert got["good_readings"] == got["readings"]  # every point arrived good, every poll
        assert got["points_per_s"] > 0
        _latency_sane(got["poll_ms"], got["devices"] * got["polls"])
        assert got["requests_per_poll_all_devices"] >= got["devices"]


def test_tick_at_the_site_and_at_1000_points(report: dict[str, Any]) -> None:
    site_points, by_protocol = _site_points()
    tick = report["tick"]
    assert tick["site"]["points"] == tick["site"]["points_in_snapshot"] == site_points
    assert tick["site"]["points_by_protocol"] == by_protocol
    load = tick["load"]
    assert load["points"] == load["points_in_snapshot"] == TARGET_POINTS
    mb, opc = load["points_by_protocol"]["modbus"], load["points_by_protocol"]["opcua"]
    assert mb + opc == TARGET_POINTS and abs(mb - opc) <= 0.1 * TARGET_POINTS  # half and half
    for run in (tick["site"], tick["load"]):
        assert run["ticks"] >= 1 and run["overruns"] >= 0
        _latency_sane(run["tick_ms"], run["ticks"])
        assert run["qualities_at_end"] == {"good": run["points"]}
        assert run["store_rows_per_tick"] > 0  # the simulated values move every step


def test_store_against_raw_sqlite(report: dict[str, Any]) -> None:
    store = report["store"]
    assert store["points"] == TARGET_POINTS
    assert store["store_rows_per_s"] > 0 and store["raw_rows_per_s"] > 0
    assert store["ratio_raw_over_store"] == pytest.approx(
        store["raw_rows_per_s"] / store["store_rows_per_s"], rel=0.01)


def test_daemon_rss(report: dict[str, Any]) -> None:
    site_points, _ = _site_points()
    rss = report["daemon_rss_bytes"]
    assert rss["site"]["points"] == site_points and rss["load"]["points"] == TARGET_POINTS
    for run in (rss["site"], rss["load"]):
        assert 10_000_000 < run["vm_rss_bytes"] <= run["vm_hwm_bytes"]


def test_other_modules_report_figures_or_say_they_are_pending(report: dict[str, Any]) -> None:
    for name in ("qp", "qp_park_b", "forecast", "outbox_drain"):
        section = report[name]
        assert section, name
        if "pending" in section:
            assert isinstance(section["pending"], str) and section["pending"]
