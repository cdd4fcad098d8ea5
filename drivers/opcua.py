"""OPC UA client: a session kept alive by its own reconnect loop, values from a
data-change subscription (or batched reads when none is configured).

Every (re)connect resolves the namespace URI against the server's
NamespaceArray and rebuilds node ids, so a server that restarts with its
namespaces in another order is still read correctly; asyncua's own
auto-reconnect is off because it would restore subscriptions with the old ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError
from cryptography import x509

from drivers.resilience import Backoff, Breaker
from drivers.spec import OpcUaDevice, SecurityMode, SecurityPolicy, parse_opcua_endpoint
from drivers.timeouts import within
from drivers.types import BreakerState, DriverError, Health, Quality, Reading, WriteRefused

_log = logging.getLogger(__name__)

_POLICIES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}
_INT_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}


# A subscription sends nothing while no value changes; a keep-alive at most this far apart
# says its values still hold. Consumers judge a value by its timestamp (the controller takes
# one older than its stale_after_s, 5 s, as stale), so an idle ice store's level, unchanged
# for hours, must be re-confirmed well within that: left at asyncua's default (75 % of the
# session timeout, 450 s here) it went stale and held Park B's controller in its fallback
# with the store empty all night.
KEEPALIVE_S = 1.0
# The session the server keeps for us across a broken connection. asyncua asks 1 h; its own
# servers (the simulated park's) grant at most 10 min and the client logged a warning about
# the revision on every connect. Longer is not needed: the driver reconnects and subscribes
# again whatever the server kept.
SESSION_TIMEOUT_MS = 600_000


class _Session:
    """What one connection resolved: node ids and their variant types."""

    def __init__(self, client: Client, nodes: dict[str, ua.NodeId]) -> None:
        self.client = client
        self.nodes = nodes
        self.by_nodeid = {n.to_string(): name for name, n in nodes.items()}
        self.types: dict[str, ua.VariantType] = {}
        self.unknown: set[str] = set()
        self.subscription: Any = None


class OpcUaClient:
    """A device's OPC UA session. start() launches the connection loop; the
    read and write methods never wait for a connection that is not there."""

    def __init__(self, device: OpcUaDevice, *, clock: Callable[[], float] = time.time) -> None:
        parse_opcua_endpoint(device.endpoint)
        self.device = device
        self._points = {p.name: p for p in device.points}
        self._clock = clock
        self._backoff = Backoff(device.backoff_initial_s, device.backoff_max_s)
        # The breaker mirrors the reconnect loop (open while backing off); it
        # keeps Health alike across protocols.
        self._breaker = Breaker(threshold=1, cooldown_s=0.0)
        self._session: _Session | None = None
        # The session notifications belong to; set before subscribing, since
        # the initial values arrive while subscribe_data_change is in flight.
        self._current: _Session | None = None
        self._cache: dict[str, Reading] = {}
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._requests = 0
        self._errors = 0
        self._last_ok_ts: float | None = None

    @property
    def name(self) -> str:
        return self.device.name

    def health(self) -> Health:
        return Health(
            connected=self._session is not None,
            consecutive_failures=self._backoff.failures,
            breaker_state=self._breaker.state if self._session is None else BreakerState.CLOSED,
            requests=self._requests,
            errors=self._errors,
            last_ok_ts=self._last_ok_ts,
        )

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"opcua:{self.name}")

    async def wait_connected(self, timeout_s: float) -> bool:
        """For startup and tests: True once a session (and its subscription) is up."""
        await self.start()
        try:
            await within(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def read_all(self) -> dict[str, Reading]:
        """Every readable point: from the subscription's cache when subscribed, else a read."""
        return await self._read([p.name for p in self.device.points if p.access.readable], fresh=False)

    async def read_points(self, names: Iterable[str]) -> dict[str, Reading]:
        """Some points read from the server now, even when subscribed: this is the read-back
        after a write, and the subscription's cache may still hold the value before it."""
        return await self._read(names, fresh=True)

    async def _read(self, names: Iterable[str], *, fresh: bool) -> dict[str, Reading]:
        wanted = list(names)
        for n in wanted:
            if n not in self._points:
                raise KeyError(f"{self.name}: no point {n!r}")
        await self.start()
        session = self._session
        if session is None:
            return {n: self._lost_reading(n) for n in wanted}
        polled = fresh or self.device.subscription is None
        if polled:
            await self._poll(session, [n for n in wanted if n not in session.unknown])
        out = {n: self._cache.get(n) or self._lost_reading(n) for n in wanted}
        confirmed = None if polled else self._confirmed_ts(session)
        if confirmed is None:
            return out
        return {n: Reading(r.value, r.quality, max(r.source_ts, confirmed))
                if r.quality is Quality.GOOD else r for n, r in out.items()}

    def _confirmed_ts(self, session: _Session) -> float | None:
        """When the subscription last answered a publish (notifications or a keep-alive):
        every good value it holds was still the server's then (OPC UA Part 4, 5.13.1)."""
        last = getattr(session.subscription, "last_publish_at", None)
        if not isinstance(last, float):
            return None
        return self._clock() - (time.monotonic() - last)

    async def write(self, point: str, value: float | str) -> None:
        """Write with the variable's own data type.

        KeyError for an unknown point, ValueError for a read-only point or a
        value the type cannot hold, WriteRefused on a Bad status from the
        server (BadOutOfRange, BadNotWritable, ...), DriverError when the
        device is not connected or does not answer.
        """
        p = self._points.get(point)
        if p is None:
            raise KeyError(f"{self.name}: no point {point!r}")
        if not p.access.writable:
            raise ValueError(f"{self.name}.{point}: not writable (access {p.access})")
        session = self._session
        if session is None:
            raise DriverError(f"{self.name}: not connected")
        vtype = session.types.get(point)
        if vtype is None:
            raise DriverError(f"{self.name}.{point}: node {p.node!r} not found on the server")
        if isinstance(value, int | float) and (p.scale != 1.0 or p.offset != 0.0):
            value = (value - p.offset) / p.scale + 0.0   # + 0.0: no signed zero from scale -1
        variant = ua.Variant(_coerce(value, vtype, f"{self.name}.{point}"), vtype)
        self._requests += 1
        try:
            results = await within(
                session.client.uaclient.write_attributes(
                    [session.nodes[point]], [ua.DataValue(variant)], AttributeIds.Value
                ),
                self.device.timeout_s,
            )
        except (TimeoutError, OSError, ConnectionError, UaError) as exc:
            self._fail(exc)
            raise DriverError(f"{self.name}.{point}: write not confirmed: {exc!r}") from None
        status: ua.StatusCode = results[0]
        self._last_ok_ts = self._clock()
        if not status.is_good():
            self._errors += 1
            raise WriteRefused(f"{self.name}.{point}: server refused {value!r}: {status.name}")

    # -- connection loop -------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            client: Client | None = None
            try:
                self._breaker.state = BreakerState.HALF_OPEN
                client = await self._connect()
                self._backoff.succeeded()
                self._breaker.succeeded()
                self._connected.set()
                _log.info("opcua_connected device=%s", self.name)
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._errors += 1
                _log.warning("opcua_connect_failed device=%s error=%r", self.name, exc)
            finally:
                self._connected.clear()
                self._session = self._current = None
                for name in list(self._cache):
                    self._cache[name] = self._lost_reading(name)
                if client is not None:
                    await self._disconnect(client)
            if self._closing:
                return
            self._breaker.failed(time.monotonic())
            await asyncio.sleep(self._backoff.failed(time.monotonic()))

    async def _connect(self) -> Client:
        d = self.device
        client = Client(d.endpoint, timeout=d.timeout_s, watchdog_intervall=max(d.timeout_s, 0.5))
        client.session_timeout = SESSION_TIMEOUT_MS
        sec = d.security
        if sec.policy is not SecurityPolicy.NONE and sec.mode is not SecurityMode.NONE:
            uri = _application_uri(sec.cert)
            if uri:
                # The server matches this against the certificate's SAN URI.
                client.application_uri = uri
            await client.set_security(
                _POLICIES[sec.policy],
                certificate=sec.cert,
                private_key=sec.key,
                mode=_MODES[sec.mode],
            )
        if sec.username:
            client.set_user(sec.username)
            client.set_password(sec.password)
        self._lost.clear()

        async def on_lost(exc: Exception) -> None:
            self._lost.set()

        client.connection_lost_callback = on_lost
        await within(client.connect(auto_reconnect=False), d.timeout_s * 4)
        try:
            idx = await client.get_namespace_index(d.namespace_uri)
            nodes = {p.name: ua.NodeId.from_string(f"ns={idx};{p.node}") for p in d.points}
            session = self._current = _Session(client, nodes)
            await self._resolve_types(session)
            if d.subscription is not None:
                await self._subscribe(session)
        except BaseException:
            await self._disconnect(client)
            raise
        self._session = session
        self._last_ok_ts = self._clock()
        return client

    async def _resolve_types(self, session: _Session) -> None:
        """DataType of every node, once a session: writes need the variant type,
        and a node id the server does not know is found here, not at first use."""
        names = list(session.nodes)
        results = await session.client.uaclient.read_attributes(
            [session.nodes[n] for n in names], AttributeIds.DataType
        )
        for name, dv in zip(names, results, strict=True):
            if dv.StatusCode is not None and not dv.StatusCode.is_good():
                session.unknown.add(name)
                self._cache[name] = Reading(None, Quality.BAD, self._clock())
                continue
            dt = dv.Value.Value if dv.Value is not None else None
            if (
                isinstance(dt, ua.NodeId)
                and dt.NamespaceIndex == 0
                and isinstance(dt.Identifier, int)
            ):
                with contextlib.suppress(ValueError):
                    session.types[name] = ua.VariantType(dt.Identifier)
                    continue
            # A custom or abstract data type: fall back on the current value's type.
            value = await session.client.uaclient.read_attributes(
                [session.nodes[name]], AttributeIds.Value
            )
            if value[0].Value is not None:
                session.types[name] = value[0].Value.VariantType

    async def _subscribe(self, session: _Session) -> None:
        sub_spec = self.device.subscription
        assert sub_spec is not None
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = sub_spec.publishing_ms
        params.RequestedMaxKeepAliveCount = max(1, math.ceil(KEEPALIVE_S * 1000.0 / sub_spec.publishing_ms))
        params.RequestedLifetimeCount = 10000   # asyncua's default; >= 3 x the keep-alive count
        params.MaxNotificationsPerPublish = 10000
        params.PublishingEnabled = True
        params.Priority = 0
        sub = await session.client.create_subscription(params, _Handler(self, session))
        session.subscription = sub
        names = [n for n in session.nodes if n not in session.unknown]
        if not names:
            return
        handles = await sub.subscribe_data_change(
            [session.client.get_node(session.nodes[n]) for n in names],
            sampling_interval=ua.Double(sub_spec.sampling_ms),
            queuesize=1,
        )
        for name, handle in zip(names, handles, strict=True):
            if isinstance(handle, ua.StatusCode):
                self._cache[name] = Reading(None, Quality.BAD, self._clock())

    async def _disconnect(self, client: Client) -> None:
        with contextlib.suppress(Exception):
            await within(client.disconnect(), self.device.timeout_s)

    async def _poll(self, session: _Session, names: list[str]) -> None:
        if not names:
            return
        self._requests += 1
        try:
            results = await within(
                session.client.uaclient.read_attributes(
                    [session.nodes[n] for n in names], AttributeIds.Value
                ),
                self.device.timeout_s,
            )
        except (TimeoutError, OSError, ConnectionError, UaError) as exc:
            self._fail(exc)
            for n in names:
                self._cache[n] = self._lost_reading(n)
            return
        for name, dv in zip(names, results, strict=True):
            self._store(name, dv)

    def _store(self, name: str, dv: ua.DataValue) -> None:
        now = self._clock()
        self._last_ok_ts = now
        ts = dv.SourceTimestamp or dv.ServerTimestamp
        source_ts = _epoch(ts) if ts is not None else now
        status = dv.StatusCode
        value = _plain(dv.Value.Value if dv.Value is not None else None)
        if (status is not None and not status.is_good()) or value is None:
            last = self._cache.get(name)
            last_value = last.value if last is not None else None
            self._cache[name] = Reading(last_value, Quality.BAD, source_ts)
            return
        p = self._points.get(name)
        if p is not None and isinstance(value, int | float) and not isinstance(value, bool) \
                and (p.scale != 1.0 or p.offset != 0.0):
            value = value * p.scale + p.offset
        self._cache[name] = Reading(value, Quality.GOOD, source_ts)

    def _fail(self, exc: BaseException) -> None:
        self._errors += 1
        _log.warning("opcua_request_failed device=%s error=%r", self.name, exc)
        # A timed-out request means the session cannot be trusted: reconnect.
        self._lost.set()

    def _lost_reading(self, name: str) -> Reading:
        last = self._cache.get(name)
        if last is None:
            return Reading(None, Quality.COMM_LOST, self._clock())
        return Reading(last.value, Quality.COMM_LOST, last.source_ts)


