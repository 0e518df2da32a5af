"""Temporal layers with real Chromium (issue 15, points 1-2): Chromium publishes its camera
as VP8 L1T3, and a subscriber given only the base layer keeps decoding, at a quarter of the
frame rate, then gets every layer back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import BrowserPage, LiveServer, TestUser
from tests.e2e.room_helpers import INBOUND_VIDEO_JS, enter_room, live_session, wait_decoding
from web.keys import SFU

pytestmark = pytest.mark.browser


def decoded(bp: BrowserPage) -> int:
    return sum(s["decoded"] for s in bp.page.evaluate(INBOUND_VIDEO_JS))


def fps(bp: BrowserPage, seconds: float = 3.0) -> float:
    before, t0 = decoded(bp), time.monotonic()
    bp.page.wait_for_timeout(int(seconds * 1000))
    return (decoded(bp) - before) / (time.monotonic() - t0)


def test_chromium_sends_l1t3_and_a_base_layer_subscriber_keeps_decoding(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    mentor = make_user("mentor", first_name="Grace", last_name="Hopper")
    ada = make_user("learner", first_name="Ada", last_name="Byron")
    sid = live_session(live_server, mentor, [ada])
    pages = {"mentor": new_page("mentor", user=mentor), "ada": new_page("ada", user=ada)}
    for bp in pages.values():
        enter_room(bp, sid)
    for bp in pages.values():
        wait_decoding(bp, others=1)
    room: Any = live_server.app[SFU].get_room(sid)
    for bp in pages.values():  # the browser took the mode it was asked for
        assert bp.page.evaluate("() => window.peerlearnRoom.publish.cameraLayers") == "L1T3"

    async def camera_slot() -> Any:
        pub = room.participants[mentor.id].publish.publications["camera"]
        assert pub.bitrate.layered, "Chromium's camera is not sending temporal layers"
        # The allocator would follow Ada's (loopback: ample) estimate; pin her target here.
        room.ticker._allocate = lambda now: None
        return next(s for s in room.participants[ada.id].subscribe.slots if s.publication is pub)

    slot = live_server.call(lambda _platform: camera_slot())
    ada_page = pages["ada"]
    full = fps(ada_page)

    async def target(layer: int) -> None:
        slot.track.target_layer = layer
        await asyncio.sleep(0)

    live_server.call(lambda _platform: target(0))
    ada_page.page.wait_for_timeout(500)
    base = fps(ada_page)
    assert 0 < base < 0.6 * full, (full, base)
    live_server.call(lambda _platform: target(2))
    # Up at a layer-sync frame, or with the keyframe asked after UP_SWITCH_WAIT_S (2 s).
    ada_page.page.wait_for_timeout(4500)
    back = fps(ada_page)
    assert back > 0.8 * full, (full, base, back, slot.track.layer, slot.track.layer_switches)
    assert slot.track.layer == 2 and slot.track.layer_switches >= 2
