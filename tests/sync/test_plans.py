"""Plan and command validation: what is accepted is stored and resumed; nothing else changes anything."""

from __future__ import annotations

import copy
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_helpers import SITE, UNITS, envelope, iso, plan_body

from edge.plans import (
    Ack,
    DemandResponseCommand,
    ModeCommand,
    OverrideCommand,
    PlanBook,
    cmd_plan_load,
    cmd_plan_sign,
)
from edge.signing import cmd_keys_new, load_public_key, trusted_keys_from_config
from edge.store import Store, StoreConfig

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
TRUSTED = {"cloud-test": KEY.public_key()}


def _book(path: Path, clock: Any = time.time) -> tuple[Store, PlanBook]:
    store = Store(StoreConfig(path=path))
    return store, PlanBook(store, TRUSTED, SITE, UNITS, known_points={"bess1.p_set_kw"},
                           clock=clock)


def _fingerprint(store: Store, book: PlanBook) -> tuple[Any, ...]:
    rows = store.connection.execute(
        "SELECT plan_id, status FROM plans WHERE status != 'rejected' ORDER BY id").fetchall()
    now = time.time()
    in_force = book.plan_for(now)
    return (tuple(rows), None if in_force is None else in_force.plan_id,
            tuple(p.plan_id for p in book.plans))


def test_signed_plan_is_applied_stored_and_resumed(tmp_path: Path) -> None:
    store, book = _book(tmp_path / "s.db")
    ack, plan = book.handle_plan(envelope(plan_body("da-1"), KEY))
    assert ack == Ack("da-1", "applied", "")
    assert plan is not None and plan.steps == 96
    now = time.time()
    assert book.plan_for(now) is plan
    idx = plan.step_index(now)
    assert idx is not None and plan.import_price_cny_per_kwh[idx] == pytest.approx(0.35 + 0.01 * (idx % 10))
    assert plan.commitments["chp1"].dtype == np.bool_ and plan.commitments["chp1"].all()
    assert np.isnan(plan.targets["bess1.soc_frac"][0]) and plan.targets["bess1.soc_frac"][-1] == 0.5
    store.close()
    # a restart resumes the plan in force from SQLite
    store2, book2 = _book(tmp_path / "s.db")
    resumed = book2.plan_for(now)
    assert resumed is not None and resumed.plan_id == "da-1"
    assert np.array_equal(resumed.import_price_cny_per_kwh, plan.import_price_cny_per_kwh)
    store2.close()


def _bad_cases(now: float) -> dict[str, tuple[bytes, str]]:
    good = plan_body("da-bad", now=now)
    cases: dict[str, tuple[bytes, str]] = {
        "unsigned": (json.dumps({"body": json.dumps(good)}).encode(), "unsigned"),
        "wrongly signed": (envelope(good, OTHER_KEY), "bad signature"),
        "unknown key": (envelope(good, KEY, key_id="stranger"), "unknown key_id"),
        "other site": (envelope(plan_body("da-x", now=now, site="park-b"), KEY), "site"),
        "expired": (envelope(plan_body("da-old", now=now, from_offset_s=-3 * 86400), KEY),
                    "in the past"),
        "not json": (b"{nope", "not JSON"),
        "body not json": (envelope("{nope", KEY), "not JSON"),
    }
    tampered = json.loads(envelope(good, KEY))
    tampered["body"] = tampered["body"].replace("0.62", "0.01")
    cases["tampered"] = (json.dumps(tampered).encode(), "bad signature")
    short = copy.deepcopy(good)
    short["series"]["export_price_cny_per_kwh"].pop()
    cases["short series"] = (envelope(short, KEY), "needs 96")
    neg = copy.deepcopy(good)
    neg["series"]["grid_co2_kg_per_kwh"][5] = -0.1
    cases["negative intensity"] = (envelope(neg, KEY), "grid_co2_kg_per_kwh[5]")
    pricey = copy.deepcopy(good)
    pricey["series"]["import_price_cny_per_kwh"][0] = 900.0
    cases["absurd price"] = (envelope(pricey, KEY), "plausible")
    ghost = copy.deepcopy(good)
    ghost["series"]["commitments"]["chp9"] = [1] * 96
    cases["unknown unit"] = (envelope(ghost, KEY), "is no unit of")
    backwards = copy.deepcopy(good)
    backwards["valid_until"] = backwards["valid_from"]
    cases["backwards window"] = (envelope(backwards, KEY), "not before")
    return cases


