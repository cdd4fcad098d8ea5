"""The uplink against a real Mosquitto: plans and acks, outages, kill -9, TLS, no broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqtt_broker import Broker, free_port
from sync_helpers import SITE, UNITS, Cloud, envelope, plan_body

from edge.plans import PlanBook
from edge.store import Store, StoreConfig
from edge.sync import MqttConfig, Uplink, plan_handler

KEY = Ed25519PrivateKey.generate()
TRUSTED = {"cloud-test": KEY.public_key()}
REPO = Path(__file__).resolve().parents[2]


def _uplink(store: Store, port: int, book: PlanBook | None = None, **kw: Any) -> Uplink:
    book = book or PlanBook(store, TRUSTED, SITE, UNITS)
    cfg = MqttConfig(site=SITE, enabled=True, port=port, reconnect_min_s=1, reconnect_max_s=2,
                     **kw)
    return Uplink(cfg, store, plan_handler(book), lambda raw: book.handle_command(raw)[0])


async def _until(cond: Any, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _coverage(batches: list[dict[str, Any]]) -> tuple[set[int], int]:
    """Seqs received, and how many of the publisher's batches arrived twice.

    A redelivery by the broker to our own subscriber after its restart carries
    the DUP flag; the edge's own duplicates arrive as fresh messages. Only those count.
    """
    seen: set[int] = set()
    for b in batches:
        assert len(b["rows"]) == b["seq_to"] - b["seq_from"] + 1
        seen.update(range(b["seq_from"], b["seq_to"] + 1))
    fresh = Counter((b["seq_from"], b["seq_to"]) for b in batches if not b["_dup"])
    return seen, sum(n - 1 for n in fresh.values())


async def test_signed_plan_over_mqtt_is_applied_and_bad_ones_rejected(broker: Broker,
                                                                      tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    book = PlanBook(store, TRUSTED, SITE, UNITS)
    applied: list[Any] = []
    up = Uplink(MqttConfig(site=SITE, enabled=True, port=broker.port), store,
                plan_handler(book, applied.append), lambda raw: book.handle_command(raw)[0])
    task = asyncio.create_task(up.run())
    cloud = Cloud(broker.port)
    try:
        assert await _until(lambda: up.connected)
        assert up.protocol == "5"
        now = time.time()
        cloud.publish(cloud.t.plan, envelope(plan_body("da-1", now=now), KEY), retain=True)
        assert await cloud.until(lambda: len(cloud.acks) == 1)
        assert cloud.acks[0] == {"id": "da-1", "status": "applied", "reason": ""}
        assert [p.plan_id for p in applied] == ["da-1"]  # the controller's input changed
        assert book.plan_for(now) is applied[0]
        good = plan_body("da-2", now=now)
        bad = {
            "unsigned": json.dumps({"body": json.dumps(good)}).encode(),
            "wrong signature": envelope(good, Ed25519PrivateKey.generate()),
            "unknown key": envelope(good, KEY, key_id="someone"),
            "other site": envelope(plan_body("da-3", now=now, site="park-b"), KEY),
            "expired": envelope(plan_body("da-4", now=now, from_offset_s=-5 * 86400), KEY),
            "replayed": envelope(plan_body("da-1", now=now), KEY),
            "malformed": envelope('{"schema": "parkedge.plan/1", "plan_id": "da-5"}', KEY),
        }
        for raw in bad.values():
            cloud.publish(cloud.t.plan, raw, retain=True)
        assert await cloud.until(lambda: len(cloud.acks) == 1 + len(bad))
        for name, ack in zip(bad, cloud.acks[1:], strict=True):
            assert ack["status"] == "rejected" and ack["reason"], name
        reasons = " | ".join(a["reason"] for a in cloud.acks[1:])
        for word in ("unsigned", "bad signature", "unknown key_id", "park-b", "in the past", "replay"):
            assert word in reasons, (word, reasons)
        assert book.plan_for(now) is applied[0] and len(applied) == 1
        # a command over MQTT, answered on ack
        cmd = {"schema": "parkedge.cmd/1", "cmd_id": "c-1", "site": SITE, "type": "mode",
               "mode": "safe", "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        cloud.publish(cloud.t.cmd, envelope(cmd, KEY))
        assert await cloud.until(lambda: cloud.acks[-1]["id"] == "c-1")
        assert cloud.acks[-1]["status"] == "applied"
        assert await cloud.until(lambda: any(s["status"] == "online" for s in cloud.states))
    finally:
        await _stop(task)
    # a clean stop says offline on the retained state topic
    assert await cloud.until(lambda: cloud.states and cloud.states[-1]["status"] == "offline")
    cloud.close()
    store.close()


async def _produce(store: Store, up: Uplink, stop: asyncio.Event, points: int = 20,
                   period_s: float = 0.02) -> int:
    tick = 0
    while not stop.is_set():
        store.commit_tick(time.time(), {f"d.p{i}": (tick + i / 3, "good") for i in range(points)})
        up.notify()
        tick += 1
        await asyncio.sleep(period_s)
    return tick


async def test_broker_outage_every_row_arrives_gap_free(broker: Broker, tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    # a backlog rate low enough that live data must overtake the backlog
    up = _uplink(store, broker.port, batch_max_rows=200, backlog_batch_max_rows=200,
                 backlog_rows_per_s=1500)
    task = asyncio.create_task(up.run())
    cloud = Cloud(broker.port)
    stop = asyncio.Event()
    producer = asyncio.create_task(_produce(store, up, stop))
    try:
        assert await _until(lambda: up.connected)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.stop)
        assert await _until(lambda: not up.connected)
        await asyncio.sleep(2.5)  # the park keeps running and storing
        assert not producer.done()
        backlog_top = store.next_seq - 1
        await asyncio.to_thread(broker.start)
        assert await _until(lambda: up.connected)
        await asyncio.sleep(1.0)
        stop.set()
        await producer
        last = store.next_seq - 1
        assert await _until(lambda: store.outbox_pending_rows() == 0, 90), up.status()
        assert await cloud.until(lambda: _coverage(cloud.batches)[0] >= set(range(1, last + 1)), 60)
    finally:
        stop.set()
        await _stop(task)
    seen, duplicated = _coverage(cloud.batches)
    print("outage:", up.status(), "rows", last, "backlog_top", backlog_top, "duplicated", duplicated,
          "received", len(cloud.batches), "dup-flagged", sum(b["_dup"] for b in cloud.batches))
    assert seen == set(range(1, last + 1))
    assert duplicated <= 1, duplicated
    # rows arrive as stored
    stored = {r[0]: list(r[1:]) for r in store.connection.execute(
        "SELECT seq, ts, point, value, quality FROM telemetry")}
    for b in cloud.batches:
        assert [stored[s] for s in range(b["seq_from"], b["seq_to"] + 1)] == b["rows"]
    # live first: some batch committed after the reconnect arrived before the backlog was done
    order = [b for b in cloud.batches if not b["_dup"]]
    last_backlog = max(i for i, b in enumerate(order) if b["seq_to"] <= backlog_top)
    assert any(b["seq_from"] > backlog_top for b in order[:last_backlog]), "backlog went first"
    assert up.counters["disconnects"] >= 1 and up.counters["connects"] >= 2
    cloud.close()
    store.close()


_EDGE = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from edge.store import Store, StoreConfig
    from edge.sync import MqttConfig, Uplink
    from edge.plans import Ack

    async def main():
        store = Store(StoreConfig(path=Path(sys.argv[1])))
        up = Uplink(MqttConfig(site="park-a", enabled=True, port=int(sys.argv[2]),
                               batch_max_rows=100), store,
                    lambda raw, retained: None, lambda raw: Ack("", "rejected", "n/a"))
        task = asyncio.create_task(up.run())
        tick = 0
        while True:
            r = store.commit_tick(time.time(), {f"d.p{i}": (tick + i / 3, "good") for i in range(30)})
            up.notify()
            print("C", r.seq_to, up.counters["batches_acked"], flush=True)  # after COMMIT returned
            tick += 1
            await asyncio.sleep(0.005)

    asyncio.run(main())
""")


