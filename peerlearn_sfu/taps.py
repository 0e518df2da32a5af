"""Every use of aiortc private attributes lives here, pinned to aiortc 1.16.x.

Receive side: ``RTCRtpReceiver._handle_rtp_packet`` re-assembles complete encoded frames
in its jitter buffer and hands them to the decoder thread through
``self.__decoder_queue.put((codec, frame))``. We swap that queue (before ``receive()``
starts the thread) for one whose ``put`` delivers the frame to the SFU on the event
loop; the decoder thread only ever sees the final ``None`` that stops it.

Send side: ``RTCRtpSender._next_encoded_frame`` calls ``get_encoder(codec)`` lazily and,
for ``av.Packet`` input, only the encoder's ``pack()``. We pre-set ``__encoder`` to a
:class:`Packer` (packetiser only), so no encoder is created; REMB from the subscriber
lands in its ``target_bitrate`` setter. ``_send_keyframe`` (PLI/FIR from the subscriber)
is replaced per instance to route the request upstream.

:func:`check_aiortc_version` fails loudly when aiortc changes (tested).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import traceback
import types
from collections.abc import Callable
from typing import Any

import aiortc
import av
from aiortc import clock
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTP_HISTORY_SIZE, RTCRtpSender, random_sequence_number
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, is_rtcp, pack_remb_fci
from aiortc.utils import random32, uint16_add, uint32_add

logger = logging.getLogger(__name__)

AIORTC_PINNED = "1.16."

_R = "_RTCRtpReceiver__"
_S = "_RTCRtpSender__"

# Private attributes the taps rely on, by class (checked against the source).
RECEIVER_PRIVATE = (
    "decoder_queue",
    "remote_bitrate_estimator",
    "remote_streams",
    "rtx_ssrc",
    "rtcp_ssrc",
)
SENDER_PRIVATE = (
    "encoder",
    "rtt",
    "packet_count",
    "octet_count",
    # the lean send loop (forward_rtp) also keeps these as aiortc's own loop does
    "track",
    "mid",
    "rtp_started",
    "rtp_exited",
    "rtp_history",
    "rtp_header_extensions_map",
    "ntp_timestamp",
    "rtp_timestamp",
)

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


def check_aiortc_version() -> None:
    """Raise ``RuntimeError`` unless aiortc is 1.16.x with the private fields we use."""
    if not aiortc.__version__.startswith(AIORTC_PINNED):
        raise RuntimeError(
            f"peerlearn_sfu.taps targets aiortc {AIORTC_PINNED}x, found {aiortc.__version__}: "
            "re-check RTCRtpReceiver/RTCRtpSender internals before upgrading"
        )
    receiver_src = inspect.getsource(RTCRtpReceiver)
    sender_src = inspect.getsource(RTCRtpSender)
    for name in RECEIVER_PRIVATE:
        if f"self.__{name}" not in receiver_src:
            raise RuntimeError(f"RTCRtpReceiver.__{name} is gone")
    for name in SENDER_PRIVATE:
        if f"self.__{name}" not in sender_src:
            raise RuntimeError(f"RTCRtpSender.__{name} is gone")
    if "self.__decoder_queue.put((codec, encoded_frame))" not in receiver_src:
        raise RuntimeError("RTCRtpReceiver no longer hands frames over via __decoder_queue")
    if "self.__encoder.pack(data)" not in sender_src:
        raise RuntimeError("RTCRtpSender no longer packs pre-encoded av.Packet input")
    if "asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))" not in sender_src:
        raise RuntimeError("RTCRtpSender.send no longer starts self._run_rtp(codec)")
    for cls, method in (
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCRtpReceiver, "_send_rtcp"),
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_handle_rtcp_packet"),
        (RTCDtlsTransport, "_send_rtp"),
    ):
        if not callable(getattr(cls, method, None)):
            raise RuntimeError(f"{cls.__name__}.{method} is gone")


class FrameTapQueue(queue.Queue):
    """Stands in for the receiver's decoder queue: frames go to ``sink``, not to a decoder."""

    def __init__(self, sink: FrameSink) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stopping its (idle) decoder thread
            super().put(None, block, timeout)
            return
        codec, frame = item
        self._sink(codec, frame)


