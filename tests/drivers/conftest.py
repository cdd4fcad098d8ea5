"""Fixtures: real protocol servers on loopback, each on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimDevice

StartModbus = Callable[..., Awaitable[tuple[ModbusTcpServer, int]]]


@pytest.fixture
async def modbus_server() -> AsyncIterator[StartModbus]:
    """start(device, framer=..., port=0) -> (server, port); all stopped at teardown."""
    servers: list[ModbusTcpServer] = []

    async def start(
        device: SimDevice, *, framer: FramerType = FramerType.SOCKET, port: int = 0
    ) -> tuple[ModbusTcpServer, int]:
        server = ModbusTcpServer(device, framer=framer, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        servers.append(server)
        return server, server.transport.sockets[0].getsockname()[1]

    yield start
    for s in servers:
        await s.shutdown()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers: a hung device."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in writers:
        w.close()
    server.close()
