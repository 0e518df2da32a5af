"""Background jobs: loops that run one pass every so often until the platform closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Pass = Callable[[], Awaitable[object]]


async def run_every(seconds: float, job: Pass, what: str) -> None:
    """Run ``job`` now and then every ``seconds`` until cancelled; a failed pass is logged
    and the next one runs on time."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background pass failed: %s", what)
        await asyncio.sleep(seconds)


class Jobs:
    """The long-lived background loops of one process, cancelled together."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` (e.g. a ``run_every`` loop) as a task named ``name``."""

        async def run() -> None:
            await loop()

        self._tasks.append(asyncio.create_task(run(), name=name))

    @property
    def running(self) -> list[str]:
        """Names of the loops still running."""
        return [task.get_name() for task in self._tasks if not task.done()]

    async def stop(self) -> None:
        """Cancel every loop and wait for it; a loop that failed is not re-raised here."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
