"""A validated cloud plan (edge.plans) as the controller's input (edge.control.Plan).

The plan's weights are multipliers on the site's own objective (1.0 = the
site's default): ``green`` scales the weight on non-green supply, ``tracking``
the plan-tracking term, ``smooth`` the smoothing term, ``carbon`` the carbon
price. ``cost`` and ``wear`` are accepted and recorded but not yet acted on:
the energy prices themselves come from the plan.

Targets: the grid exchange targets (``grid_import_kw``, ``grid_export_kw``)
are tracked; ``<unit>.soc_frac``, ``<unit>.p_kw`` and ``green_share_frac`` are
validated and stored with the plan but not yet tracked by the controller.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edge.control import Plan
from edge.control.plant import Objective
from edge.plans import ValidatedPlan

# A tracking weight of 1.0 when the site sets none: about 1 CNY for 1 MW off for an hour.
_BASE_TRACK_CNY_PER_KW2 = 1e-6


def control_plan(vp: ValidatedPlan, site_objective: Objective, *, diesel_cny_per_l: float) -> Plan:
    w = vp.weights
    objective = dataclasses.replace(
        site_objective,
        non_green_cny_per_kwh=site_objective.non_green_cny_per_kwh * w.get("green", 1.0),
        smooth_cny_per_kw2=site_objective.smooth_cny_per_kw2 * w.get("smooth", 1.0),
        track_cny_per_kw2=(site_objective.track_cny_per_kw2 or _BASE_TRACK_CNY_PER_KW2) * w.get("tracking", 1.0),
    )
    target = None
    if "grid_import_kw" in vp.targets or "grid_export_kw" in vp.targets:
        # Passive sign: export is positive, import negative; NaN where the plan sets none.
        imp = vp.targets.get("grid_import_kw", np.full(vp.steps, np.nan))
        exp = vp.targets.get("grid_export_kw", np.full(vp.steps, np.nan))
        target = np.where(np.isfinite(imp), -imp, exp)
    return Plan(
        plan_id=vp.plan_id, start_ts=vp.valid_from_s, step_s=float(vp.step_s),
        import_cny_per_kwh=np.asarray(vp.import_price_cny_per_kwh, dtype=float),
        export_cny_per_kwh=np.asarray(vp.export_price_cny_per_kwh, dtype=float),
        grid_co2_kg_per_kwh=np.asarray(vp.grid_co2_kg_per_kwh, dtype=float),
        gas_cny_per_m3=vp.gas_cny_per_m3, carbon_cny_per_t=vp.carbon_cny_per_t * w.get("carbon", 1.0),
        diesel_cny_per_l=diesel_cny_per_l, valid_until_ts=vp.valid_until_s, grid_p_target_kw=target,
        commitments={u: np.asarray(on, dtype=float) for u, on in vp.commitments.items()},
        objective=objective,
        weather={k: np.asarray(v, dtype=float) for k, v in vp.weather.items()},
    )
