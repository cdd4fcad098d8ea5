"""Modbus slaves (pymodbus 3.16 server) over the devices' own register tables.

One server per endpoint; several devices may share it under different unit ids
(the meters). RTU framing over TCP is the same server with FramerType.RTU.
Supported functions: 3 (read holding), 6, 16 (write), 23; others answer 01.

Exceptions served: 02 for any register outside the table or inside an injected
illegal range, or a write to a read-only register or to part of a 32-bit
point; 03 for a setpoint outside its limits (nothing changes, it is counted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer

from .faults import Faults
from .regmap import DeviceMap, RegPoint, decode, encode

# (device name, point, engineering value) -> None if accepted, else a reason.
WriteHandler = Callable[[str, RegPoint, float], str | None]


class ModbusDevice:
    """A device's live register image."""

    def __init__(self, dm: DeviceMap, faults: Faults) -> None:
        self.map = dm
        self.faults = faults
        self.regs: dict[int, int] = dict(dm.constants)
        self.by_addr: dict[int, RegPoint] = {}
        for p in dm.points:
            for i in range(p.words):
                self.by_addr[p.address + i] = p
                self.regs.setdefault(p.address + i, 0)

    def refresh(self, values: Mapping[str, float]) -> None:
        for p in self.map.points:
            v = values.get(p.key)
            if v is not None:
                for i, r in enumerate(encode(p, v)):
                    self.regs[p.address + i] = r


class _Context(ModbusServerContext):
    """Routes pymodbus' datastore calls to our devices (bypasses its deprecated stores)."""

    def __init__(self, devices: dict[int, ModbusDevice], on_write: WriteHandler) -> None:
        # Not calling super().__init__: it builds pymodbus' own stores, which we replace.
        self.old_simulator = True
        self.simdevices = []
        self.devices = devices
        self.on_write = on_write

    def device_ids(self) -> list[int]:
        return list(self.devices)

    async def _device(self, device_id: int, address: int, count: int) -> ModbusDevice | ExcCodes:
        dev = self.devices.get(device_id)
        if dev is None or dev.faults.offline:
            raise NoSuchIdException(f"device id {device_id} not answering")
        if dev.faults.delay_s > 0:
            await asyncio.sleep(dev.faults.delay_s)
        if dev.faults.touches_illegal(address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        if any(a not in dev.regs for a in range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        return dev

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | ExcCodes:
        if func_code not in (3, 6, 16, 23):
            return ExcCodes.ILLEGAL_FUNCTION
        dev = await self._device(device_id, address, count)
        if isinstance(dev, ExcCodes):
            return dev
        return [dev.regs[a] for a in range(address, address + count)]

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: list[int]) -> ExcCodes | None:
        if func_code not in (6, 16, 23):
            return ExcCodes.ILLEGAL_FUNCTION
        dev = await self._device(device_id, address, len(values))
        if isinstance(dev, ExcCodes):
            return dev
        new = dict(zip(range(address, address + len(values)), values, strict=True))
        touched: list[RegPoint] = []
        for a in new:
            p = dev.by_addr.get(a)
            if p is None or p.access == "r":
                return ExcCodes.ILLEGAL_ADDRESS
            if p not in touched:
                touched.append(p)
        if any(a not in new for p in touched for a in range(p.address, p.address + p.words)):
            return ExcCodes.ILLEGAL_ADDRESS
        # Validate every point first: a request is applied whole or not at all.
        decoded = [(p, decode(p, [new[p.address + i] for i in range(p.words)])) for p in touched]
        for p, value in decoded:
            reason = self.on_write(dev.map.name, p, value)
            if reason is not None:
                return ExcCodes.ILLEGAL_VALUE
        for a, r in new.items():
            dev.regs[a] = r
        return None


class SimModbusServer:
    """One listening endpoint serving one or more devices."""

    def __init__(self, maps: list[DeviceMap], faults: Callable[[str], Faults],
                 on_write: WriteHandler, *, rtu: bool = False) -> None:
        self.devices = {dm.unit_id: ModbusDevice(dm, faults(dm.name)) for dm in maps}
        self.rtu = rtu
        self.on_write = on_write
        self.server: ModbusTcpServer | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen (port 0 = any free port); returns the bound port."""
        ctx = _Context(self.devices, self.on_write)
        self.server = ModbusTcpServer(ctx, framer=FramerType.RTU if self.rtu else FramerType.SOCKET,
                                      address=(host, port), ignore_missing_devices=True)
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    def refresh(self, values: Mapping[str, float]) -> None:
        for dev in self.devices.values():
            dev.refresh(values)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
