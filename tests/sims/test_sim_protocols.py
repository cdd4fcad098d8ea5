"""The simulated devices over their protocols, read and written by independent clients."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from parksim.protocols.opcua_server import OpcUaOptions
from parksim.runtime import SimPark
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from .conftest import START, endpoint, host_port


async def _client(sim: SimPark, device: str, timeout_s: float = 2.0) -> tuple[AsyncModbusTcpClient, int]:
    ep = endpoint(sim, device)
    host, port = host_port(ep)
    framer = FramerType.RTU if ep.url.startswith("rtu+tcp") else FramerType.SOCKET
    c = AsyncModbusTcpClient(host, port=port, framer=framer, timeout=timeout_s, retries=0)
    assert await c.connect()
    return c, ep.unit


def _f32(x: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", x)))


def _scan(host: str, port: int, unit: int) -> dict:  # type: ignore[type-arg]
    dev = SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr=host, ipport=port, timeout=2)
    try:
        dev.scan()
        return {mid: dev.models[mid][0] for mid in dev.models if isinstance(mid, int)}
    finally:
        dev.close()


async def test_sunspec_devices_scan_with_pysunspec2(park_a: SimPark) -> None:
    vals = park_a.values()
    host, port = host_port(endpoint(park_a, "pv1"))
    pv = await asyncio.to_thread(_scan, host, port, 1)
    assert {1, 103, 123, 64900} <= set(pv)
    assert abs(pv[103].W.cvalue / 1000.0 - (-vals["pv1.p_kw"])) <= 1.0  # W with W_SF 3
    assert pv[123].WMaxLimPct.cvalue == 100.0

    host, port = host_port(endpoint(park_a, "bess1"))
    bess = await asyncio.to_thread(_scan, host, port, 1)
    assert {1, 802, 124, 64900} <= set(bess)
    assert bess[802].SoC.cvalue == pytest.approx(100 * vals["bess1.soc_frac"], abs=0.01)
    assert bess[802].Typ.value == 4  # lithium-ion

    for name in ("grid1", "load_office", "load_hospital", "dc1"):
        ep = endpoint(park_a, name)
        host, port = host_port(ep)
        meter = await asyncio.to_thread(_scan, host, port, ep.unit)
        assert 203 in meter
        key = "load_datacentre.p_kw" if name == "dc1" else f"{name}.p_kw"
        sign = -1.0 if name == "grid1" else 1.0
        assert meter[203].W.cvalue / 1000.0 == pytest.approx(sign * vals[key], abs=1.0)


async def test_refused_modbus_setpoint_changes_nothing(park_a: SimPark) -> None:
    c, unit = await _client(park_a, "bess1")
    try:
        r = await c.write_registers(40166, _f32(20_000.0), device_id=unit)
        assert r.isError() and r.exception_code == 3
        assert park_a.park.devices["bess1"].sp["p_set_kw"] == 0.0
        assert not park_a.park.devices["bess1"].remote
        await park_a.step_once(60.0)
        rr = await c.read_holding_registers(40164, count=1, device_id=unit)
        assert rr.registers == [1]  # refused_total
        # room to export it all: the battery's converter holds the export limit
        park_a.park.devices["grid1"].export_max_kw = 50_000.0
        r = await c.write_registers(40166, _f32(-4_000.0), device_id=unit)
        assert not r.isError()
        await park_a.step_once(60.0)
        rr = await c.read_holding_registers(40117, count=1, device_id=unit)
        assert rr.registers == [4000]  # SunSpec W: discharge positive, kW
        r = await c.write_register(40166, 0, device_id=unit)  # half a float32
        assert r.isError() and r.exception_code == 2
        r = await c.write_register(40081, 1, device_id=unit)  # read-only SoC
        assert r.isError() and r.exception_code == 2
    finally:
        c.close()


async def test_negative_scale_modbus_setpoints_reach_the_park_in_its_sign(park_a: SimPark) -> None:
    """dg1.p_set_kw is uint16 output-positive on the wire and <= 0 in the park (scale -1)."""
    c, unit = await _client(park_a, "dg1")
    try:
        r = await c.write_register(1, 1500, device_id=unit)
        assert not r.isError()
        assert park_a.park.devices["dg1"].sp["p_set_kw"] == -1500.0
        r = await c.write_register(1, 2500, device_id=unit)  # -2500 kW: beyond the rating
        assert r.isError() and r.exception_code == 3
        assert park_a.park.devices["dg1"].sp["p_set_kw"] == -1500.0
        await park_a.step_once(1.0)
        rr = await c.read_holding_registers(1, count=1, device_id=unit)
        assert rr.registers == [1500]
    finally:
        c.close()
    c, unit = await _client(park_a, "wind1")
    try:
        r = await c.write_registers(106, _f32(1000.0), device_id=unit)
        assert not r.isError()
        assert park_a.park.devices["wind1"].sp["p_limit_kw"] == -1000.0
        await park_a.step_once(60.0)
        assert -1000.0 - 1e-6 <= park_a.values()["wind1.p_kw"] <= 0.0
        r = await c.write_registers(106, _f32(-10.0), device_id=unit)  # +10 kW: not a limit
        assert r.isError() and r.exception_code == 3
    finally:
        c.close()


async def test_refused_opcua_setpoint_is_bad_out_of_range(park_a: SimPark) -> None:
    url = endpoint(park_a, "chp1").url
    async with Client(url) as cl:
        ns = await cl.get_namespace_index(park_a.namespace_uri)
        sp = cl.get_node(f"ns={ns};s=Chp1.PowerSetpoint_kW")
        with pytest.raises(ua.UaStatusCodeError) as err:
            await sp.write_value(ua.Variant(5_000.0, ua.VariantType.Double))
        assert err.value.code == ua.StatusCodes.BadOutOfRange
        assert not park_a.park.devices["chp1"].remote
        assert park_a.refused["chp1"] == 1
        await sp.write_value(ua.Variant(3_000.0, ua.VariantType.Double))
        # written in the device's convention (output positive), taken in the park's (scale -1)
        assert park_a.park.devices["chp1"].sp["p_set_kw"] == -3_000.0
        await park_a.step_once(60.0)
        power = cl.get_node(f"ns={ns};s=Chp1.ElectricPower_kW")
        assert await power.read_value() == pytest.approx(3_000.0)
        assert await sp.read_value() == pytest.approx(3_000.0)  # served back as written
        assert park_a.park.last is not None and park_a.park.last.electric_kw["chp1"] == -3_000.0
        eu = await power.get_child([ua.QualifiedName("EngineeringUnits", 0)])
        assert (await eu.read_value()).DisplayName.Text == "kW"


async def _until(sim: SimPark, cond, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):  # bounded wait on a condition, not a timing assertion
        await sim.step_once(1.0)
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_heartbeat_loss_falls_back_to_local_default(park_a: SimPark) -> None:
    c, unit = await _client(park_a, "bess1")
    async with Client(endpoint(park_a, "chp1").url) as cl:
        ns = await cl.get_namespace_index(park_a.namespace_uri)
        await c.write_registers(40166, _f32(5_000.0), device_id=unit)
        await c.write_register(40162, 1, device_id=unit)
        await cl.get_node(f"ns={ns};s=Chp1.PowerSetpoint_kW").write_value(ua.Variant(4000.0, ua.VariantType.Double))
        await cl.get_node(f"ns={ns};s=Chp1.Heartbeat").write_value(ua.Variant(1, ua.VariantType.UInt32))
        await park_a.step_once(1.0)
        assert park_a.park.last.electric_kw["bess1"] == 5_000.0
        assert park_a.park.last.electric_kw["chp1"] == -4_000.0
        # Keep the battery's heartbeat alive for a while; the CHP's stops.
        await _until(park_a, lambda: not park_a.park.devices["chp1"].remote, "chp1 fallback")
        await c.write_register(40162, 2, device_id=unit)
        await _until(park_a, lambda: not park_a.park.devices["bess1"].remote, "bess1 fallback")
        await park_a.step_once(1.0)
        assert park_a.park.last.electric_kw["bess1"] == 0.0  # battery idle
        heat = park_a.park.last.heat_use_kw["load"]
        assert park_a.park.last.heat_supply_kw["chp1"] == pytest.approx(max(heat, 1200 * 0.875))  # heat-led
        rr = await c.read_holding_registers(40163, count=1, device_id=unit)
        assert rr.registers == [0]  # remote flag
        assert await cl.get_node(f"ns={ns};s=Chp1.Remote").read_value() is False
    c.close()


async def test_fault_injection(park_a: SimPark) -> None:
    c, unit = await _client(park_a, "wind1", timeout_s=0.3)
    try:
        assert not (await c.read_holding_registers(100, count=4, device_id=unit)).isError()
        park_a.faults("wind1").illegal_ranges.append((102, 104))
        r = await c.read_holding_registers(100, count=4, device_id=unit)
        assert r.isError() and r.exception_code == 2
        park_a.faults("wind1").clear()
        park_a.faults("wind1").offline = True
        with pytest.raises(ModbusException):
            await c.read_holding_registers(100, count=2, device_id=unit)
        park_a.faults("wind1").clear()
        park_a.faults("wind1").delay_s = 1.0  # slower than the client's timeout
        with pytest.raises(ModbusException):
            await c.read_holding_registers(100, count=2, device_id=unit)
        park_a.faults("wind1").clear()
    finally:
        c.close()
    async with Client(endpoint(park_a, "chp1").url) as cl:
        ns = await cl.get_namespace_index(park_a.namespace_uri)
        node = cl.get_node(f"ns={ns};s=Chp1.HeatOutput_kW")
        park_a.faults("chp1").bad_status = True
        await park_a.refresh()
        dv = await node.read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value == ua.StatusCodes.BadDeviceFailure
        park_a.faults("chp1").clear()
        await park_a.refresh()
        assert (await node.read_data_value()).StatusCode.is_good()


async def test_diesel_over_rtu_framing_with_min_up_time(park_a: SimPark) -> None:
    c, unit = await _client(park_a, "dg2")
    try:
        assert unit == 2
        r = await c.write_registers(0, [1, 1500], device_id=unit)
        assert not r.isError()
        r = await c.write_register(1, 2500, device_id=unit)  # above 2 MW
        assert r.isError() and r.exception_code == 3
        await park_a.step_once(60.0)
        rr = await c.read_holding_registers(0, count=12, device_id=unit)
        assert rr.registers[2] == 1 and rr.registers[3] == 1500  # running, 1500 kW
        await c.write_register(0, 0, device_id=unit)  # stop inside the 2 h minimum up time
        await park_a.step_once(60.0)
        rr = await c.read_holding_registers(2, count=6, device_id=unit)
        assert rr.registers[0] == 1 and rr.registers[5] == 1  # still running, locked
    finally:
        c.close()


def _client_cert(tmp: Path) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "parkedge-test-client", {}, [x509.UniformResourceIdentifier("urn:parkedge:test:client")],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH])
    (tmp / "c.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (tmp / "c.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    return tmp / "c.der", tmp / "c.pem"


async def test_secured_endpoints_with_username(tmp_path: Path) -> None:
    sim = SimPark("park-b", seed=1, base_port=0, start_utc=START,
                  opcua=OpcUaOptions(secure=True, users={"operator": "s3cret"}, pki_dir=tmp_path / "pki"))
    await sim.start()
    try:
        cert, key = _client_cert(tmp_path)
        url = endpoint(sim, "ice1").url
        for policy in ("Basic256Sha256,Sign", "Basic256Sha256,SignAndEncrypt",
                       "Aes256Sha256RsaPss,SignAndEncrypt"):
            cl = Client(url)
            cl.application_uri = "urn:parkedge:test:client"
            await cl.set_security_string(f"{policy},{cert},{key}")
            cl.set_user("operator")
            cl.set_password("s3cret")
            async with cl:
                ns = await cl.get_namespace_index(sim.namespace_uri)
                assert await cl.get_node(f"ns={ns};s=IceStore1.Stored_kWh").read_value() == 0.0
        anonymous = Client(url)
        with pytest.raises(Exception):  # noqa: B017 - asyncua raises several kinds here
            async with anonymous:
                pass
    finally:
        await sim.stop()
