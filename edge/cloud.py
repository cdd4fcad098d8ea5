"""The daemon's side of the cloud: the plans in force, commands, and the MQTT uplink.

Plans and commands arrive over MQTT (edge.sync) or by hand (`parkedge plan
load`); both go through the same PlanBook, so a plan loaded at the gateway is
validated, signed-checked, stored and acked exactly like one from the cloud.
Commands act through actuation, so a remote override is clamped and audited
like a local one.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from edge import logs
from edge.actuation import Actuation, UnknownPoint
from edge.config import SiteConfig
from edge.control import Plan
from edge.ctl import BadRequest, Handler
from edge.model import utc_text
from edge.plan_input import control_plan
from edge.plans import Ack, Command, DemandResponseCommand, ModeCommand, OverrideCommand, PlanBook, ValidatedPlan
from edge.signing import trusted_keys_from_config
from edge.store import Event, Store
from edge.sync import MqttConfig, Uplink, plan_handler

log = logs.get("cloud")
_EXPIRE_EVERY_S = 10.0


class CloudLink:
    def __init__(self, site: SiteConfig, store: Store, actuation: Actuation) -> None:
        self.site = site
        self.actuation = actuation
        self.store = store
        keys = trusted_keys_from_config(site.trusted_keys, site.file.parent)
        plant = site.plant
        # Units a plan may name: switched units (commitments) and stores (SOC targets).
        units = [u.name for u in (*plant.switched, *plant.batteries, *plant.ice_stores)] if plant else []
        writable = [f"{d.name}.{p.name}" for d in site.devices for p in d.points if p.writable]
        self.book = PlanBook(store, keys, site.id, units, known_points=writable)
        self.demand_response: list[DemandResponseCommand] = []
        m = site.mqtt
        self.uplink = Uplink(
            MqttConfig(site=site.id, enabled=m.enabled, host=m.host, port=m.port, tls_ca=m.tls_ca,
                       tls_cert=m.tls_cert, tls_key=m.tls_key, client_id=m.client_id, keepalive_s=m.keepalive_s),
            store, plan_handler(self.book, self._on_plan_applied), self._on_command, state_extra=self._state)
        self._next_expire = 0.0
        self._cached: tuple[str, Plan] | None = None

    # ------------------------------------------------------------------ the tick's side

    def after_commit(self, ts: float) -> None:
        """Called after each tick's commit: wake the uplink, expire old plans now and then."""
        self.uplink.notify()
        if ts >= self._next_expire:
            self._next_expire = ts + _EXPIRE_EVERY_S
            for plan_id in self.book.expire(ts):
                log.info("plan_expired", plan_id=plan_id, site=self.site.id)

    def plan_for(self, ts: float) -> Plan | None:
        """The plan in force as the controller's input; None: autonomous on the site's tariff."""
        vp = self.book.plan_for(ts)
        if vp is None or self.site.plant is None:
            return None
        if self._cached is None or self._cached[0] != vp.plan_id:
            diesel = self.site.tariff.diesel_cny_per_l if self.site.tariff else 7.5
            self._cached = (vp.plan_id, control_plan(vp, self.site.plant.objective, diesel_cny_per_l=diesel))
        return self._cached[1]

    def plan_id(self) -> str | None:
        vp = self.book.plan_for(time.time())
        return vp.plan_id if vp else None

    def _on_plan_applied(self, plan: ValidatedPlan) -> None:
        log.info("plan_applied", plan_id=plan.plan_id, key_id=plan.key_id, site=self.site.id,
                 valid_from=plan.valid_from_s, valid_until=plan.valid_until_s)

    def _on_command(self, raw: bytes) -> Ack:
        ack, _cmd = self.book.handle_command(raw, apply=self._apply_command)
        return ack

    def _apply_command(self, cmd: Command) -> str | None:
        """Act on a validated command; a returned string is the refusal reason."""
        now = time.time()
        try:
            if isinstance(cmd, ModeCommand):
                self.actuation.set_mode(cmd.mode, ts=now, who=cmd.actor, reason=cmd.reason)
            elif isinstance(cmd, OverrideCommand):
                self.actuation.override(cmd.point, cmd.value, ttl_s=cmd.ttl_s, reason=cmd.reason,
                                        who=cmd.actor, ts=now)
            elif isinstance(cmd, DemandResponseCommand):
                # Recorded and reported; the controller does not yet price DR events (docs/mqtt.md).
                self.demand_response.append(cmd)
                self.store.add_events([Event(now, "demand_response", cmd.actor,
                                             f"{cmd.event_id}: -{cmd.reduction_kw} kW "
                                             f"{cmd.start_s:.0f}..{cmd.end_s:.0f} at {cmd.price_cny_per_kwh} CNY/kWh")])
        except (UnknownPoint, ValueError) as e:
            return str(e)
        return None

    def _state(self) -> dict[str, Any]:
        return {"mode": self.actuation.mode, "plan_id": self.plan_id(),
                "overrides": len(self.actuation.overrides)}

    # ------------------------------------------------------------------ local socket

    def handlers(self) -> dict[str, Handler]:
        return {"plan": self._h_plan}

    async def _h_plan(self, req: dict[str, Any]) -> tuple[Any, str | None]:
        action = req.get("action")
        if action == "show":
            vp = self.book.plan_for(time.time())
            if vp is None:
                return {"plan": None}, "no plan in force: autonomous on the site's own tariff"
            doc = {"plan_id": vp.plan_id, "key_id": vp.key_id, "issued_at_s": vp.issued_at_s,
                   "valid_from_s": vp.valid_from_s, "valid_until_s": vp.valid_until_s, "step_s": vp.step_s,
                   "steps": vp.steps, "commitments": sorted(vp.commitments), "targets": sorted(vp.targets),
                   "weights": dict(vp.weights)}
            return doc, (f"plan {vp.plan_id} (key {vp.key_id}) in force until {utc_text(vp.valid_until_s)}, "
                         f"{vp.steps} steps of {vp.step_s} s")
        if action == "load":
            path = Path(str(req.get("file", "")))
            try:
                raw = await asyncio.to_thread(path.read_bytes)
            except OSError as e:
                raise BadRequest(f"{path}: cannot read: {e.strerror}") from None
            ack, _plan = self.book.handle_plan(raw)
            if ack.status != "applied":
                raise BadRequest(f"plan rejected: {ack.reason} ({path})")
            return {"id": ack.id, "status": ack.status}, f"plan {ack.id} applied"
        raise BadRequest(f"plan action must be show or load, got {action!r}")
