"""Modbus client: one connection a device, one request in flight, a plan of few reads.

The caller polls each device from its own task; everything here is bounded by
the device's timeout, and a device that stopped answering is skipped without
I/O while its breaker is open, so it never holds up its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from drivers.codec import CodecError, DataType, decode, decode_raw, encode
from drivers.planner import Block, PlanState, Span, sf_span_name, spans_for
from drivers.resilience import Backoff, Breaker
from drivers.spec import (
    ModbusDevice,
    ModbusPoint,
    SerialEndpoint,
    Table,
    parse_modbus_endpoint,
)
from drivers.timeouts import within
from drivers.types import DriverError, Health, Quality, Reading, WriteRefused

_ILLEGAL_ADDRESS = 0x02
# Gateway codes mean the device behind the gateway did not answer: that is a
# lost device, not a refusal.
_GATEWAY_CODES = (0x0A, 0x0B)
_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
# SunSpec "not implemented" raw values (the spec's sentinels), by type.
_SUNSPEC_NA: dict[DataType, int] = {
    DataType.INT16: 0x8000 - 0x10000,
    DataType.UINT16: 0xFFFF,
    DataType.INT32: -(2**31),
    DataType.UINT32: 0xFFFFFFFF,
    DataType.INT64: -(2**63),
    DataType.UINT64: 2**64 - 1,
}
_SF_NA = -32768
# After a lost request the device is taken as gone for the rest of the poll:
# a hung device then costs one timeout a poll, not one a block.
_MAX_LOST_PER_POLL = 1


class _ExceptionResponse(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Lost(Exception):
    """Timeout or connection loss."""


@dataclass(slots=True)
class _Poll:
    """One poll's raw results: registers (or bits as 0/1) by table and address,
    and the quality of every span that failed."""

    values: dict[Table, dict[int, int]]
    failed: dict[str, Quality]


class ModbusClient:
    """A device's Modbus connection (TCP, RTU over TCP, or serial RTU)."""

    def __init__(
        self,
        device: ModbusDevice,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self._endpoint = parse_modbus_endpoint(device.endpoint)
        self._points = {p.name: p for p in device.points}
        self._clock = clock
        self._monotonic = monotonic
        self._plan = PlanState(max_gap=device.max_gap)
        self._breaker = Breaker(device.breaker_failures, device.breaker_cooldown_s)
        self._backoff = Backoff(device.backoff_initial_s, device.backoff_max_s)
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._last_good: dict[str, Reading] = {}
        self._requests = 0
        self._errors = 0
        self._last_ok_ts: float | None = None

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def plan_state(self) -> PlanState:
        """The learnt cuts and bad spans (for status and tests)."""
        return self._plan

    def health(self) -> Health:
        return Health(
            connected=self._client is not None and self._client.connected,
            consecutive_failures=self._breaker.consecutive_failures,
            breaker_state=self._breaker.state,
            requests=self._requests,
            errors=self._errors,
            last_ok_ts=self._last_ok_ts,
        )

    async def close(self) -> None:
        async with self._lock:
            self._drop()

    async def read_all(self) -> dict[str, Reading]:
        return await self._read([p for p in self.device.points if p.access.readable])

    async def read_points(self, names: Iterable[str]) -> dict[str, Reading]:
        points = []
        for n in names:
            if n not in self._points:
                raise KeyError(f"{self.name}: no point {n!r}")
            points.append(self._points[n])
        return await self._read(points)

    async def read_registers(
        self, address: int, count: int, *, table: Table = Table.HOLDING
    ) -> list[int]:
        """Raw registers (or bits as 0/1), outside any plan: for scans such as
        SunSpec discovery. DriverError on an exception answer or no answer."""
        async with self._lock:
            if not await self._ready():
                raise DriverError(f"{self.name}: unreachable ({self._breaker.state} breaker)")
            try:
                data = await self._read_block(Block(table, address, count, ()))
            except _ExceptionResponse as exc:
                self._note_ok()
                raise DriverError(
                    f"{self.name}: read {table} {address}+{count}: exception {exc.code:02d} "
                    f"({_EXCEPTION_NAMES.get(exc.code, 'unknown')})"
                ) from None
            except _Lost as exc:
                self._breaker.failed(self._monotonic())
                raise DriverError(f"{self.name}: read {table} {address}+{count}: {exc}") from None
            self._note_ok()
            return [int(v) for v in data]

    async def write(self, point: str, value: float | str) -> None:
        """Encode and write one point (FC06, FC16 or FC05).

        Raises KeyError for an unknown point, ValueError (CodecError) for a
        read-only point or a value its type cannot hold, WriteRefused when the
        device answers with an exception, DriverError when it cannot be reached.
        """
        p = self._points.get(point)
        if p is None:
            raise KeyError(f"{self.name}: no point {point!r}")
        if not p.access.writable or not p.table.writable:
            raise ValueError(f"{self.name}.{point}: not writable (access {p.access}, {p.table})")
        if p.sf_address is not None:
            raise ValueError(
                f"{self.name}.{point}: writes to scale-factor points are not supported"
            )
        registers = [] if p.table is Table.COIL else self._encode(p, value)
        async with self._lock:
            if not await self._ready():
                raise DriverError(f"{self.name}: unreachable ({self._breaker.state} breaker)")
            try:
                if p.table is Table.COIL:
                    await self._call("write_coil", p.address, bool(float(value)))
                elif p.type is DataType.BIT:
                    # A bit inside a holding register: read-modify-write. Not
                    # atomic on the device; PLCs that own other bits of the
                    # register should expose a coil or a whole register instead.
                    current = await self._call("read_holding_registers", p.address, count=1)
                    mask = 1 << p.bit
                    word = (current[0] & ~mask) | (mask if registers[0] else 0)
                    await self._call("write_register", p.address, word)
                elif len(registers) == 1:
                    await self._call("write_register", p.address, registers[0])
                else:
                    await self._call("write_registers", p.address, registers)
            except _ExceptionResponse as exc:
                self._note_ok()
                raise WriteRefused(
                    f"{self.name}.{point}: device refused {value!r}: "
                    f"exception {exc.code:02d} ({_EXCEPTION_NAMES.get(exc.code, 'unknown')})"
                ) from None
            except _Lost as exc:
                self._breaker.failed(self._monotonic())
                raise DriverError(f"{self.name}.{point}: write not confirmed: {exc}") from None
            self._note_ok()

    # -- reads -----------------------------------------------------------

    async def _read(self, points: list[ModbusPoint]) -> dict[str, Reading]:
        async with self._lock:
            if not await self._ready():
                return {p.name: self._failed(p, Quality.COMM_LOST) for p in points}
            poll = await self._execute(spans_for(points))
        now = self._clock()
        return {p.name: self._reading(p, poll, now) for p in points}

    async def _execute(self, spans: list[Span]) -> _Poll:
        poll = _Poll(values={}, failed={})
        queue = deque(self._plan.plan(spans))
        lost = 0
        answered = False
        while queue:
            block = queue.popleft()
            if lost >= _MAX_LOST_PER_POLL or (lost and not await self._ready()):
                poll.failed.update((s.name, Quality.COMM_LOST) for s in block.spans)
                continue
            try:
                data = await self._read_block(block)
            except _ExceptionResponse as exc:
                answered = True
                if exc.code == _ILLEGAL_ADDRESS:
                    halves = self._plan.split(block)
                    if halves is not None:
                        queue.extendleft(reversed(halves))
                        continue
                quality = Quality.COMM_LOST if exc.code in _GATEWAY_CODES else Quality.BAD
                poll.failed.update((s.name, quality) for s in block.spans)
                continue
            except _Lost:
                lost += 1
                poll.failed.update((s.name, Quality.COMM_LOST) for s in block.spans)
                continue
            answered = True
            table = poll.values.setdefault(block.table, {})
            for i, v in enumerate(data):
                table[block.start + i] = int(v)
        if not lost:
            answered |= await self._retry_merges(spans)
        # Spans already known bad are left out of the plan; report them again.
        for s in spans:
            if s.name in self._plan.bad:
                poll.failed.setdefault(s.name, Quality.BAD)
        if lost:
            self._breaker.failed(self._monotonic())
        if answered and not lost:
            self._note_ok()
        return poll

    async def _retry_merges(self, spans: list[Span]) -> bool:
        """Try once to read across each cut bisection just made: bisection cuts
        in the middle of a block, and only the cut at the illegal hole is needed.
        A few extra requests in the poll that learnt, none afterwards."""
        answered = False
        while (candidate := self._plan.merge_candidate(spans)) is not None:
            cut, block = candidate
            try:
                await self._read_block(block)
            except _ExceptionResponse:
                answered = True
                self._plan.keep_cut(cut)
            except _Lost:
                # Unknown: keep the cut; it is safe, merely one request more.
                self._plan.keep_cut(cut)
                return answered
            else:
                answered = True
                self._plan.keep_merged(cut)
        return answered

    async def _read_block(self, block: Block) -> list[int] | list[bool]:
        method = {
            Table.HOLDING: "read_holding_registers",
            Table.INPUT: "read_input_registers",
            Table.COIL: "read_coils",
            Table.DISCRETE: "read_discrete_inputs",
        }[block.table]
        result = await self._call(method, block.start, count=block.count)
        return result[: block.count]

    def _reading(self, p: ModbusPoint, poll: _Poll, now: float) -> Reading:
        for span in (
            p.name,
            *(() if p.sf_address is None else (sf_span_name(p.table, p.sf_address),)),
        ):
            if span in poll.failed:
                return self._failed(p, poll.failed[span])
        table = poll.values.get(p.table, {})
        try:
            raw = [table[a] for a in range(p.address, p.end)]
        except KeyError:
            return self._failed(p, Quality.COMM_LOST)
        try:
            value = self._decode(p, raw, table)
        except CodecError:
            return self._failed(p, Quality.BAD)
        if value is None:
            return self._failed(p, Quality.BAD)
        reading = Reading(value, Quality.GOOD, now)
        self._last_good[p.name] = reading
        return reading

    def _decode(self, p: ModbusPoint, raw: list[int], table: dict[int, int]) -> float | str | None:
        if p.table.is_bits:
            return raw[0]
        if (
            self.device.sunspec
            and p.type in _SUNSPEC_NA
            and decode_raw(raw, p.type, order=p.order) == _SUNSPEC_NA[p.type]
        ):
            return None
        if p.sf_address is None:
            return decode(raw, p.type, order=p.order, scale=p.scale, offset=p.offset, bit=p.bit)
        sf = decode_raw([table[p.sf_address]], DataType.INT16)
        if sf == _SF_NA or not isinstance(sf, int) or not -10 <= sf <= 10:
            return None
        base = decode_raw(raw, p.type, order=p.order, bit=p.bit)
        if isinstance(base, str):
            return base
        return base * 10.0**sf * p.scale + p.offset

    def _failed(self, p: ModbusPoint, quality: Quality) -> Reading:
        last = self._last_good.get(p.name)
        if last is None:
            return Reading(None, quality, self._clock())
        return Reading(last.value, quality, last.source_ts)

    # -- connection ------------------------------------------------------

    async def _ready(self) -> bool:
        """Breaker admits and the connection is up (connecting if backoff allows)."""
        now = self._monotonic()
        if not self._breaker.admit(now):
            return False
        if self._client is not None and self._client.connected:
            return True
        if not self._backoff.ready(now):
            return False
        self._drop()
        client = self._new_client()
        try:
            ok = await within(client.connect(), self.device.timeout_s * 2)
        except (TimeoutError, OSError, ModbusException):
            ok = False
        if not ok:
            client.close()
            self._errors += 1
            self._backoff.failed(self._monotonic())
            self._breaker.failed(self._monotonic())
            return False
        self._client = client
        self._backoff.succeeded()
        return True

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        # retries=0 and no automatic reconnect: this class owns both policies,
        # and pymodbus' own retries would multiply the device's timeout.
        ep = self._endpoint
        if isinstance(ep, SerialEndpoint):
            return AsyncModbusSerialClient(
                ep.port,
                framer=FramerType.RTU,
                baudrate=ep.baud,
                bytesize=ep.bytesize,
                parity=ep.parity,
                stopbits=ep.stopbits,
                timeout=self.device.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            ep.host,
            port=ep.port,
            framer=FramerType.RTU if ep.rtu else FramerType.SOCKET,
            timeout=self.device.timeout_s,
            retries=0,
            reconnect_delay=0,
        )

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _call(self, method: str, *args: object, **kwargs: object) -> list[int]:
        """One request; the answer's registers or bits, or an exception."""
        client = self._client
        if client is None or not client.connected:
            raise _Lost("not connected")
        self._requests += 1
        try:
            response = await within(
                getattr(client, method)(*args, device_id=self.device.unit, **kwargs),
                # pymodbus enforces timeout_s itself; this outer bound only
                # guards against a request that never reaches its wait.
                self.device.timeout_s * 2,
            )
        except (TimeoutError, OSError, ModbusException) as exc:
            self._errors += 1
            # A late answer would be taken for the next request's (RTU frames
            # carry no transaction id): start over on a fresh connection.
            self._drop()
            raise _Lost(str(exc) or type(exc).__name__) from None
        if response.isError():
            self._errors += 1
            raise _ExceptionResponse(int(response.exception_code))
        if method.startswith("write"):
            return []
        if method in ("read_coils", "read_discrete_inputs"):
            return [int(b) for b in response.bits]
        return list(response.registers)

    def _note_ok(self) -> None:
        self._breaker.succeeded()
        self._last_ok_ts = self._clock()

    def _encode(self, p: ModbusPoint, value: float | str) -> list[int]:
        try:
            return encode(
                value,
                p.type,
                order=p.order,
                scale=p.scale,
                offset=p.offset,
                length=p.length,
            )
        except CodecError as exc:
            raise CodecError(f"{self.name}.{p.name}: {exc}") from None
