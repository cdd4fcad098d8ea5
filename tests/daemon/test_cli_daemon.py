"""The field engineer's CLI against the running daemon: the real `parkedge` entry
point, the real socket, the simulated Park A behind it."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from parkfix import eventually, site_for
from parksim.runtime import SimPark

from edge.config import SiteConfig
from edge.daemon import Daemon

PARKEDGE = str(Path(sys.executable).with_name("parkedge"))
Park = Callable[..., Awaitable[SimPark]]
StartDaemon = Callable[[SiteConfig], Awaitable[Daemon]]


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def plan_body(plan_id: str, *, hours: int = 24, step_s: int = 900) -> dict[str, object]:
    now = time.time()
    t0 = (now - 3600) // step_s * step_s
    n = hours * 3600 // step_s
    return {
        "schema": "parkedge.plan/1", "plan_id": plan_id, "site": "park-a",
        "issued_at": iso(now - 60), "valid_from": iso(t0), "valid_until": iso(t0 + n * step_s), "step_s": step_s,
        "series": {"import_price_cny_per_kwh": [0.9] * n, "export_price_cny_per_kwh": [0.3] * n,
                   "grid_co2_kg_per_kwh": [0.58] * n,
                   "weather": {"ghi_w_m2": [0.0] * n, "temp_c": [15.0] * n, "wind_m_s": [5.0] * n},
                   "commitments": {}, "targets": {}},
        "gas_cny_per_m3": 3.65, "carbon_cny_per_t": 82.0, "weights": {"cost": 1.0, "green": 1.0},
    }


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`parkedge ARGV` as its own process, as a field engineer runs it."""
    proc = await asyncio.create_subprocess_exec(PARKEDGE, *argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_over_the_socket(park: Park, daemon: StartDaemon, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await cli(capsys, "keys", "new", "cloud-t", "--out-dir", str(tmp_path / "keys"))
    pub = json.loads(out)["public_key_base64"]
    sim = await park()
    trusted = f'security.trusted_keys=[{{ key_id = "cloud-t", public_key = "{pub}" }}]'
    site = site_for(sim, tmp_path, [trusted])
    d = await daemon(site)
    sock = ["--set", f'cli.socket="{site.cli.socket}"']
    await eventually(lambda: d.ticks.count >= 2, what="two ticks")

    code, out, _ = await cli(capsys, "status", "--json", *sock)
    status = json.loads(out)
    assert code == 0 and status["site"] == "park-a" and status["plan"] is None and len(status["devices"]) == 17

    # A manual override on an unknown point is bad input: exit 2, one line naming it.
    code, _, err = await cli(capsys, "write", "bess1", "nope_kw", "5", "--ttl", "5m", "--reason", "t", *sock)
    assert code == 2 and err.count("\n") == 1 and "'bess1.nope_kw' is not a writable point" in err
    code, _, err = await cli(capsys, "write", "bess1", "p_set_kw", "5", "--ttl", "soon", "--reason", "t", *sock)
    assert code == 2 and "duration 'soon'" in err

    code, out, _ = await cli(capsys, "mode", "safe", *sock)
    assert code == 0 and d.actuation.mode == "safe"

    code, out, _ = await cli(capsys, "read", "bess1", "soc_frac", "--json", *sock)
    assert code == 0 and 0.0 <= json.loads(out)["value"] <= 1.0
    # on the terminal at most 4 decimals (float32 registers printed 20002.16796875 kWh)
    code, out, _ = await cli(capsys, "points", *sock)
    values = [line.split()[1] for line in out.splitlines()]
    assert code == 0 and len(values) == 117 and not [v for v in values if re.search(r"\.\d{5,}$", v)]

    # A signed plan loaded by hand is validated like one from the cloud.
    body = tmp_path / "plan.json"
    body.write_text(json.dumps(plan_body("da-cli-1")))
    signed = tmp_path / "plan.signed.json"
    code, _, _ = await cli(capsys, "plan", "sign", str(body), "--key", str(tmp_path / "keys/cloud-t.key.pem"),
                           "--out", str(signed))
    assert code == 0
    code, out, err = await cli(capsys, "plan", "load", str(signed), *sock)
    assert code == 0 and "da-cli-1 applied" in out, err
    code, out, _ = await cli(capsys, "plan", "show", "--json", *sock)
    shown = json.loads(out)
    assert shown["plan_id"] == "da-cli-1"
    # times as people read them, UTC (and the site's clock where the tariff lives); JSON in seconds
    code, out, _ = await cli(capsys, "plan", "show", *sock)
    until = datetime.fromtimestamp(shown["valid_until_s"], UTC)
    assert code == 0 and f"in force until {until:%Y-%m-%dT%H:%M:%S}Z," in out
    code, out, _ = await cli(capsys, "forecast", "--json", *sock)
    origin = datetime.fromtimestamp(json.loads(out)["origin_ts"], UTC)
    code, out, _ = await cli(capsys, "forecast", *sock)
    local = origin.astimezone(ZoneInfo("Asia/Shanghai"))
    assert code == 0 and out.startswith(f"forecast from {origin:%Y-%m-%dT%H:%M:%S}Z ({local:%H:%M} Asia/Shanghai)")

    # Tampered: the signature no longer matches; nothing changes.
    env = json.loads(signed.read_text())
    env["body"] = env["body"].replace("da-cli-1", "da-cli-2")
    signed.write_text(json.dumps(env))
    code, _, err = await cli(capsys, "plan", "load", str(signed), *sock)
    assert code == 2 and err.count("\n") == 1 and "plan rejected" in err
    code, out, _ = await cli(capsys, "plan", "show", "--json", *sock)
    assert json.loads(out)["plan_id"] == "da-cli-1"

    code, out, _ = await cli(capsys, "buffer", "stats", "--json", "--set", f'store.path="{site.store.path}"')
    assert code == 0 and json.loads(out)["telemetry_rows"] > 0


async def test_cli_without_a_daemon_is_a_one_line_failure(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await cli(capsys, "status", "--set", f'cli.socket="{tmp_path / "none.sock"}"')
    assert code == 1 and err.count("\n") == 1 and "cannot reach the daemon" in err
