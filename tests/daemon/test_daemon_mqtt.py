"""The whole daemon with its uplink on: the simulated Park A below, a real Mosquitto above.

The cloud side is a plain paho client (tests/support/sync_helpers.Cloud): what it
receives is what the contract in docs/mqtt.md promises."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from mqtt_broker import Broker
from parkfix import eventually, site_for
from parksim.runtime import SimPark
from sync_helpers import Cloud, envelope, iso, plan_body

from edge.config import SiteConfig
from edge.daemon import Daemon

Park = Callable[..., Awaitable[SimPark]]
StartDaemon = Callable[[SiteConfig], Awaitable[Daemon]]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


async def test_daemon_telemetry_plans_and_commands_over_mqtt(park: Park, daemon: StartDaemon, broker: Broker,
                                                             tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    import base64

    pub = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    sim = await park()
    site = site_for(sim, tmp_path, [
        "mqtt.enabled=true", f"mqtt.port={broker.port}",
        f'security.trusted_keys=[{{ key_id = "cloud-test", public_key = "{pub}" }}]'])
    cloud = Cloud(broker.port, "park-a")
    try:
        d = await daemon(site)
        n_points = sum(len(dev.points) for dev in site.devices)
        # Telemetry: gap-free by sequence, the first batches a full keyframe of every point.
        assert await cloud.until(lambda: sum(len(b["rows"]) for b in cloud.batches) >= n_points)
        await eventually(lambda: d.ticks.count >= 4, what="four ticks")
        assert await cloud.until(lambda: len(cloud.batches) >= 3)
        with cloud.lock:
            batches = sorted(cloud.batches, key=lambda b: b["seq_from"])
        seqs = [s for b in batches for s in range(b["seq_from"], b["seq_to"] + 1)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        points = {row[1] for b in batches for row in b["rows"]}
        assert len(points) == n_points and all(b["site"] == "park-a" for b in batches)
        assert await cloud.until(lambda: any(s.get("status") == "online" for s in cloud.states))

        # A signed plan is applied and acked; the daemon now runs on it.
        cloud.publish(cloud.t.plan, envelope(plan_body("da-mqtt-1", site="park-a"), key), retain=True)
        assert await cloud.until(lambda: any(a["id"] == "da-mqtt-1" for a in cloud.acks))
        ack = next(a for a in cloud.acks if a["id"] == "da-mqtt-1")
        assert ack["status"] == "applied", ack
        assert d.cloud.plan_id() == "da-mqtt-1"
        # ... and the controller decides on it: the plan's prices, not the site's tariff.
        await eventually(lambda: d.last_decision.get("plan") == "da-mqtt-1", limit_s=60,
                         what="the controller running on the plan")
        # An unsigned one is refused with a reason and changes nothing.
        bad = json.dumps({"body": json.dumps(plan_body("da-mqtt-2", site="park-a")), "key_id": "cloud-test",
                          "sig": ""}).encode()
        cloud.publish(cloud.t.plan, bad)
        assert await cloud.until(lambda: any(a["id"] == "da-mqtt-2" for a in cloud.acks))
        assert next(a for a in cloud.acks if a["id"] == "da-mqtt-2")["status"] == "rejected"
        assert d.cloud.plan_id() == "da-mqtt-1"

        # A signed command changes the mode, through actuation, audited with the key id.
        cmd = {"schema": "parkedge.cmd/1", "cmd_id": "c-1", "site": "park-a", "issued_at": iso(time.time()),
               "type": "mode", "mode": "safe", "reason": "storm warning"}
        cloud.publish(cloud.t.cmd, envelope(cmd, key))
        assert await cloud.until(lambda: any(a["id"] == "c-1" for a in cloud.acks))
        assert next(a for a in cloud.acks if a["id"] == "c-1")["status"] == "applied"
        assert d.actuation.mode == "safe"
        # An override of a point the site does not have is rejected, with the reason.
        cmd2 = {**cmd, "cmd_id": "c-2", "type": "override", "point": "bess1.nope_kw", "value": 1.0, "ttl_s": 60}
        del cmd2["mode"]
        cloud.publish(cloud.t.cmd, envelope(cmd2, key))
        assert await cloud.until(lambda: any(a["id"] == "c-2" for a in cloud.acks))
        rejected = next(a for a in cloud.acks if a["id"] == "c-2")
        assert rejected["status"] == "rejected" and "bess1.nope_kw" in rejected["reason"]
    finally:
        cloud.close()
