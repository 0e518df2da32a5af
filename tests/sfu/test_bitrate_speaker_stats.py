"""REMB to publishers, active speaker from RFC 6464 levels, stats."""

from __future__ import annotations

import asyncio

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer
from peerlearn_sfu.bitrate import BitrateController
from peerlearn_sfu.speaker import ActiveSpeakerDetector
from tests.sfu.client import Client


def test_bitrate_target_is_min_of_cap_and_fresh_estimates():
    ctl = BitrateController(800_000)
    assert ctl.target(now=0) == 800_000
    ctl.set_subscriber(1, 500_000)
    ctl.set_subscriber(2, 300_000)
    assert ctl.target() == 300_000
    ctl.remove_subscriber(2)
    assert ctl.target() == 500_000
    ctl.set_subscriber(3, 2_000_000)
    assert ctl.target() == 500_000
    ctl.set_uplink(200_000)
    assert ctl.target() == 200_000
    assert ctl.target(now=1e9) == 800_000  # stale estimates are ignored


async def test_publisher_receives_remb_capped_by_config(clip):
    server = SfuServer(SfuConfig(interfaces=("127.0.0.1",), video_max_bitrate_kbps=300))
    room = server.open_room("r", RoomHooks())
    alice, bob = Client(room, 1, clip), Client(room, 2, clip)
    try:
        await alice.join()
        await bob.join()
        await alice.publish()
        await alice.wait_for(lambda: len(alice.remb) >= 2, timeout=5)
        assert all(0 < bitrate <= 300_000 for bitrate in alice.remb)
        # The subscriber's own REMB reached its forwarding sender.
        slot = room.participants[2].subscribe.slots
        await bob.wait_for(lambda: any(s.packer.target_bitrate for s in slot), timeout=5)
        stats = server.stats()["rooms"]["r"]["participants"]
        assert stats[1]["publish"]["camera"]["remb_bps"] <= 300_000
    finally:
        await alice.close()
        await bob.close()
        await server.close()


def test_speaker_detector_reports_changes_only():
    d = ActiveSpeakerDetector()
    assert d.pick({1: (30, 0.0), 2: (90, 0.0)}, now=0.1) == 1
    assert d.pick({1: (30, 0.0), 2: (90, 0.0)}, now=0.2) is None
    assert d.pick({1: (50, 0.3), 2: (10, 0.3)}, now=0.4) == 2
    assert d.pick({1: (127, 0.5)}, now=0.6) is None  # silence is nobody


async def test_active_speaker_and_stats(make_client, server):
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    alice.audio_level, bob.audio_level = 25, 127
    await alice.publish()
    await bob.publish()
    await bob.wait_message("active_speaker", user_id=1, timeout=5)
    alice.audio_level, bob.audio_level = 127, 20
    message = await alice.wait_message("active_speaker", user_id=2, timeout=5)
    assert message
    speaker_msgs = alice.of_type("active_speaker")
    times = [m["user_id"] for m in speaker_msgs]
    assert times == [1, 2]  # changes only, not a stream

    await alice.wait_for(lambda: len(alice.frames_from(2, "camera")) > 10, timeout=5)
    await asyncio.sleep(2.2)  # two stats samples, one second apart
    stats = server.stats()["rooms"]["room"]["participants"]
    a = stats[1]
    assert a["publish"]["camera"]["frames_in"] > 10
    assert a["bitrate_in_kbps"] > 0 and a["bitrate_out_kbps"] > 0
    assert a["frames_forwarded"] > 10
    assert {"packets_lost", "rtt_ms", "keyframes_requested", "frames_dropped"} <= set(a)
