"""Plan bodies, signing and a cloud-side MQTT client for the sync tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.signing import seal
from edge.sync import decode_payload, topics

SITE = "park-a"
UNITS = frozenset({"chp1", "chp2", "diesel1", "bess1", "chiller1"})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_body(plan_id: str = "da-1", *, now: float | None = None, site: str = SITE,
              issued_offset_s: float = -60.0, from_offset_s: float = -3600.0,
              hours: int = 24, step_s: int = 900) -> dict[str, Any]:
    now = time.time() if now is None else now
    t0 = (now + from_offset_s) // step_s * step_s
    n = hours * 3600 // step_s
    return {
        "schema": "parkedge.plan/1", "plan_id": plan_id, "site": site,
        "issued_at": iso(now + issued_offset_s), "valid_from": iso(t0),
        "valid_until": iso(t0 + n * step_s), "step_s": step_s,
        "series": {
            "import_price_cny_per_kwh": [0.35 + 0.01 * (i % 10) for i in range(n)],
            "export_price_cny_per_kwh": [0.3] * n,
            "grid_co2_kg_per_kwh": [0.62] * n,
            "weather": {"ghi_w_m2": [max(0.0, 800 - abs(i - n / 2) * 30) for i in range(n)],
                        "temp_c": [18.0] * n, "wind_m_s": [4.5] * n},
            "commitments": {"chp1": [1] * n},
            "targets": {"bess1.soc_frac": [None] * (n - 1) + [0.5]},
        },
        "gas_cny_per_m3": 3.65, "carbon_cny_per_t": 82.0,
        "weights": {"cost": 1.0, "carbon": 1.0, "green": 0.2},
    }


def envelope(body: dict[str, Any] | str, key: Ed25519PrivateKey, key_id: str = "cloud-test") -> bytes:
    text = body if isinstance(body, str) else json.dumps(body)
    return json.dumps(seal(text, key_id, key)).encode()


class Cloud:
    """The cloud's side: publishes plans and commands, collects acks, telemetry and state."""

    def __init__(self, port: int, site: str = SITE, *, client_id: str = "cloud",
                 tls: Any = None) -> None:
        self.t = topics(site)
        self.lock = threading.Lock()
        self.acks: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []  # decoded telemetry, plus "_dup" and "_rx"
        self.states: list[dict[str, Any]] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        if tls is not None:
            self.c.tls_set(ca_certs=str(tls.ca), certfile=str(tls.client_cert),
                           keyfile=str(tls.client_key))
        self.ready = threading.Event()
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(self.t.ack, 1), (self.t.telemetry, 1), (self.t.state, 1)])
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        self.c.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # keep our queue across a broker restart
        self.c.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        self.c.loop_start()
        assert self.ready.wait(20), "cloud client did not subscribe"

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if msg.topic == self.t.ack:
                self.acks.append(json.loads(msg.payload))
            elif msg.topic == self.t.telemetry:
                doc = decode_payload(bytes(msg.payload))
                doc["_dup"] = bool(msg.dup)
                doc["_rx"] = time.time()
                doc["_zlib"] = msg.payload[:1] == b"\x78"
                self.batches.append(doc)
            elif msg.topic == self.t.state:
                self.states.append(json.loads(msg.payload))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait(self, cond: Callable[[], bool], timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.05)
        return False

    async def until(self, cond: Callable[[], bool], timeout_s: float = 60.0) -> bool:
        """Like wait, for tests whose event loop runs the uplink (must not block it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if cond():
                    return True
            await asyncio.sleep(0.05)
        return False

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
