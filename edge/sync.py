"""The MQTT uplink: plans and commands in, telemetry, acks and state out.

Integration with asyncio: paho runs its network loop in its own thread
(``loop_start``) and every callback hops to the event loop with
``call_soon_threadsafe``. Chosen over paho's socket-callback integration
because paho's connect and reconnect (DNS, TCP connect, TLS handshake) are
blocking calls: on the event loop an unreachable broker would stall ticks for
the connect timeout. In threaded mode ``publish()`` only queues the packet and
wakes paho's thread, so nothing here blocks the loop; batch encoding (JSON,
zlib) runs in a worker thread because a large batch takes milliseconds.

Telemetry comes from the store's outbox. One batch is a contiguous seq range
``[seq_from, seq_to]``; it leaves the outbox only when its PUBACK arrives. At
most ``max_inflight_batches`` (default 1) are unacknowledged at a time, which
is what bounds duplicates after an outage to one batch. On every (re)connect
the seqs committed from then on are "live" and go first; everything older is
backlog, sent oldest first at ``backlog_rows_per_s`` at most.

Payloads are JSON; one of ``compress_min_bytes`` or more is sent as a zlib
stream when that saves at least 10 %. A zlib stream starts with byte 0x78,
JSON with ``{``, which tells them apart under MQTT 3.1.1; under MQTT 5 the
message also carries the user property ``content-encoding: zlib``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from drivers.timeouts import within
from edge.plans import Ack, PlanBook, ValidatedPlan
from edge.store import Store, StoreConfig

__all__ = ["MqttConfig", "Topics", "Uplink", "bench_drain", "decode_payload", "plan_handler",
           "topics"]

log = structlog.get_logger(__name__)

PlanHandler = Callable[[bytes, bool], Ack | None]  # (payload, retained) -> ack to send, or None
CommandHandler = Callable[[bytes], Ack]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    site: str
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    tls_ca: str | Path | None = None  # empty or None: no TLS
    tls_cert: str | Path | None = None
    tls_key: str | Path | None = None
    client_id: str = ""  # default parkedge-{site}
    keepalive_s: int = 30
    protocol: str = "auto"  # auto (5, falling back to 3.1.1) | 5 | 3.1.1
    session_expiry_s: int = 7 * 86400  # the broker keeps our session and queued messages this long
    batch_max_rows: int = 2000  # live batches: ~50 kB of JSON, a few ms to encode
    # Backlog batches are larger: with one batch in flight, the drain rate is at
    # most rows-per-batch / round-trip time, and gateways sit on slow links.
    backlog_batch_max_rows: int = 5000
    max_inflight_batches: int = 1  # 1 = at most one batch duplicated after an outage
    backlog_rows_per_s: float = 100_000.0  # 24 h of Park A (~9 M rows) in ~90 s
    compress_min_bytes: int = 1024
    reconnect_min_s: int = 1
    reconnect_max_s: int = 60
    state_every_s: float = 30.0
    # An in-flight batch with no PUBACK this long after (re)sending is given up
    # and re-sent from the outbox: a stuck window would stop the uplink for good.
    puback_timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Topics:
    plan: str
    cmd: str
    ack: str
    telemetry: str
    state: str


def topics(site: str) -> Topics:
    base = f"parkedge/v1/{site}/"
    return Topics(base + "plan", base + "cmd", base + "ack", base + "telemetry", base + "state")


def decode_payload(payload: bytes) -> Any:
    """A telemetry (or any) payload back to JSON: zlib streams start with 0x78, JSON with '{'."""
    if payload[:1] == b"\x78":
        payload = zlib.decompress(payload)
    return json.loads(payload)


def plan_handler(book: PlanBook,
                 on_applied: Callable[[ValidatedPlan], None] | None = None) -> PlanHandler:
    """Plans from MQTT into a PlanBook. A retained copy of a plan already applied
    (redelivered on every new subscription) is not answered again."""
    def handle(payload: bytes, retained: bool) -> Ack | None:
        if retained:
            try:
                plan_id = json.loads(json.loads(payload)["body"]).get("plan_id")
            except (ValueError, TypeError, KeyError, AttributeError):
                plan_id = None
            if plan_id is not None and any(p.plan_id == plan_id for p in book.plans):
                return None
        ack, plan = book.handle_plan(payload)
        if plan is not None and on_applied is not None:
            on_applied(plan)
        return ack
    return handle


@dataclass(slots=True)
class _Batch:
    seq_from: int
    seq_to: int
    live: bool
    newest_ts: float
    sent_mono: float = 0.0


class Uplink:
    """Owns the MQTT session. ``run()`` until cancelled; ``notify()`` after each commit."""

    def __init__(self, config: MqttConfig, store: Store, on_plan: PlanHandler,
                 on_command: CommandHandler,
                 state_extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.config, self._store = config, store
        self._on_plan, self._on_command, self._state_extra = on_plan, on_command, state_extra
        self.topics = topics(config.site)
        self._client_id = config.client_id or f"parkedge-{config.site}"
        self._protocol = mqtt.MQTTv311 if config.protocol == "3.1.1" else mqtt.MQTTv5
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._wake = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[mqtt.Client, mqtt.MQTTMessage]] = asyncio.Queue()
        self._inflight: dict[int, _Batch] = {}
        self._restart_task: asyncio.Future[None] | None = None
        self.connected = False
        self._connected_event = asyncio.Event()
        self._live_from = 0  # seqs at or above: live; below: backlog
        self._live_cursor = 0
        self._backlog_cursor = 0
        self._tokens = 0.0
        self._tokens_at = time.monotonic()
        self.counters: dict[str, int] = {"batches_sent": 0, "rows_sent": 0, "batches_acked": 0,
                                         "puback_failures": 0, "connects": 0, "disconnects": 0,
                                         "bytes_sent": 0, "batches_compressed": 0,
                                         "puback_timeouts": 0}
        self.live_lag_s = math.nan  # newest live row's age when its PUBACK came back
        self.live_lag_max_s = 0.0
        self.live_lag_samples_s: deque[float] = deque(maxlen=4096)

    # -- public --------------------------------------------------------------

    @property
    def protocol(self) -> str:
        return "5" if self._protocol == mqtt.MQTTv5 else "3.1.1"

    async def wait_connected(self) -> None:
        await self._connected_event.wait()

    @property
    def inflight_batches(self) -> int:
        return len(self._inflight)

    def notify(self) -> None:
        """The store committed a tick: there may be live telemetry to send."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected, "protocol": self.protocol,
                "inflight_batches": len(self._inflight),
                "live_lag_s": None if math.isnan(self.live_lag_s) else round(self.live_lag_s, 3),
                **self.counters}

    async def run(self) -> None:
        """Connect and serve until cancelled. Returns at once when MQTT is disabled."""
        if not self.config.enabled:
            log.info("mqtt_disabled", site=self.config.site)
            return
        self._loop = asyncio.get_running_loop()
        self._start_client()
        tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._receiver()),
                 asyncio.create_task(self._state_publisher())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await self._stop_client(clean=True)

    # -- the paho client and its thread ----------------------------------------

    def _start_client(self) -> None:
        cfg = self.config
        v5 = self._protocol == mqtt.MQTTv5
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id,
                             protocol=self._protocol, clean_session=None if v5 else False,
                             manual_ack=True)
        if cfg.tls_ca:
            for name, path in (("tls_ca", cfg.tls_ca), ("tls_cert", cfg.tls_cert),
                               ("tls_key", cfg.tls_key)):
                if path and not Path(path).is_file():
                    raise ValueError(f"mqtt.{name}: {path}: no such file")
            try:
                client.tls_set(ca_certs=str(cfg.tls_ca), certfile=str(cfg.tls_cert or "") or None,
                               keyfile=str(cfg.tls_key or "") or None, cert_reqs=ssl.CERT_REQUIRED,
                               tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"mqtt.tls_ca/tls_cert/tls_key: {exc}") from None
        client.will_set(self.topics.state, self._state_payload("offline"), qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        # Our own window bounds telemetry; paho's only has to leave room for acks and state.
        client.max_inflight_messages_set(cfg.max_inflight_batches + 20)
        client.on_connect = self._paho_on_connect
        client.on_disconnect = self._paho_on_disconnect
        client.on_publish = self._paho_on_publish
        client.on_message = self._paho_on_message
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s,
                             clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                             properties=props)
        client.loop_start()
        self._client = client
        # A new client has no queued messages: whatever was in flight is resent from the outbox.
        self._inflight.clear()

    async def _stop_client(self, clean: bool) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if clean and self.connected:
            info = client.publish(self.topics.state, self._state_payload("offline"), qos=1,
                                  retain=True)
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)  # joins paho's thread
        self.connected = False
        self._connected_event.clear()

    # Paho's callbacks run in paho's thread: they only hand over to the loop.

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _paho_on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                         reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._post(self._on_connect_failed, client, str(reason_code))
            return
        if self._protocol == mqtt.MQTTv5:
            # retainHandling 1: the retained plan only on a new subscription, not on every reconnect
            opts = SubscribeOptions(qos=1, retainHandling=1)
            client.subscribe([(self.topics.plan, opts), (self.topics.cmd, opts)])
        else:
            client.subscribe([(self.topics.plan, 1), (self.topics.cmd, 1)])
        self._post(self._on_connected, client, bool(flags.session_present))

    def _paho_on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                            reason_code: Any, properties: Any) -> None:
        self._post(self._on_disconnected, client, str(reason_code))

    def _paho_on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                         reason_code: Any, properties: Any) -> None:
        self._post(self._on_puback, client, mid, bool(reason_code.is_failure), str(reason_code))

    def _paho_on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(self._inbox.put_nowait, (client, msg))

    # Loop side.

    def _on_connected(self, client: mqtt.Client, session_present: bool) -> None:
        if client is not self._client:
            return
        self.connected = True
        self._connected_event.set()
        self.counters["connects"] += 1
        self._live_from = self._live_cursor = self._store.next_seq
        self._backlog_cursor = 0
        for batch in self._inflight.values():  # paho resends these now: restart their clocks
            batch.sent_mono = time.monotonic()
        backlog = self._store.outbox_pending_rows()
        log.info("mqtt_connected", host=self.config.host, port=self.config.port,
                 protocol=self.protocol, session_present=session_present, backlog_rows=backlog)
        self._publish_state()
        self._wake.set()

    def _on_connect_failed(self, client: mqtt.Client, reason: str) -> None:
        if client is not self._client:
            return
        log.warning("mqtt_connect_refused", host=self.config.host, port=self.config.port,
                    protocol=self.protocol, reason=reason)
        if (self.config.protocol == "auto" and self._protocol == mqtt.MQTTv5
                and "protocol version" in reason.lower()):
            self._protocol = mqtt.MQTTv311
            self._restart_task = asyncio.ensure_future(self._restart_client())

    async def _restart_client(self) -> None:
        await self._stop_client(clean=False)
        self._start_client()

    def _on_disconnected(self, client: mqtt.Client, reason: str) -> None:
        if client is not self._client:
            return
        if self.connected:
            self.counters["disconnects"] += 1
            log.warning("mqtt_disconnected", host=self.config.host, port=self.config.port,
                        reason=reason, inflight_batches=len(self._inflight))
        self.connected = False
        self._connected_event.clear()

    def _on_puback(self, client: mqtt.Client, mid: int, failed: bool, reason: str) -> None:
        batch = self._inflight.pop(mid, None) if client is self._client else None
        if batch is None:
            return  # an ack or state message, or a client we have replaced
        if failed:
            # The broker refused it (quota, size): it stays in the outbox and is
            # picked up again by the backlog scan.
            self.counters["puback_failures"] += 1
            log.warning("telemetry_refused", seq_from=batch.seq_from, seq_to=batch.seq_to,
                        reason=reason)
            self._backlog_cursor = min(self._backlog_cursor, batch.seq_from)
        else:
            self._store.outbox_ack(batch.seq_from, batch.seq_to)
            self.counters["batches_acked"] += 1
            if batch.live:
                self.live_lag_s = time.time() - batch.newest_ts
                self.live_lag_max_s = max(self.live_lag_max_s, self.live_lag_s)
                self.live_lag_samples_s.append(self.live_lag_s)
        self._wake.set()

    # -- telemetry -----------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await within(self._wake.wait(), 0.5)
            self._wake.clear()
            self._expire_inflight()
            while self.connected and len(self._inflight) < self.config.max_inflight_batches:
                batch = self._next_batch()
                if batch is None:
                    break
                await self._send(batch)

    def _expire_inflight(self) -> None:
        if not self.connected:
            return
        now = time.monotonic()
        for mid, batch in list(self._inflight.items()):
            if now - batch.sent_mono > self.config.puback_timeout_s:
                del self._inflight[mid]
                self.counters["puback_timeouts"] += 1
                log.warning("telemetry_puback_timeout", seq_from=batch.seq_from,
                            seq_to=batch.seq_to)
                self._backlog_cursor = min(self._backlog_cursor, batch.seq_from)
                self._live_from = max(self._live_from, batch.seq_to + 1)

    def _next_batch(self) -> _Batch | None:
        live = self._take(self._live_cursor, None, self.config.batch_max_rows)
        if live is not None:
            self._live_cursor = live[1] + 1
            return _Batch(live[0], live[1], True, 0.0)
        now = time.monotonic()
        rate = self.config.backlog_rows_per_s
        self._tokens = min(self._tokens + (now - self._tokens_at) * rate,
                           max(rate, self.config.backlog_batch_max_rows))
        self._tokens_at = now
        if self._tokens <= 0 or self._backlog_cursor >= self._live_from:
            if self._tokens <= 0:  # come back when the bucket has refilled
                asyncio.get_running_loop().call_later(-self._tokens / rate + 0.01, self._wake.set)
            return None
        got = self._take(self._backlog_cursor, self._live_from - 1,
                         self.config.backlog_batch_max_rows)
        if got is None:
            self._backlog_cursor = self._live_from
            return None
        self._backlog_cursor = got[1] + 1
        self._tokens -= got[1] - got[0] + 1
        return _Batch(got[0], got[1], False, 0.0)

    def _take(self, cursor: int, upper: int | None, limit: int) -> tuple[int, int] | None:
        """The next pending seq range at or after ``cursor`` not already in flight."""
        while True:
            ranges = self._store.outbox_ranges(min_seq=cursor, max_seq=upper, limit=64)
            if not ranges:
                return None
            start = max(ranges[0][0], cursor)
            cap = start + limit - 1 if upper is None else min(start + limit - 1, upper)
            end = start - 1
            for a, b in ranges:  # coalesce adjacent ranges (one a tick) into one batch
                if max(a, cursor) != end + 1:
                    break
                end = min(b, cap)
                if end < b:
                    break
            clash = [f for f in self._inflight.values() if f.seq_from <= end and f.seq_to >= start]
            if not clash:
                return start, end
            first = min(f.seq_from for f in clash)
            if first > start:
                return start, first - 1
            # In flight already (paho resends it after a reconnect): skip past it.
            cursor = max(f.seq_to for f in clash) + 1

    async def _send(self, batch: _Batch) -> None:
        payload, compressed, newest_ts = await asyncio.to_thread(self._encode, batch)
        client = self._client
        if client is None or not self.connected:
            # Lost the connection while encoding: rewind so it is picked up again.
            if batch.live:
                self._live_cursor = min(self._live_cursor, batch.seq_from)
            else:
                self._backlog_cursor = min(self._backlog_cursor, batch.seq_from)
            return
        batch.newest_ts = newest_ts
        batch.sent_mono = time.monotonic()
        props = None
        if self._protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = "application/json"
            if compressed:
                props.UserProperty = ("content-encoding", "zlib")
        info = client.publish(self.topics.telemetry, payload, qos=1, properties=props)
        self._inflight[info.mid] = batch
        self.counters["batches_sent"] += 1
        self.counters["rows_sent"] += batch.seq_to - batch.seq_from + 1
        self.counters["bytes_sent"] += len(payload)
        self.counters["batches_compressed"] += compressed

    def _encode(self, batch: _Batch) -> tuple[bytes, bool, float]:
        rows = self._store.outbox_rows(batch.seq_from, batch.seq_to)
        doc = {"site": self.config.site, "seq_from": batch.seq_from, "seq_to": batch.seq_to,
               "rows": rows}
        payload = json.dumps(doc, separators=(",", ":")).encode()
        newest_ts = float(rows[-1][0]) if rows else 0.0
        if len(payload) >= self.config.compress_min_bytes:
            packed = zlib.compress(payload, 6)
            if len(packed) < 0.9 * len(payload):
                return packed, True, newest_ts
        return payload, False, newest_ts

    # -- plans, commands, state ---------------------------------------------------

    async def _receiver(self) -> None:
        while True:
            client, msg = await self._inbox.get()
            ack: Ack | None = None
            try:
                if msg.topic == self.topics.plan:
                    ack = self._on_plan(bytes(msg.payload), bool(msg.retain))
                elif msg.topic == self.topics.cmd:
                    ack = self._on_command(bytes(msg.payload))
            except Exception:  # a handler bug must not end the uplink
                log.exception("inbound_handler_failed", topic=msg.topic)
            if ack is not None and self._client is not None:
                self._client.publish(self.topics.ack, ack.payload(), qos=1)
            # PUBACK only now that the plan or command is stored: a crash before
            # this point makes the broker deliver it again (manual_ack).
            if client is self._client and msg.qos > 0:
                client.ack(msg.mid, msg.qos)

    async def _state_publisher(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_every_s)
            self._publish_state()

    def _state_payload(self, status: str) -> bytes:
        doc: dict[str, Any] = {"site": self.config.site, "status": status, "ts": time.time()}
        if status == "online":
            counters = self._store.counters
            doc.update({
                "outbox_pending_rows": self._store.outbox_pending_rows(),
                "outbox_dropped_rows": counters.get("outbox_dropped_rows", 0),
                "telemetry_dropped_rows": counters.get("telemetry_dropped_rows", 0),
                "disk_full_total": counters.get("disk_full_total", 0),
                "ticks_lost_total": counters.get("ticks_lost_total", 0),
                "uplink": self.status(),
            })
            if self._state_extra is not None:
                doc.update(self._state_extra())
        return json.dumps(doc, default=str).encode()

    def _publish_state(self) -> None:
        if self._client is not None and self.connected:
            self._client.publish(self.topics.state, self._state_payload("online"), qos=1,
                                 retain=True)