def test_bad_plans_are_rejected_with_a_reason_and_change_nothing(tmp_path: Path) -> None:
    store, book = _book(tmp_path / "s.db")
    now = time.time()
    assert book.handle_plan(envelope(plan_body("da-1", now=now), KEY))[0].status == "applied"
    before = _fingerprint(store, book)
    for name, (raw, expect) in _bad_cases(now).items():
        ack, plan = book.handle_plan(raw)
        assert ack.status == "rejected" and plan is None, name
        assert expect in ack.reason, (name, ack.reason)
        assert "\n" not in ack.reason
        assert _fingerprint(store, book) == before, name
    # replay of the applied plan, and an older plan than the one in force
    ack, _ = book.handle_plan(envelope(plan_body("da-1", now=now), KEY))
    assert ack.status == "rejected" and ack.reason.startswith("replay"), ack.reason
    ack, _ = book.handle_plan(envelope(plan_body("da-0", now=now, issued_offset_s=-7200), KEY))
    assert ack.status == "rejected" and "not newer than the plan in force" in ack.reason
    assert _fingerprint(store, book) == before
    rejected = store.connection.execute("SELECT count(*) FROM plans WHERE status = 'rejected'")
    assert rejected.fetchone()[0] == len(_bad_cases(now)) + 2
    store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@st.composite
def malformed_bodies(draw: st.DrawFn) -> str:
    """A valid body with one thing broken, or arbitrary JSON, or arbitrary text."""
    body = plan_body("da-h", now=1.8e9)
    kind = draw(st.sampled_from(["drop", "replace", "series", "nested", "json", "text"]))
    if kind == "drop":
        del body[draw(st.sampled_from(sorted(body)))]
    elif kind == "replace":
        key = draw(st.sampled_from(sorted(body)))
        numeric = key in ("gas_cny_per_m3", "carbon_cny_per_t")  # any in-range number is valid
        value = draw(json_values.filter(lambda v: v != body[key] and v != {} and not (
            numeric and isinstance(v, int | float) and not isinstance(v, bool))))
        body[key] = value
    elif kind == "series":
        name = draw(st.sampled_from(["import_price_cny_per_kwh", "export_price_cny_per_kwh",
                                     "grid_co2_kg_per_kwh"]))
        series = body["series"][name]
        action = draw(st.sampled_from(["cut", "grow", "poison"]))
        if action == "cut":
            del series[draw(st.integers(0, len(series) - 1)):]
        elif action == "grow":
            series.extend([0.5] * draw(st.integers(1, 5)))
        else:
            series[draw(st.integers(0, len(series) - 1))] = draw(
                st.sampled_from([None, "0.4", True, [], 1e9, -1e9, float("inf")]))
    elif kind == "nested":
        target = draw(st.sampled_from(["weather", "commitments", "targets"]))
        body["series"][target] = draw(json_values.filter(lambda v: not isinstance(v, dict) or v))
        if isinstance(body["series"][target], dict) and target == "commitments":
            body["series"][target]["nope"] = [1]
    elif kind == "json":
        return json.dumps(draw(json_values))
    else:
        return draw(st.text(max_size=40))
    return json.dumps(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body_text=malformed_bodies())
def test_hypothesis_malformed_signed_plans_are_rejected(tmp_path: Path, body_text: str) -> None:
    db = tmp_path / "h.db"
    store, book = _book(db, clock=lambda: 1.8e9)
    try:
        before = _fingerprint(store, book)
        ack, plan = book.handle_plan(envelope(body_text, KEY), now_s=1.8e9)
        assert ack.status == "rejected" and plan is None
        assert ack.reason and "\n" not in ack.reason
        assert _fingerprint(store, book) == before
    finally:
        store.close()
        for p in tmp_path.glob("h.db*"):
            p.unlink()


