"""The site as the harness sees it: plant model, tariff and point limits from the site file.

The contract (docs/control.md, firmware-sims/README.md): the site's point keys are
the physics' setpoint and measurement keys and what ``edge.control.decide`` emits,
in the same units and signs. ``[assets]`` and ``[tariff]`` give the controller's
plant model; ``[[devices.points]]`` give each writable point's limits and default.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edge.control import PlantModel, PointLimit, Tariff, plant_from_assets, tariff_from_table
from edge.control.safety import plant_limits

__all__ = ["EvalSite", "load_eval_site"]


@dataclass(frozen=True)
class EvalSite:
    site: str                      # "park-a" | "park-b"
    timezone: str
    plant: PlantModel
    tariff: Tariff
    limits: Mapping[str, PointLimit]   # the site's limits of the plant's set points
    units: Mapping[str, str]           # point key -> unit (for the snapshot)
    # [control] layout: the QP's step spans (hours, multiple of step_min); None: default
    layout: tuple[tuple[float, int], ...] | None = None
    # [control] store_margin_frac: stored heat and cooling planned towards the P90
    store_margin_frac: float = 0.4
    # [control] renewable_margin_frac: PV and wind planned towards the P90 where export-limited
    renewable_margin_frac: float = 1.0
    # [control] horizon_h: the QP's horizon
    horizon_h: float = 24.0


def site_file(site: str) -> Path:
    return Path(str(resources.files("edge") / "sites" / f"{site}.toml"))


def load_eval_site(site: str, *, pv_ac_kw: float | None = None,
                   path: str | Path | None = None) -> EvalSite:
    """Read ``edge/sites/<site>.toml`` (or ``path``); ``pv_ac_kw`` re-rates the PV asset."""
    p = Path(path) if path else site_file(site)
    doc = tomllib.loads(p.read_text(encoding="utf-8"))
    tz = doc.get("site", {}).get("timezone", "UTC")
    assets = doc.get("assets")
    if not assets:
        raise ValueError(f"{p}: no [assets]: the controller's plant model is missing")
    assets = copy.deepcopy(dict(assets))
    if pv_ac_kw is not None:
        for tab in assets.get("pv", {}).values():
            tab["p_rated_kw"] = float(pv_ac_kw)     # the inverter's AC rating (WMax)
    plant = plant_from_assets(assets, timezone=tz)
    tariff = tariff_from_table(doc.get("tariff", {}))
    wanted = plant_limits(plant)
    limits: dict[str, PointLimit] = {}
    units: dict[str, str] = {}
    for dev in doc.get("devices", []):
        for pt in dev.get("points", []):
            key = f"{dev['name']}.{pt['name']}"
            units[key] = str(pt.get("unit", ""))
            # heartbeats and other writable points that are not the plant's set points are
            # the actuation layer's business, not control's
            if key not in wanted or pt.get("access", "r") not in ("rw", "w") or "limits" not in pt:
                continue
            lim = pt["limits"]
            ramp = lim.get("ramp_per_s")
            limits[key] = PointLimit(float(lim.get("min", -math.inf)), float(lim.get("max", math.inf)),
                                     float(ramp) if ramp is not None else math.inf,
                                     float(pt.get("default", wanted[key].default)))
    control = doc.get("control", {})
    raw_layout = control.get("layout")
    layout = tuple((float(h), int(m)) for h, m in raw_layout) if raw_layout else None
    return EvalSite(site, tz, plant, tariff, limits, units, layout,
                    float(control.get("store_margin_frac", 0.4)),
                    float(control.get("renewable_margin_frac", 1.0)),
                    float(control.get("horizon_h", 24.0)))
