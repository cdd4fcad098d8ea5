"""The telemetry store on real SQLite files: by exception, keyframes, budget, full disk, kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.store import (
    AuditEntry,
    Event,
    Store,
    StoreConfig,
    bench_store,
    cmd_buffer_export,
    cmd_buffer_stats,
)

REPO = Path(__file__).resolve().parents[2]


def _telemetry(store: Store) -> list[tuple[int, float, str, object, str]]:
    return store.connection.execute(
        "SELECT seq, ts, point, value, quality FROM telemetry ORDER BY seq").fetchall()


def test_schema_wal_and_version(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    conn = store.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 1
    indexes = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'telemetry'")]
    assert indexes == []  # no (point, ts) index: it made commits 25x slower
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(RuntimeError, match="schema_version 99 is newer"):
        Store(StoreConfig(path=tmp_path / "s.db"))


def test_deadband_and_keyframe(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db", keyframe_s=10,
                              deadbands={"m.p_kw": 1.0}))
    r = store.commit_tick(100, {"m.p_kw": (10.0, "good"), "m.name": ("a", "good")})
    assert r.ok and r.keyframe and r.rows == 2 and (r.seq_from, r.seq_to) == (1, 2)
    assert store.commit_tick(101, {"m.p_kw": (10.5, "good"), "m.name": ("a", "good")}).rows == 0
    assert store.commit_tick(102, {"m.p_kw": (11.2, "good"), "m.name": ("a", "good")}).rows == 1
    # 11.9 is within 1.0 of the stored 11.2 even though it drifted from 10.5
    assert store.commit_tick(103, {"m.p_kw": (11.9, "good"), "m.name": ("b", "good")}).rows == 1
    assert store.commit_tick(104, {"m.p_kw": (11.9, "stale"), "m.name": ("b", "good")}).rows == 1
    assert store.commit_tick(105, {"m.p_kw": (float("nan"), "bad"), "m.name": (None, "bad")}).rows == 2
    assert store.commit_tick(106, {"m.p_kw": (float("nan"), "bad"), "m.name": (None, "bad")}).rows == 0
    kf = store.commit_tick(110, {"m.p_kw": (float("nan"), "bad"), "m.name": (None, "bad")})
    assert kf.keyframe and kf.rows == 2
    rows = _telemetry(store)
    assert [r[2:] for r in rows] == [
        ("m.p_kw", 10.0, "good"), ("m.name", "a", "good"), ("m.p_kw", 11.2, "good"),
        ("m.name", "b", "good"), ("m.p_kw", 11.9, "stale"), ("m.p_kw", None, "bad"),
        ("m.name", None, "bad"), ("m.p_kw", None, "bad"), ("m.name", None, "bad")]
    assert [r[0] for r in rows] == list(range(1, 10))  # gap-free sequence
    assert store.outbox_pending_rows() == 9
    store.close()


def test_events_audit_in_the_tick_transaction(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    store.commit_tick(1, {"a.x": (1.0, "good")}, [Event(1, "alarm", "bess1", "readback mismatch",
                                                        {"want": 1, "got": 2})])
    store.add_audit(AuditEntry(2, "ops", "override", "bess1.p_set_kw", -100.0, 600, "test"))
    ev = store.connection.execute("SELECT kind, source, message, data FROM events").fetchall()
    assert ev == [("alarm", "bess1", "readback mismatch", '{"want": 1, "got": 2}')]
    assert store.connection.execute("SELECT count(*) FROM audit").fetchone()[0] == 1
    store.close()


def test_outbox_ack_trims_and_splits(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    for t in range(3):
        store.commit_tick(t, {f"d.p{i}": (float(t * 10 + i), "good") for i in range(10)})
    assert store.outbox_ranges() == [(1, 10), (11, 20), (21, 30)]
    store.outbox_ack(5, 14)
    assert store.outbox_ranges() == [(1, 4), (15, 20), (21, 30)]
    assert store.outbox_ranges(newest_first=True, limit=1) == [(21, 30)]
    assert store.outbox_rows(15, 16) == [(1.0, "d.p4", 14.0, "good"), (1.0, "d.p5", 15.0, "good")]
    store.outbox_ack(1, 30)
    assert store.outbox_pending_rows() == 0
    store.close()


def test_byte_budget_drops_oldest_telemetry_only(tmp_path: Path) -> None:
    budget = 1_500_000
    store = Store(StoreConfig(path=tmp_path / "s.db", max_bytes=budget))
    store.add_events([Event(0, "mode", "daemon", "start")])
    store.add_audit(AuditEntry(0, "ops", "override", "x.y", 1.0, 60, "why"))
    store.transaction(lambda c: c.execute("INSERT INTO plans(plan_id, status, body) VALUES "
                                          "('p', 'applied', '{}')"))
    store.outbox_ack(0, 0)
    tick = 0
    while store.counters["telemetry_dropped_rows"] == 0:
        store.commit_tick(tick, {f"dev.p{i}": (tick + i / 7, "good") for i in range(200)},
                          [Event(tick, "alarm", "dev", f"tick {tick}")] if tick % 50 == 0 else [])
        tick += 1
        assert tick < 10_000
    # the oldest half of ticks were acked (sent); the rest are unsent
    for _ in range(30):
        store.commit_tick(tick, {f"dev.p{i}": (tick + i / 7, "good") for i in range(200)})
        tick += 1
    assert store.used_bytes() <= budget
    seqs = [r[0] for r in store.connection.execute("SELECT seq FROM telemetry ORDER BY seq")]
    assert seqs[0] > 1 and seqs == list(range(seqs[0], seqs[-1] + 1))  # oldest gone, rest dense
    assert seqs[-1] == store.next_seq - 1  # newest kept
    conn = store.connection
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1 + (tick - 30 + 49) // 50
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM plans").fetchone()[0] == 1
    # nothing was sent, so every dropped row was an unsent one, and the outbox matches
    dropped = store.counters["telemetry_dropped_rows"]
    assert store.counters["outbox_dropped_rows"] == dropped == seqs[0] - 1
    assert store.outbox_ranges(limit=1)[0][0] == seqs[0]
    assert store.outbox_pending_rows() == len(seqs)
    store.close()
    # counters survive a restart, and seqs are never reused
    again = Store(StoreConfig(path=tmp_path / "s.db", max_bytes=budget))
    assert again.counters["telemetry_dropped_rows"] == dropped
    assert again.next_seq == seqs[-1] + 1
    again.close()


def test_retention_by_age(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db", retention_days=1))
    for hour in range(5 * 24):  # commit_tick applies retention once an hour of tick time
        store.commit_tick(hour * 3600.0, {"a.b": (float(hour), "good")})
    assert _telemetry(store)[0][1] == 3 * 86400.0 + 23 * 3600.0
    assert store.counters["telemetry_dropped_rows"] == 3 * 24 + 23
    assert store.enforce_retention(10 * 86400.0) == 25  # and on demand
    store.close()


def test_full_disk_is_logged_counted_and_survived(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    store.add_events([Event(0, "mode", "daemon", "start")])
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    # SQLite reports SQLITE_FULL ("database or disk is full") past this many pages
    store.connection.execute(f"PRAGMA max_page_count = {pages + 60}")
    ok = failed = 0
    for tick in range(400):
        r = store.commit_tick(tick, {f"d.p{i}": (tick * 1.0 + i, "good") for i in range(100)},
                              [Event(tick, "alarm", "d", "x")] if tick % 100 == 0 else [])
        ok += r.ok
        failed += not r.ok
    assert failed >= 1 and store.counters["disk_full_total"] == failed
    assert store.counters["ticks_lost_total"] == failed
    # after the first full disk, pruning made room and ticks committed again
    assert ok > 60 and store.counters["telemetry_dropped_rows"] > 0
    assert store.commit_tick(1000, {"d.p0": (-1.0, "good")}).ok
    seqs = [r[0] for r in store.connection.execute("SELECT seq FROM telemetry ORDER BY seq")]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    assert store.connection.execute("SELECT count(*) FROM events").fetchone()[0] >= 1
    store.close()


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from edge.store import Store, StoreConfig
    store = Store(StoreConfig(path=Path(sys.argv[1])))
    tick = 0
    while True:
        r = store.commit_tick(float(tick), {f"d.p{i}": (tick + i * 0.5, "good") for i in range(50)})
        print(r.seq_to, flush=True)   # only after COMMIT returned
        tick += 1
""")


