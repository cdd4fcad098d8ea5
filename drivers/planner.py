"""Request planner: merge a device's points into as few Modbus reads as possible.

A read covers one table, at most 125 registers (2000 bits) - the PDU limits of
FC03/FC04 and FC01/FC02 - and may read across holes of up to `max_gap`
registers, because one slightly longer request is cheaper than two round trips.

Devices often leave holes they refuse to read (exception 02, illegal data
address). A block that draws one is bisected, and the split is remembered in
the device's PlanState as a cut, so later polls plan around it at once; a span
that alone draws exception 02 is bad and left out of later plans.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drivers.spec import ModbusPoint, Table

MAX_REGISTERS = 125
MAX_BITS = 2000
# A hole of bits costs an eighth of its registers' bytes; let coil and
# discrete reads bridge 16 bits for every register of max_gap.
_BITS_PER_GAP_REGISTER = 16


@dataclass(frozen=True, slots=True)
class Span:
    """A contiguous range a point needs read: the point itself, or a scale factor
    register (named "@sf:{table}:{address}"), shared by the points that use it."""

    name: str
    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Block:
    """One read request."""

    table: Table
    start: int
    count: int
    spans: tuple[Span, ...]

    @property
    def end(self) -> int:
        return self.start + self.count


def sf_span_name(table: Table, address: int) -> str:
    return f"@sf:{table}:{address}"


def spans_for(points: Iterable[ModbusPoint]) -> list[Span]:
    """The spans a set of points needs: one a point, one a distinct scale factor."""
    spans: dict[str, Span] = {}
    for p in points:
        spans[p.name] = Span(p.name, p.table, p.address, p.count)
        if p.sf_address is not None:
            name = sf_span_name(p.table, p.sf_address)
            spans[name] = Span(name, p.table, p.sf_address, 1)
    return list(spans.values())


def block_of(spans: Sequence[Span]) -> Block:
    start = min(s.address for s in spans)
    end = max(s.end for s in spans)
    return Block(spans[0].table, start, end - start, tuple(spans))


def plan_blocks(
    spans: Iterable[Span],
    *,
    max_gap: int,
    cuts: Iterable[tuple[Table, int]] = (),
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> list[Block]:
    """Merge spans greedily in address order into blocks.

    A cut (table, a) forbids a block holding a span that starts before a and
    one that starts at or after a.
    """
    cuts_by_table: dict[Table, list[int]] = {}
    for table, address in cuts:
        cuts_by_table.setdefault(table, []).append(address)
    for addresses in cuts_by_table.values():
        addresses.sort()

    blocks: list[Block] = []
    ordered = sorted(spans, key=lambda s: (s.table, s.address, s.end))
    current: list[Span] = []
    start = end = 0
    for s in ordered:
        limit = max_bits if s.table.is_bits else max_registers
        gap = max_gap * _BITS_PER_GAP_REGISTER if s.table.is_bits else max_gap
        if s.count > limit:
            raise ValueError(f"{s.name}: {s.count} registers exceed one request's {limit}")
        if current:
            table_cuts = cuts_by_table.get(s.table, [])
            cut_between = bisect.bisect_right(table_cuts, current[0].address) < bisect.bisect_right(
                table_cuts, s.address
            )
            fits = (
                s.table == current[0].table
                and not cut_between
                and s.address - end <= gap
                and max(end, s.end) - start <= limit
            )
            if fits:
                current.append(s)
                end = max(end, s.end)
                continue
            blocks.append(block_of(current))
        current, start, end = [s], s.address, s.end
    if current:
        blocks.append(block_of(current))
    return blocks


@dataclass(slots=True)
class PlanState:
    """What one device taught the planner: cuts between spans and bad spans.

    Lives as long as the device's client; a restart of the daemon relearns in
    a poll or two, which is cheaper than persisting it and trusting it after a
    firmware update.
    """

    max_gap: int = 8
    max_registers: int = MAX_REGISTERS
    max_bits: int = MAX_BITS
    cuts: set[tuple[Table, int]] = field(default_factory=set)
    bad: set[str] = field(default_factory=set)
    # Cuts made by bisection that may be stronger than needed: bisection cuts
    # in the middle, not where the illegal register is. Each gets one merge
    # retry (see merge_candidate) and is then kept or dropped for good.
    tentative: set[tuple[Table, int]] = field(default_factory=set)

    def plan(self, spans: Iterable[Span]) -> list[Block]:
        return plan_blocks(
            (s for s in spans if s.name not in self.bad),
            max_gap=self.max_gap,
            cuts=self.cuts,
            max_registers=self.max_registers,
            max_bits=self.max_bits,
        )

    def split(self, block: Block) -> tuple[Block, Block] | None:
        """Learn from an illegal-address answer to `block`.

        Returns the two halves to try next, or None when the block held a
        single span, which is now bad.
        """
        spans = sorted(block.spans, key=lambda s: (s.address, s.end))
        if len(spans) == 1:
            self.bad.add(spans[0].name)
            return None
        mid = len(spans) // 2
        # Spans that overlap (bits of one register) cannot be told apart by
        # address; keep the cut on a boundary where the address changes.
        while 0 < mid < len(spans) and spans[mid].address == spans[mid - 1].address:
            mid += 1
        if mid == len(spans):
            mid = len(spans) // 2
            while mid > 0 and spans[mid].address == spans[mid - 1].address:
                mid -= 1
        if mid == 0:
            # Every span starts at the same address: they stand or fall together.
            self.bad.update(s.name for s in spans)
            return None
        cut = (block.table, spans[mid].address)
        self.cuts.add(cut)
        self.tentative.add(cut)
        return block_of(spans[:mid]), block_of(spans[mid:])

    def merge_candidate(self, spans: Iterable[Span]) -> tuple[tuple[Table, int], Block] | None:
        """The next tentative cut and the block that would be read without it.

        The caller reads the block: if the device answers, call keep_merged
        (the cut goes), else keep_cut. None when nothing is left to try.
        """
        spans = list(spans)
        while self.tentative:
            cut = min(self.tentative)
            self.cuts.discard(cut)
            merged = [
                b
                for b in self.plan(spans)
                if b.table == cut[0]
                and b.start < cut[1]
                and any(s.address >= cut[1] for s in b.spans)
            ]
            self.cuts.add(cut)
            if merged:
                return cut, merged[0]
            self.tentative.discard(cut)
        return None

    def keep_merged(self, cut: tuple[Table, int]) -> None:
        self.cuts.discard(cut)
        self.tentative.discard(cut)

    def keep_cut(self, cut: tuple[Table, int]) -> None:
        self.tentative.discard(cut)
