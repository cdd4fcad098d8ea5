"""Modbus client against pymodbus servers in-process (TCP and RTU-over-TCP)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.codec import DataType, Order
from drivers.modbus import ModbusClient
from drivers.spec import Access, ModbusDevice, ModbusPoint, Table
from drivers.types import BreakerState, DriverError, Quality, WriteRefused

UNIT = 7
StartModbus = Callable[..., Awaitable[tuple[object, int]]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _regs(fmt: str, *values: object) -> list[int]:
    data = struct.pack(fmt, *values)
    return list(struct.unpack(f">{len(data) // 2}H", data))


def _holding() -> list[SimData]:
    block0 = [
        1234,  # 0 u16, scale 0.1
        *_regs(">h", -5),  # 1 i16
        *_regs(">f", 3.5)[::-1],  # 2-3 f32 CDAB (words swapped)
        *_regs(">i", -100000),  # 4-5 i32 ABCD
        0b0100,  # 6 bit 2 set
        0,
        0,
        0,  # 7-9
    ]
    # 10-11 are a hole the device refuses (exception 02).
    block12 = _regs("<I", 0xDEADBEEF) + _regs(">4s", b"AB12") + [0, 0]  # 12-13 u32 DCBA, 14-15 str
    block20 = [0, 0, 0, 0]  # 20 p_set, 21-22 f_set, 23 enable bits
    # 30 is refused too, though a point is configured there.
    return [
        SimData(0, values=block0, datatype=SimType.REGISTERS),
        SimData(12, values=block12, datatype=SimType.REGISTERS),
        SimData(20, values=block20, datatype=SimType.REGISTERS),
    ]


async def _refuse_big_setpoints(
    fc: int, start: int, address: int, count: int, regs: list[int], values: object
) -> ExcCodes | None:
    # Like a PLC that range-checks its setpoint register: |raw| > 1000 refused.
    if values and fc == 6 and address == 20:
        raw = struct.unpack(">h", struct.pack(">H", next(iter(values))))[0]  # type: ignore[call-overload]
        if abs(raw) > 1000:
            return ExcCodes.ILLEGAL_VALUE
    return None


def _sim() -> SimDevice:
    bits = [True, False, True] + [False] * 13
    return SimDevice(
        UNIT,
        simdata=(
            [SimData(0, values=bits, datatype=SimType.BITS)],
            [SimData(0, values=bits[::-1], datatype=SimType.BITS)],
            _holding(),
            [SimData(0, values=_regs(">f", -1.25), datatype=SimType.REGISTERS)],
        ),
        action=_refuse_big_setpoints,
    )


POINTS = (
    ModbusPoint("u16", 0, scale=0.1),
    ModbusPoint("i16", 1, type=DataType.INT16),
    ModbusPoint("f32", 2, type=DataType.FLOAT32, order=Order.CDAB),
    ModbusPoint("i32", 4, type=DataType.INT32),
    ModbusPoint("flag", 6, type=DataType.BIT, bit=2),
    ModbusPoint("u32", 12, type=DataType.UINT32, order=Order.DCBA),
    ModbusPoint("name", 14, type=DataType.STRING, length=2),
    ModbusPoint("p_set", 20, type=DataType.INT16, scale=0.1, access=Access.RW),
    ModbusPoint("f_set", 21, type=DataType.FLOAT32, access=Access.RW),
    ModbusPoint("enable", 23, type=DataType.BIT, bit=3, access=Access.RW),
    ModbusPoint("ghost", 30),
    ModbusPoint("coil0", 0, table=Table.COIL, type=DataType.BIT, access=Access.RW),
    ModbusPoint("coil1", 1, table=Table.COIL, type=DataType.BIT, access=Access.RW),
    ModbusPoint("di15", 15, table=Table.DISCRETE, type=DataType.BIT),
    ModbusPoint("ir", 0, table=Table.INPUT, type=DataType.FLOAT32),
)


def _device(port: int, *, rtu: bool = False, **kw: object) -> ModbusDevice:
    scheme = "rtu+tcp" if rtu else "tcp"
    return ModbusDevice(
        name="dev",
        endpoint=f"{scheme}://127.0.0.1:{port}",
        unit=UNIT,
        points=POINTS,
        timeout_s=1.0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("framer", [FramerType.SOCKET, FramerType.RTU])
async def test_reads_every_type_and_learns_the_holes(
    modbus_server: StartModbus, framer: FramerType
) -> None:
    _, port = await modbus_server(_sim(), framer=framer)
    client = ModbusClient(_device(port, rtu=framer is FramerType.RTU))
    try:
        r = await client.read_all()
        values = {k: v.value for k, v in r.items() if v.quality is Quality.GOOD}
        assert values == {
            "u16": pytest.approx(123.4),
            "i16": -5,
            "f32": 3.5,
            "i32": -100000,
            "flag": 1,
            "u32": 0xDEADBEEF,
            "name": "AB12",
            "p_set": 0,
            "f_set": 0.0,
            "enable": 0,
            "coil0": 1,
            "coil1": 0,
            "di15": 1,
            "ir": -1.25,
        }
        assert r["ghost"].quality is Quality.BAD
        first = client.health().requests
        r2 = await client.read_all()
        second = client.health().requests - first
        assert {k: v.quality for k, v in r2.items()} == {k: v.quality for k, v in r.items()}
        # The first poll bisected around the refused registers 10-11, 18-19
        # and 30; the second goes straight to the learnt blocks: holding 0-6,
        # 12-15 and 20-23, coils, discrete inputs, input registers.
        assert second == 6 < first
        assert client.plan_state.bad == {"ghost"}
        assert client.health().breaker_state is BreakerState.CLOSED
    finally:
        await client.close()


async def test_writes_and_reads_back(modbus_server: StartModbus) -> None:
    _, port = await modbus_server(_sim())
    client = ModbusClient(_device(port))
    try:
        await client.write("p_set", -12.3)  # FC06
        await client.write("f_set", 2.75)  # FC16
        await client.write("enable", 1)  # FC03 + FC06 on bit 3
        await client.write("coil1", 1)  # FC05
        r = await client.read_points(["p_set", "f_set", "enable", "flag", "coil1"])
        assert {k: v.value for k, v in r.items()} == {
            "p_set": pytest.approx(-12.3),
            "f_set": 2.75,
            "enable": 1,
            "flag": 1,
            "coil1": 1,
        }
        assert all(v.quality is Quality.GOOD for v in r.values())
    finally:
        await client.close()


async def test_refused_write_raises_write_refused(modbus_server: StartModbus) -> None:
    _, port = await modbus_server(_sim())
    client = ModbusClient(_device(port))
    try:
        with pytest.raises(WriteRefused, match="exception 03"):
            await client.write("p_set", 500.0)  # raw 5000 > 1000
        with pytest.raises(ValueError, match="not writable"):
            await client.write("u16", 1)
        with pytest.raises(ValueError, match="outside int16"):
            await client.write("p_set", 4000.0)
        # A refusal is an answer: the device stays healthy.
        assert client.health().breaker_state is BreakerState.CLOSED
        assert (await client.read_points(["p_set"]))["p_set"].value == 0
    finally:
        await client.close()


async def test_dead_device_does_not_block_a_live_one(
    modbus_server: StartModbus, silent_server: int
) -> None:
    _, port = await modbus_server(_sim())
    live = ModbusClient(_device(port))
    hung = ModbusClient(_device(silent_server))
    refused = ModbusClient(_device(free_port()))
    try:
        hung_poll = asyncio.create_task(hung.read_all())
        refused_poll = await refused.read_all()
        assert {r.quality for r in refused_poll.values()} == {Quality.COMM_LOST}
        # The caller polls each device from its own task: while the hung one
        # waits out its timeout, the live one completes poll after poll.
        for _ in range(3):
            r = await live.read_all()
            assert r["i32"].quality is Quality.GOOD
        assert not hung_poll.done()
        got = await hung_poll
        assert {r.quality for r in got.values()} == {Quality.COMM_LOST}
        assert hung.health().consecutive_failures == 1
        assert hung.health().errors >= 1
    finally:
        for c in (live, hung, refused):
            await c.close()


async def test_breaker_opens_and_a_probe_closes_it(modbus_server: StartModbus) -> None:
    now = [1000.0]
    port = free_port()
    client = ModbusClient(
        _device(port, breaker_failures=2, breaker_cooldown_s=10.0, backoff_initial_s=0.0),
        monotonic=lambda: now[0],
    )
    try:
        for _ in range(2):
            r = await client.read_all()
            assert r["u16"].quality is Quality.COMM_LOST
        h = client.health()
        assert h.breaker_state is BreakerState.OPEN and h.consecutive_failures == 2
        errors = h.errors
        # Open: no I/O at all, the answer is immediate.
        r = await client.read_all()
        assert r["u16"].quality is Quality.COMM_LOST
        assert client.health().errors == errors
        with pytest.raises(DriverError, match="unreachable"):
            await client.write("p_set", 1.0)
        # The device comes back; after the cooldown one probe closes the breaker.
        await modbus_server(_sim(), port=port)
        now[0] += 10.0
        r = await client.read_all()
        assert r["u16"].quality is Quality.GOOD
        h = client.health()
        assert h.breaker_state is BreakerState.CLOSED and h.consecutive_failures == 0
        assert h.connected and h.last_ok_ts is not None
    finally:
        await client.close()


async def test_last_good_value_is_kept_when_the_device_goes(modbus_server: StartModbus) -> None:
    server, port = await modbus_server(_sim())
    client = ModbusClient(_device(port, backoff_initial_s=0.0))
    try:
        good = (await client.read_all())["i32"]
        assert good.quality is Quality.GOOD
        await server.shutdown()
        lost = (await client.read_all())["i32"]
        assert lost.quality is Quality.COMM_LOST
        assert (lost.value, lost.source_ts) == (good.value, good.source_ts)
    finally:
        await client.close()