class _Handler:
    """asyncua subscription callbacks, bound to one session's node ids."""

    def __init__(self, owner: OpcUaClient, session: _Session) -> None:
        self._owner = owner
        self._session = session

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if self._owner._current is not self._session:
            return  # a late notification from a session already given up
        name = self._session.by_nodeid.get(node.nodeid.to_string())
        if name is not None:
            self._owner._store(name, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        # The server ended the subscription (timeout, shutdown): start over.
        _log.warning("opcua_subscription_status device=%s status=%s", self._owner.name, status)
        self._owner._lost.set()


def _plain(value: Any) -> float | str | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return value
    return None


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _coerce(value: float | str, vtype: ua.VariantType, where: str) -> Any:
    if vtype is ua.VariantType.String:
        return str(value)
    if isinstance(value, str):
        raise ValueError(f"{where}: {vtype.name} point needs a number, got {value!r}")
    if vtype is ua.VariantType.Boolean:
        if value not in (0, 1):
            raise ValueError(f"{where}: Boolean point takes 0 or 1, got {value!r}")
        return bool(value)
    if vtype in _INT_RANGES:
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        lo, hi = _INT_RANGES[vtype]
        raw = round(value)
        if not lo <= raw <= hi:
            raise ValueError(f"{where}: {value!r} outside {vtype.name} range [{lo}, {hi}]")
        return raw
    if vtype in (ua.VariantType.Float, ua.VariantType.Double):
        return float(value)
    raise ValueError(f"{where}: cannot write a {vtype.name} variable")


def _application_uri(cert_path: str) -> str | None:
    data = Path(cert_path).read_bytes()
    cert = (
        x509.load_pem_x509_certificate(data)
        if b"-----BEGIN" in data
        else x509.load_der_x509_certificate(data)
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
