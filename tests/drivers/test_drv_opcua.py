"""OPC UA client against asyncua servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole

from drivers.opcua import KEEPALIVE_S, OpcUaClient
from drivers.spec import (
    Access,
    OpcUaDevice,
    OpcUaPoint,
    OpcUaSecurity,
    OpcUaSubscription,
    SecurityMode,
    SecurityPolicy,
)
from drivers.types import Quality, Reading, WriteRefused
from edge.pki import make_opcua_client_cert

URI = "urn:parkedge:sim:test"
POINTS = (
    OpcUaPoint("p_kw", "s=Chp1.ElectricPower_kW"),
    OpcUaPoint("p_set_kw", "s=Chp1.PowerSetpoint_kW", access=Access.RW),
    OpcUaPoint("mode", "s=Chp1.Mode", access=Access.RW),
    OpcUaPoint("locked", "s=Chp1.Locked", access=Access.RW),
    OpcUaPoint("missing", "s=Chp1.NoSuchNode"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(check: Callable[[], Awaitable[bool]], *, limit_s: float = 20.0) -> None:
    """Wait for a condition; the limit only stops a hung test, it measures nothing."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not await check():
        assert loop.time() < end, "condition never held"
        await asyncio.sleep(0.05)


def _cert(tmp: Path, name: str, uri: str) -> tuple[str, str]:
    cert, key = make_opcua_client_cert(tmp, name=name, application_uri=uri, days=30)
    return str(cert), str(key)


class _Users:
    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        return User(role=UserRole.User) if (username, password) == ("edge", "s3cret") else None


class Park:
    """One asyncua server playing a CHP controller."""

    def __init__(self, server: Server, nodes: dict[str, Any]) -> None:
        self.server = server
        self.nodes = nodes

    async def set(self, name: str, value: Any, *, status: int | None = None) -> None:
        node = self.nodes[name]
        if status is None:
            await node.write_value(value)
        else:
            await self.server.write_attribute_value(
                node.nodeid, ua.DataValue(StatusCode=ua.StatusCode(status))
            )

    async def get(self, name: str) -> Any:
        return await self.nodes[name].read_value()


StartPark = Callable[..., Awaitable[Park]]


@pytest.fixture
async def opcua_server() -> AsyncIterator[StartPark]:
    servers: list[Server] = []

    async def start(
        port: int,
        *,
        policies: list[ua.SecurityPolicyType] | None = None,
        cert: tuple[str, str] | None = None,
        users: bool = False,
        shift_namespace: bool = False,
        power: float = 100.0,
    ) -> Park:
        server = Server(user_manager=_Users() if users else None)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/park")
        server.set_security_policy(policies or [ua.SecurityPolicyType.NoSecurity])
        if cert is not None:
            await server.load_certificate(cert[0])
            await server.load_private_key(cert[1])
        if shift_namespace:
            # Another vendor's namespace first: ours gets another index.
            await server.register_namespace("urn:vendor:other")
        idx = await server.register_namespace(URI)
        chp = await server.nodes.objects.add_object(idx, "Chp1")
        nodes = {
            "p_kw": await chp.add_variable(ua.NodeId("Chp1.ElectricPower_kW", idx), "P", power),
            "p_set_kw": await chp.add_variable(
                ua.NodeId("Chp1.PowerSetpoint_kW", idx), "PSet", 0.0
            ),
            "mode": await chp.add_variable(
                ua.NodeId("Chp1.Mode", idx), "Mode", ua.Variant(0, ua.VariantType.Int16)
            ),
            "locked": await chp.add_variable(ua.NodeId("Chp1.Locked", idx), "Locked", 0.0),
        }
        for name in ("p_set_kw", "mode"):
            await nodes[name].set_writable()
        await server.start()
        servers.append(server)
        return Park(server, nodes)

    yield start
    for s in servers:
        with contextlib.suppress(Exception):  # already stopped by the test
            await s.stop()


def _device(port: int, **kw: Any) -> OpcUaDevice:
    return OpcUaDevice(
        name="chp1",
        endpoint=f"opc.tcp://127.0.0.1:{port}/park",
        namespace_uri=URI,
        points=POINTS,
        timeout_s=2.0,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
        **kw,
    )


