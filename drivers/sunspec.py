"""SunSpec over our own Modbus client, with pysunspec2's model definitions.

pysunspec2 ships the SunSpec Alliance's JSON model definitions; we take the
point names, types, sizes and scale-factor references from them and do the
I/O ourselves, so a SunSpec device gets the same planner, timeouts and breaker
as any other. Only a model's top-level (fixed) group is mapped; repeating
groups (e.g. model 160's modules) are not.

Addresses are 0-based PDU addresses: the "SunS" marker at 40000 is what
manuals print as 40001.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sunspec2 import device as _ss_device

from drivers.codec import DataType, decode_raw
from drivers.spec import ModbusPoint

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
DEFAULT_BASES = (40000, 0, 50000)
_END_ID = 0xFFFF

# SunSpec point types -> codec types. Enums, bitfields and accumulators are
# plain integers on the wire.
_TYPES: dict[str, DataType] = {
    "int16": DataType.INT16,
    "uint16": DataType.UINT16,
    "count": DataType.UINT16,
    "acc16": DataType.UINT16,
    "enum16": DataType.UINT16,
    "bitfield16": DataType.UINT16,
    "sunssf": DataType.INT16,
    "int32": DataType.INT32,
    "uint32": DataType.UINT32,
    "acc32": DataType.UINT32,
    "enum32": DataType.UINT32,
    "bitfield32": DataType.UINT32,
    "ipaddr": DataType.UINT32,
    "int64": DataType.INT64,
    "uint64": DataType.UINT64,
    "acc64": DataType.UINT64,
    "float32": DataType.FLOAT32,
    "float64": DataType.FLOAT64,
    "string": DataType.STRING,
}
# "Not implemented" raw values, per SunSpec type.
_NOT_IMPLEMENTED: dict[str, int] = {
    "int16": -0x8000,
    "sunssf": -0x8000,
    "uint16": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "int32": -(2**31),
    "uint32": 0xFFFFFFFF,
    "enum32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "int64": -(2**63),
    "uint64": 2**64 - 1,
}

ReadRegisters = Callable[[int, int], Awaitable[Sequence[int]]]


class SunSpecError(ValueError):
    """No SunSpec map where expected, or a model we have no definition for."""


@dataclass(frozen=True, slots=True)
class ModelBlock:
    """A model found on a device: `address` is its ID register; points start
    two registers later; `length` excludes the ID and L registers."""

    model_id: int
    address: int
    length: int


@dataclass(frozen=True, slots=True)
class PointDef:
    name: str
    offset: int  # from the model's ID register
    size: int
    sunspec_type: str
    sf: str | int | None


def model_points_def(model_id: int) -> list[PointDef]:
    """Top-level points of a model, with offsets counted from its ID register."""
    try:
        mdef: dict[str, Any] = _ss_device.get_model_def(model_id)
    except Exception as exc:  # pysunspec2 raises bare Exceptions for unknown ids
        raise SunSpecError(f"no SunSpec definition for model {model_id}: {exc}") from None
    out = []
    offset = 0
    for p in mdef["group"].get("points", []):
        size = int(p["size"])
        out.append(PointDef(p["name"], offset, size, p["type"], p.get("sf")))
        offset += size
    return out


async def scan(
    read: ReadRegisters, *, bases: Iterable[int] = DEFAULT_BASES, max_models: int = 100
) -> tuple[int, list[ModelBlock]]:
    """Find the SunSpec base and walk the model chain.

    `read(address, count)` reads holding registers and raises on failure (e.g.
    ModbusClient.read_registers). Returns (base, models in chain order).
    """
    base = None
    for b in bases:
        try:
            marker = tuple(await read(b, 2))
        except Exception:  # an illegal address at a candidate base is normal
            continue
        if marker == SUNS_MARKER:
            base = b
            break
    if base is None:
        raise SunSpecError(f"no 'SunS' marker at any of {list(bases)}")
    models: list[ModelBlock] = []
    address = base + 2
    for _ in range(max_models):
        model_id, length = await read(address, 2)
        if model_id == _END_ID:
            return base, models
        models.append(ModelBlock(model_id, address, length))
        address += 2 + length
    raise SunSpecError(f"more than {max_models} models from {base}: no end marker")


def model_points(
    model_id: int,
    address: int,
    *,
    names: Iterable[str] | None = None,
    prefix: str = "",
) -> list[ModbusPoint]:
    """ModbusPoints for a model found at `address` (its ID register).

    Scale factors become sf_address, so the client reads them in the same
    request as the points and applies 10**sf. Point names are the SunSpec
    names lower-cased, with `prefix` (e.g. "m103_w"): the site file asks for
    [a-z0-9_]+ names.
    """
    defs = model_points_def(model_id)
    by_name = {d.name: d for d in defs}
    wanted = set(names) if names is not None else None
    points = []
    for d in defs:
        if d.name in ("ID", "L") or d.sunspec_type in ("pad", "sunssf"):
            continue
        if d.sunspec_type not in _TYPES:
            continue
        if wanted is not None and d.name not in wanted:
            continue
        scale = 1.0
        sf_address = None
        if isinstance(d.sf, str) and d.sf in by_name:
            sf_address = address + by_name[d.sf].offset
        elif isinstance(d.sf, int):
            scale = 10.0**d.sf
        points.append(
            ModbusPoint(
                name=f"{prefix}{d.name.lower()}",
                address=address + d.offset,
                type=_TYPES[d.sunspec_type],
                length=d.size,
                scale=scale,
                sf_address=sf_address,
            )
        )
    if wanted is not None and (missing := wanted - {d.name for d in defs}):
        raise SunSpecError(f"model {model_id} has no point {sorted(missing)[0]!r}")
    return points


def decode_model(model_id: int, registers: Sequence[int]) -> dict[str, float | str | None]:
    """Every top-level point of a model block (registers from its ID register),
    scale factors applied; None where the device marks a point not implemented."""
    defs = model_points_def(model_id)
    raw: dict[str, int | float | str | None] = {}
    for d in defs:
        if d.sunspec_type not in _TYPES or d.offset + d.size > len(registers):
            continue
        got = decode_raw(registers[d.offset : d.offset + d.size], _TYPES[d.sunspec_type])
        nan = isinstance(got, float) and math.isnan(got)
        raw[d.name] = None if nan or _NOT_IMPLEMENTED.get(d.sunspec_type) == got else got
    out: dict[str, float | str | None] = {}
    for d in defs:
        if d.name not in raw or d.sunspec_type == "sunssf" or d.name in ("ID", "L"):
            continue
        value: int | float | str | None = raw[d.name]
        if value is None or isinstance(value, str) or d.sf is None:
            out[d.name] = value
            continue
        sf = raw.get(d.sf) if isinstance(d.sf, str) else d.sf
        out[d.name] = None if not isinstance(sf, int) else value * 10.0**sf
    return out