async def test_sigkill_while_publishing_loses_no_committed_row(broker: Broker, tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    cloud = Cloud(broker.port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _EDGE, str(db), str(broker.port), stdout=subprocess.PIPE,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    committed = acked = 0
    while acked < 20 or committed < 6000:  # publishing for a while, then kill -9
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, "the edge process ended"
        if line.startswith(b"C "):  # structlog shares stdout
            committed, acked = (int(x) for x in line.split()[1:])
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    store = Store(StoreConfig(path=db))
    assert store.next_seq - 1 >= committed
    last = store.next_seq - 1
    up = _uplink(store, broker.port, batch_max_rows=1000)
    task = asyncio.create_task(up.run())
    try:
        assert await _until(lambda: store.outbox_pending_rows() == 0, 90), up.status()
        assert await cloud.until(lambda: _coverage(cloud.batches)[0] >= set(range(1, last + 1)), 60)
    finally:
        await _stop(task)
    seen, _ = _coverage(cloud.batches)
    assert seen == set(range(1, last + 1))
    # at most the batch in flight at the kill arrived twice (rows, not batch shapes, since
    # the restarted uplink batches differently)
    counts = Counter(s for b in cloud.batches if not b["_dup"]
                     for s in range(b["seq_from"], b["seq_to"] + 1))
    assert sum(1 for n in counts.values() if n > 1) <= 100
    cloud.close()
    store.close()


async def test_tls_with_client_certificates(tls_broker: Broker, tmp_path: Path) -> None:
    tls = tls_broker.tls
    assert tls is not None
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    up = _uplink(store, tls_broker.port, tls_ca=str(tls.ca), tls_cert=str(tls.client_cert),
                 tls_key=str(tls.client_key), host="localhost")
    task = asyncio.create_task(up.run())
    cloud = Cloud(tls_broker.port, tls=tls, client_id="cloud-tls")
    try:
        assert await _until(lambda: up.connected), tls_broker.log()
        store.commit_tick(time.time(), {f"d.p{i}": (float(i), "good") for i in range(500)})
        up.notify()
        assert await cloud.until(lambda: sum(len(b["rows"]) for b in cloud.batches) == 500)
        assert any(b["_zlib"] for b in cloud.batches)  # 500 rows of JSON pay for compression
        # without a client certificate the broker refuses us
        nocert = _uplink(Store(StoreConfig(path=tmp_path / "n.db")), tls_broker.port,
                         tls_ca=str(tls.ca), host="localhost", client_id="nocert")
        t2 = asyncio.create_task(nocert.run())
        await asyncio.sleep(2.0)
        assert not nocert.connected
        await _stop(t2)
    finally:
        await _stop(task)
    cloud.close()
    store.close()


async def test_runs_with_mqtt_disabled_or_broker_unreachable(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    disabled = Uplink(MqttConfig(site=SITE), store, lambda r, k: None,
                      lambda r: (_ for _ in ()).throw(AssertionError))
    await asyncio.wait_for(disabled.run(), 5)  # returns at once
    ups = [_uplink(store, free_port()), _uplink(store, 1883, host="no-such-host.invalid")]
    tasks = [asyncio.create_task(u.run()) for u in ups]
    ticks = 0
    for _ in range(40):  # the loop keeps turning and the store keeps committing
        assert store.commit_tick(time.time(), {"a.b": (float(ticks), "good")}).ok
        for u in ups:
            u.notify()
        ticks += 1
        await asyncio.sleep(0.05)
    assert not any(u.connected for u in ups)
    assert store.outbox_pending_rows() == ticks
    for t in tasks:
        await asyncio.wait_for(_stop(t), 10)
    store.close()


async def _fake_311_broker() -> tuple[asyncio.AbstractServer, int, list[int]]:
    """Answers an MQTT 5 CONNECT with 'unacceptable protocol version', like a 3.1.1-only broker."""
    levels: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(1)
            length, mult = 0, 1
            while True:
                b = (await reader.readexactly(1))[0]
                length += (b & 0x7F) * mult
                mult *= 128
                if not b & 0x80:
                    break
            packet = await reader.readexactly(length)
            level = packet[6]  # after the protocol name "\\x00\\x04MQTT"
            levels.append(level)
            if level != 4:
                writer.write(b"\x20\x02\x00\x01")
                await writer.drain()
                writer.close()
                return
            writer.write(b"\x20\x02\x00\x00")
            while True:
                head = await reader.readexactly(1)
                length, mult = 0, 1
                while True:
                    b = (await reader.readexactly(1))[0]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                body = await reader.readexactly(length)
                if head[0] >> 4 == 8:  # SUBSCRIBE -> SUBACK granting QoS 1
                    n = (length - 2) // 4
                    writer.write(bytes([0x90, 2 + n]) + body[:2] + b"\x01" * n)
                elif head[0] >> 4 == 3 and head[0] & 0x06:  # PUBLISH QoS 1 -> PUBACK
                    topic_len = int.from_bytes(body[:2], "big")
                    writer.write(b"\x40\x02" + body[2 + topic_len:4 + topic_len])
                elif head[0] >> 4 == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], levels


async def test_falls_back_to_mqtt_311(tmp_path: Path) -> None:
    server, port, levels = await _fake_311_broker()
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    up = _uplink(store, port)
    task = asyncio.create_task(up.run())
    try:
        assert await _until(lambda: up.connected, 30)
        assert up.protocol == "3.1.1" and levels[:2] == [5, 4]
        store.commit_tick(time.time(), {"a.b": (1.0, "good")})
        up.notify()
        assert await _until(lambda: store.outbox_pending_rows() == 0, 30)
    finally:
        await _stop(task)
        server.close()
    store.close()


async def test_bench_drain_reports_rates(broker: Broker, tmp_path: Path) -> None:
    from edge.sync import bench_drain

    cfg = MqttConfig(site="bench", enabled=True, port=broker.port)
    got = await bench_drain(tmp_path, port=broker.port, points=100, backlog_hours=0.05, config=cfg)
    assert got["backlog_rows"] > 0 and got["drain_rows_per_s"] > 0
    assert got["projected_24h_drain_s"] > 0 and got["live_ticks"] >= 1


async def test_persistent_session_delivers_commands_sent_while_offline(broker: Broker,
                                                                      tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    book = PlanBook(store, TRUSTED, SITE, UNITS)
    cloud = Cloud(broker.port)
    up = _uplink(store, broker.port, book)
    task = asyncio.create_task(up.run())
    assert await _until(lambda: up.connected)
    await _stop(task)  # the session stays on the broker (session expiry 7 days)
    cmd = {"schema": "parkedge.cmd/1", "cmd_id": "c-offline", "site": SITE, "type": "mode",
           "mode": "manual", "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    cloud.publish(cloud.t.cmd, envelope(cmd, KEY))
    up2 = _uplink(store, broker.port, book)
    task = asyncio.create_task(up2.run())
    try:
        assert await cloud.until(lambda: any(a["id"] == "c-offline" for a in cloud.acks))
        assert [a["status"] for a in cloud.acks if a["id"] == "c-offline"] == ["applied"]
        state = [s for s in cloud.states if s["status"] == "online"][-1]
        assert state["outbox_dropped_rows"] == 0 and "uplink" in state
    finally:
        await _stop(task)
    cloud.close()
    store.close()
