"""Protocol drivers: Modbus (TCP, RTU over TCP, serial RTU) and OPC UA clients
behind one DeviceClient interface, the register codec, the request planner and
SunSpec maps. Knows nothing of energy: a point is a name, a value and a quality.
"""

from __future__ import annotations

from drivers.client import DeviceClient
from drivers.modbus import ModbusClient
from drivers.opcua import OpcUaClient
from drivers.spec import ModbusDevice, OpcUaDevice
from drivers.types import BreakerState, DriverError, Health, Quality, Reading, WriteRefused


def make_client(device: ModbusDevice | OpcUaDevice) -> DeviceClient:
    """The client for a configured device."""
    if isinstance(device, ModbusDevice):
        return ModbusClient(device)
    return OpcUaClient(device)


__all__ = [
    "BreakerState",
    "DeviceClient",
    "DriverError",
    "Health",
    "ModbusClient",
    "OpcUaClient",
    "Quality",
    "Reading",
    "WriteRefused",
    "make_client",
]