class _EstimatorProxy:
    """Keeps aiortc's receive-side bandwidth estimate but stops aiortc sending it as REMB:
    the SFU sends one combined REMB itself (see bitrate.py)."""

    def __init__(self, inner: Any, on_estimate: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_estimate = on_estimate

    def add(self, **kwargs: Any) -> None:
        remb = self._inner.add(**kwargs)
        if remb is not None:
            self._on_estimate(int(remb[0]))
        return None


def install_receiver_tap(
    receiver: RTCRtpReceiver,
    on_frame: FrameSink,
    on_packet: Callable[[RtpPacket], None] | None = None,
    on_estimate: Callable[[int], None] | None = None,
) -> None:
    """Divert ``receiver``'s complete encoded frames to ``on_frame``.

    Must run before ``receiver.receive()`` (i.e. before the DTLS leg connects).
    ``on_packet`` sees every RTP packet first (used for the audio-level extension).
    """
    if getattr(receiver, f"{_R}decoder_thread") is not None:
        raise RuntimeError("receiver already started: the tap must be installed before")
    setattr(receiver, f"{_R}decoder_queue", FrameTapQueue(on_frame))
    estimator = getattr(receiver, f"{_R}remote_bitrate_estimator")
    if estimator is not None and on_estimate is not None:
        setattr(receiver, f"{_R}remote_bitrate_estimator", _EstimatorProxy(estimator, on_estimate))
    if on_packet is not None:
        original = receiver._handle_rtp_packet

        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            on_packet(packet)
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


def receiver_media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The publisher's media SSRC seen on this receiver (RTX SSRCs excluded)."""
    rtx = getattr(receiver, f"{_R}rtx_ssrc")
    for ssrc in getattr(receiver, f"{_R}remote_streams"):
        if ssrc not in rtx:
            return ssrc
    return None


def receiver_packets_lost(receiver: RTCRtpReceiver) -> int:
    streams = getattr(receiver, f"{_R}remote_streams")
    rtx = getattr(receiver, f"{_R}rtx_ssrc")
    return sum(s.packets_lost for ssrc, s in streams.items() if ssrc not in rtx)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """RTCP PLI for the publisher's SSRC, over the receive leg."""
    await receiver._send_rtcp_pli(media_ssrc)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, ssrcs: list[int]) -> None:
    """RTCP REMB (goog-remb) on the receive leg: caps the publisher's encoder."""
    rtcp_ssrc = getattr(receiver, f"{_R}rtcp_ssrc")
    if rtcp_ssrc is None:
        return
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
    )
    await receiver._send_rtcp(packet)


class Packer:
    """Packetiser-only stand-in for aiortc's encoder on a forwarding sender.

    ``pack`` re-packetises a forwarded frame (VP8 gets a fresh payload descriptor with
    this leg's picture id); ``target_bitrate`` receives the subscriber's REMB.
    The packet's pts is already in RTP clock units (time_base = 1/clock).
    """

    def __init__(self, kind: str, on_remb: Callable[[int], None] | None = None) -> None:
        self.kind = kind
        self.picture_id = 0
        self._on_remb = on_remb
        self._target_bitrate = 0
        # The DownTrack feeding this sender; its ``pts_offset`` rebases timestamps.
        self.offset_source: Any = None

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        data = bytes(packet)
        pts = int(packet.pts)
        if self.offset_source is not None:
            pts = (pts + self.offset_source.pts_offset) & 0xFFFFFFFF
        if self.kind == "video":
            payloads = Vp8Encoder._packetize(data, self.picture_id)
            self.picture_id = (self.picture_id + 1) % (1 << 15)
            return payloads, pts
        return [data], pts

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("a forwarding sender must never encode")

    @property
    def target_bitrate(self) -> int:
        return self._target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._target_bitrate = bitrate
        if self._on_remb is not None:
            self._on_remb(bitrate)


