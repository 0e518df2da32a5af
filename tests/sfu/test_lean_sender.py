"""Both forwarding senders keep aiortc's obligations: every packet kept for NACKs,
retransmissions over RTX, sender-report counters. RTP-level (the default): the
down-track's own history and send path; frame-level: the lean loop (taps.forward_rtp)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

from aiortc.rtp import RtpPacket, is_rtcp

from peerlearn_sfu import RoomHooks, SfuServer, taps
from peerlearn_sfu.forwarder import RtpDownTrack
from tests.sfu.client import TEST_CONFIG, Client


def _camera_slot(server: SfuServer, user_id: int):  # type: ignore[no-untyped-def]
    return next(
        s
        for s in server.get_room("room").participants[user_id].subscribe.slots
        if s.publication is not None and s.publication.kind == "camera"
    )


async def test_rtp_level_history_retransmission_and_counters(make_client, server):
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    await alice.publish()
    await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) >= 20, timeout=10)
    slot = _camera_slot(server, 2)
    track = slot.track
    assert isinstance(track, RtpDownTrack)
    sender = slot.transceiver.sender
    binding = track._binding
    assert binding is not None and binding.ssrc == sender._ssrc

    sent: list[RtpPacket] = []

    def capture(data: bytes) -> None:
        sent.append(RtpPacket.parse(data))
        binding.send(data)

    track._binding = dataclasses.replace(binding, send=capture)
    await bob.wait_for(lambda: len(sent) >= 20, timeout=5)
    media = [p for p in sent if p.ssrc == sender._ssrc]
    # One continuous stream on this leg's SSRC and payload type.
    seqs = [p.sequence_number for p in media[:20]]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert {p.payload_type for p in media} == {binding.payload_type}
    first = media[0]
    # A NACK for a packet we sent is answered from the history, over RTX.
    await sender._retransmit(first.sequence_number)
    rtx = [p for p in sent if p.ssrc == sender._rtx_ssrc]
    assert rtx, "the retransmission goes out on the RTX SSRC"
    assert rtx[-1].payload_type == binding.rtx_payload_type
    assert rtx[-1].timestamp == first.timestamp
    # RTX payload = original sequence number (2 bytes) + the original payload.
    assert rtx[-1].payload[2:] == first.payload
    assert int.from_bytes(rtx[-1].payload[:2], "big") == first.sequence_number
    # A sequence number it never sent is not answered.
    assert not track.retransmit((first.sequence_number - 1000) & 0xFFFF)
    # Sender-report counters follow what left the wire.
    stats = await sender.getStats()
    outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
    assert outbound.packetsSent >= len(media) > 0
    assert outbound.bytesSent > 0


async def test_frame_level_lean_loop(clip):
    server = SfuServer(dataclasses.replace(TEST_CONFIG, forwarding="frame"))
    room = server.open_room("room", RoomHooks())
    alice, bob = Client(room, 1, clip), Client(room, 2, clip)
    try:
        await alice.join()
        await bob.join()
        await alice.publish()
        await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) >= 20, timeout=10)
        sender = _camera_slot(server, 2).transceiver.sender
        assert sender._run_rtp.__func__ is taps.forward_rtp  # the lean loop is in use

        sent: list[RtpPacket] = []
        transport = sender.transport
        original = transport._send_rtp

        async def capture(data: bytes) -> None:
            if not is_rtcp(data):
                sent.append(RtpPacket.parse(data))
            await original(data)

        transport._send_rtp = capture
        await bob.wait_for(lambda: any(p.ssrc == sender._ssrc for p in sent), timeout=5)
        media = [p for p in sent if p.ssrc == sender._ssrc]
        first = media[0]
        await sender._retransmit(first.sequence_number)
        await asyncio.sleep(0)
        rtx = [p for p in sent if p.ssrc == sender._rtx_ssrc]
        assert rtx, "the retransmission goes out on the RTX SSRC"
        assert rtx[-1].payload[2:] == first.payload
        assert int.from_bytes(rtx[-1].payload[:2], "big") == first.sequence_number
        stats = await sender.getStats()
        outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
        assert outbound.packetsSent >= len(media) > 0
    finally:
        await server.close()
        await asyncio.gather(alice.close(), bob.close())
        await asyncio.sleep(0.05)
