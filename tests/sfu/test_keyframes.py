"""Keyframes: late joiners get one fast; subscriber PLIs go upstream, throttled."""

from __future__ import annotations

import asyncio
import time


async def test_late_joiner_sees_every_video_within_one_second(make_client):
    publishers = [await make_client(i).join() for i in (1, 2)]
    for p in publishers:
        await p.publish()
    await publishers[0].wait_for(lambda: publishers[0].frames_from(2, "camera"), timeout=10)
    await asyncio.sleep(1.5)  # the publishers' first keyframes are long gone

    late = make_client(3)
    joined_at = time.monotonic()
    await late.join()
    for uid in (1, 2):
        frames = await late.wait_for(lambda u=uid: late.frames_from(u, "camera"), timeout=5)
        first_at, _, keyframe = frames[0]
        assert keyframe, "a subscriber must never get a delta frame first"
        assert first_at - joined_at <= 1.0, f"video of {uid} took {first_at - joined_at:.2f}s"
    assert all(p.video.keyframe_requests >= 1 for p in publishers)


async def test_subscriber_pli_reaches_publisher_and_is_throttled(make_client, server):
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    await alice.publish()
    await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) > 5, timeout=10)
    await asyncio.sleep(0.6)  # outside the initial request's quiet period
    before = alice.video.keyframe_requests

    # Bob's decoder "loses the picture" 30 times in a burst: real RTCP PLIs on his leg.
    receiver = next(
        t.receiver
        for t in bob.subscribe_pc.getTransceivers()
        if bob.track_map.get(t.mid) == (1, "camera")
    )
    from peerlearn_sfu import taps

    ssrc = taps.receiver_media_ssrc(receiver)
    for _ in range(30):
        await receiver._send_rtcp_pli(ssrc)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.4)
    publication = server.get_room("room").participants[1].publish.publications["camera"]
    got = alice.video.keyframe_requests - before
    # 30 PLIs within ~0.3 s -> one immediate PLI plus at most one coalesced after 500 ms.
    assert 1 <= got <= 2, got
    assert publication.keyframes.requested >= 30
    assert publication.keyframes.sent <= 4
