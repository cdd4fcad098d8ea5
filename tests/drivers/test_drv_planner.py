"""Planner: merging, limits, split learning."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import DataType
from drivers.planner import PlanState, Span, plan_blocks, spans_for
from drivers.spec import ModbusPoint, Table


def _span(name: str, address: int, count: int = 1, table: Table = Table.HOLDING) -> Span:
    return Span(name, table, address, count)


def test_merges_across_small_gaps_only() -> None:
    spans = [_span("a", 0, 2), _span("b", 5), _span("c", 20), _span("d", 21, 2)]
    blocks = plan_blocks(spans, max_gap=8)
    assert [(b.start, b.count) for b in blocks] == [(0, 6), (20, 3)]
    blocks = plan_blocks(spans, max_gap=2)
    assert [(b.start, b.count) for b in blocks] == [(0, 2), (5, 1), (20, 3)]


def test_tables_never_mix_and_bits_have_their_own_limit() -> None:
    spans = [
        _span("h", 0),
        _span("i", 1, table=Table.INPUT),
        _span("c0", 0, table=Table.COIL),
        _span("c1", 1999, table=Table.COIL),
        _span("c2", 2000, table=Table.COIL),
    ]
    blocks = plan_blocks(spans, max_gap=3000)
    got = sorted((b.table.value, b.start, b.count) for b in blocks)
    assert got == [("coil", 0, 2000), ("coil", 2000, 1), ("holding", 0, 1), ("input", 1, 1)]


@given(
    st.lists(st.tuples(st.integers(0, 2000), st.sampled_from([1, 2, 4])), min_size=1, max_size=60),
    st.integers(0, 20),
)
def test_every_span_read_once_within_limits(raw: list[tuple[int, int]], max_gap: int) -> None:
    spans = [_span(f"p{i}", a, c) for i, (a, c) in enumerate(raw)]
    blocks = plan_blocks(spans, max_gap=max_gap)
    seen = [s.name for b in blocks for s in b.spans]
    assert sorted(seen) == sorted(s.name for s in spans)
    for b in blocks:
        assert b.count <= 125
        assert all(b.start <= s.address and s.end <= b.end for s in b.spans)
    # Merging is greedy in address order: consecutive blocks could not have merged.
    ordered = sorted(blocks, key=lambda b: b.start)
    for prev, nxt in itertools.pairwise(ordered):
        assert (
            nxt.spans[0].address - prev.end > max_gap or max(prev.end, nxt.end) - prev.start > 125
        )


def test_split_learning_bisects_to_the_bad_point_and_remembers() -> None:
    # Device refuses register 6 (a point configured there, e.g. a wrong map).
    spans = [_span(f"p{a}", a) for a in range(0, 10)]
    refused = {6}
    state = PlanState(max_gap=8)

    def poll() -> tuple[int, set[str]]:
        requests = 0
        ok: set[str] = set()
        queue = state.plan(spans)
        while queue:
            block = queue.pop(0)
            requests += 1
            if any(block.start <= a < block.end for a in refused):
                halves = state.split(block)
                if halves:
                    queue[:0] = list(halves)
                continue
            ok.update(s.name for s in block.spans)
        return requests, ok

    def retry_merges() -> None:
        while (candidate := state.merge_candidate(spans)) is not None:
            cut, block = candidate
            if any(block.start <= a < block.end for a in refused):
                state.keep_cut(cut)
            else:
                state.keep_merged(cut)

    first_requests, ok = poll()
    retry_merges()
    assert ok == {f"p{a}" for a in range(10)} - {"p6"}
    assert state.bad == {"p6"}
    second_requests, ok2 = poll()
    assert ok2 == ok
    # Learnt: the second poll goes straight to the good blocks, no exceptions.
    assert second_requests < first_requests
    assert second_requests == len(state.plan(spans))
    # Only the cut at the refused register survives the merge retries.
    assert [(b.start, b.count) for b in state.plan(spans)] == [(0, 6), (7, 3)]
    assert not state.tentative


def test_illegal_hole_between_points_is_learnt_as_a_cut() -> None:
    spans = [_span("a", 0), _span("b", 4)]  # hole 1..3 refused by the device
    state = PlanState(max_gap=8)
    [block] = state.plan(spans)
    halves = state.split(block)
    assert halves is not None
    assert [(h.start, h.count) for h in halves] == [(0, 1), (4, 1)]
    assert [(b.start, b.count) for b in state.plan(spans)] == [(0, 1), (4, 1)]
    assert state.bad == set()


def test_scale_factor_spans_are_shared() -> None:
    pts = [
        ModbusPoint("w", 10, type=DataType.INT16, sf_address=12),
        ModbusPoint("va", 11, type=DataType.INT16, sf_address=12),
        ModbusPoint("e", 13, type=DataType.UINT32),
    ]
    spans = spans_for(pts)
    assert sorted(s.name for s in spans) == ["@sf:holding:12", "e", "va", "w"]
    [block] = plan_blocks(spans, max_gap=0)
    assert (block.start, block.count) == (10, 5)
