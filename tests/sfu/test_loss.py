"""Packets lost for real (tests/sfu/loss.py) on publishers' uplinks and subscribers'
downlinks, camera and screen share: what the other participants see.

Waits are progress-based (a test fails only after ``progress.STALL_S`` without new frames), and
every bound is about the media timeline (gaps between frame arrivals), not the run time.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from peerlearn_sfu import taps
from tests.sfu import loss
from tests.sfu.client import Client
from tests.sfu.progress import full_room, more_frames, total_frames, wait_progress

SINGLE_LOSS_FREEZE_S = 0.3
RANDOM_LOSS_FREEZE_S = 1.0


def frame_times(sub: Client, user_id: int, kind: str) -> list[float]:
    return [t for t, _, _ in sub.frames_from(user_id, kind)]


def publication(server: Any, user_id: int, kind: str) -> Any:
    return server.get_room("room").participants[user_id].publish.publications[kind]


# ---------------------------------------------------------------------------- one loss


@pytest.mark.parametrize(
    ("direction", "kind"),
    [("up", "camera"), ("up", "screen"), ("down", "camera"), ("down", "screen")],
)
async def test_one_lost_packet_is_repaired_without_a_freeze(make_client, server, direction, kind):
    clients = await full_room(make_client, 3, screen=kind == "screen")
    alice, others = clients[0], clients[1:]
    shim = loss.LossShim(seed=1)
    if direction == "up":
        shim.attach_uplink(alice.publish_pc)
        watchers = others
        rule = shim.drop_next(loss.media_of(kind))
    else:
        bob = others[0]
        shim.attach_downlink(bob.subscribe_pc, lambda: bob.track_map)
        watchers = [bob]
        rule = shim.drop_next(loss.media_of(kind, alice.identity.user_id))
    await more_frames(watchers, 1, kind, 50)  # 2.5 s of steady stream before the loss
    await wait_progress(lambda: rule.done, lambda: total_frames(clients), "the drop")
    dropped_at, info = rule.dropped[0]
    await more_frames(watchers, 1, kind, 20)

    # Repaired by retransmission, never given up (the load-independent fact)...
    if direction == "up":
        repair = publication(server, 1, kind).repair
        assert repair.tracker.repaired >= 1, "the server's NACK was never answered"
        assert repair.skipped == 0
    else:
        leg = server.get_room("room").participants[bob.identity.user_id].subscribe
        assert leg.nack.counters.sent >= 1, "the server never retransmitted"
    for sub in watchers:
        assert all(r.skipped == 0 for r in sub.repairs), "a subscriber gave up on a gap"
        # ... and no freeze beyond what the machine's load already caused before it.
        times = frame_times(sub, 1, kind)
        freeze = loss.longest_freeze(times, dropped_at - 0.5, dropped_at + 1)
        bound = SINGLE_LOSS_FREEZE_S + loss.load_allowance(times, dropped_at - 0.5)
        assert freeze < bound, (
            f"user {sub.identity.user_id} saw {kind} of user 1 frozen {freeze:.2f}s "
            f"(bound {bound:.2f}s) after losing {info}"
        )


async def test_a_packet_that_stays_lost_gets_a_keyframe_within_half_a_second(make_client, server):
    alice, bob = await full_room(make_client, 2)
    shim = loss.LossShim(seed=2)
    shim.attach_uplink(alice.publish_pc)
    lost: dict[str, int] = {}

    def packet_and_its_retransmissions(p: loss.RtpInfo) -> bool:
        if not lost and loss.camera(p):
            lost["seq"] = p.seq
            return True
        return bool(lost) and p.rtx and p.kind == "camera" and p.osn == lost["seq"]

    pub = publication(server, 1, "camera")
    await more_frames([bob], 1, "camera", 25)  # well outside the join's keyframe quiet time
    sent_before = pub.keyframes.sent
    rule = shim.drop_next(packet_and_its_retransmissions, count=10)
    await wait_progress(lambda: bool(rule.dropped), lambda: total_frames([bob]), "the drop")
    dropped_at = rule.dropped[0][0]
    first_pli: list[float] = []

    def pli_sent() -> bool:
        if pub.keyframes.sent > sent_before and not first_pli:
            first_pli.append(pub.keyframes.last_sent_at)
        return bool(first_pli)

    await wait_progress(pli_sent, lambda: total_frames([bob]), "a PLI")
    await more_frames([bob], 1, "camera", 20)

    assert pub.repair.skipped >= 1
    assert pub.repair.tracker.renacked >= 1, "the lost packet was not NACKed a second time"
    assert len(rule.dropped) >= 2, "the retransmissions should have been dropped too"
    assert first_pli[0] - dropped_at <= 0.5, f"first PLI {first_pli[0] - dropped_at:.2f}s"
    frames = bob.frames_from(1, "camera")
    after = [f for f in frames if f[0] > dropped_at]
    # RTP-level forwarding sends the packets after the gap on at once (as every SFU does:
    # the subscriber's decoder drops what it cannot decode); the keyframe the server asked
    # for follows within the bound.
    first_keyframe_at = next(f[0] for f in after if f[2])
    assert first_keyframe_at - dropped_at <= 1.0, (
        f"no keyframe until {first_keyframe_at - dropped_at:.2f}s after the loss"
    )
    freeze = loss.longest_freeze([f[0] for f in frames], dropped_at - 0.5, dropped_at + 2)
    assert freeze < 1.0, f"frozen {freeze:.2f}s"


async def test_rtx_is_routed_when_the_offer_has_no_ssrc_lines(make_client, server):
    alice = make_client(1)
    bob = make_client(2)
    await alice.join()
    await bob.join()
    original = alice.send

    async def send_without_ssrcs(message: dict) -> None:
        if message.get("type") == "offer":
            sdp = re.sub(r"a=ssrc(-group)?:[^\r\n]*\r\n", "", message["sdp"])
            message = {**message, "sdp": sdp}
        await original(message)

    alice.send = send_without_ssrcs  # type: ignore[method-assign]
    await alice.publish()
    await bob.publish()
    await more_frames([bob], 1, "camera", 50)  # 2 s before the loss: the load allowance
    shim = loss.LossShim(seed=3)
    shim.attach_uplink(alice.publish_pc)
    rule = shim.drop_next(loss.camera)
    await wait_progress(lambda: rule.done, lambda: total_frames([bob]), "the drop")
    dropped_at = rule.dropped[0][0]
    await more_frames([bob], 1, "camera", 20)

    receiver = publication(server, 1, "camera").receiver
    assert receiver._RTCRtpReceiver__rtx_ssrc, "the RTX SSRC was not learned"
    assert publication(server, 1, "camera").repair.skipped == 0
    assert all(r.skipped == 0 for r in bob.repairs), "the subscriber gave up on a gap"
    times = frame_times(bob, 1, "camera")
    freeze = loss.longest_freeze(times, dropped_at - 0.5, dropped_at + 1)
    bound = SINGLE_LOSS_FREEZE_S + loss.load_allowance(times, dropped_at - 0.5)
    assert freeze < bound, f"frozen {freeze:.2f}s (bound {bound:.2f}s)"


# ---------------------------------------------------------------------------- 2 % loss


async def test_two_percent_loss_both_ways_keeps_every_stream_going(make_client, server):
    clients = await full_room(make_client, 3, screen=True)
    shim = loss.LossShim(seed=4)
    for c in clients:
        shim.attach_uplink(c.publish_pc)
        shim.attach_downlink(c.subscribe_pc, lambda c=c: c.track_map)
    shim.drop_random(0.02)
    for c in clients:
        for track in (c.video, c.screen):
            track.sent.clear()
            track.record = True
    start = time.monotonic()
    # ~8 s of media at 20 fps on every track (counted, not timed).
    target = {id(c): c.video.index + 160 for c in clients}
    await wait_progress(
        lambda: all(c.video.index >= target[id(c)] for c in clients),
        lambda: total_frames(clients),
        "8 s of media",
    )
    for c in clients:
        c.video.record = c.screen.record = False
    end = time.monotonic()
    await asyncio.sleep(1.0)  # the window's last frames
    lost = [p for _, p in shim.dropped]
    assert len(lost) > 20, f"only {len(lost)} packets dropped: the shim is not in the path"
    assert any(p.direction == "up" for p in lost) and any(p.direction == "down" for p in lost)

    report = []
    for sub in clients:
        for pub in clients:
            if pub is sub:
                continue
            for kind, track in (("camera", pub.video), ("screen", pub.screen)):
                frames = sub.frames_from(pub.identity.user_id, kind)
                kept = loss.frames_kept(track.sent, (d for _, d, _ in frames))
                freeze = loss.longest_freeze([t for t, _, _ in frames], start + 0.5, end)
                report.append((sub.identity.user_id, pub.identity.user_id, kind, kept, freeze))
    bad = [r for r in report if r[3] < 0.95 or r[4] > RANDOM_LOSS_FREEZE_S]
    assert not bad, f"(subscriber, publisher, kind, kept, longest freeze): {bad}"


# ---------------------------------------------------------------------------- audio


async def test_a_lost_audio_packet_costs_one_frame_and_no_delay(make_client, server):
    alice, bob = await full_room(make_client, 2)
    receiver = publication(server, 1, "audio").receiver
    # Nothing held on the receive leg: every packet is forwarded as it arrives.
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, taps.ForwardingBuffer)
    shim = loss.LossShim(seed=5)
    shim.attach_uplink(alice.publish_pc)
    await more_frames([bob], 1, "audio", 25)
    rule = shim.drop_next(loss.media_of("audio"))
    await wait_progress(lambda: rule.done, lambda: total_frames([bob]), "the drop")
    dropped_at = rule.dropped[0][0]
    await more_frames([bob], 1, "audio", 25)

    times = frame_times(bob, 1, "audio")
    # Opus frames are 20 ms; one missing is a 40 ms gap. aiortc's own buffer would have
    # held everything back for 16 packets (~320 ms) and kept that delay for good.
    freeze = loss.longest_freeze(times, dropped_at - 0.3, dropped_at + 0.5)
    assert freeze < 0.15, f"audio stalled {freeze:.2f}s after one lost packet"
    # Nothing was asked for: no NACK, no retransmission for Opus.
    assert not [p for _, p in shim.dropped if p.rtx]