# -- benchmark ------------------------------------------------------------------

_SUBSCRIBER = """
import sys, paho.mqtt.client as m
from paho.mqtt.enums import CallbackAPIVersion
c = m.Client(CallbackAPIVersion.VERSION2, client_id="bench-cloud", protocol=m.MQTTv5)
c.on_connect = lambda c, u, f, rc, p: c.subscribe(sys.argv[3], qos=1)
c.on_subscribe = lambda *a: print("ready", flush=True)
c.connect(sys.argv[1], int(sys.argv[2]))
c.loop_forever()
"""


async def bench_drain(work_dir: Path, host: str = "127.0.0.1", port: int = 1883, *,
                      points: int = 1000, change_frac: float = 0.1, backlog_hours: float = 24.0,
                      keyframe_s: float = 300.0, live_s: float | None = None,
                      config: MqttConfig | None = None) -> dict[str, float]:
    """Drain a by-exception backlog to a broker while 1 s live ticks keep coming.

    The backlog is ``backlog_hours`` of ``points`` points at 1 s where
    ``change_frac`` of them change each second, plus a keyframe every
    ``keyframe_s``; it is committed tick by tick through ``commit_tick``. A
    subscriber in another process takes the telemetry, as the cloud would.
    Reports rows/s, the drain time, the projected time for 24 h, and the live
    lag (commit to PUBACK) while draining.
    """
    store = Store(StoreConfig(path=work_dir / "bench-drain.db", keyframe_s=keyframe_s,
                              max_bytes=50_000_000_000))
    names = [f"dev{i // 50}.p{i % 50}" for i in range(points)]
    values = dict.fromkeys(names, 0.0)
    changed = max(1, int(points * change_frac))
    t0 = time.time() - backlog_hours * 3600.0
    fill_start = time.perf_counter()
    ticks = int(backlog_hours * 3600)
    for tick in range(ticks):
        first = tick * 37 % points
        subset = {names[(first + k) % points]: (float(tick + k), "good") for k in range(changed)}
        values.update({k: v[0] for k, v in subset.items()})
        keyframe = tick % int(keyframe_s) == 0
        store.commit_tick(t0 + tick, {n: (v, "good") for n, v in values.items()} if keyframe
                          else subset)
    fill_s = time.perf_counter() - fill_start
    backlog_rows = store.outbox_pending_rows()

    cfg = config or MqttConfig(site="bench", enabled=True, host=host, port=port)
    sub = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SUBSCRIBER, host, str(port), topics(cfg.site).telemetry,
        stdout=asyncio.subprocess.PIPE)
    assert sub.stdout is not None
    await within(sub.stdout.readline(), 30)
    up = Uplink(cfg, store, lambda raw, retained: None, lambda raw: Ack("", "rejected", "bench"))
    task = asyncio.create_task(up.run())
    live_ticks = 0
    try:
        await within(up.wait_connected(), 60)
        start = time.perf_counter()
        next_tick = time.monotonic()
        finished = False
        while not finished:
            live_ticks += 1
            first = live_ticks * 37 % points
            for k in range(changed):
                values[names[(first + k) % points]] = float(-live_ticks - k)
            store.commit_tick(time.time(), {n: (v, "good") for n, v in values.items()})
            up.notify()
            next_tick += 1.0
            while time.monotonic() < next_tick:  # look every 20 ms whether all is acked
                await asyncio.sleep(0.02)
                done = store.outbox_pending_rows() == 0 and up.inflight_batches == 0
                if done and (live_s is None or time.perf_counter() - start >= live_s):
                    finished = True
                    break
        drain_s = time.perf_counter() - start
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sub.kill()
        await sub.wait()
        store.close()
    lags = sorted(up.live_lag_samples_s) or [math.nan]
    rows_24h = backlog_rows / backlog_hours * 24.0 if backlog_hours else 0.0
    rate = backlog_rows / drain_s
    return {"points": points, "change_frac": change_frac, "backlog_hours": backlog_hours,
            "backlog_rows": backlog_rows, "fill_s": fill_s, "drain_s": drain_s,
            "drain_rows_per_s": rate, "rows_24h": rows_24h,
            "projected_24h_drain_s": rows_24h / rate,
            "live_lag_p50_s": lags[len(lags) // 2], "live_lag_max_s": lags[-1],
            "live_ticks": live_ticks, "batches_sent": up.counters["batches_sent"],
            "bytes_sent": up.counters["bytes_sent"],
            "backlog_rows_per_s_limit": cfg.backlog_rows_per_s}