def test_expiry_returns_to_autonomous(tmp_path: Path) -> None:
    now = time.time()
    store, book = _book(tmp_path / "s.db")
    ack, plan = book.handle_plan(envelope(plan_body("da-1", now=now, hours=2), KEY))
    assert plan is not None and ack.status == "applied"
    later = plan.valid_until_s + 1
    assert book.expire(later) == ["da-1"]
    assert book.plan_for(later) is None
    status = store.connection.execute("SELECT status FROM plans WHERE plan_id = 'da-1'").fetchone()
    assert status == ("expired",)
    kinds = [r[0] for r in store.connection.execute("SELECT kind FROM events")]
    assert "mode" in kinds
    store.close()


def _cmd(body: dict[str, Any], key: Ed25519PrivateKey = KEY) -> bytes:
    base = {"schema": "parkedge.cmd/1", "site": SITE, "issued_at": iso(time.time())}
    return envelope({**base, **body}, key)


def test_commands_are_validated_applied_and_audited(tmp_path: Path) -> None:
    store, book = _book(tmp_path / "s.db")
    seen: list[Any] = []
    ack, cmd = book.handle_command(_cmd({"cmd_id": "c1", "type": "mode", "mode": "safe"}),
                                   apply=lambda c: seen.append(c))
    assert ack.status == "applied" and isinstance(cmd, ModeCommand) and cmd.mode == "safe"
    ack, cmd = book.handle_command(_cmd({"cmd_id": "c2", "type": "override", "point": "bess1.p_set_kw",
                                         "value": -250, "ttl_s": 600, "reason": "test"}))
    assert isinstance(cmd, OverrideCommand) and cmd.value == -250.0 and cmd.ttl_s == 600.0
    now = time.time()
    ack, cmd = book.handle_command(_cmd({"cmd_id": "c3", "type": "dr_event", "start": iso(now + 60),
                                         "end": iso(now + 3660), "reduction_kw": 500,
                                         "price_cny_per_kwh": 3.0}))
    assert isinstance(cmd, DemandResponseCommand) and cmd.reduction_kw == 500.0
    bad = {
        "replay": _cmd({"cmd_id": "c1", "type": "mode", "mode": "auto"}),
        "stale": envelope({"schema": "parkedge.cmd/1", "site": SITE, "cmd_id": "c9", "type": "mode",
                           "mode": "auto", "issued_at": iso(now - 3600)}, KEY),
        "unknown point": _cmd({"cmd_id": "c4", "type": "override", "point": "bess9.p_set_kw",
                               "value": 1, "ttl_s": 60, "reason": "x"}),
        "no reason": _cmd({"cmd_id": "c5", "type": "override", "point": "bess1.p_set_kw",
                           "value": 1, "ttl_s": 60}),
        "bad mode": _cmd({"cmd_id": "c6", "type": "mode", "mode": "turbo"}),
        "wrong key": _cmd({"cmd_id": "c7", "type": "mode", "mode": "auto"}, OTHER_KEY),
        "refused by actuation": _cmd({"cmd_id": "c8", "type": "mode", "mode": "manual"}),
    }
    for name, raw in bad.items():
        refuse = (lambda c: "actuation: manual mode is locked") if name == "refused by actuation" else None
        ack, cmd = book.handle_command(raw, apply=refuse)
        assert ack.status == "rejected" and cmd is None, name
        assert "\n" not in ack.reason and ack.reason, name
    assert len(seen) == 1
    audit = store.connection.execute("SELECT actor, action, target FROM audit ORDER BY id").fetchall()
    assert audit == [("cloud-test", "mode", "control.mode"), ("cloud-test", "override", "bess1.p_set_kw"),
                     ("cloud-test", "dr_event", "c3")]
    store.close()


