"""Fixtures: a real Mosquitto broker (installed with apt-get when missing, never skipped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import Broker, make_tls_files


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    files = make_tls_files(tmp_path / "pki")
    b = Broker(tmp_path / "broker-tls", tls=files)
    b.start()
    yield b
    b.stop()
