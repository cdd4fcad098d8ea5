"""SunSpec scan and decoding against a pymodbus server holding a common model and model 103."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

import pytest
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus import ModbusClient
from drivers.spec import ModbusDevice
from drivers.sunspec import ModelBlock, decode_model, model_points, scan
from drivers.types import Quality

StartModbus = Callable[..., Awaitable[tuple[object, int]]]


def _text(s: str, regs: int) -> list[int]:
    return list(struct.unpack(f">{regs}H", s.encode().ljust(2 * regs, b"\x00")))


def _inverter_map() -> list[int]:
    """The registers from 40000, laid out by hand from the SunSpec spec
    (not from pysunspec2), as a Fronius-style single-phase inverter."""
    common = [
        1,
        66,
        *_text("ParkSim", 16),
        *_text("INV-5K", 16),
        *_text("", 8),
        *_text("1.0.3", 8),
        *_text("SN0042", 16),
        1,
        0x8000,
    ]
    m103 = [0xFFFF] * 52
    m103[0:2] = [103, 50]
    m103[2] = 2150  # A, A_SF=-2 -> 21.50 A
    m103[6] = (-2) & 0xFFFF  # A_SF
    m103[10] = 2304  # PhVphA, V_SF=-1 -> 230.4 V
    m103[13] = (-1) & 0xFFFF  # V_SF
    m103[14] = (-4950) & 0xFFFF  # W = -4950 (int16), W_SF=0
    m103[15] = 0
    m103[16] = 5001  # Hz, Hz_SF=-2 -> 50.01
    m103[17] = (-2) & 0xFFFF
    m103[24:26] = [0x0001, 0xE240]  # WH acc32 = 123456, WH_SF=1 -> 1234560
    m103[26] = 1
    m103[18:20] = [0x8000, 0x8000]  # VA and VA_SF not implemented
    m103[38] = 4  # St: MPPT
    m103[40:42] = [0, 0]  # Evt1
    return [0x5375, 0x6E53, *common, *m103, 0xFFFF, 0]


def _sim() -> SimDevice:
    bits = [SimData(0, values=[False] * 16, datatype=SimType.BITS)]
    holding = [SimData(40000, values=_inverter_map(), datatype=SimType.REGISTERS)]
    return SimDevice(1, simdata=(bits, bits, holding, [SimData(0, datatype=SimType.REGISTERS)]))


async def test_scan_finds_models_and_decodes_with_scale_factors(
    modbus_server: StartModbus,
) -> None:
    _, port = await modbus_server(_sim())
    client = ModbusClient(
        ModbusDevice(name="inv1", endpoint=f"tcp://127.0.0.1:{port}", sunspec=True, timeout_s=1.0)
    )
    try:
        base, models = await scan(client.read_registers)
        assert base == 40000
        assert models == [ModelBlock(1, 40002, 66), ModelBlock(103, 40070, 50)]
        inv = models[1]
        regs = await client.read_registers(inv.address, inv.length + 2)
        values = decode_model(103, regs)
        assert values["A"] == pytest.approx(21.5)
        assert values["PhVphA"] == pytest.approx(230.4)
        assert values["W"] == -4950
        assert values["Hz"] == pytest.approx(50.01)
        assert values["WH"] == pytest.approx(1234560)
        assert values["St"] == 4
        assert values["AphB"] is None  # 0xFFFF: not implemented
        assert values["VA"] is None  # 0x8000 scale factor and value
        common = await client.read_registers(40002, 68)
        assert decode_model(1, common)["Mn"] == "ParkSim"
        assert decode_model(1, common)["Vr"] == "1.0.3"
    finally:
        await client.close()


async def test_device_configured_by_model_and_point_names(modbus_server: StartModbus) -> None:
    _, port = await modbus_server(_sim())
    points = tuple(model_points(103, 40070, names=["W", "Hz", "A", "AphB", "WH"], prefix="m103_"))
    assert {p.name for p in points} == {"m103_w", "m103_hz", "m103_a", "m103_aphb", "m103_wh"}
    w = next(p for p in points if p.name == "m103_w")
    assert (w.address, w.sf_address) == (40084, 40085)
    client = ModbusClient(
        ModbusDevice(
            name="inv1",
            endpoint=f"tcp://127.0.0.1:{port}",
            sunspec=True,
            timeout_s=1.0,
            points=points,
        )
    )
    try:
        r = await client.read_all()
        assert r["m103_w"].value == -4950 and r["m103_w"].quality is Quality.GOOD
        assert r["m103_hz"].value == pytest.approx(50.01)
        assert r["m103_a"].value == pytest.approx(21.5)
        assert r["m103_wh"].value == pytest.approx(1234560)
        assert r["m103_aphb"].quality is Quality.BAD  # not implemented on this inverter
        assert client.health().requests == 1  # points and scale factors in one read
    finally:
        await client.close()
