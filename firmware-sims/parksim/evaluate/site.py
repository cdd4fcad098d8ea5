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

from edge.config import ControlConfig, load_site
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
    # [control] as the daemon reads and validates it (horizon, step layout, margins)
    control: ControlConfig


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
    return EvalSite(site, tz, plant, tariff, limits, units, load_site(p).control)
