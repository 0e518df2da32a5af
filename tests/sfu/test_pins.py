"""The private-attribute taps are written for aiortc 1.16.x / aioice 0.13.x: fail loudly."""

from __future__ import annotations

import aioice
import aiortc

from peerlearn_sfu import ice, taps


def test_aiortc_version_and_private_attributes_are_pinned():
    assert aiortc.__version__.startswith("1.16."), (
        f"aiortc {aiortc.__version__}: peerlearn_sfu/taps.py was written for 1.16.x; "
        "re-verify RTCRtpReceiver/RTCRtpSender internals and update the pin"
    )
    taps.check_aiortc_version()  # raises on any missing private attribute


def test_aioice_version_is_pinned():
    assert aioice.__version__.startswith("0.13."), (
        f"aioice {aioice.__version__}: peerlearn_sfu/ice.py was written for 0.13.x"
    )
    ice.check_aioice_version()


async def test_receiver_instance_has_the_tapped_fields():
    # Name-mangled fields only exist on instances: check a real receiver/sender pair.
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video")
    receiver, sender = transceiver.receiver, transceiver.sender
    for name in taps.RECEIVER_PRIVATE:
        assert hasattr(receiver, f"_RTCRtpReceiver__{name}"), name
    for name in taps.SENDER_PRIVATE:
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    await pc.close()


# -- RTX section: aiortc still needs the patch, and the patch still fits aiortc ----------


class _FakeReceiver:
    """Just the fields of RTCRtpReceiver the RTX routing reads."""

    def __init__(self, media_ssrc: int | None, rtx: dict[int, int]) -> None:
        from aiortc.rtcrtpparameters import RTCRtpCodecParameters
        from aiortc.rtcrtpreceiver import NackGenerator

        self._RTCRtpReceiver__codecs = {
            96: RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
            97: RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
            ),
        }
        self._RTCRtpReceiver__rtx_ssrc = rtx
        self._RTCRtpReceiver__remote_streams = {media_ssrc: object()} if media_ssrc else {}
        self._RTCRtpReceiver__nack_generator = NackGenerator()


def _two_video_mlines() -> tuple[object, _FakeReceiver, _FakeReceiver]:
    from aiortc.rtcdtlstransport import RtpRouter

    router = RtpRouter()
    camera = _FakeReceiver(111, {222: 111})
    screen = _FakeReceiver(333, {444: 333})
    router.register_receiver(camera, ssrcs=[111], payload_types=[96, 97], mid="1")
    router.register_receiver(screen, ssrcs=[333], payload_types=[96, 97], mid="2")
    return router, camera, screen


def _rtx(ssrc: int, osn: int, mid: str | None = None) -> object:
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(
        payload_type=97, sequence_number=9, ssrc=ssrc, payload=osn.to_bytes(2, "big") + b"vp8"
    )
    packet.extensions.mid = mid
    return packet


def test_aiortc_router_still_discards_rtx_of_two_video_mlines():
    # If this fails, aiortc routes RTX itself now: taps.install_rtx_routing can go.
    router, _, _ = _two_video_mlines()
    assert router.route_rtp(_rtx(222, 5)) is None


def test_rtx_is_routed_by_fid_then_mid_then_missing_packet():
    router, camera, screen = _two_video_mlines()
    taps._patch_router(router)
    assert router.route_rtp(_rtx(222, 5)) is camera  # a=ssrc-group:FID
    assert router.route_rtp(_rtx(444, 5)) is screen
    # No a=ssrc lines: the MID header extension, and the RTX SSRC is learned.
    screen._RTCRtpReceiver__rtx_ssrc.clear()
    assert router.route_rtp(_rtx(555, 5, mid="2")) is screen
    assert screen._RTCRtpReceiver__rtx_ssrc == {555: 333}
    # Neither: the receiver that is missing the repaired packet.
    camera._RTCRtpReceiver__nack_generator.missing.add(77)
    assert router.route_rtp(_rtx(666, 77)) is camera
    assert router.route_rtp(_rtx(888, 1234)) is None  # nobody misses it: aiortc's discard


def test_skip_gap_moves_the_jitter_buffer_past_a_lost_packet():
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtcrtpreceiver import NackGenerator
    from aiortc.rtp import RtpPacket

    class Receiver:
        pass

    receiver = Receiver()
    buffer = JitterBuffer(capacity=128, is_video=True)
    receiver._RTCRtpReceiver__jitter_buffer = buffer
    receiver._RTCRtpReceiver__nack_generator = generator = NackGenerator()

    def add(seq: int, ts: int) -> object:
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts)
        packet._data = bytes([seq])
        generator.add(packet)
        return buffer.add(packet)[1]

    assert add(10, 1) is None
    assert add(11, 2).data == b"\x0a"
    for seq in (13, 14, 15):  # 12 is lost; frames wait behind it
        assert add(seq, seq) is None
    assert generator.missing == {12}
    assert taps.skip_gap(receiver, 12)
    assert generator.missing == set()
    assert add(16, 16).data == b"\x0d"  # frames flow again from the one after the gap


def test_passthrough_audio_buffer_releases_each_packet_at_once():
    from aiortc.rtp import RtpPacket

    buffer = taps.PassThroughAudioBuffer()
    out = []
    for seq in (65534, 65535, 1, 0, 2):  # 0 is late (after 1): dropped, not waited for
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        packet._data = bytes([seq % 256])
        out.append(buffer.add(packet)[1])
    assert [f.data if f else None for f in out] == [b"\xfe", b"\xff", b"\x01", None, b"\x02"]
    assert buffer.late == 1