def install_sender_hooks(
    sender: RTCRtpSender,
    on_keyframe_request: Callable[[], None] | None = None,
    on_remb: Callable[[int], None] | None = None,
    lean_loop: bool = False,
) -> Packer:
    """Make ``sender`` a pure forwarder: no encoder, PLI/FIR and REMB go to callbacks.

    ``lean_loop`` also swaps aiortc's RTP loop for :func:`forward_rtp` (must happen
    before the sender is started, i.e. before the answer is applied).
    """
    packer = Packer(sender.kind, on_remb)
    setattr(sender, f"{_S}encoder", packer)
    if on_keyframe_request is not None:
        sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
    if lean_loop:
        sender._run_rtp = types.MethodType(forward_rtp, sender)  # type: ignore[method-assign]
    return packer


async def forward_rtp(sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
    """``RTCRtpSender._run_rtp`` for forwarded frames, with the same wire behaviour.

    Same as aiortc's loop: own SSRC, random sequence/timestamp origins, abs-send-time and
    MID extensions on every packet, marker on a frame's last packet, every packet kept in
    the history for NACK/RTX, the SR counters kept up to date, the same shutdown. Leaner:
    the track's ``av.Packet`` goes straight to the :class:`Packer` (no encoder dispatch,
    no ``RTCEncodedFrame``), and the clock and counters are handled once per frame
    instead of once per packet. Measured in bench/sfu_forwarding.py (``--aiortc-send-loop``).
    """
    sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
    history: dict[int, RtpPacket] = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
    extensions_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
    mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
    payload_type = codec.payloadType
    sequence_number = random_sequence_number()
    timestamp_origin = random32()
    try:
        while True:
            track = sender._RTCRtpSender__track  # type: ignore[attr-defined]
            if not track:
                await asyncio.sleep(0.02)
                continue
            data = await track.recv()
            if not sender._enabled:
                continue
            payloads, timestamp = sender._RTCRtpSender__encoder.pack(data)  # type: ignore[attr-defined]
            if not payloads:
                continue
            timestamp = uint32_add(timestamp_origin, timestamp)
            abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
            last = len(payloads) - 1
            transport = sender.transport
            ssrc = sender._ssrc
            octets = 0
            for i, payload in enumerate(payloads):
                packet = RtpPacket(payload_type, int(i == last), sequence_number, timestamp, ssrc,
                                   payload)
                packet.extensions.abs_send_time = abs_send_time
                packet.extensions.mid = mid
                history[sequence_number % RTP_HISTORY_SIZE] = packet
                await transport._send_rtp(packet.serialize(extensions_map))
                sequence_number = uint16_add(sequence_number, 1)
                octets += len(payload)
            sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
            sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
            sender._RTCRtpSender__packet_count += last + 1  # type: ignore[attr-defined]
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        # aiortc's rule too: __rtp_exited must be set whatever happens, or stop() hangs.
        logger.warning("forwarding sender failed:\n%s", traceback.format_exc())
    track = sender._RTCRtpSender__track  # type: ignore[attr-defined]
    if track:
        track.stop()
        sender._RTCRtpSender__track = None  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]


def install_send_probe(transport: RTCDtlsTransport, on_sent: Callable[[int], None]) -> None:
    """Benchmark instrumentation: ``on_sent(ssrc)`` once each RTP packet has left the
    process (SRTP-protected and handed to ``sendto``). Every sender of a bundled peer
    connection sends through this one transport. Not installed in normal operation."""
    original = transport._send_rtp

    async def send_rtp(data: bytes) -> None:
        await original(data)
        if len(data) >= 12 and not is_rtcp(data):
            on_sent(int.from_bytes(data[8:12], "big"))

    transport._send_rtp = send_rtp  # type: ignore[method-assign]


def sender_rtt(sender: RTCRtpSender) -> float | None:
    return getattr(sender, f"{_S}rtt")


def sender_counts(sender: RTCRtpSender) -> tuple[int, int]:
    """``(packets, octets)`` sent so far."""
    return getattr(sender, f"{_S}packet_count"), getattr(sender, f"{_S}octet_count")


check_aiortc_version()
