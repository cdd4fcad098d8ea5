"""Shared test helpers live in tests/support (the broker, the park fixtures' helpers)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "support"))
