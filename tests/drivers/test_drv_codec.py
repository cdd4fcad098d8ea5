"""Codec against values encoded independently with struct."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import CodecError, DataType, Order, decode, encode

_FMT = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


def _wire(value: float, type_: DataType, order: Order) -> list[int]:
    """Registers as a device sends them, built from struct alone.

    Big-endian gives ABCD...; little-endian gives the reversed byte string,
    which is DCBA; BADC swaps each pair of the big-endian bytes; CDAB is the
    byte swap of DCBA.
    """
    big = struct.pack(">" + _FMT[type_], value)
    little = struct.pack("<" + _FMT[type_], value)
    data = {
        Order.ABCD: big,
        Order.DCBA: little,
        Order.BADC: b"".join(big[i + 1 : i + 2] + big[i : i + 1] for i in range(0, len(big), 2)),
        Order.CDAB: b"".join(
            little[i + 1 : i + 2] + little[i : i + 1] for i in range(0, len(little), 2)
        ),
    }[order]
    return list(struct.unpack(f">{len(data) // 2}H", data))


def _int_cases() -> st.SearchStrategy[tuple[DataType, int]]:
    return st.sampled_from(sorted(_RANGES)).flatmap(
        lambda t: st.tuples(st.just(t), st.integers(*_RANGES[t]))
    )


orders = st.sampled_from(list(Order))


@given(_int_cases(), orders)
def test_integers_decode_and_encode_like_struct(case: tuple[DataType, int], order: Order) -> None:
    type_, value = case
    wire = _wire(value, type_, order)
    assert decode(wire, type_, order=order) == value
    assert encode(value, type_, order=order) == wire


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), orders)
def test_float32_like_struct(value: float, order: Order) -> None:
    wire = _wire(value, DataType.FLOAT32, order)
    assert decode(wire, DataType.FLOAT32, order=order) == value
    assert encode(value, DataType.FLOAT32, order=order) == wire


@given(st.floats(allow_nan=False, allow_infinity=False), orders)
def test_float64_like_struct(value: float, order: Order) -> None:
    wire = _wire(value, DataType.FLOAT64, order)
    assert decode(wire, DataType.FLOAT64, order=order) == value
    assert encode(value, DataType.FLOAT64, order=order) == wire


@given(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([0.001, 0.01, 0.1, 0.5, 10.0]),
    st.floats(-1000, 1000, allow_nan=False),
    orders,
)
def test_scale_and_offset_round_trip(raw: int, scale: float, offset: float, order: Order) -> None:
    wire = _wire(raw, DataType.INT32, order)
    eng = decode(wire, DataType.INT32, order=order, scale=scale, offset=offset)
    assert isinstance(eng, float)
    assert math.isclose(eng, raw * scale + offset, rel_tol=1e-12, abs_tol=1e-9)
    assert encode(eng, DataType.INT32, order=order, scale=scale, offset=offset) == wire


@given(_int_cases())
def test_encode_refuses_values_outside_the_type(case: tuple[DataType, int]) -> None:
    type_, _ = case
    lo, hi = _RANGES[type_]
    for bad in (lo - 1, hi + 1):
        with pytest.raises(CodecError):
            encode(bad, type_)


def test_encode_refuses_what_no_register_holds() -> None:
    with pytest.raises(CodecError):
        encode(float("nan"), DataType.FLOAT32)
    with pytest.raises(CodecError):
        encode(1e39, DataType.FLOAT32)
    with pytest.raises(CodecError):
        encode(2, DataType.BIT)
    with pytest.raises(CodecError):
        encode("x", DataType.UINT16)
    with pytest.raises(CodecError):
        encode(655.36, DataType.UINT16, scale=0.01)


@given(st.integers(0, 0xFFFF), st.integers(0, 15))
def test_bit_of_a_register(word: int, bit: int) -> None:
    assert decode([word], DataType.BIT, bit=bit) == (word >> bit) & 1


@given(st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=16), orders)
def test_string_round_trip(text: str, order: Order) -> None:
    text = text.rstrip(" ")
    wire = encode(text, DataType.STRING, order=order, length=8)
    assert len(wire) == 8
    assert decode(wire, DataType.STRING, order=order) == text
    big = text.encode().ljust(16, b"\x00")
    if order in (Order.ABCD, Order.CDAB):
        assert wire == list(struct.unpack(">8H", big))
    else:
        assert wire == list(struct.unpack("<8H", big))


def test_string_too_long() -> None:
    with pytest.raises(CodecError):
        encode("x" * 17, DataType.STRING, length=8)


def test_named_orders_on_a_known_value() -> None:
    # 0x11223344 in the four orders, as device manuals print them.
    assert encode(0x11223344, DataType.UINT32, order=Order.ABCD) == [0x1122, 0x3344]
    assert encode(0x11223344, DataType.UINT32, order=Order.DCBA) == [0x4433, 0x2211]
    assert encode(0x11223344, DataType.UINT32, order=Order.BADC) == [0x2211, 0x4433]
    assert encode(0x11223344, DataType.UINT32, order=Order.CDAB) == [0x3344, 0x1122]
    assert encode(0x1122, DataType.UINT16, order=Order.DCBA) == [0x2211]


def test_negative_scale_writes_the_devices_own_sign() -> None:
    """A park setpoint <= 0 on a device that takes its output positive (scale -1)."""
    assert encode(-1500.0, DataType.UINT16, scale=-1.0) == [1500]
    assert decode([1500], DataType.UINT16, scale=-1.0) == -1500.0
    assert encode(-2000.0, DataType.INT16, scale=-1.0) == [2000]
    regs = encode(-4000.0, DataType.FLOAT32, scale=-1.0, order=Order.CDAB)
    assert decode(regs, DataType.FLOAT32, scale=-1.0, order=Order.CDAB) == -4000.0
    assert encode(0.0, DataType.FLOAT32, scale=-1.0) == [0, 0]          # no signed zero
    with pytest.raises(CodecError):
        encode(100.0, DataType.UINT16, scale=-1.0)                      # raw -100: not a uint16
