"""The daemon running the simulated parks with the real controller (edge.runner), over loopback.

What reaches the plant is checked at the plant (a spy on ``sim.park.apply``, after the
devices' own protocol decoding), so the sign convention is tested end to end: the
controller's passive setpoints, the site file's scale = -1, the drivers' codec, the
sims' tables and the physics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from parkfix import eventually, site_for
from parksim.runtime import SimPark

from edge.config import SiteConfig
from edge.control import Plan
from edge.ctl import request
from edge.daemon import Daemon
from edge.runner import ControlRunner

Park = Callable[..., Awaitable[SimPark]]
StartDaemon = Callable[[SiteConfig], Awaitable[Daemon]]


def _spy(sim: SimPark) -> list[tuple[str, float]]:
    received: list[tuple[str, float]] = []
    apply = sim.park.apply

    def spy(setpoints: Any) -> dict[str, str]:
        received.extend((k, float(v)) for k, v in setpoints.items())
        return apply(setpoints)

    sim.park.apply = spy  # type: ignore[method-assign]
    return received


def _reason(d: Daemon) -> str:
    return str(d.last_decision.get("reason", ""))


def _optimal_ticks(d: Daemon, n: int) -> Callable[[], bool]:
    start: list[int] = []

    def check() -> bool:
        if _reason(d) != "optimal":
            start.clear()
            return False
        if not start:
            start.append(d.ticks.count)
        return d.ticks.count - start[0] >= n
    return check


def _in_limits(sim: SimPark, received: list[tuple[str, float]]) -> None:
    limits = sim.park.setpoint_limits()
    assert received
    for key, v in received:
        lim = limits[key]
        assert lim.accepts(v), (key, v, lim)
    assert not sim.refused, sim.refused     # no device had to refuse anything


async def test_park_a_runs_optimal_and_setpoints_reach_the_devices(park: Park, daemon: StartDaemon,
                                                                   tmp_path: Path) -> None:
    sim = await park()
    received = _spy(sim)
    site = site_for(sim, tmp_path)
    d = await daemon(site)
    assert isinstance(d.controller, ControlRunner)
    await eventually(_optimal_ticks(d, 6), limit_s=60, what="six optimal ticks in a row")
    info = d.last_decision
    assert info["solve_status"] == "solved" and info["solve_ms"] is not None
    assert info["slack_kw"]["electric"] < 1.0 and info["fallbacks_total"] == {}
    # every writable point of the plant has been written, each accepted by its device
    written = {k for k, _ in received}
    for key in ("bess1.p_set_kw", "chp1.p_set_kw", "dg1.run_cmd", "dg1.p_set_kw", "absc1.q_set_kw",
                "ch1.q_set_kw", "pv1.w_max_lim_pct", "pv1.w_max_lim_ena", "wind1.p_limit_kw",
                "dc1.shed_frac"):
        assert key in written, key
    _in_limits(sim, received)
    # what the controller asked is what the devices hold (passive sign at both ends)
    def held() -> bool:   # the setpoints move a little each tick with the measured loads
        sp = d.controller.state.last_setpoints  # type: ignore[union-attr]
        return all(abs(sim.park.devices[k.split(".")[0]].sp[k.split(".")[1]] - sp[k]) <= 0.02 * abs(sp[k]) + 50.0
                   for k in ("chp1.p_set_kw", "wind1.p_limit_kw", "bess1.p_set_kw", "dg1.p_set_kw"))
    await eventually(held, what="devices holding the controller's setpoints")
    assert all(v <= 0 for k, v in received if k.endswith(("p_set_kw", "q_set_kw", "p_limit_kw"))
               and not k.startswith("bess1"))
    metric = d.metrics.control_reason.labels("optimal")._value.get()  # type: ignore[attr-defined]
    assert metric >= 6
    # `parkedge status` and `parkedge forecast` over the socket
    status = await asyncio.to_thread(request, site.cli.socket, {"cmd": "status"})
    assert status["ok"] and status["result"]["control"]["reason"] == "optimal"
    fc = await asyncio.to_thread(request, site.cli.socket, {"cmd": "forecast"})
    assert fc["ok"], fc
    targets = fc["result"]["targets"]
    assert {"pv", "wind", "office", "hospital", "data_centre", "heating", "cooling"} <= set(targets)
    for t in targets.values():
        # a fresh daemon has no week of history: it says what stands in
        assert t["source"].startswith(("persistence", "baseline")), t
        assert t["p50_kw"]["mean"] >= 0
    assert "history" in fc["text"] and "p50 next" in fc["text"]


async def test_battery_follows_the_controllers_sign(park: Park, daemon: StartDaemon, tmp_path: Path) -> None:
    """Under two plans (the next quarter hour cheap, then dear, against the rest of the
    horizon) the battery does what the controller asks, sign included. Which way the
    controller goes depends on the park's state (when the park already exports at its limit
    on wind, charging from the grid buys nothing), so the test asks that the device follow,
    in both directions of the plan, with the battery moving."""
    sim = await park()
    received = _spy(sim)
    d = await daemon(site_for(sim, tmp_path))
    runner = d.controller
    assert isinstance(runner, ControlRunner)
    n = 200

    def plan(cheap_now: bool) -> Plan:
        # the next quarter hour (from whenever it is asked) against the rest of the horizon
        first = np.arange(n) < 1
        imp = np.where(first == cheap_now, 0.05, 2.5)
        exp = np.where(first == cheap_now, 0.0, 2.0)
        return Plan("test", time.time() - 60, 900.0, imp, exp, np.full(n, 0.5), 3.65, 82.0)

    def follows() -> bool:
        want = runner.state.last_setpoints.get("bess1.p_set_kw", 0.0)
        held = sim.park.devices["bess1"].sp["p_set_kw"]
        measured = sim.values()["bess1.p_kw"]
        return (_reason(d) == "optimal" and d.last_decision.get("plan") == "test" and abs(want) > 200.0
                and abs(held - want) <= 0.01 * abs(want) + 5.0 and measured * want > 0
                and abs(measured - want) <= 0.05 * abs(want) + 20.0)

    for cheap_now in (True, False):
        runner.plan_provider = lambda c=cheap_now: plan(c)   # type: ignore[misc]
        await eventually(follows, limit_s=60, what=f"the battery following (cheap now: {cheap_now})")
    _in_limits(sim, received)


async def test_stale_soc_is_a_stated_fallback(park: Park, daemon: StartDaemon, tmp_path: Path) -> None:
    sim = await park()
    d = await daemon(site_for(sim, tmp_path))
    await eventually(_optimal_ticks(d, 2), limit_s=60, what="optimal ticks")
    sim.faults("bess1").offline = True
    await eventually(lambda: _reason(d) == "shifted_previous", limit_s=60, what="the shifted fallback")
    assert "bess1.soc_frac" in d.last_decision["detail"]
    assert d.last_decision["fallbacks_total"].get("shifted_previous", 0) >= 1
    sim.faults("bess1").clear()
    await eventually(lambda: _reason(d) == "optimal", limit_s=60, what="optimal again")


async def test_park_b_smoke(park: Park, daemon: StartDaemon, tmp_path: Path) -> None:
    sim = await park("park-b")
    received = _spy(sim)
    site = site_for(sim, tmp_path)
    d = await daemon(site)
    await eventually(_optimal_ticks(d, 4), limit_s=60, what="Park B optimal ticks")
    written = {k for k, _ in received}
    for key in ("dch1.mode_set", "dch1.q_set_kw", "ice1.mode_set", "ice1.melt_set_kw", "bch1.q_set_kw",
                "gb1.q_set_kw", "ehb1.p_set_kw", "ehb1.q_set_kw", "pv1.w_max_lim_ena"):
        assert key in written, key
    _in_limits(sim, received)
    sp = d.controller.state.last_setpoints   # type: ignore[union-attr]
    making = any(sp[f"dch{i}.mode_set"] == 2.0 for i in range(1, 5))
    assert sp["ice1.mode_set"] == (1.0 if making else 2.0)     # else melting or standing by
