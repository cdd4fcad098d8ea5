"""Signed plans and commands from the cloud: validated whole, applied whole, remembered.

A plan goes through, in this order: envelope and signature (edge.signing),
JSON and schema, site, times, replay, "older than the plan in force", and
physical plausibility. Only a plan that passes everything is written to the
``plans`` table (one transaction) and then swapped into memory; a rejected one
is recorded with its reason and changes nothing. The body schema is in
docs/mqtt.md.

Several applied plans may be stored at once (today's and tomorrow's): the one
in force at a time ``ts`` is the newest issued one whose window holds ``ts``.
When none does, the controller runs autonomously on the site's own tariff.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import numpy.typing as npt
import structlog

from edge.model import utc_text
from edge.signing import EnvelopeError, TrustedKeys, load_private_key, open_envelope, seal
from edge.store import AuditEntry, Event, Store

__all__ = [
    "CMD_SCHEMA",
    "PLAN_SCHEMA",
    "Ack",
    "Command",
    "DemandResponseCommand",
    "ModeCommand",
    "OverrideCommand",
    "PlanBook",
    "PlanError",
    "ValidatedPlan",
    "cmd_plan_load",
    "cmd_plan_sign",
    "parse_command",
    "parse_plan",
]

log = structlog.get_logger(__name__)

PLAN_SCHEMA = "parkedge.plan/1"
CMD_SCHEMA = "parkedge.cmd/1"
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MAX_STEPS = 10_000
_CLOCK_SKEW_S = 300.0  # issued_at may be this far ahead of our clock
_CMD_MAX_AGE_S = 600.0  # a command older than this is stale (or a replay after a wipe)
_STORED_BODY_CHARS = 65_536  # a rejected body is kept for diagnosis, truncated

# Plausibility bounds: (min, max) of anything physical that a plan can carry.
_PRICE_BOUNDS = (-10.0, 20.0)  # CNY/kWh; spot prices go negative, nothing is 20 CNY/kWh
_SERIES: Mapping[str, tuple[float, float]] = {
    "import_price_cny_per_kwh": _PRICE_BOUNDS,
    "export_price_cny_per_kwh": _PRICE_BOUNDS,
    "grid_co2_kg_per_kwh": (0.0, 2.0),
}
_WEATHER: Mapping[str, tuple[float, float]] = {
    "ghi_w_m2": (0.0, 1500.0), "dni_w_m2": (0.0, 1200.0), "dhi_w_m2": (0.0, 800.0),
    "temp_c": (-60.0, 60.0), "wind_m_s": (0.0, 75.0),
}
_WEATHER_REQUIRED = ("ghi_w_m2", "temp_c", "wind_m_s")
_TARGET_SITE: Mapping[str, tuple[float, float]] = {
    "grid_import_kw": (0.0, 1e6), "grid_export_kw": (0.0, 1e6), "green_share_frac": (0.0, 1.0),
}
_TARGET_UNIT: Mapping[str, tuple[float, float]] = {"soc_frac": (0.0, 1.0), "p_kw": (-1e6, 1e6)}
_WEIGHTS = ("cost", "carbon", "green", "tracking", "wear", "smooth")
_SCALARS: Mapping[str, tuple[float, float]] = {
    "gas_cny_per_m3": (0.0, 50.0), "carbon_cny_per_t": (0.0, 5000.0),
}
_PLAN_KEYS = {"schema", "plan_id", "site", "issued_at", "valid_from", "valid_until", "step_s",
              "series", "weights", *_SCALARS}
_SERIES_KEYS = {*_SERIES, "weather", "commitments", "targets"}


class PlanError(ValueError):
    """A plan or command refused; the message is the one-line reason."""


def _one_line(reason: str, limit: int = 500) -> str:
    # Reasons quote what the sender sent, and a key name may hold a newline.
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in reason)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Ack:
    id: str
    status: Literal["applied", "rejected"]
    reason: str

    def payload(self) -> bytes:
        return json.dumps({"id": self.id, "status": self.status, "reason": self.reason}).encode()


@dataclass(frozen=True, eq=False)
class ValidatedPlan:
    """A plan the controller may use. Series have one value a step; NaN = no target."""

    plan_id: str
    site: str
    key_id: str
    issued_at_s: float
    valid_from_s: float
    valid_until_s: float
    step_s: int
    import_price_cny_per_kwh: FloatArray
    export_price_cny_per_kwh: FloatArray
    grid_co2_kg_per_kwh: FloatArray
    weather: Mapping[str, FloatArray]
    commitments: Mapping[str, BoolArray]  # unit -> on/off a step
    targets: Mapping[str, FloatArray]
    gas_cny_per_m3: float
    carbon_cny_per_t: float
    weights: Mapping[str, float]
    body_text: str = field(repr=False)

    @property
    def steps(self) -> int:
        return len(self.import_price_cny_per_kwh)

    def covers(self, ts: float) -> bool:
        return self.valid_from_s <= ts < self.valid_until_s

    def step_index(self, ts: float) -> int | None:
        """The step holding ``ts``, or None outside the plan's window."""
        if not self.covers(ts):
            return None
        return min(int((ts - self.valid_from_s) // self.step_s), self.steps - 1)


@dataclass(frozen=True, slots=True)
class ModeCommand:
    cmd_id: str
    actor: str
    mode: Literal["auto", "manual", "safe"]
    reason: str


@dataclass(frozen=True, slots=True)
class OverrideCommand:
    cmd_id: str
    actor: str
    point: str  # device.point; actuation still clamps it
    value: float
    ttl_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class DemandResponseCommand:
    cmd_id: str
    actor: str
    event_id: str
    start_s: float
    end_s: float
    reduction_kw: float
    price_cny_per_kwh: float


Command = ModeCommand | OverrideCommand | DemandResponseCommand


# -- parsing helpers: each raises PlanError naming the field and the value ---


def _iso(value: object, name: str) -> float:
    if not isinstance(value, str):
        raise PlanError(f"{name}: {value!r} is not an ISO 8601 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PlanError(f"{name}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise PlanError(f"{name}: {value!r} has no time zone (use Z for UTC)")
    return parsed.timestamp()



def _number(value: object, name: str, bounds: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanError(f"{name}: {value!r} is not a finite number")
    if not bounds[0] <= value <= bounds[1]:
        raise PlanError(f"{name}: {value} is outside the plausible range [{bounds[0]}, {bounds[1]}]")
    return float(value)


def _id(value: object, name: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise PlanError(f"{name}: {value!r} is not an id ([A-Za-z0-9._:-], 1-128 chars)")
    return value


def _series(value: object, name: str, n: int, bounds: tuple[float, float],
            nullable: bool = False) -> FloatArray:
    if not isinstance(value, list):
        raise PlanError(f"{name}: expected a list of {n} numbers, got {type(value).__name__}")
    if len(value) != n:
        raise PlanError(f"{name}: has {len(value)} values, the plan's window needs {n}")
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(value):
        out[i] = np.nan if (nullable and v is None) else _number(v, f"{name}[{i}]", bounds)
    return out


def _obj(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanError(f"{name}: expected an object, got {type(value).__name__}")
    return value


def _no_extra(obj: Mapping[str, Any], allowed: Collection[str], name: str) -> None:
    extra = sorted(set(obj) - set(allowed))
    if extra:
        raise PlanError(f"{name}: unknown keys {extra}")


def _load_json(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"body is not JSON ({exc})") from None
    return _obj(doc, "body")


def parse_plan(body_text: str, key_id: str, site: str, known_units: Collection[str]) -> ValidatedPlan:
    """Schema, site, window and plausibility of a plan body (no clock, no history)."""
    body = _load_json(body_text)
    _no_extra(body, _PLAN_KEYS, "plan")
    missing = sorted(_PLAN_KEYS - set(body))
    if missing:
        raise PlanError(f"plan: missing keys {missing}")
    if body.get("schema") != PLAN_SCHEMA:
        raise PlanError(f"schema: {body.get('schema')!r} is not {PLAN_SCHEMA!r}")
    plan_id = _id(body.get("plan_id"), "plan_id")
    if body.get("site") != site:
        raise PlanError(f"site: plan is for {body.get('site')!r}, this is {site!r}")
    issued_at = _iso(body.get("issued_at"), "issued_at")
    valid_from = _iso(body.get("valid_from"), "valid_from")
    valid_until = _iso(body.get("valid_until"), "valid_until")
    if valid_from >= valid_until:
        raise PlanError(f"valid_from {utc_text(valid_from)} is not before valid_until {utc_text(valid_until)}")
    step_s = body.get("step_s")
    if isinstance(step_s, bool) or not isinstance(step_s, int) or not 60 <= step_s <= 3600:
        raise PlanError(f"step_s: {step_s!r} is not an integer in [60, 3600]")
    span = valid_until - valid_from
    n = round(span / step_s)
    if abs(n * step_s - span) > 1e-6:
        raise PlanError(f"step_s: {step_s} does not divide the window ({span:.0f} s)")
    if n > _MAX_STEPS:
        raise PlanError(f"window: {n} steps, more than {_MAX_STEPS}")
    series = _obj(body.get("series"), "series")
    _no_extra(series, _SERIES_KEYS, "series")
    main = {k: _series(series.get(k), f"series.{k}", n, b) for k, b in _SERIES.items()}
    weather_in = _obj(series.get("weather"), "series.weather")
    _no_extra(weather_in, _WEATHER, "series.weather")
    for k in _WEATHER_REQUIRED:
        if k not in weather_in:
            raise PlanError(f"series.weather.{k}: missing")
    weather = {k: _series(v, f"series.weather.{k}", n, _WEATHER[k]) for k, v in weather_in.items()}
    commitments: dict[str, BoolArray] = {}
    for unit, values in _obj(series.get("commitments", {}), "series.commitments").items():
        if unit not in known_units:
            raise PlanError(f"series.commitments: {unit!r} is no unit of {site} "
                            f"(known: {sorted(known_units)})")
        arr = _series(values, f"series.commitments.{unit}", n, (0.0, 1.0))
        if not np.all((arr == 0.0) | (arr == 1.0)):
            raise PlanError(f"series.commitments.{unit}: values must be 0 or 1")
        commitments[unit] = arr.astype(np.bool_)
    targets: dict[str, FloatArray] = {}
    for name, values in _obj(series.get("targets", {}), "series.targets").items():
        unit, _, quantity = name.rpartition(".")
        if not unit and name in _TARGET_SITE:
            bounds = _TARGET_SITE[name]
        elif unit in known_units and quantity in _TARGET_UNIT:
            bounds = _TARGET_UNIT[quantity]
        else:
            raise PlanError(f"series.targets: {name!r} is not a site target ({sorted(_TARGET_SITE)}) "
                            f"nor <unit>.{'|'.join(_TARGET_UNIT)} for a known unit")
        targets[name] = _series(values, f"series.targets.{name}", n, bounds, nullable=True)
    weights_in = _obj(body.get("weights"), "weights")
    _no_extra(weights_in, _WEIGHTS, "weights")
    weights = {k: _number(v, f"weights.{k}", (0.0, 1e6)) for k, v in weights_in.items()}
    scalars = {k: _number(body.get(k), k, b) for k, b in _SCALARS.items()}
    return ValidatedPlan(
        plan_id=plan_id, site=site, key_id=key_id, issued_at_s=issued_at,
        valid_from_s=valid_from, valid_until_s=valid_until, step_s=step_s,
        import_price_cny_per_kwh=main["import_price_cny_per_kwh"],
        export_price_cny_per_kwh=main["export_price_cny_per_kwh"],
        grid_co2_kg_per_kwh=main["grid_co2_kg_per_kwh"], weather=weather,
        commitments=commitments, targets=targets, gas_cny_per_m3=scalars["gas_cny_per_m3"],
        carbon_cny_per_t=scalars["carbon_cny_per_t"], weights=weights, body_text=body_text)


def parse_command(body_text: str, key_id: str, site: str, now_s: float,
                  known_points: Collection[str] | None = None) -> Command:
    """A command body: schema, site, freshness and the variant's fields."""
    body = _load_json(body_text)
    if body.get("schema") != CMD_SCHEMA:
        raise PlanError(f"schema: {body.get('schema')!r} is not {CMD_SCHEMA!r}")
    cmd_id = _id(body.get("cmd_id"), "cmd_id")
    if body.get("site") != site:
        raise PlanError(f"site: command is for {body.get('site')!r}, this is {site!r}")
    issued_at = _iso(body.get("issued_at"), "issued_at")
    if issued_at > now_s + _CLOCK_SKEW_S:
        raise PlanError(f"issued_at {utc_text(issued_at)} is in the future (now {utc_text(now_s)})")
    if issued_at < now_s - _CMD_MAX_AGE_S:
        raise PlanError(f"issued_at {utc_text(issued_at)} is older than {_CMD_MAX_AGE_S:.0f} s")
    kind = body.get("type")
    common = {"schema", "cmd_id", "site", "issued_at", "type"}
    if kind == "mode":
        _no_extra(body, common | {"mode", "reason"}, "command")
        mode = body.get("mode")
        if mode not in ("auto", "manual", "safe"):
            raise PlanError(f"mode: {mode!r} is not auto, manual or safe")
        return ModeCommand(cmd_id, key_id, mode, str(body.get("reason", "")))
    if kind == "override":
        _no_extra(body, common | {"point", "value", "ttl_s", "reason"}, "command")
        point = body.get("point")
        if not isinstance(point, str) or not re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", point):
            raise PlanError(f"point: {point!r} is not device.point")
        if known_points is not None and point not in known_points:
            raise PlanError(f"point: {point!r} is not a writable point of {site}")
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            raise PlanError("reason: an override needs a reason (1-500 chars)")
        return OverrideCommand(cmd_id, key_id, point, _number(body.get("value"), "value", (-1e9, 1e9)),
                               _number(body.get("ttl_s"), "ttl_s", (1.0, 86400.0)), reason)
    if kind == "dr_event":
        _no_extra(body, common | {"event_id", "start", "end", "reduction_kw", "price_cny_per_kwh"},
                  "command")
        start, end = _iso(body.get("start"), "start"), _iso(body.get("end"), "end")
        if start >= end:
            raise PlanError(f"start {utc_text(start)} is not before end {utc_text(end)}")
        if end <= now_s:
            raise PlanError(f"end {utc_text(end)} is in the past")
        return DemandResponseCommand(
            cmd_id, key_id, _id(body.get("event_id", cmd_id), "event_id"), start, end,
            _number(body.get("reduction_kw"), "reduction_kw", (0.001, 1e6)),
            _number(body.get("price_cny_per_kwh"), "price_cny_per_kwh", (0.0, 100.0)))
    raise PlanError(f"type: {kind!r} is not mode, override or dr_event")


def _peek_id(raw: bytes | str, key: str) -> str:
    # The ack's id is only for correlation, so it may come from a body that failed checks.
    try:
        env = json.loads(raw)
        value = json.loads(env["body"]).get(key, "")
        return value if isinstance(value, str) and _ID.match(value) else ""
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""


class PlanBook:
    """Plans in force and commands received, persisted in the store's tables.

    Call it from the task that owns the Store (it writes through it).
    """

    def __init__(self, store: Store, keys: TrustedKeys, site: str,
                 known_units: Collection[str], known_points: Collection[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store, self._keys, self._site = store, keys, site
        self._units, self._points, self._clock = frozenset(known_units), known_points, clock
        self._plans: list[ValidatedPlan] = []
        self._newest_issued_s = -math.inf
        self.rejected_total = 0
        self.load()

    def load(self) -> None:
        """Resume the applied plans from SQLite (after a restart)."""
        conn = self._store.connection
        with self._store.lock:
            top = conn.execute("SELECT max(issued_at) FROM plans WHERE status != 'rejected'").fetchone()
            rows = conn.execute("SELECT body, key_id FROM plans WHERE status = 'applied' "
                                "AND valid_until > ? ORDER BY issued_at", (self._clock(),)).fetchall()
        self._newest_issued_s = -math.inf if top[0] is None else float(top[0])
        self._plans = []
        for body, key_id in rows:
            try:
                self._plans.append(parse_plan(body, key_id, self._site, self._units))
            except PlanError as exc:  # the site's units changed under a stored plan
                log.warning("plan_not_resumed", reason=str(exc))

    # -- plans -------------------------------------------------------------

    def plan_for(self, ts: float) -> ValidatedPlan | None:
        """The plan in force at ``ts``: newest issued among those covering it; None = autonomous."""
        best = None
        for plan in self._plans:
            if plan.covers(ts) and (best is None or plan.issued_at_s > best.issued_at_s):
                best = plan
        return best

    @property
    def plans(self) -> tuple[ValidatedPlan, ...]:
        return tuple(self._plans)

    def handle_plan(self, raw: bytes | str, now_s: float | None = None) -> tuple[Ack, ValidatedPlan | None]:
        now = self._clock() if now_s is None else now_s
        try:
            plan = self._validate_plan(raw, now)
        except EnvelopeError as exc:
            # Unsigned or unverifiable: anyone who can publish can send these, so keep
            # little of it (the plans table is never pruned).
            plan_id = _peek_id(raw, "plan_id")
            self._record_plan_rejection(raw, plan_id, _one_line(str(exc)), now, keep_chars=1024)
            return Ack(plan_id, "rejected", _one_line(str(exc))), None
        except PlanError as exc:
            plan_id = _peek_id(raw, "plan_id")
            self._record_plan_rejection(raw, plan_id, _one_line(str(exc)), now)
            return Ack(plan_id, "rejected", _one_line(str(exc))), None

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO plans(received_ts, plan_id, key_id, issued_at, valid_from, valid_until,"
                " status, reason, body) VALUES (?, ?, ?, ?, ?, ?, 'applied', '', ?)",
                (now, plan.plan_id, plan.key_id, plan.issued_at_s, plan.valid_from_s,
                 plan.valid_until_s, plan.body_text))
            # An older plan whose remaining window the new one covers entirely is done.
            conn.execute("UPDATE plans SET status = 'superseded' WHERE status = 'applied' AND "
                         "plan_id != ? AND valid_until <= ? AND max(valid_from, ?) >= ?",
                         (plan.plan_id, plan.valid_until_s, now, plan.valid_from_s))
            conn.execute("INSERT INTO events(ts, kind, source, message, data) VALUES "
                         "(?, 'plan', 'sync', ?, NULL)", (now, f"plan {plan.plan_id!r} applied"))

        if not self._store.transaction(apply):
            reason = f"store: plan {plan.plan_id!r} could not be persisted; nothing changed"
            self.rejected_total += 1
            return Ack(plan.plan_id, "rejected", reason), None
        self._plans = [p for p in self._plans
                       if not (p.valid_until_s <= plan.valid_until_s
                               and max(p.valid_from_s, now) >= plan.valid_from_s)]
        self._plans.append(plan)
        self._newest_issued_s = plan.issued_at_s
        log.info("plan_applied", plan_id=plan.plan_id, key_id=plan.key_id,
                 valid_from=utc_text(plan.valid_from_s), valid_until=utc_text(plan.valid_until_s))
        return Ack(plan.plan_id, "applied", ""), plan

    def _validate_plan(self, raw: bytes | str, now: float) -> ValidatedPlan:
        opened = open_envelope(raw, self._keys)
        plan = parse_plan(opened.body_text, opened.key_id, self._site, self._units)
        with self._store.lock:
            seen = self._store.connection.execute(
                "SELECT status FROM plans WHERE plan_id = ? AND status != 'rejected' LIMIT 1",
                (plan.plan_id,)).fetchone()
        if seen is not None:
            raise PlanError(f"replay: plan {plan.plan_id!r} was already received ({seen[0]})")
        if plan.valid_until_s <= now:
            raise PlanError(f"valid_until {utc_text(plan.valid_until_s)} is in the past "
                            f"(plan {plan.plan_id!r}, site {self._site!r})")
        if plan.issued_at_s > now + _CLOCK_SKEW_S:
            raise PlanError(f"issued_at {utc_text(plan.issued_at_s)} is in the future (now {utc_text(now)})")
        if plan.issued_at_s <= self._newest_issued_s:
            raise PlanError(f"issued_at {utc_text(plan.issued_at_s)} is not newer than the plan in "
                            f"force (issued {utc_text(self._newest_issued_s)})")
        return plan

    def _record_plan_rejection(self, raw: bytes | str, plan_id: str, reason: str, now: float,
                               keep_chars: int = _STORED_BODY_CHARS) -> None:
        self.rejected_total += 1
        log.warning("plan_rejected", plan_id=plan_id, reason=reason)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        self._store.transaction(lambda conn: conn.execute(
            "INSERT INTO plans(received_ts, plan_id, status, reason, body) "
            "VALUES (?, ?, 'rejected', ?, ?)", (now, plan_id or None, reason, text[:keep_chars])))

    def expire(self, now_s: float | None = None) -> list[str]:
        """Mark plans past valid_until expired; returns their ids. None in force = autonomous."""
        now = self._clock() if now_s is None else now_s
        gone = [p for p in self._plans if p.valid_until_s <= now]
        if not gone:
            return []
        autonomous = self.plan_for(now) is None

        def mark(conn: sqlite3.Connection) -> None:
            for p in gone:
                conn.execute("UPDATE plans SET status = 'expired' WHERE plan_id = ? AND "
                             "status = 'applied'", (p.plan_id,))
        self._store.transaction(mark)
        self._plans = [p for p in self._plans if p.valid_until_s > now]
        ids = [p.plan_id for p in gone]
        if autonomous:
            self._store.add_events([Event(now, "mode", "plans", "no plan in force: autonomous "
                                          "on the site tariff", {"expired": ids})])
            log.warning("plan_expired", plan_ids=ids, mode="autonomous")
        return ids

    # -- commands -------------------------------------------------------------

    def handle_command(self, raw: bytes | str, now_s: float | None = None,
                       apply: Callable[[Command], str | None] | None = None,
                       ) -> tuple[Ack, Command | None]:
        """Validate a command, let ``apply`` act on it (it returns a refusal or None), record it."""
        now = self._clock() if now_s is None else now_s
        cmd: Command | None = None
        key_id = ""
        try:
            opened = open_envelope(raw, self._keys)
            key_id = opened.key_id
            cmd = parse_command(opened.body_text, key_id, self._site, now, self._points)
            with self._store.lock:
                seen = self._store.connection.execute(
                    "SELECT status FROM commands WHERE cmd_id = ? AND status = 'applied'",
                    (cmd.cmd_id,)).fetchone()
            if seen is not None:
                raise PlanError(f"replay: command {cmd.cmd_id!r} was already applied")
            refusal = apply(cmd) if apply is not None else None
            if refusal:
                raise PlanError(refusal)
        except (PlanError, EnvelopeError) as exc:
            ack = Ack(cmd.cmd_id if cmd else _peek_id(raw, "cmd_id"), "rejected", _one_line(str(exc)))
            log.warning("command_rejected", cmd_id=ack.id, reason=ack.reason)
            self._record_command(raw, ack, key_id, None, now)
            return ack, None
        ack = Ack(cmd.cmd_id, "applied", "")
        self._record_command(raw, ack, key_id, cmd, now)
        log.info("command_applied", cmd_id=cmd.cmd_id, kind=type(cmd).__name__, actor=key_id)
        return ack, cmd

    def _record_command(self, raw: bytes | str, ack: Ack, key_id: str, cmd: Command | None,
                        now: float) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        kind = {ModeCommand: "mode", OverrideCommand: "override",
                DemandResponseCommand: "dr_event"}.get(type(cmd), "") if cmd else ""

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO commands(received_ts, cmd_id, key_id, kind, status, reason, "
                         "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (now, ack.id or None, key_id, kind, ack.status, ack.reason,
                          text[:_STORED_BODY_CHARS]))
            if cmd is not None:
                entry = _audit_entry(cmd, now)
                conn.execute("INSERT INTO audit(ts, actor, action, target, value, ttl_s, reason) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (entry.ts, entry.actor, entry.action, entry.target, entry.value,
                              entry.ttl_s, entry.reason))
        self._store.transaction(body)


def _audit_entry(cmd: Command, now: float) -> AuditEntry:
    if isinstance(cmd, ModeCommand):
        return AuditEntry(now, cmd.actor, "mode", "control.mode", cmd.mode, None, cmd.reason)
    if isinstance(cmd, OverrideCommand):
        return AuditEntry(now, cmd.actor, "override", cmd.point, cmd.value, cmd.ttl_s, cmd.reason)
    return AuditEntry(now, cmd.actor, "dr_event", cmd.event_id, cmd.reduction_kw,
                      cmd.end_s - cmd.start_s,
                      f"{utc_text(cmd.start_s)}..{utc_text(cmd.end_s)} at {cmd.price_cny_per_kwh} CNY/kWh")


# -- operator commands (wired into `parkedge plan` by edge/cli) ---------------


def cmd_plan_sign(file: Path, key: Path, key_id: str | None = None, *,
                  out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """`parkedge plan sign FILE --key KEY`: print the envelope for the plan body in FILE.

    ``key_id`` defaults to the key file's name without ``.key.pem``.
    """
    try:
        body_text = file.read_text(encoding="utf-8")
        json.loads(body_text)
    except OSError as exc:
        print(f"{file}: {exc.strerror}", file=err)
        return 2
    except ValueError as exc:
        print(f"{file}: not JSON ({exc})", file=err)
        return 2
    try:
        private = load_private_key(key)
    except ValueError as exc:
        print(str(exc), file=err)
        return 2
    kid = key_id or key.name.removesuffix(".pem").removesuffix(".key")
    print(json.dumps(seal(body_text, kid, private)), file=out)
    return 0


def cmd_plan_load(file: Path, submit: Callable[[bytes], Ack], *, out: TextIO = sys.stdout,
                  err: TextIO = sys.stderr) -> int:
    """`parkedge plan load FILE`: hand a signed envelope to the daemon and print its ack.

    ``submit`` carries the bytes to the running daemon (its local socket), which
    runs ``PlanBook.handle_plan``: the same checks as a plan from MQTT.
    """
    try:
        raw = file.read_bytes()
    except OSError as exc:
        print(f"{file}: {exc.strerror}", file=err)
        return 2
    try:
        ack = submit(raw)
    except OSError as exc:
        print(f"daemon: {exc}", file=err)
        return 1
    print(ack.payload().decode(), file=out)
    if ack.status != "applied":
        print(f"{file}: plan rejected: {ack.reason}", file=err)
        return 2
    return 0
