"""Decisions to the points the devices take: one place for every asset's setpoint form.

The QP and the rule tables decide in kW magnitudes; a device takes its own
form: a kW setpoint in the passive sign, a SunSpec percentage with an enable
flag, a run command, a fraction of a load, an operating mode. Both the
optimiser and the rules go through these functions, so a device sees the same
form whichever of them decided.
"""

from __future__ import annotations

from edge.control.commitment import TRACE_KW
from edge.control.plant import Diesel, DualChiller, ElectricBoiler, IceStore, Load, Renewable

__all__ = ["ICE_CHARGE", "ICE_IDLE", "ICE_MELT", "diesel_points", "electric_boiler_points",
           "ice_store_points", "renewable_points", "shed_points"]

ICE_IDLE, ICE_CHARGE, ICE_MELT = 0.0, 1.0, 2.0


def renewable_points(r: Renewable, p_kw: float | None, available_kw: float) -> dict[str, float]:
    """PV or wind delivering ``p_kw`` (None: no limit) of ``available_kw``.

    A limit is written only when the plan curtails more than a solver trace
    (``p_kw`` below what is available by ``commitment.TRACE_KW``, 10 kW, or more);
    otherwise the plant runs free: ``-p_rated_kw``, or 100 % with the SunSpec limit
    disabled. ``available_kw`` is a forecast: a limit at the plan's output also
    curtails whatever the plant gives above it. With a 1 kW tolerance, OSQP leaving
    the PV a few kW under its bound had the PV capped at its forecast while Park B
    imported at the peak price (968 kWh curtailed in the summer fortnight at 15-min
    steps; 1.2 MW of 1.45 MW available at one quarter hour of a day the forecast was low).
    """
    limit = p_kw is not None and p_kw <= available_kw - TRACE_KW
    lim_kw = max(p_kw, 0.0) if limit and p_kw is not None else r.p_rated_kw
    if r.limit_pct_point:
        pct = min(max(100.0 * lim_kw / r.p_rated_kw, 0.0), 100.0)
        return {r.limit_pct_point: pct if limit else 100.0,
                r.limit_ena_point: 1.0 if limit else 0.0}
    return {r.p_set_point: -lim_kw}


def diesel_points(d: Diesel, p_kw: float, committed: bool) -> dict[str, float]:
    """A genset's output setpoint (passive, <= 0) and its run command (1 while committed)."""
    run = committed or p_kw > 0.0
    sp = {d.p_set_point: -p_kw if run else 0.0}
    if d.run_set_point:
        sp[d.run_set_point] = 1.0 if run else 0.0
    return sp


def shed_points(ld: Load, shed_kw: float, load_kw: float) -> dict[str, float]:
    """``shed_kw`` of a load switched off: kW, or a fraction of its (unshed) ``load_kw``."""
    if ld.shed_frac_point:
        frac = shed_kw / load_kw if load_kw > 1e-6 else 0.0
        return {ld.shed_frac_point: min(max(frac, 0.0), ld.interruptible_frac)}
    if ld.shed_set_point:
        return {ld.shed_set_point: max(shed_kw, 0.0)}
    return {}


def ice_store_points(s: IceStore, melt_kw: float, makers: list[tuple[DualChiller, float]],
                     *, standby: bool = False) -> dict[str, float]:
    """The store's melt setpoint (passive, <= 0) and its mode from its chillers' modes.

    The store does one thing at a time: it charges when any of its chillers is in
    ice mode (their output goes nowhere otherwise), melts when melt is asked for,
    else idles; with ``standby`` it is left in melt mode at its setpoint (0 included)
    rather than idle, so that it picks up cooling the running chillers cannot.
    """
    charging = any(mode == 2.0 for _, mode in makers)
    melting = not charging and (melt_kw > 0.0 or standby)
    sp = {s.melt_set_point: -melt_kw if melting else 0.0}
    if s.mode_set_point:
        sp[s.mode_set_point] = ICE_CHARGE if charging else ICE_MELT if melting else ICE_IDLE
    return sp


def electric_boiler_points(e: ElectricBoiler, q_kw: float, p_kw: float | None = None
                           ) -> dict[str, float]:
    """Heat delivered (passive, <= 0); for a storage boiler also its charging power (>= 0)."""
    sp = {e.q_set_point: -q_kw}
    if e.stored and e.p_set_point:
        sp[e.p_set_point] = max(p_kw if p_kw is not None else q_kw / e.eta, 0.0)
    return sp
