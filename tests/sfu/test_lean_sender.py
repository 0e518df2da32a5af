"""The lean forwarding send loop (taps.forward_rtp) keeps aiortc's obligations: every
packet in the NACK history, retransmissions over RTX, sender-report counters."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RtpPacket, is_rtcp

from peerlearn_sfu import taps


async def test_history_retransmission_and_counters(make_client, server):
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    await alice.publish()
    await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) >= 20, timeout=10)
    slot = next(
        s
        for s in server.get_room("room").participants[2].subscribe.slots
        if s.publication is not None and s.publication.kind == "camera"
    )
    sender = slot.transceiver.sender
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
    # A NACK for a packet we sent is answered from the history, over RTX.
    await sender._retransmit(first.sequence_number)
    await asyncio.sleep(0)
    rtx = [p for p in sent if p.ssrc == sender._rtx_ssrc]
    assert rtx, "the retransmission goes out on the RTX SSRC"
    # RTX payload = original sequence number (2 bytes) + the original payload.
    assert rtx[-1].payload[2:] == first.payload
    assert int.from_bytes(rtx[-1].payload[:2], "big") == first.sequence_number
    # Sender-report counters follow what left the wire.
    stats = await sender.getStats()
    outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
    assert outbound.packetsSent >= len(media) > 0
    assert outbound.bytesSent > 0
