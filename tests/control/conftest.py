"""Fixtures: the reference parks with a controller config each (no timing, deterministic)."""

from __future__ import annotations

import pytest

from edge.control.scenario import Park, park


@pytest.fixture(scope="session")
def park_a() -> Park:
    return park("a", deadline_s=0.0)


@pytest.fixture(scope="session")
def park_b() -> Park:
    return park("b", deadline_s=0.0)
