"""parkedge-sim serve and the demo, run as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from parksim import demo


def test_serve_prints_endpoints_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "parksim.cli", "serve", "--site", "park-b", "--base-port", "0",
         "--speed", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    assert all("://127.0.0.1:" in line for line in lines), lines
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_bad_site_is_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "parksim.cli", "serve", "--site", "park-z"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2


def test_demo_runs_the_daemon_against_the_park(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`make demo`: the park served, the daemon as its own process, its view shown."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    code = demo.main(["--site", "park-a", "--duration", "10", "--speed", "60",
                      "--state-dir", str(tmp_path), "--metrics-port", str(metrics_port)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "devices up 17/17" in out and "battery SOC" in out and "grid (+export)" in out
    assert (tmp_path / "park-a.db").exists()  # the daemon stored what it saw