def test_operator_commands_keys_sign_load(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cmd_keys_new(tmp_path / "keys", "ops-1", out=out, err=err) == 0
    info = json.loads(out.getvalue())
    assert (tmp_path / "keys" / "ops-1.key.pem").stat().st_mode & 0o777 == 0o600
    assert cmd_keys_new(tmp_path / "keys", "ops-1", out=out, err=err) == 1  # never overwrites
    keys_pem = trusted_keys_from_config([{"key_id": "ops-1", "public_key": "keys/ops-1.pub.pem"}],
                                        base_dir=tmp_path)
    keys_b64 = {"ops-1": load_public_key(info["public_key_base64"])}
    body = tmp_path / "plan.json"
    body.write_text(json.dumps(plan_body("da-ops")))
    signed = io.StringIO()
    assert cmd_plan_sign(body, tmp_path / "keys" / "ops-1.key.pem", out=signed, err=err) == 0
    env_file = tmp_path / "plan.signed.json"
    env_file.write_text(signed.getvalue())
    for keys in (keys_pem, keys_b64):
        store = Store(StoreConfig(path=tmp_path / f"{len(keys)}-{id(keys)}.db"))
        book = PlanBook(store, keys, SITE, UNITS)
        out2, err2 = io.StringIO(), io.StringIO()
        rc = cmd_plan_load(env_file, lambda raw, b=book: b.handle_plan(raw)[0], out=out2, err=err2)
        assert rc == 0, err2.getvalue()
        assert json.loads(out2.getvalue())["status"] == "applied"
        rc = cmd_plan_load(env_file, lambda raw, b=book: b.handle_plan(raw)[0], out=out2, err=err2)
        assert rc == 2 and "replay" in err2.getvalue()
        store.close()
    assert cmd_plan_sign(tmp_path / "missing.json", tmp_path / "keys" / "ops-1.key.pem",
                         out=out, err=err) == 2
    with pytest.raises(ValueError, match=r"trusted_keys\[0\]"):
        trusted_keys_from_config([{"key_id": "k", "public_key": "nope/missing.pem"}])


def test_plan_rejected_when_store_cannot_persist(tmp_path: Path) -> None:
    store, book = _book(tmp_path / "s.db")
    store.connection.execute("PRAGMA query_only = ON")  # every write now fails
    try:
        ack, plan = book.handle_plan(envelope(plan_body("da-1"), KEY))
    except sqlite3.Error:  # pragma: no cover - must not raise
        pytest.fail("a store failure must become a rejection")
    assert ack.status == "rejected" and plan is None and "store" in ack.reason
    assert book.plan_for(time.time()) is None
    store.connection.execute("PRAGMA query_only = OFF")
    store.close()


@st.composite
def malformed_commands(draw: st.DrawFn) -> str:
    body: dict[str, Any] = {"schema": "parkedge.cmd/1", "cmd_id": "c-h", "site": SITE,
                            "issued_at": iso(1.8e9), "type": "override", "point": "bess1.p_set_kw",
                            "value": 10, "ttl_s": 60, "reason": "r"}
    key = draw(st.sampled_from(sorted(body)))
    if draw(st.booleans()):
        del body[key]
        if key == "reason" or key == "cmd_id":  # keep it broken: an empty reason is refused too
            body["ttl_s"] = -1
    else:
        body[key] = draw(json_values.filter(lambda v: v != body[key] and not (
            key == "value" and isinstance(v, int | float) and not isinstance(v, bool)
            and abs(v) < 1e9) and not (key == "reason" and isinstance(v, str) and v.strip())
            and not (key == "ttl_s" and isinstance(v, int | float) and not isinstance(v, bool)
                     and 1 <= v <= 86400)))
    return json.dumps(body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body_text=malformed_commands())
def test_hypothesis_malformed_commands_are_rejected(tmp_path: Path, body_text: str) -> None:
    store, book = _book(tmp_path / "c.db", clock=lambda: 1.8e9)
    try:
        ack, cmd = book.handle_command(envelope(body_text, KEY), now_s=1.8e9)
        assert ack.status == "rejected" and cmd is None and "\n" not in ack.reason
        assert store.connection.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
    finally:
        store.close()
        for p in tmp_path.glob("c.db*"):
            p.unlink()