def _quality(
    name: str, q: Quality, client: OpcUaClient, value: Any = None
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        r: Reading = (await client.read_points([name]))[name]
        return r.quality is q and (value is None or r.value == value)

    return check


async def test_subscription_pushes_changes_and_bad_status(opcua_server: StartPark) -> None:
    port = free_port()
    park = await opcua_server(port)
    client = OpcUaClient(
        _device(port, subscription=OpcUaSubscription(publishing_ms=50, sampling_ms=20))
    )
    try:
        assert await client.wait_connected(20)
        await eventually(_quality("p_kw", Quality.GOOD, client, 100.0))
        await park.set("p_kw", 742.5)
        await eventually(_quality("p_kw", Quality.GOOD, client, 742.5))
        requests = client.health().requests
        await client.read_all()
        assert client.health().requests == requests  # served from the subscription's cache
        await park.set("p_kw", None, status=ua.StatusCodes.BadSensorFailure)
        await eventually(_quality("p_kw", Quality.BAD, client))
        r = await client.read_all()
        assert r["p_kw"].value == 742.5  # the last good value, flagged bad
        assert r["missing"].quality is Quality.BAD
    finally:
        await client.close()


async def test_a_value_that_holds_still_is_confirmed_by_the_keepalive(opcua_server: StartPark) -> None:
    """No value changes, so the subscription sends no notification; its keep-alives say the
    values still hold, and the readings carry that time: an idle ice store's level, unchanged
    for hours, went stale at 5 s and held Park B's controller in its fallback all night."""
    port = free_port()
    await opcua_server(port)
    client = OpcUaClient(
        _device(port, subscription=OpcUaSubscription(publishing_ms=50, sampling_ms=20))
    )
    try:
        assert await client.wait_connected(20)
        await eventually(_quality("p_kw", Quality.GOOD, client, 100.0))
        first = (await client.read_all())["p_kw"].source_ts
        await asyncio.sleep(5 * KEEPALIVE_S)
        r = (await client.read_all())["p_kw"]
        assert r.quality is Quality.GOOD and r.value == 100.0
        # re-confirmed by a keep-alive in the last seconds (the old driver: still `first`)
        assert r.source_ts >= first + 3 * KEEPALIVE_S
    finally:
        await client.close()


async def test_polled_reads_and_typed_writes(opcua_server: StartPark) -> None:
    port = free_port()
    park = await opcua_server(port)
    client = OpcUaClient(_device(port))
    try:
        assert await client.wait_connected(20)
        r = await client.read_all()
        assert (r["p_kw"].value, r["p_kw"].quality) == (100.0, Quality.GOOD)
        assert r["missing"].quality is Quality.BAD
        await client.write("p_set_kw", 250.5)
        await client.write("mode", 2.4)  # Int16 variable: written as Int16 2
        assert await park.get("p_set_kw") == 250.5
        assert await park.get("mode") == 2
        back = await client.read_points(["p_set_kw", "mode"])
        assert (back["p_set_kw"].value, back["mode"].value) == (250.5, 2)
        with pytest.raises(WriteRefused, match="Bad"):
            await client.write("locked", 1.0)  # the server made it read-only
        with pytest.raises(ValueError, match="outside Int16"):
            await client.write("mode", 40000)
        with pytest.raises(ValueError, match="not writable"):
            await client.write("p_kw", 1.0)
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("policy", "mode", "server_policy"),
    [
        (
            SecurityPolicy.BASIC256SHA256,
            SecurityMode.SIGN_AND_ENCRYPT,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ),
        (
            SecurityPolicy.AES256_SHA256_RSAPSS,
            SecurityMode.SIGN,
            ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
        ),
    ],
)
async def test_secure_channel_with_username(
    opcua_server: StartPark,
    tmp_path: Path,
    policy: SecurityPolicy,
    mode: SecurityMode,
    server_policy: ua.SecurityPolicyType,
) -> None:
    port = free_port()
    server_cert = _cert(tmp_path, "server", "urn:freeopcua:python:server")
    cert, key = _cert(tmp_path, "client", "urn:parkedge:edge:chp1")
    await opcua_server(port, policies=[server_policy], cert=server_cert, users=True)
    good = OpcUaSecurity(
        policy=policy, mode=mode, cert=cert, key=key, username="edge", password="s3cret"
    )
    client = OpcUaClient(_device(port, security=good))
    try:
        assert await client.wait_connected(20)
        r = await client.read_all()
        assert (r["p_kw"].value, r["p_kw"].quality) == (100.0, Quality.GOOD)
        await client.write("p_set_kw", 12.0)
    finally:
        await client.close()
    wrong = OpcUaSecurity(
        policy=policy, mode=mode, cert=cert, key=key, username="edge", password="guess"
    )
    refused = OpcUaClient(_device(port, security=wrong))
    try:
        await eventually(lambda: _errors_at_least(refused, 1))
        assert not refused.health().connected
        assert (await refused.read_all())["p_kw"].quality is Quality.COMM_LOST
    finally:
        await refused.close()


async def _errors_at_least(client: OpcUaClient, n: int) -> bool:
    await client.start()
    return client.health().errors >= n


async def test_server_restart_brings_session_and_subscription_back(opcua_server: StartPark) -> None:
    port = free_port()
    park = await opcua_server(port)
    client = OpcUaClient(
        _device(port, subscription=OpcUaSubscription(publishing_ms=50, sampling_ms=20))
    )
    try:
        assert await client.wait_connected(20)
        await eventually(_quality("p_kw", Quality.GOOD, client, 100.0))
        await park.server.stop()
        await eventually(_quality("p_kw", Quality.COMM_LOST, client, 100.0))
        assert not client.health().connected
        # Same port, namespaces in another order, a new value.
        park2 = await opcua_server(port, shift_namespace=True, power=55.0)
        await eventually(_quality("p_kw", Quality.GOOD, client, 55.0))
        await park2.set("p_kw", 66.0)
        await eventually(_quality("p_kw", Quality.GOOD, client, 66.0))
        await client.write("p_set_kw", 5.0)
        assert await park2.get("p_set_kw") == 5.0
        assert client.health().connected
    finally:
        await client.close()