def test_kill_9_loses_no_committed_row(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True)
    assert proc.stdout is not None
    last = 0
    for _ in range(300):  # let it commit 300 ticks, then kill it mid-stream
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(StoreConfig(path=db))
    seqs = [r[0] for r in store.connection.execute("SELECT seq FROM telemetry ORDER BY seq")]
    assert seqs[-1] >= last == 300 * 50
    assert seqs == list(range(1, seqs[-1] + 1))
    assert store.outbox_pending_rows() == len(seqs)
    assert store.commit_tick(1e6, {"d.p0": (1.0, "good")}).seq_from == seqs[-1] + 1
    store.close()


def test_buffer_commands_read_only(tmp_path: Path) -> None:
    store = Store(StoreConfig(path=tmp_path / "s.db"))
    store.commit_tick(1.0, {"a.b": (1.5, "good"), "a.c": ("on", "good")})
    store.commit_tick(2.0, {"a.b": (2.5, "good"), "a.c": ("on", "good")})
    store.outbox_ack(1, 2)
    out = io.StringIO()
    assert cmd_buffer_stats(tmp_path / "s.db", as_json=True, out=out) == 0
    stats = json.loads(out.getvalue())
    assert stats["telemetry_rows"] == 3 and stats["outbox_pending_rows"] == 1
    text = io.StringIO()
    assert cmd_buffer_stats(tmp_path / "s.db", out=text) == 0
    # times as people read them on the terminal; the JSON above keeps the seconds
    assert "telemetry_newest_ts      1970-01-01T00:00:02Z" in text.getvalue().splitlines()
    csv_out = io.StringIO()
    assert cmd_buffer_export(tmp_path / "s.db", csv_out, pending_only=True) == 0
    assert csv_out.getvalue().splitlines() == ["seq,ts,point,value,quality", "3,2.0,a.b,2.5,good"]
    err = io.StringIO()
    assert cmd_buffer_stats(tmp_path / "missing.db", out=out, err=err) == 1
    assert "missing.db" in err.getvalue() and err.getvalue().count("\n") == 1
    store.close()


def test_bench_store_reports_both_rates(tmp_path: Path) -> None:
    got = bench_store(tmp_path, points=100, ticks=20)
    assert got["store_rows_per_s"] > 0 and got["raw_rows_per_s"] > 0 and got["ratio_raw_over_store"] > 0
