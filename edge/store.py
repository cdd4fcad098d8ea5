"""The telemetry store: one SQLite file in WAL mode with one writer.

Every tick's telemetry (by exception, plus a periodic keyframe) and events are
committed in one transaction. Tables: ``telemetry``, ``outbox``, ``events``,
``audit``, ``plans``, ``commands``, ``meta`` and ``schema_version``.

The outbox holds sequence ranges, not copies of rows: telemetry's primary key
``seq`` is the uplink sequence number, and each tick adds one ``outbox`` row
``(seq_from, seq_to)``. Writing every row twice would double the insert cost
for nothing; reading a pending range back is a primary-key range scan.

Byte budget (``max_bytes``) and outbox drop policy: when the pages in use pass
the budget, the oldest telemetry goes first, sent or not. Unsent rows that go
with it are trimmed from the outbox and counted in ``outbox_dropped_rows``
(reported on ``state``). Events, audit, plans and commands are never dropped.

Concurrency: one Store object owns the only writing connection. Its methods
hold a lock, so the owner may call ``commit_tick`` from a worker thread while
the uplink acks batches on the event loop. Readers (the CLI) open their own
read-only connection (``open_readonly``), which WAL lets run alongside.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import sqlite_utils
import structlog

from edge.model import utc_text

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "Event",
    "Store",
    "StoreConfig",
    "StoreStats",
    "TickResult",
    "Value",
    "bench_store",
    "cmd_buffer_export",
    "cmd_buffer_stats",
    "collect_stats",
    "open_readonly",
]

log = structlog.get_logger(__name__)

Value = float | int | str | None
SCHEMA_VERSION = 1
# Below this fraction of the budget a prune stops, so that a store at the
# budget does not prune a sliver on every tick.
_PRUNE_TARGET_FRAC = 0.9
# Retention by age is checked this often (tick time); a binary search over seq, so cheap.
_RETENTION_EVERY_S = 3600.0
# Log a repeated store error at most this often; every one is still counted.
_ERROR_LOG_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path
    max_bytes: int = 2_000_000_000
    retention_days: float = 400.0
    keyframe_s: float = 300.0
    deadbands: Mapping[str, float] = field(default_factory=dict)  # "device.point" -> engineering units
    # NORMAL in WAL survives kill -9 (the WAL is written before COMMIT returns);
    # FULL also survives power loss at one fsync per tick, which flash cards pay for.
    synchronous: str = "NORMAL"


@dataclass(frozen=True, slots=True)
class Event:
    ts: float
    kind: str  # alarm | mode | plan | command | store | ...
    source: str
    message: str
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts: float
    actor: str  # who: operator name, key id of a signed command, "local-cli"
    action: str  # override | manual_write | mode | plan_load | ...
    target: str  # device.point, or what the action was about
    value: Value
    ttl_s: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class TickResult:
    ok: bool
    rows: int  # telemetry rows written (0 if the commit failed)
    seq_from: int | None
    seq_to: int | None
    keyframe: bool


@dataclass(frozen=True, slots=True)
class StoreStats:
    path: str
    file_bytes: int
    used_bytes: int
    max_bytes: int
    telemetry_rows: int
    telemetry_oldest_ts: float | None
    telemetry_newest_ts: float | None
    outbox_pending_rows: int
    outbox_ranges: int
    events: int
    audit: int
    plans: int
    counters: Mapping[str, int]


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        # autocommit mode: transactions are opened explicitly, so none is ever
        # left open by an implicit BEGIN between ticks (that would pin the WAL).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection for the CLI; it never blocks the daemon's writer."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: store file does not exist")
    return _connect(path, readonly=True)


def _migrate_v1(db: sqlite_utils.Database) -> None:
    # No (point, ts) index on telemetry: measured 25x slower commits as the
    # table grows. Queries by point scan a seq range instead.
    db.table("telemetry").create({"seq": int, "ts": float, "point": str, "value": bytes,
                            "quality": str}, pk="seq", not_null={"ts", "point"})
    db.table("outbox").create({"seq_from": int, "seq_to": int}, pk="seq_from", not_null={"seq_to"})
    db.table("events").create({"id": int, "ts": float, "kind": str, "source": str, "message": str,
                         "data": str}, pk="id")
    db.table("audit").create({"id": int, "ts": float, "actor": str, "action": str, "target": str,
                        "value": bytes, "ttl_s": float, "reason": str}, pk="id")
    db.table("plans").create({"id": int, "received_ts": float, "plan_id": str, "key_id": str,
                        "issued_at": float, "valid_from": float, "valid_until": float,
                        "status": str, "reason": str, "body": str}, pk="id")
    db.table("plans").create_index(["plan_id"])
    db.table("commands").create({"id": int, "received_ts": float, "cmd_id": str, "key_id": str,
                           "kind": str, "status": str, "reason": str, "body": str}, pk="id")
    db.table("commands").create_index(["cmd_id"])
    db.table("meta").create({"key": str, "value": int}, pk="key")


_MIGRATIONS: Sequence[tuple[int, Callable[[sqlite_utils.Database], None]]] = [(1, _migrate_v1)]


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'").fetchone()
    if row is None:
        return 0
    got = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(got[0] or 0)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    db = sqlite_utils.Database(conn)
    version = _schema_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path}: schema_version {version} is newer than this build "
                           f"({SCHEMA_VERSION})")
    for target, step in _MIGRATIONS:
        if target <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if target == 1:
                db.table("schema_version").create({"version": int, "applied_ts": float}, pk="version")
            step(db)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (target, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower()


class Store:
    """The one writer. Create it once, in the task that owns it."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        config.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(config.path)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {config.synchronous}")
        # Keep the WAL from staying huge after a burst (the backlog drain).
        self._conn.execute("PRAGMA journal_size_limit = 67108864")
        _migrate(self._conn, config.path)
        self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
        self._next_seq = self._load_next_seq()
        self._last: dict[str, tuple[Value, str]] = {}  # last *stored* value and quality per point
        self._last_keyframe_ts: float | None = None
        self._last_retention_ts: float | None = None
        self._last_error_log_s = -_ERROR_LOG_EVERY_S
        self.counters: dict[str, int] = {
            name: self._meta(name) for name in
            ("outbox_dropped_rows", "telemetry_dropped_rows", "disk_full_total",
             "store_errors_total", "ticks_lost_total")}

    # -- plumbing ---------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The writer's connection, for modules of this package that keep their own tables."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _meta(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                           "DO UPDATE SET value = excluded.value", (key, value))

    def _load_next_seq(self) -> int:
        top = self._conn.execute("SELECT max(seq) FROM telemetry").fetchone()[0]
        # seq_high survives deletion of the newest rows, so a seq is never reused.
        return max(int(top or 0), self._meta("seq_high")) + 1

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL does);
        # a second ROLLBACK would raise and hide the real error.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _persist_counters(self) -> None:
        for name, value in self.counters.items():
            self._set_meta(name, value)

    def _log_error(self, what: str, exc: sqlite3.Error) -> None:
        now = time.monotonic()
        if now - self._last_error_log_s >= _ERROR_LOG_EVERY_S:
            self._last_error_log_s = now
            log.error("store_error", what=what, path=str(self.config.path), error=str(exc),
                      disk_full_total=self.counters["disk_full_total"],
                      store_errors_total=self.counters["store_errors_total"])

    @property
    def next_seq(self) -> int:
        return self._next_seq

    # -- the tick ---------------------------------------------------------

    def commit_tick(self, ts: float, values: Mapping[str, tuple[Value, str]],
                    events: Iterable[Event] = ()) -> TickResult:
        """Store the tick's changed points (all of them on a keyframe) and its events.

        One transaction. A failure (disk full, I/O error) is logged as one line,
        counted, and returned as ``ok=False``; the daemon carries on, and the
        next tick retries the same changes because the last-stored cache only
        moves on success.
        """
        with self._lock:
            keyframe = (self._last_keyframe_ts is None
                        or ts - self._last_keyframe_ts >= self.config.keyframe_s)
            rows = self._rows_to_store(ts, values, keyframe)
            events = list(events)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    if rows:
                        self._conn.executemany(
                            "INSERT INTO telemetry(seq, ts, point, value, quality) "
                            "VALUES (?, ?, ?, ?, ?)", rows)
                        self._conn.execute("INSERT INTO outbox(seq_from, seq_to) VALUES (?, ?)",
                                           (rows[0][0], rows[-1][0]))
                    if events:
                        self._insert_events(events)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.OperationalError as exc:
                self._on_write_error("commit_tick", exc)
                return TickResult(False, 0, None, None, keyframe)
            for _seq, _ts, point, value, quality in rows:
                self._last[point] = (value, quality)
            if keyframe:
                self._last_keyframe_ts = ts
            if rows:
                self._next_seq = rows[-1][0] + 1
            self.enforce_budget()
            if self._last_retention_ts is None or ts - self._last_retention_ts >= _RETENTION_EVERY_S:
                self._last_retention_ts = ts
                self.enforce_retention(ts)
            if not rows:
                return TickResult(True, 0, None, None, keyframe)
            return TickResult(True, len(rows), rows[0][0], rows[-1][0], keyframe)

    def _rows_to_store(self, ts: float, values: Mapping[str, tuple[Value, str]],
                       keyframe: bool) -> list[tuple[int, float, str, Value, str]]:
        rows: list[tuple[int, float, str, Value, str]] = []
        seq = self._next_seq
        last = self._last
        deadbands = self.config.deadbands
        for point, (value, quality) in values.items():
            if value != value:  # NaN: SQLite stores it as NULL, so compare as None
                value = None
            if not keyframe:
                prev = last.get(point)
                if prev is not None and prev[1] == quality:
                    prev_value = prev[0]
                    if value == prev_value:
                        continue
                    band = deadbands.get(point, 0.0)
                    # Against the last *stored* value, so a slow drift is still recorded.
                    if (band and isinstance(value, float | int) and isinstance(prev_value, float | int)
                            and abs(value - prev_value) < band):
                        continue
            rows.append((seq, ts, point, value, quality))
            seq += 1
        return rows

    def _insert_events(self, events: Sequence[Event]) -> None:
        self._conn.executemany(
            "INSERT INTO events(ts, kind, source, message, data) VALUES (?, ?, ?, ?, ?)",
            [(e.ts, e.kind, e.source, e.message,
              None if e.data is None else json.dumps(e.data, default=str)) for e in events])

    def _on_write_error(self, what: str, exc: sqlite3.OperationalError) -> None:
        self._count("ticks_lost_total" if what == "commit_tick" else "store_errors_total")
        if _is_full(exc):
            self._count("disk_full_total")
            self._log_error(what, exc)
            # Make room inside the file (freed pages are reused without growing it),
            # so the next tick can commit.
            self.enforce_budget(emergency=True)
        else:
            self._count("store_errors_total")
            self._log_error(what, exc)

    def add_events(self, events: Iterable[Event]) -> bool:
        """Events outside a tick (startup, shutdown); False if it could not be written."""
        return self._write("add_events", lambda: self._insert_events(list(events)))

    def add_audit(self, entry: AuditEntry) -> bool:
        return self._write("add_audit", lambda: self._conn.execute(
            "INSERT INTO audit(ts, actor, action, target, value, ttl_s, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.ts, entry.actor, entry.action, entry.target, entry.value, entry.ttl_s,
             entry.reason)))

    def _write(self, what: str, body: Callable[[], object]) -> bool:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    body()
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.OperationalError as exc:
                self._on_write_error(what, exc)
                return False
            return True

    def transaction(self, body: Callable[[sqlite3.Connection], object]) -> bool:
        """Run ``body`` in one write transaction (used by plans for atomic apply)."""
        return self._write("transaction", lambda: body(self._conn))

    # -- retention and the byte budget ------------------------------------

    def used_bytes(self) -> int:
        with self._lock:
            pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
            return (pages - free) * self._page_size

    def enforce_budget(self, emergency: bool = False) -> int:
        """Drop the oldest telemetry until the pages in use fit the budget; returns rows dropped.

        ``emergency`` (the disk is full) drops at least 1 % of telemetry even
        when the file is under budget, because the filesystem is what ran out.
        """
        with self._lock:
            dropped = 0
            target = int(self.config.max_bytes * _PRUNE_TARGET_FRAC)
            used = self.used_bytes()
            if used <= self.config.max_bytes and not emergency:
                return 0
            for _ in range(20):  # each pass frees roughly what the estimate says
                lo, hi = self._conn.execute("SELECT min(seq), max(seq) FROM telemetry").fetchone()
                if lo is None:
                    break
                rows = int(hi) - int(lo) + 1
                per_row = max(used / rows, 1.0)
                n = int((used - target) / per_row) + 1 if used > target else 0
                if emergency:
                    n = max(n, rows // 100 + 1)
                    emergency = False
                if n <= 0:
                    break
                dropped += self._drop_telemetry_below(int(lo) + n)
                used = self.used_bytes()
                if used <= target:
                    break
            return dropped

    def enforce_retention(self, now_s: float) -> int:
        """Drop telemetry older than ``retention_days``; returns rows dropped."""
        with self._lock:
            cutoff = now_s - self.config.retention_days * 86400.0
            bound = self._first_seq_at_or_after(cutoff)
            return self._drop_telemetry_below(bound) if bound is not None else 0

    def _first_seq_at_or_after(self, cutoff_ts: float) -> int | None:
        # ts grows with seq, so a binary search over the primary key replaces a
        # ts index (which would slow every insert).
        lo, hi = self._conn.execute("SELECT min(seq), max(seq) FROM telemetry").fetchone()
        if lo is None:
            return None
        lo, hi = int(lo), int(hi) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = self._conn.execute("SELECT ts FROM telemetry WHERE seq >= ? ORDER BY seq LIMIT 1",
                                     (mid,)).fetchone()
            if row is None or row[0] >= cutoff_ts:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _drop_telemetry_below(self, seq_bound: int) -> int:
        """Delete telemetry with seq < seq_bound and trim the outbox to match, in one transaction."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                n = self._conn.execute("DELETE FROM telemetry WHERE seq < ?", (seq_bound,)).rowcount
                unsent = self._outbox_trim_below(seq_bound)
                self._count("telemetry_dropped_rows", n)
                self._count("outbox_dropped_rows", unsent)
                self._set_meta("seq_high", self._next_seq - 1)
                self._persist_counters()
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except sqlite3.OperationalError as exc:
            self._count("store_errors_total")
            self._log_error("drop_telemetry", exc)
            return 0
        if n:
            log.warning("telemetry_dropped", rows=n, unsent_rows=unsent, below_seq=seq_bound,
                        path=str(self.config.path))
        return int(n)

    def _outbox_trim_below(self, seq_bound: int) -> int:
        lost = 0
        for seq_from, seq_to in self._conn.execute(
                "SELECT seq_from, seq_to FROM outbox WHERE seq_from < ?", (seq_bound,)).fetchall():
            self._conn.execute("DELETE FROM outbox WHERE seq_from = ?", (seq_from,))
            if seq_to >= seq_bound:
                self._conn.execute("INSERT INTO outbox VALUES (?, ?)", (seq_bound, seq_to))
                lost += seq_bound - seq_from
            else:
                lost += seq_to - seq_from + 1
        return lost

    # -- the outbox, for the uplink --------------------------------------

    def outbox_ranges(self, *, newest_first: bool = False, min_seq: int = 0,
                      max_seq: int | None = None, limit: int = 1000) -> list[tuple[int, int]]:
        """Pending (seq_from, seq_to) ranges, oldest first unless asked otherwise."""
        order = "DESC" if newest_first else "ASC"
        top = max_seq if max_seq is not None else 2**62
        with self._lock:
            # Start at the range holding min_seq, found through the primary key: a
            # filter on seq_to alone would scan the whole backlog on every call.
            first = self._conn.execute("SELECT max(seq_from) FROM outbox WHERE seq_from <= ?",
                                       (min_seq,)).fetchone()[0]
            return [(int(a), int(b)) for a, b in self._conn.execute(
                f"SELECT seq_from, seq_to FROM outbox WHERE seq_from >= ? AND seq_to >= ? "
                f"AND seq_from <= ? ORDER BY seq_from {order} LIMIT ?",
                (first if first is not None else min_seq, min_seq, top, limit))]

    def outbox_rows(self, seq_from: int, seq_to: int) -> list[tuple[float, str, Value, str]]:
        """Rows to send, in seq order: ``[ts, point, value, quality]``."""
        with self._lock:
            return self._conn.execute(
                "SELECT ts, point, value, quality FROM telemetry WHERE seq BETWEEN ? AND ? "
                "ORDER BY seq", (seq_from, seq_to)).fetchall()

    def outbox_ack(self, seq_from: int, seq_to: int) -> bool:
        """The broker has the batch: forget [seq_from, seq_to] from the outbox."""
        def body() -> None:
            for a, b in self._conn.execute(
                    "SELECT seq_from, seq_to FROM outbox WHERE seq_to >= ? AND seq_from <= ?",
                    (seq_from, seq_to)).fetchall():
                self._conn.execute("DELETE FROM outbox WHERE seq_from = ?", (a,))
                if a < seq_from:
                    self._conn.execute("INSERT INTO outbox VALUES (?, ?)", (a, seq_from - 1))
                if b > seq_to:
                    self._conn.execute("INSERT INTO outbox VALUES (?, ?)", (seq_to + 1, b))
        return self._write("outbox_ack", body)

    def outbox_pending_rows(self) -> int:
        with self._lock:
            got = self._conn.execute("SELECT sum(seq_to - seq_from + 1) FROM outbox").fetchone()
            return int(got[0] or 0)

    # -- reading ------------------------------------------------------------

    def stats(self) -> StoreStats:
        with self._lock:
            stats = collect_stats(self._conn, self.config.path, self.config.max_bytes)
            return replace(stats, counters=dict(self.counters))


def collect_stats(conn: sqlite3.Connection, path: Path, max_bytes: int) -> StoreStats:
    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    page_size = int(one("PRAGMA page_size"))
    lo, hi = conn.execute("SELECT min(seq), max(seq) FROM telemetry").fetchone()
    oldest = conn.execute("SELECT ts FROM telemetry ORDER BY seq LIMIT 1").fetchone()
    newest = conn.execute("SELECT ts FROM telemetry ORDER BY seq DESC LIMIT 1").fetchone()
    file_bytes = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return StoreStats(
        path=str(path),
        file_bytes=file_bytes,
        used_bytes=(int(one("PRAGMA page_count")) - int(one("PRAGMA freelist_count"))) * page_size,
        max_bytes=max_bytes,
        # seq is dense between the oldest and newest row: only the oldest are ever deleted.
        telemetry_rows=0 if lo is None else int(hi) - int(lo) + 1,
        telemetry_oldest_ts=None if oldest is None else float(oldest[0]),
        telemetry_newest_ts=None if newest is None else float(newest[0]),
        outbox_pending_rows=int(one("SELECT coalesce(sum(seq_to - seq_from + 1), 0) FROM outbox")),
        outbox_ranges=int(one("SELECT count(*) FROM outbox")),
        events=int(one("SELECT count(*) FROM events")),
        audit=int(one("SELECT count(*) FROM audit")),
        plans=int(one("SELECT count(*) FROM plans")),
        counters={k: int(v) for k, v in conn.execute("SELECT key, value FROM meta")},
    )


# -- operator commands (wired into `parkedge buffer` by edge/cli) -------------


def cmd_buffer_stats(db_path: Path, *, max_bytes: int = 0, as_json: bool = False,
                     out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """`parkedge buffer stats`: what the store holds and has not yet sent."""
    try:
        conn = open_readonly(db_path)
        try:
            stats = collect_stats(conn, db_path, max_bytes)
        finally:
            conn.close()
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"{db_path}: {exc}", file=err)
        return 1
    if as_json:
        print(json.dumps(asdict(stats), sort_keys=True), file=out)
        return 0
    for key, value in asdict(stats).items():
        if key == "counters":
            for name, count in sorted(value.items()):
                print(f"{name:24} {count}", file=out)
        elif key.endswith("_ts") and isinstance(value, int | float):
            print(f"{key:24} {utc_text(value)}", file=out)
        else:
            print(f"{key:24} {value}", file=out)
    return 0


def cmd_buffer_export(db_path: Path, out: TextIO = sys.stdout, *, pending_only: bool = False,
                      since_s: float | None = None, err: TextIO = sys.stderr) -> int:
    """`parkedge buffer export`: telemetry as CSV (seq, ts, point, value, quality)."""
    try:
        conn = open_readonly(db_path)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"{db_path}: {exc}", file=err)
        return 1
    try:
        writer = csv.writer(out)
        writer.writerow(["seq", "ts", "point", "value", "quality"])
        if pending_only:
            ranges = conn.execute("SELECT seq_from, seq_to FROM outbox ORDER BY seq_from").fetchall()
        else:
            ranges = [(0, 2**62)]
        for seq_from, seq_to in ranges:
            cursor = conn.execute(
                "SELECT seq, ts, point, value, quality FROM telemetry WHERE seq BETWEEN ? AND ? "
                "AND ts >= ? ORDER BY seq", (seq_from, seq_to, since_s if since_s else -1e18))
            writer.writerows(cursor)
    except sqlite3.Error as exc:
        print(f"{db_path}: {exc}", file=err)
        return 1
    finally:
        conn.close()
    return 0


# -- benchmark ------------------------------------------------------------------


def bench_store(work_dir: Path, points: int = 1000, ticks: int = 300) -> dict[str, float]:
    """Rows/s of ``commit_tick`` against raw sqlite3 executemany, same rows, same run.

    Every point changes every tick (the worst case for by-exception storage),
    so both sides write ``points`` rows a tick; same pragmas (WAL, NORMAL).
    """
    names = [f"dev{i // 50}.p{i % 50}" for i in range(points)]
    store = Store(StoreConfig(path=work_dir / "bench-store.db", keyframe_s=1e9))
    t0 = time.perf_counter()
    for tick in range(ticks):
        store.commit_tick(1.7e9 + tick, {n: (tick + i * 0.001, "good") for i, n in enumerate(names)})
    store_s = time.perf_counter() - t0
    store.close()

    raw = sqlite3.connect(work_dir / "bench-raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, point TEXT NOT NULL, "
                "value BLOB, quality TEXT)")
    t0 = time.perf_counter()
    for tick in range(ticks):
        rows = [(1.7e9 + tick, n, tick + i * 0.001, "good") for i, n in enumerate(names)]
        raw.execute("BEGIN")
        raw.executemany("INSERT INTO t(ts, point, value, quality) VALUES (?, ?, ?, ?)", rows)
        raw.execute("COMMIT")
    raw_s = time.perf_counter() - t0
    raw.close()
    rows_total = points * ticks
    return {"store_rows_per_s": rows_total / store_s, "raw_rows_per_s": rows_total / raw_s,
            "ratio_raw_over_store": store_s / raw_s, "points": points, "ticks": ticks,
            "commit_ms_mean": store_s / ticks * 1000.0}
