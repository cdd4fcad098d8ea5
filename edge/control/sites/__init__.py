"""The reference parks' ``[assets]`` and ``[tariff]`` tables, shipped with the package.

Reading these package files is the one exception to "no I/O" in edge.control:
they are data of the code, used by the benchmark and the tests until the site
files under edge/sites/ carry the same tables.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

__all__ = ["park_assets", "park_tariff"]


def park_assets(park: str) -> dict[str, Any]:
    """``[assets]`` of ``"a"`` or ``"b"``."""
    text = resources.files(__package__).joinpath(f"park_{park}_assets.toml").read_text()
    out: dict[str, Any] = tomllib.loads(text)["assets"]
    return out


def park_tariff(park: str) -> dict[str, Any]:
    """``[tariff]`` of ``"a"`` or ``"b"`` (SCENARIOS.md; Park B's July-August periods)."""
    text = resources.files(__package__).joinpath(f"park_{park}_assets.toml").read_text()
    out: dict[str, Any] = tomllib.loads(text)["tariff"]
    return out
