"""`parkedge run` as systemd runs it: its own process, sd_notify, SIGTERM and SIGKILL.

No park is needed here: every device points at a closed port, so the daemon
ticks with every point comm-lost, which is also what it must survive."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import embedded_site_path, load_site

PARKEDGE = str(Path(sys.executable).with_name("parkedge"))


def dead_endpoints() -> list[str]:
    site = load_site(embedded_site_path("park-a"))
    return [f'devices[{i}].endpoint="{"opc.tcp://127.0.0.1:9/x" if d.protocol == "opcua" else "tcp://127.0.0.1:9"}"'
            for i, d in enumerate(site.devices)]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify.sock"))
    s.settimeout(0.2)
    yield s
    s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    args = [PARKEDGE, "run", "--set", f'store.path="{tmp_path / "site.db"}"',
            "--set", f'cli.socket="{tmp_path / "ctl.sock"}"',
            "--set", f'metrics.listen="127.0.0.1:{metrics_port or free_port()}"',
            "--set", "control.tick_s=0.2"]
    for o in dead_endpoints():
        args += ["--set", o]
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "log").open("ab"))


def messages(sock: socket.socket, until: str, limit_s: float = 60.0) -> list[str]:
    """Collect notify messages until one equals ``until`` (the limit only stops a hung test)."""
    got: list[str] = []
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            got.append(sock.recv(256).decode())
        except TimeoutError:
            continue
        if got[-1] == until:
            return got
    raise AssertionError(f"never received {until!r}; got {got[-5:]}")


def rows(db: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        n, top = c.execute("SELECT count(*), max(seq) FROM telemetry").fetchone()
    return int(n), int(top or 0)


def test_ready_watchdog_metrics_and_clean_stop(tmp_path: Path, notify: socket.socket) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    try:
        messages(notify, "READY=1")
        for _ in range(3):
            messages(notify, "WATCHDOG=1")  # fed by completed ticks, devices or not
        lost = 'parkedge_poll_errors_total{device="chp1",kind="comm_lost"}'
        end = time.monotonic() + 30  # the limit only stops a hung test
        while True:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            # an OPC UA device counts as lost once its first connection attempt has failed
            # (connecting before: acquisition.CONNECT_GRACE_S), a poll period after the start
            if lost in text or time.monotonic() > end:
                break
            time.sleep(0.2)
        for name in ("parkedge_tick_duration_seconds_bucket", 'parkedge_points{quality="comm_lost"}',
                     'parkedge_device_up{device="bess1",protocol="modbus"} 0.0', "parkedge_store_rows_total",
                     'parkedge_mode{mode="auto"} 1.0', lost):
            assert name in text, name
        # gauges read from the store and the uplink: set, and with the values they should have
        assert "parkedge_mqtt_connected 0.0" in text  # mqtt disabled in the site file

        def gauge(name: str) -> float | None:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            m = re.search(rf"^{name} (\S+)$", page, re.M)
            return float(m.group(1)) if m else None

        end = time.monotonic() + 30  # refreshed every 5 s; the limit only stops a hung test
        while not gauge("parkedge_store_bytes") and time.monotonic() < end:
            time.sleep(0.5)
        assert (gauge("parkedge_store_bytes") or 0) > 0  # read from the store, not left at its initial 0
        proc.send_signal(signal.SIGTERM)
        messages(notify, "STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    n, _ = rows(tmp_path / "site.db")
    assert n > 0  # comm-lost points are stored too: an outage is data
    # every line on stderr is JSON, the libraries' own warnings too (asyncua, pymodbus and
    # the OPC UA driver log through Python's logging: they came out as bare text)
    lines = [ln for ln in (tmp_path / "log").read_text().splitlines() if ln.strip()]
    loggers = {json.loads(ln).get("logger") for ln in lines}
    assert "pymodbus.logging" in loggers and "drivers.opcua" in loggers


def test_kill_9_loses_no_committed_row(tmp_path: Path, notify: socket.socket) -> None:
    proc = start(tmp_path)
    messages(notify, "READY=1")
    for _ in range(5):
        messages(notify, "WATCHDOG=1")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    n_before, top_before = rows(tmp_path / "site.db")
    assert n_before > 0
    proc = start(tmp_path)  # restarts on the same store
    try:
        messages(notify, "READY=1")
        for _ in range(3):
            messages(notify, "WATCHDOG=1")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    n_after, top_after = rows(tmp_path / "site.db")
    assert n_after > n_before and top_after > top_before
    with sqlite3.connect(f"file:{tmp_path / 'site.db'}?mode=ro", uri=True) as c:
        kept = c.execute("SELECT count(*) FROM telemetry WHERE seq <= ?", (top_before,)).fetchone()[0]
    assert kept == n_before  # every row committed before the kill is still there


async def test_a_stuck_task_is_logged_with_where_it_waits() -> None:
    """What ``task_still_running`` logs at a stop that timed out: the await chain."""
    import asyncio

    from edge.daemon import _where

    async def driver_call() -> None:
        await asyncio.Event().wait()

    async def worker() -> None:
        await driver_call()

    t = asyncio.create_task(worker())
    await asyncio.sleep(0)
    where = _where(t)
    t.cancel()
    assert where.startswith("test_daemon_process.py:")
    assert " worker > " in where and " driver_call > " in where and where.endswith(" wait")
