"""A full room: three real browsers in the room page and seven headless aiortc
participants (joining through the same signaling WebSocket) fill it to ten people.
Every browser decodes all nine other videos; every headless participant receives all
nine other cameras, starting with a keyframe."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import BrowserPage, LiveServer, TestUser
from tests.e2e.room_helpers import enter_room, live_session, wait_decoding
from tests.sfu.client import WsClient
from tests.sfu.media import make_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BROWSERS = 3
HEADLESS = 7


class HeadlessCrowd:
    """aiortc participants on their own event loop (sync Playwright owns the main one)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clients: list[WsClient] = []

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def close_all() -> None:
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

        self.run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def crowd() -> Any:
    crowd = HeadlessCrowd()
    yield crowd
    crowd.close()


@pytest.mark.xfail(
    strict=False,
    reason="known bug, also at the previous main on this machine: in a room of 8+ headless "
    "participants sharing one process, ICE consent checks on renegotiated subscribe "
    "connections go unanswered and connections close ~30-40 s in (issue 8 note)",
)
def test_ten_people_each_decode_every_other_video(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
    crowd: HeadlessCrowd,
) -> None:
    mentor = make_user("mentor", first_name="Mina", last_name="Mentor")
    seats = BROWSERS - 1 + HEADLESS
    learners = [make_user("learner", first_name=f"Learner{i}") for i in range(seats)]
    sid = live_session(live_server, mentor, learners)
    in_browsers = [mentor, *learners[: BROWSERS - 1]]
    headless = learners[BROWSERS - 1 :]

    pages = [new_page(f"browser{i}", user=u) for i, u in enumerate(in_browsers)]
    for bp in pages:
        enter_room(bp, sid)
    # Light headless publishers: they share one process (and the GIL) with the server and
    # seven decoding subscribers; the browsers bring full-rate cameras.
    clip = make_clip(seconds=8, fps=5, width=320, height=180, bitrate=80_000)

    async def join_all() -> None:
        for user in headless:
            client = WsClient(live_server.url, sid, user.token, user.id, clip)
            crowd.clients.append(client)
            await client.join()
            await client.publish()

    crowd.run(join_all())
    everyone = {u.id for u in in_browsers + headless}
    assert len(everyone) == BROWSERS + HEADLESS

    for bp in pages:
        stats = wait_decoding(bp, others=len(everyone) - 1, timeout_s=60)
        assert len([s for s in stats if s["decoded"] > 0]) == len(everyone) - 1, (bp.name, stats)

    async def headless_views() -> dict[int, set[int]]:
        async def complete(client: WsClient) -> set[int]:
            others = everyone - {client.identity.user_id}

            def senders() -> set[int]:
                return {
                    uid
                    for uid in others
                    if (frames := client.frames_from(uid, "camera")) and frames[0][2]
                }

            return await client.wait_for(lambda: senders() if senders() == others else None, 60)

        results = await asyncio.gather(*(complete(c) for c in crowd.clients))
        return {c.identity.user_id: got for c, got in zip(crowd.clients, results, strict=True)}

    for user_id, senders in crowd.run(headless_views(), timeout=90).items():
        assert senders == everyone - {user_id}
    pages[0].shot("ten-people")
