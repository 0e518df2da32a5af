"""Progress-based waits: fail only after a stretch with no progress, never on a wall clock.

A busy CI machine (the other core hogged, 11 aiortc peers in one event loop) can make a room
slow without making it wrong; a fixed deadline then fails a correct product.  These helpers
wait while *something* keeps improving and fail after ``stall`` seconds without any change,
naming what was still missing. :func:`full_room` and :func:`more_frames` wait so for
media of headless clients (tests/sfu/client.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable

from tests.sfu.client import Client

STALL_S = 15.0  # no new frame anywhere for this long: the room is stuck


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


async def wait_progress(
    done: Callable[[], bool], progress: Callable[[], int], what: str, stall_s: float = STALL_S
) -> None:
    """Until ``done()``; fail only when ``progress()`` stops growing for ``stall_s``."""
    last, last_at = progress(), time.monotonic()
    while not done():
        await asyncio.sleep(0.02)
        now_progress = progress()
        if now_progress != last:
            last, last_at = now_progress, time.monotonic()
        elif time.monotonic() - last_at > stall_s:
            raise AssertionError(f"no progress for {stall_s:.0f}s waiting for {what}")


def total_frames(clients: list[Client]) -> int:
    return sum(len(r.frames) for c in clients for r in c.received.values())


async def full_room(
    make_client: Callable[..., Client], n: int, screen: bool = False
) -> list[Client]:
    """``n`` participants, all publishing; returns once everyone sees everyone's video."""
    clients = [await make_client(i + 1).join() for i in range(n)]
    for c in clients:
        await c.publish(screen=screen)
    kinds = ("camera", "screen") if screen else ("camera",)

    def complete() -> bool:
        return all(
            len(sub.frames_from(pub.identity.user_id, k)) >= 5
            for sub in clients
            for pub in clients
            if pub is not sub
            for k in kinds
        )

    await wait_progress(complete, lambda: total_frames(clients), "a complete room")
    return clients


async def more_frames(subs: list[Client], user_id: int, kind: str, count: int) -> None:
    """Until every one of ``subs`` has ``count`` more frames of that track."""
    base = {id(s): len(s.frames_from(user_id, kind)) for s in subs}
    await wait_progress(
        lambda: all(len(s.frames_from(user_id, kind)) >= base[id(s)] + count for s in subs),
        lambda: total_frames(subs),
        f"{count} more {kind} frames of user {user_id}",
    )
