"""From the site file's devices to protocol clients: the only place that maps
config onto drivers' specs (so nothing else in the daemon knows a register)."""

from __future__ import annotations

from pathlib import Path

import drivers
from drivers.client import DeviceClient
from drivers.codec import DataType, Order
from drivers.spec import (
    Access,
    ModbusDevice,
    ModbusPoint,
    OpcUaDevice,
    OpcUaPoint,
    OpcUaSecurity,
    OpcUaSubscription,
    SecurityMode,
    SecurityPolicy,
    Table,
)
from edge.config import DeviceConfig


def modbus_spec(d: DeviceConfig) -> ModbusDevice:
    points = tuple(
        ModbusPoint(
            name=p.name, address=p.address or 0, table=Table(p.table), type=DataType(p.type),
            order=Order(p.order), scale=p.scale, offset=p.offset, bit=p.bit or 0, length=p.length or 1,
            access=Access(p.access), sf_address=p.sf_address,
        )
        for p in d.points
    )
    return ModbusDevice(name=d.name, endpoint=d.endpoint, unit=d.unit, timeout_s=d.timeout_ms / 1000.0,
                        max_gap=d.max_gap, points=points, sunspec=d.sunspec)


def opcua_spec(d: DeviceConfig) -> OpcUaDevice:
    s = d.security
    password = s.password_file.read_text(encoding="utf-8").strip() if s.password_file else ""
    return OpcUaDevice(
        name=d.name, endpoint=d.endpoint, namespace_uri=d.namespace_uri,
        points=tuple(OpcUaPoint(p.name, p.node or "", Access(p.access), p.scale, p.offset) for p in d.points),
        security=OpcUaSecurity(policy=SecurityPolicy(s.policy), mode=SecurityMode(s.mode),
                               cert=_path(s.cert), key=_path(s.key), username=s.username, password=password),
        subscription=(OpcUaSubscription(d.subscription.publishing_ms, d.subscription.sampling_ms)
                      if d.subscription else None),
        timeout_s=max(d.timeout_ms / 1000.0, 1.0),
    )


def _path(p: Path | None) -> str:
    return str(p) if p else ""


def make_client(d: DeviceConfig) -> DeviceClient:
    return drivers.make_client(modbus_spec(d) if d.protocol == "modbus" else opcua_spec(d))
