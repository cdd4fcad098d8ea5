"""A bounded await that never loses a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns the inner result and drops a
cancellation that arrives in the same loop iteration as the inner completion
(fixed in 3.12). A device worker that swallows its cancel polls for ever after
the daemon stopped: measured here by the benchmark as a hang at shutdown.
``asyncio.timeout`` does not have that flaw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(aw: Awaitable[T], limit_s: float | None) -> T:
    """``await aw``, raising TimeoutError after ``limit_s`` seconds (None: no limit)."""
    async with asyncio.timeout(limit_s):
        return await aw
