"""Progress-based waits: fail only after a stretch with no progress, never on a wall clock.

A busy CI machine (the other core hogged, 11 aiortc peers in one event loop) can make a room
slow without making it wrong; a fixed deadline then fails a correct product.  These helpers
wait while *something* keeps improving and fail after ``stall`` seconds without any change,
naming what was still missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable


async def wait_for_all(
    pending: Callable[[], Iterable[Hashable]],
    *,
    stall: float = 20.0,
    poll: float = 0.1,
    what: str = "condition",
) -> None:
    """Wait until ``pending()`` is empty; fail after ``stall`` s in which it did not shrink."""
    best: int | None = None
    last_progress = time.monotonic()
    while True:
        missing = set(pending())
        if not missing:
            return
        if best is None or len(missing) < best:
            best, last_progress = len(missing), time.monotonic()
        elif time.monotonic() - last_progress > stall:
            shown = sorted(map(repr, missing))[:12]
            raise AssertionError(
                f"no progress on {what} for {stall:.0f} s; still missing {len(missing)}: {shown}"
            )
        await asyncio.sleep(poll)
