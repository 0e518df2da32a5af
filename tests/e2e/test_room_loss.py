"""A real browser's uplink loses a camera packet: the headless participant watching it
must not see that camera freeze (Chromium's RTX has to reach the right receiver).

The browser's uplink cannot be shaped from here (no netem), so the packet is dropped on
the server's receive side, after SRTP, by the test-only filter behind
``taps.install_receive_filter`` (tests/sfu/loss.py ``attach_server_uplink``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import BrowserPage, LiveServer, TestUser
from tests.e2e.room_helpers import enter_room, live_session
from tests.sfu import loss
from tests.sfu.client import WsClient
from tests.sfu.media import make_clip
from web.keys import SFU

pytestmark = pytest.mark.browser

STALL_S = 20.0


class Watcher:
    """One headless participant on its own event loop (sync Playwright owns the main one)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: WsClient | None = None

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.client is not None:
            self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def watcher() -> Any:
    w = Watcher()
    yield w
    w.close()


def wait_frames(client: WsClient, user_id: int, count: int, what: str) -> None:
    """Until ``count`` camera frames of ``user_id``; fails only after STALL_S without one."""
    last, last_at = -1, time.monotonic()
    while True:
        n = len(client.frames_from(user_id, "camera"))
        if n >= count:
            return
        if n != last:
            last, last_at = n, time.monotonic()
        elif time.monotonic() - last_at > STALL_S:
            raise AssertionError(f"no camera frame for {STALL_S:.0f}s waiting for {what} ({n})")
        time.sleep(0.05)


def test_a_lost_packet_on_a_browsers_uplink_does_not_freeze_its_camera(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
    watcher: Watcher,
) -> None:
    mentor = make_user("mentor", first_name="Rosa", last_name="Uplink")
    learner = make_user("learner", first_name="Watch")
    sid = live_session(live_server, mentor, [learner])
    bp = new_page("mentor", user=mentor)
    enter_room(bp, sid)

    clip = make_clip(seconds=4, fps=15, width=160, height=120, bitrate=100_000)
    client = watcher.client = WsClient(live_server.url, sid, learner.token, learner.id, clip)
    watcher.run(client.join())
    wait_frames(client, mentor.id, 30, "the browser's camera")

    shim = loss.LossShim(seed=7)

    async def shape(_: Any) -> Any:
        room = live_server.app[SFU].get_room(sid)
        pc = room.participants[mentor.id].publish.pc
        shim.attach_server_uplink(pc, mentor.id)
        return shim.drop_next(loss.camera)

    rule = live_server.call(shape)
    base = len(client.frames_from(mentor.id, "camera"))
    wait_frames(client, mentor.id, base + 10, "the drop")
    assert rule.done, f"no camera packet of the browser was dropped (seen: {shim.seen})"
    dropped_at, info = rule.dropped[0]
    wait_frames(client, mentor.id, len(client.frames_from(mentor.id, "camera")) + 30, "recovery")

    times = [t for t, _, _ in client.frames_from(mentor.id, "camera")]
    freeze = loss.longest_freeze(times, dropped_at - 0.5, dropped_at + 1.0)

    async def repair(_: Any) -> tuple[int, int]:
        room = live_server.app[SFU].get_room(sid)
        r = room.participants[mentor.id].publish.publications["camera"].repair
        return r.tracker.repaired, r.skipped

    repaired, skipped = live_server.call(repair)
    assert freeze < 0.3, f"the browser's camera froze {freeze:.2f}s after losing {info}"
    assert repaired >= 1 and skipped == 0, (repaired, skipped)
