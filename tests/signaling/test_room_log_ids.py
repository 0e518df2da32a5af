"""Log lines of a room on the real app carry the room's id and the request id of the socket
that opened it (issue 13): here the SFU's periodic stats line, written by the room's ticker
task, which the first join started."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.signaling.support import World, join
from web.logcontext import ContextFilter


async def test_room_lines_carry_the_room_id(
    world_factory: Callable[..., Awaitable[World]], caplog: pytest.LogCaptureFixture
) -> None:
    world = await world_factory(sfu={"stats_log_interval_s": 0.2})
    sid = await world.live_session()
    caplog.handler.addFilter(ContextFilter())

    def stats_lines() -> list[Any]:
        return [r for r in caplog.records if r.getMessage().startswith(f"room {sid} stats")]

    with caplog.at_level(logging.INFO, logger="peerlearn_sfu"):
        mentor = await join(world, "mentor", sid)
        for _ in range(200):
            if stats_lines():
                break
            await asyncio.sleep(0.05)
        await mentor.close()
    lines = stats_lines()
    assert lines, "the room never logged its stats"
    for record in lines:
        assert record.room_id == sid
        assert len(record.request_id) == 32  # the socket's own, generated
