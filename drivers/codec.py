"""Register codec: Modbus registers <-> engineering values.

A value of N bytes A B C D ... (A most significant) travels in N/2 registers.
The order names follow Telegraf's Modbus input, so a field engineer can copy
them from a device's manual or a Telegraf config:

    ABCD  big-endian              [AB, CD]        (Modbus' own convention)
    DCBA  little-endian           [DC, BA]
    BADC  bytes swapped in words  [BA, DC]
    CDAB  words swapped           [CD, AB]        (common on PLCs, "word swap")

The four letters name the 32-bit case; 64-bit values follow the same two rules
(reverse the words, swap the bytes of each word), e.g. CDAB is GHEFCDAB. A
16-bit value only sees the byte swap (DCBA and BADC read BA).

Engineering value = raw * scale + offset.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum


class DataType(StrEnum):
    BIT = "bit"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


class Order(StrEnum):
    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"


class CodecError(ValueError):
    """A value does not fit its type, or registers do not fit their point; one line."""


# struct format and register count of the fixed-size types.
_FORMATS: dict[DataType, tuple[str, int]] = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.INT64: ("q", 4),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT32: ("f", 2),
    DataType.FLOAT64: ("d", 4),
}

_INT_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}

_FLOAT32_MAX = 3.4028234663852886e38


def register_count(type_: DataType, *, length: int = 1) -> int:
    """Registers a value of this type occupies (a string: its configured length)."""
    if type_ is DataType.BIT:
        return 1
    if type_ is DataType.STRING:
        return length
    return _FORMATS[type_][1]


def _swap_bytes(order: Order) -> bool:
    return order in (Order.DCBA, Order.BADC)


def _reverse_words(order: Order) -> bool:
    return order in (Order.DCBA, Order.CDAB)


def bytes_to_registers(data: bytes, order: Order) -> list[int]:
    """Big-endian bytes (A first) to registers as they travel for `order`."""
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if _reverse_words(order):
        words.reverse()
    if _swap_bytes(order):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def registers_to_bytes(registers: Sequence[int], order: Order) -> bytes:
    """Registers as they travelled for `order` back to big-endian bytes."""
    words = [r.to_bytes(2, "big") for r in registers]
    if _swap_bytes(order):
        words = [w[::-1] for w in words]
    if _reverse_words(order):
        words.reverse()
    return b"".join(words)


def decode_raw(
    registers: Sequence[int], type_: DataType, *, order: Order = Order.ABCD, bit: int = 0
) -> int | float | str:
    """The raw (unscaled) value held in `registers` (exactly the type's count)."""
    if type_ is DataType.BIT:
        _expect(registers, 1, type_)
        return (registers[0] >> bit) & 1
    if type_ is DataType.STRING:
        # Strings are byte sequences, so only the byte swap applies; word
        # reversal would scramble the text rather than fix an endianness.
        data = b"".join(
            (r.to_bytes(2, "little") if _swap_bytes(order) else r.to_bytes(2, "big"))
            for r in registers
        )
        return data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").rstrip(" ")
    fmt, count = _FORMATS[type_]
    _expect(registers, count, type_)
    value: int | float = struct.unpack(">" + fmt, registers_to_bytes(registers, order))[0]
    return value


def decode(
    registers: Sequence[int],
    type_: DataType,
    *,
    order: Order = Order.ABCD,
    scale: float = 1.0,
    offset: float = 0.0,
    bit: int = 0,
) -> int | float | str:
    """Engineering value: raw * scale + offset.

    An integer with scale 1 and offset 0 stays an int, so 64-bit counters keep
    every digit instead of rounding through a float.
    """
    raw = decode_raw(registers, type_, order=order, bit=bit)
    if isinstance(raw, str):
        return raw
    if scale == 1.0 and offset == 0.0:
        return raw
    return raw * scale + offset


def encode(
    value: float | str,
    type_: DataType,
    *,
    order: Order = Order.ABCD,
    scale: float = 1.0,
    offset: float = 0.0,
    length: int = 1,
) -> list[int]:
    """Registers to write for an engineering value; CodecError if it does not fit.

    Integers are rounded to the nearest raw step (a setpoint of 12.345 kW at
    scale 0.01 writes 1234 or 1235, not a truncation).
    """
    if type_ is DataType.STRING:
        if not isinstance(value, str):
            raise CodecError(f"string point needs text, got {value!r}")
        data = value.encode("utf-8")
        if len(data) > 2 * length:
            raise CodecError(f"{value!r} needs {len(data)} bytes, the point holds {2 * length}")
        data = data.ljust(2 * length, b"\x00")
        return [
            int.from_bytes(data[i : i + 2], "little" if _swap_bytes(order) else "big")
            for i in range(0, len(data), 2)
        ]
    if isinstance(value, str):
        raise CodecError(f"{type_} point needs a number, got {value!r}")
    if not math.isfinite(value):
        raise CodecError(f"{value!r} is not a finite number")
    if scale == 0.0:
        raise CodecError("scale 0 cannot be inverted for a write")
    # A negative scale (a device that counts the other way round) divides 0 into -0.0:
    # adding 0.0 keeps float registers from carrying a signed zero.
    raw = (value - offset) / scale + 0.0 if (scale != 1.0 or offset != 0.0) else value
    if type_ is DataType.BIT:
        if raw not in (0, 1):
            raise CodecError(f"bit point takes 0 or 1, got {value!r}")
        return [int(raw)]
    if type_ in _INT_RANGES:
        lo, hi = _INT_RANGES[type_]
        iraw = raw if isinstance(raw, int) else round(raw)
        if not lo <= iraw <= hi:
            raise CodecError(f"{value!r} -> raw {iraw} outside {type_} range [{lo}, {hi}]")
        raw = iraw
    elif type_ is DataType.FLOAT32 and abs(raw) > _FLOAT32_MAX:
        raise CodecError(f"{value!r} outside float32 range")
    fmt, _count = _FORMATS[type_]
    return bytes_to_registers(struct.pack(">" + fmt, raw), order)


def _expect(registers: Sequence[int], count: int, type_: DataType) -> None:
    if len(registers) != count:
        raise CodecError(f"{type_} needs {count} registers, got {len(registers)}")
