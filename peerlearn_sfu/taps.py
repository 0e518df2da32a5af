"""Every aiortc and aioice private attribute the SFU uses is used here, and only here.

Each is reached through one accessor (or one hook installer) of this module, and each is
pinned: :func:`check_aiortc_version` and :func:`check_aioice_version` run at import and
raise when a pinned name is no longer in aiortc 1.16.x / aioice 0.13.x (tested, and
``tests/sfu/test_pins.py`` fails when a private name used here is not in a pin table).

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

Retransmissions (RTX section below): aiortc's ``RtpRouter`` registers no RTX SSRC, so a
retransmission on a connection with two video m-lines sharing the RTX payload type (our
publish leg: camera and screen) was discarded. :func:`install_rtx_routing` routes it (SDP
``ssrc-group:FID``, else the MID header extension, else the receiver missing that packet)
and teaches the receiver its RTX SSRC when the SDP had none. The receive leg's gap
handling (:mod:`peerlearn_sfu.keyframes`) and the send leg's NACK limiter
(:mod:`peerlearn_sfu.nack`) hook in here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue
import re
import time
import traceback
import types
from collections.abc import Callable, Coroutine
from typing import Any

import aioice
import aiortc
import av
from aioice import ice as aioice_ice
from aiortc import RTCPeerConnection, clock
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcicetransport import RTCIceGatherer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
)
from aiortc.utils import random32, uint16_add, uint16_gt, uint32_add

from .forwarder import RtpDownTrack, SendBinding

logger = logging.getLogger(__name__)

AIORTC_PINNED = "1.16."

_R = "_RTCRtpReceiver__"
_S = "_RTCRtpSender__"

# Name-mangled attributes the taps rely on, by class (each must still be assigned in the
# class's source): RTCRtpReceiver.__<name>, RTCRtpSender.__<name>.
RECEIVER_PRIVATE = (
    "decoder_queue",
    "decoder_thread",
    "remote_bitrate_estimator",
    "remote_streams",
    "rtx_ssrc",
    "rtcp_ssrc",
    # RTX routing and gap handling (install_rtx_routing, skip_gap, hook_nacks)
    "codecs",
    "nack_generator",
    "jitter_buffer",
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
    # the RTP-level forwarder's sender (install_rtp_sender)
    "rtx_payload_type",
)
# Single-underscore attributes, by class (each must still be assigned in the class's source).
AIORTC_FIELDS: tuple[tuple[type, tuple[str, ...]], ...] = (
    # the subscribe leg's SSRC, and its msid (stream and track id) set per publisher
    (RTCRtpSender, ("_ssrc", "_stream_id", "_track_id", "_enabled", "_rtx_ssrc")),
    (RTCDtlsTransport, ("_rtp_router", "_tx_srtp", "_state")),
    (RTCIceGatherer, ("_connection",)),
    (RTCPeerConnection, ("__iceTransports",)),
)
# Source lines the frame tap and the forwarding sender rely on, by class.
HANDOVER_SOURCE_LINES = (
    (RTCRtpReceiver, "self.__decoder_queue.put((codec, encoded_frame))"),
    (RTCRtpSender, "self.__encoder.pack(data)"),  # pre-encoded av.Packet input is packed only
    (RTCRtpSender, "asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))"),
)
# Source lines the RTX section relies on, by class.
RTX_SOURCE_LINES = (
    (RTCRtpReceiver, "original_ssrc = self.__rtx_ssrc.get(packet.ssrc)"),
    (RTCRtpReceiver, "await self._send_rtcp_nack("),
    (RTCRtpReceiver, "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)"),
    (RTCRtpReceiver, "self.__transport._register_rtp_receiver(self, parameters)"),
    (RTCRtpSender, "await self._retransmit(seq)"),
    (RTCDtlsTransport, "receiver = self._rtp_router.route_rtp(packet)"),
    (RtpRouter, "ssrc_receiver = self.ssrc_table.get(packet.ssrc)"),
    # the depayloaded frame data the jitter buffer joins (PassThroughAudioBuffer reads it)
    (RTCRtpReceiver, "packet._data = depayload(codec, packet.payload)"),
    # the forwarding buffer stands in for the jitter buffer (use_forwarding_buffer)
    (RTCRtpReceiver, "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)"),
    # the RTP-level sender's send path (SendBinding): protect, then the ICE pair's sendto
    (RTCDtlsTransport, "data = self._tx_srtp.protect(data)"),
    (RTCRtpSender, "self.__rtx_payload_type = codec.payloadType"),
    (RTCRtpSender, "await self._retransmit(seq)"),
)
# Private methods called or replaced per instance, by class.
PRIVATE_METHODS: tuple[tuple[type, str], ...] = (
    (RTCRtpReceiver, "_send_rtcp_nack"),
    (RTCRtpReceiver, "receive"),
    (RtpRouter, "route_rtp"),
    (RTCRtpSender, "_retransmit"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (JitterBuffer, "remove"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_run_rtp"),
    (RTCDtlsTransport, "_send_rtp"),
    (Vp8Encoder, "_packetize"),
    (RTCRtpSender, "send"),  # public; wrapped to read the leg's header extension ids
)
# Plain attributes of helper objects (checked on fresh instances).
ROUTER_FIELDS = ("mid_table", "ssrc_table", "payload_type_table")
JITTER_FIELDS = ("_origin", "_packets", "_capacity")

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


def _replace_method(obj: object, name: str, function: Callable[..., Any]) -> None:
    """Replace ``obj.<name>`` on this one instance (its class keeps aiortc's/aioice's):
    every hook below is installed so, and ``name`` is pinned (``PRIVATE_METHODS`` or a
    public method)."""
    setattr(obj, name, function)


def _check_version(name: str, found: str, pinned: str, what: str) -> None:
    if not found.startswith(pinned):
        raise RuntimeError(
            f"peerlearn_sfu.taps targets {name} {pinned}x, found {found}: re-check {what}"
        )


def check_aiortc_version() -> None:
    """Raise ``RuntimeError`` unless aiortc is 1.16.x with the private fields we use."""
    _check_version(
        "aiortc",
        aiortc.__version__,
        AIORTC_PINNED,
        "RTCRtpReceiver/RTCRtpSender internals before upgrading",
    )
    check_fields(RTCRtpReceiver, RECEIVER_PRIVATE, prefix="__")
    check_fields(RTCRtpSender, SENDER_PRIVATE, prefix="__")
    for cls, names in AIORTC_FIELDS:
        check_fields(cls, names)
    for cls, line in (*HANDOVER_SOURCE_LINES, *RTX_SOURCE_LINES):
        if line not in inspect.getsource(cls):
            raise RuntimeError(f"{cls.__name__} changed: no longer has {line!r}")
    router = RtpRouter()
    for name in ROUTER_FIELDS:
        if not isinstance(getattr(router, name, None), dict):
            raise RuntimeError(f"RtpRouter.{name} is gone")
    buffer = JitterBuffer(capacity=16)
    for name in JITTER_FIELDS:
        if not hasattr(buffer, name):
            raise RuntimeError(f"JitterBuffer.{name} is gone")
    if not isinstance(getattr(NackGenerator(), "missing", None), set):
        raise RuntimeError("NackGenerator.missing is gone")
    for cls, method in PRIVATE_METHODS:
        if not callable(getattr(cls, method, None)):
            raise RuntimeError(f"{cls.__name__}.{method} is gone")


def _assigned(source: str, name: str) -> bool:
    """``self.<name> = ...`` (or an annotated assignment) is in ``source``."""
    return re.search(rf"self\.{re.escape(name)}\b\s*(:[^=\n]*)?=(?!=)", source) is not None


def check_fields(cls: type, names: tuple[str, ...], prefix: str = "") -> None:
    """Raise ``RuntimeError`` unless ``cls`` still assigns ``self.<prefix><name>`` for each."""
    source = inspect.getsource(cls)
    for name in names:
        if not _assigned(source, prefix + name):
            raise RuntimeError(f"{cls.__name__}.{prefix}{name} is gone")


class FrameTapQueue(queue.Queue[Any]):
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

        _replace_method(receiver, "_handle_rtp_packet", handle_rtp_packet)


def receiver_media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The publisher's media SSRC seen on this receiver (RTX SSRCs excluded)."""
    rtx = getattr(receiver, f"{_R}rtx_ssrc")
    ssrc: int
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

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        data = bytes(packet)
        assert packet.pts is not None  # forwarded packets carry their RTP timestamp
        pts = packet.pts
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
        _replace_method(sender, "_send_keyframe", on_keyframe_request)
    if lean_loop:
        _replace_method(sender, "_run_rtp", types.MethodType(forward_rtp, sender))
    return packer


# RTCRtpSender.__<name>, read or written once per forwarded frame.
_S_TRACK = f"{_S}track"
_S_ENCODER = f"{_S}encoder"
_S_NTP_TIMESTAMP = f"{_S}ntp_timestamp"
_S_RTP_TIMESTAMP = f"{_S}rtp_timestamp"
_S_OCTET_COUNT = f"{_S}octet_count"
_S_PACKET_COUNT = f"{_S}packet_count"


async def forward_rtp(sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
    """``RTCRtpSender._run_rtp`` for forwarded frames, with the same wire behaviour.

    Same as aiortc's loop: own SSRC, random sequence/timestamp origins, abs-send-time and
    MID extensions on every packet, marker on a frame's last packet, every packet kept in
    the history for NACK/RTX, the SR counters kept up to date, the same shutdown. Leaner:
    the track's ``av.Packet`` goes straight to the :class:`Packer` (no encoder dispatch,
    no ``RTCEncodedFrame``), and the clock and counters are handled once per frame
    instead of once per packet. Measured in bench/sfu_forwarding.py (``--aiortc-send-loop``).
    """
    getattr(sender, f"{_S}rtp_started").set()
    history: dict[int, RtpPacket] = getattr(sender, f"{_S}rtp_history")
    extensions_map = getattr(sender, f"{_S}rtp_header_extensions_map")
    mid = getattr(sender, f"{_S}mid")
    payload_type = codec.payloadType
    assert payload_type is not None  # a negotiated codec has its payload type
    sequence_number = random_sequence_number()
    timestamp_origin = random32()
    try:
        while True:
            track = getattr(sender, _S_TRACK)
            if not track:
                await asyncio.sleep(0.02)
                continue
            data = await track.recv()
            if not sender._enabled:
                continue
            payloads, timestamp = getattr(sender, _S_ENCODER).pack(data)
            if not payloads:
                continue
            timestamp = uint32_add(timestamp_origin, timestamp)
            abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
            last = len(payloads) - 1
            transport = sender.transport
            ssrc = sender._ssrc
            octets = 0
            for i, payload in enumerate(payloads):
                packet = RtpPacket(
                    payload_type, int(i == last), sequence_number, timestamp, ssrc, payload
                )
                packet.extensions.abs_send_time = abs_send_time
                packet.extensions.mid = mid
                history[sequence_number % RTP_HISTORY_SIZE] = packet
                await transport._send_rtp(packet.serialize(extensions_map))
                sequence_number = uint16_add(sequence_number, 1)
                octets += len(payload)
            # The sender report's counters, as aiortc's loop keeps them.
            setattr(sender, _S_NTP_TIMESTAMP, clock.current_ntp_time())
            setattr(sender, _S_RTP_TIMESTAMP, timestamp)
            setattr(sender, _S_OCTET_COUNT, getattr(sender, _S_OCTET_COUNT) + octets)
            setattr(sender, _S_PACKET_COUNT, getattr(sender, _S_PACKET_COUNT) + last + 1)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        # aiortc's rule too: __rtp_exited must be set whatever happens, or stop() hangs.
        logger.warning("forwarding sender failed:\n%s", traceback.format_exc())
    track = getattr(sender, _S_TRACK)
    if track:
        track.stop()
        setattr(sender, _S_TRACK, None)
    getattr(sender, f"{_S}rtp_exited").set()


def sender_rtt(sender: RTCRtpSender) -> float | None:
    rtt: float | None = getattr(sender, f"{_S}rtt")
    return rtt


def sender_counts(sender: RTCRtpSender) -> tuple[int, int]:
    """``(packets, octets)`` sent so far."""
    return getattr(sender, _S_PACKET_COUNT), getattr(sender, _S_OCTET_COUNT)


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC this sender's RTP goes out with (one per subscribe-leg m-line)."""
    return sender._ssrc


def sender_stream_id(sender: RTCRtpSender) -> str:
    """The msid stream id the sender's m-line carries in the SDP."""
    return sender._stream_id


def set_sender_msid(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """The SDP ``a=msid`` of the sender's m-line (written into the next offer): aiortc
    offers no API to set it without a track of that id."""
    sender._stream_id = stream_id
    sender._track_id = track_id


# --------------------------------------------------------------------------- RTX section
# Retransmissions on the receive leg, the receive leg's gap handling, the send leg's NACK
# limiter, and the test-only receive filter. aiortc 1.16 facts this relies on (pinned):
# RtpRouter.route_rtp routes by SSRC, else by a payload type owned by exactly one receiver,
# else discards; _register_rtp_receiver registers only the media SSRCs; the receiver maps
# RTX SSRC -> media SSRC in __rtx_ssrc (from the SDP's ssrc-group:FID, two a=ssrc lines);
# it NACKs through _send_rtcp_nack only when a new gap appears, never again.

_ROUTING_PATCHED = "_peerlearn_rtx_routing"


def install_rtx_routing(receiver: RTCRtpReceiver) -> None:
    """Route this receiver's retransmissions to it (and its peers' on the same transport).

    Must run before ``receiver.receive()``: the router is patched once the receiver has
    its final (bundled) transport, right after aiortc registers it.
    """
    if getattr(receiver, _ROUTING_PATCHED, False):
        return
    setattr(receiver, _ROUTING_PATCHED, True)
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        await original(parameters)
        transport = receiver.transport
        if transport is not None:
            _patch_router(transport._rtp_router)

    _replace_method(receiver, "receive", receive)


def _receiver_codecs(receiver: Any) -> dict[int, RTCRtpCodecParameters]:
    return getattr(receiver, f"{_R}codecs", {})


def _patch_router(router: RtpRouter) -> None:
    if getattr(router, _ROUTING_PATCHED, False):
        return
    setattr(router, _ROUTING_PATCHED, True)
    original = router.route_rtp
    # RTX SSRCs routed to a receiver that does not know them yet (no a=ssrc lines).
    unmapped: dict[int, Any] = {}

    def route_rtp(packet: RtpPacket) -> Any:
        receiver = original(packet)
        if receiver is not None:
            if unmapped and packet.ssrc in unmapped:
                _learn_rtx_ssrc(receiver, packet.ssrc, unmapped)
            return receiver
        ssrc = packet.ssrc
        if ssrc in router.ssrc_table:  # a known SSRC with a foreign payload type: discard
            return None
        candidates = router.payload_type_table.get(packet.payload_type)
        if not candidates:
            return None
        chosen = _choose_receiver(router, packet, candidates)
        if chosen is None:
            return None
        router.ssrc_table[ssrc] = chosen
        codec = _receiver_codecs(chosen).get(packet.payload_type)
        if codec is not None and is_rtx(codec):
            unmapped[ssrc] = chosen
            _learn_rtx_ssrc(chosen, ssrc, unmapped)
        return chosen

    _replace_method(router, "route_rtp", route_rtp)


def _choose_receiver(router: RtpRouter, packet: RtpPacket, candidates: set[Any]) -> Any:
    """The receiver an unknown SSRC belongs to, or None (ambiguous: aiortc's discard)."""
    ssrc = packet.ssrc
    # 1. The SDP named it (a=ssrc-group:FID): aiortc's receiver knows it, its router not.
    for receiver in candidates:
        if ssrc in getattr(receiver, f"{_R}rtx_ssrc", {}):
            return receiver
    # 2. The MID header extension (browsers send it until the SSRC is acknowledged).
    mid = packet.extensions.mid
    if mid is not None:
        receiver = router.mid_table.get(mid)
        if receiver in candidates:
            return receiver
    # 3. A retransmission with neither: the one receiver missing its original packet.
    if len(packet.payload) >= 2:
        osn = int.from_bytes(packet.payload[:2], "big")
        owners = []
        for receiver in candidates:
            codec = _receiver_codecs(receiver).get(packet.payload_type)
            if codec is not None and is_rtx(codec) and osn in receiver_missing(receiver):
                owners.append(receiver)
        if len(owners) == 1:
            return owners[0]
    return None


def _learn_rtx_ssrc(receiver: Any, rtx_ssrc: int, unmapped: dict[int, Any]) -> None:
    """Tell the receiver which media SSRC an RTX SSRC repairs (once it has seen media)."""
    mapping: dict[int, int] = getattr(receiver, f"{_R}rtx_ssrc")
    if rtx_ssrc in mapping:
        unmapped.pop(rtx_ssrc, None)
        return
    streams = getattr(receiver, f"{_R}remote_streams")
    media = [s for s in streams if s not in mapping and s != rtx_ssrc]
    if len(media) == 1:
        mapping[rtx_ssrc] = media[0]
        unmapped.pop(rtx_ssrc, None)


def receiver_missing(receiver: RTCRtpReceiver) -> set[int]:
    """Sequence numbers the receiver has NACKed and not received (video; audio: none)."""
    generator = getattr(receiver, f"{_R}nack_generator", None)
    return generator.missing if generator is not None else set()


def hook_nacks(receiver: RTCRtpReceiver, on_nack: Callable[[int, list[int]], None]) -> None:
    """``on_nack(media_ssrc, seqs)`` whenever aiortc sends a NACK (a new gap appeared)."""
    original = receiver._send_rtcp_nack

    async def send_rtcp_nack(media_ssrc: int, lost: list[int]) -> None:
        on_nack(media_ssrc, lost)
        await original(media_ssrc, lost)

    _replace_method(receiver, "_send_rtcp_nack", send_rtcp_nack)


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, seqs: list[int]) -> None:
    """One more NACK for ``seqs`` (aiortc's own method, bypassing :func:`hook_nacks`)."""
    await RTCRtpReceiver._send_rtcp_nack(receiver, media_ssrc, seqs)


def skip_gap(receiver: RTCRtpReceiver, up_to: int) -> bool:
    """Give up on every packet up to sequence number ``up_to`` (inclusive).

    The jitter buffer drops what it holds before it and stops waiting; the NACK generator
    forgets those sequence numbers. The next complete frame after the gap comes out when
    the next packet arrives. Returns whether the buffer moved.
    """
    buffer: JitterBuffer = getattr(receiver, f"{_R}jitter_buffer")
    generator = getattr(receiver, f"{_R}nack_generator", None)
    if generator is not None:
        for seq in list(generator.missing):
            if not uint16_gt(seq, up_to):
                generator.missing.discard(seq)
    if not isinstance(buffer, JitterBuffer):
        return True  # a forwarding buffer holds nothing: forgetting the gap is all
    origin = buffer._origin
    if origin is None or uint16_gt(origin, up_to):
        return False
    count = uint16_add(up_to, 1 - origin)
    if count > buffer.capacity:
        return False
    buffer.remove(count)
    return True


class PassThroughAudioBuffer:
    """Stands in for an audio receiver's jitter buffer: one Opus packet is one frame, so
    each packet newer than the last is a frame at once; late or repeated ones are dropped.

    aiortc's audio buffer holds 4 frames (80 ms) before it releases one and, after a lost
    packet, waits for its 16-packet overflow (320 ms) and then keeps that backlog: every
    lost packet would add latency for good. Concealment is the subscriber decoder's job.
    """

    capacity = 16

    def __init__(self) -> None:
        self._last: int | None = None
        self.late = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and not uint16_gt(seq, self._last):
            self.late += 1
            return False, None
        self._last = seq
        # Not in aiortc's type hints: RTCRtpReceiver sets it (pinned in RTX_SOURCE_LINES).
        data: bytes = packet._data  # type: ignore[attr-defined]
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def use_passthrough_audio_buffer(receiver: RTCRtpReceiver) -> PassThroughAudioBuffer:
    """Replace an audio receiver's jitter buffer (before it receives anything)."""
    buffer = PassThroughAudioBuffer()
    setattr(receiver, f"{_R}jitter_buffer", buffer)
    return buffer


def limit_retransmissions(sender: RTCRtpSender, allow: Callable[[int, int], bool]) -> None:
    """Ask ``allow(ssrc, seq)`` before resending a NACKed packet that is in the history."""
    original = sender._retransmit
    history: dict[int, RtpPacket] = getattr(sender, f"{_S}rtp_history")

    async def retransmit(sequence_number: int) -> None:
        packet = history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is None or packet.sequence_number != sequence_number:
            return  # gone from the history: aiortc would do nothing either
        if allow(sender_ssrc(sender), sequence_number):
            await original(sequence_number)

    _replace_method(sender, "_retransmit", retransmit)


def install_receive_filter(transport: RTCDtlsTransport, drop: Callable[[bytes], bool]) -> None:
    """Tests only: ``drop(rtp)`` sees every decrypted RTP packet the transport receives
    (before routing) and may discard it, as if it had been lost on the way in. Installed
    on a server's publish leg, it shapes a real browser's uplink."""
    original = transport._handle_rtp_data

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        if not drop(data):
            await original(data, arrival_time_ms)

    _replace_method(transport, "_handle_rtp_data", handle_rtp_data)


# ------------------------------------------------------------- RTP-level forwarding
# The receive leg hands every packet to the publication instead of re-assembling frames
# (ForwardingBuffer in place of the jitter buffer: aiortc still sends NACKs, receiver
# reports and its bandwidth estimate); a subscribe-leg sender never runs aiortc's RTP loop:
# its down-track sends rewritten packets itself through a SendBinding (protect, then the
# nominated ICE pair's datagram transport), and answers NACKs from its own history.

RtpSink = Callable[[RtpPacket], None]


class ForwardingBuffer:
    """Stands in for a receiver's jitter buffer: every packet goes to ``sink`` at once
    (aiortc calls ``add`` after RTX unwrapping, statistics and NACK generation); nothing is
    held, so nothing is ever released as a frame."""

    def __init__(self, sink: RtpSink) -> None:
        self._sink = sink

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self._sink(packet)
        return False, None


def use_forwarding_buffer(receiver: RTCRtpReceiver, sink: RtpSink) -> ForwardingBuffer:
    """Replace ``receiver``'s jitter buffer (before it receives anything)."""
    buffer = ForwardingBuffer(sink)
    setattr(receiver, f"{_R}jitter_buffer", buffer)
    return buffer


NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


def ntp_now() -> int:
    """64-bit NTP time, as ``aiortc.clock.current_ntp_time()`` but without building a
    ``datetime`` (it runs once per forwarded frame and per received packet)."""
    return int((time.time() + NTP_EPOCH_OFFSET) * 4294967296.0)


def abs_send_time() -> bytes:
    """The abs-send-time header extension's 3 bytes (6.18 fixed point seconds) for now."""
    return ((ntp_now() >> 14) & 0x00FFFFFF).to_bytes(3, "big")


ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


def _extension_block(ids: dict[str, int], mid: str | None) -> tuple[bytes, bytes, bool]:
    """(prefix, suffix, has abs-send-time) of a one-byte header-extension block (RFC 8285)
    carrying abs-send-time (filled per packet between prefix and suffix) and the MID."""
    abs_id = ids.get(ABS_SEND_TIME_URI)
    mid_id = ids.get(MID_URI)
    has_abs = abs_id is not None and 0 < abs_id < 15
    body_abs = bytes(((abs_id or 0) << 4 | 2,)) if has_abs else b""
    tail = b""
    if mid_id is not None and 0 < mid_id < 15 and mid:
        raw = mid.encode()[:16]
        tail = bytes((mid_id << 4 | (len(raw) - 1),)) + raw
    length = len(body_abs) + (3 if has_abs else 0) + len(tail)
    if length == 0:
        return b"", b"", False
    padding = (-length) % 4
    words = (length + padding) // 4
    prefix = b"\xbe\xde" + words.to_bytes(2, "big") + body_abs
    return prefix, tail + bytes(padding), has_abs


def _send_path(sender: RTCRtpSender) -> Callable[[bytes], None]:
    """``send(rtp)``: SRTP-protect and hand to the nominated pair's transport (``sendto``),
    as ``RTCDtlsTransport._send_rtp`` and aioice's ``send_data`` would, minus two
    coroutines per packet. Dropped once the DTLS transport is no longer connected."""
    dtls = sender.transport
    protect = dtls._tx_srtp.protect
    connected = dtls._state
    pairs = ice_connections_of(dtls)
    pair = pairs.get(1) if pairs else None
    transport = getattr(getattr(pair, "protocol", None), "transport", None)
    if pair is None or transport is None:

        def send_slow(data: bytes) -> None:
            if dtls._state is connected:
                task = asyncio.ensure_future(_send_quietly(dtls, data))
                _slow_sends.add(task)
                task.add_done_callback(_slow_sends.discard)

        return send_slow
    addr = pair.remote_addr
    # The node's single port (udpmux) has a media send that skips its STUN bookkeeping.
    sendto = getattr(transport, "send_media", transport.sendto)

    def send(data: bytes) -> None:
        if dtls._state is connected:
            sendto(protect(data), addr)

    return send


_slow_sends: set[asyncio.Future[None]] = set()


async def _send_quietly(dtls: RTCDtlsTransport, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await dtls._send_rtp(data)


def ice_connections_of(dtls: RTCDtlsTransport) -> dict[int, Any]:
    """The nominated ICE pairs (by component) under ``dtls``."""
    connection = dtls.transport.iceGatherer._connection
    pairs: dict[int, Any] = connection._nominated
    return pairs


def install_rtp_sender(sender: RTCRtpSender, target: RtpDownTrack) -> None:
    """Make ``sender`` an RTP-level forwarder: aiortc's RTP loop is never run; when the
    sender starts, ``target.start(SendBinding(...))`` gets this leg's payload types,
    SSRCs, header extensions, send path and sender-report counters; NACKs from the
    subscriber go to ``target.retransmit``. Must run before the sender starts."""
    extension_ids: dict[str, int] = {}
    original_send = sender.send

    async def send(parameters: Any) -> None:
        for ext in parameters.headerExtensions:
            extension_ids[ext.uri] = ext.id
        await original_send(parameters)

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        getattr(sender, f"{_S}rtp_started").set()
        try:
            prefix, suffix, has_abs = _extension_block(extension_ids, getattr(sender, f"{_S}mid"))
            assert codec.payloadType is not None
            target.start(
                SendBinding(
                    payload_type=codec.payloadType,
                    ssrc=sender._ssrc,
                    rtx_payload_type=getattr(sender, f"{_S}rtx_payload_type"),
                    rtx_ssrc=sender._rtx_ssrc,
                    ext_prefix=prefix,
                    ext_suffix=suffix,
                    abs_send_time=has_abs,
                    send=_send_path(sender),
                    report=lambda packets, octets, ts: _report(sender, packets, octets, ts),
                )
            )
            await asyncio.Event().wait()  # until stop() cancels this task
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.warning("forwarding sender failed:\n%s", traceback.format_exc())
        finally:
            target.stop_sending()
            getattr(sender, f"{_S}rtp_exited").set()

    async def retransmit(sequence_number: int) -> None:
        target.retransmit(sequence_number)

    _replace_method(sender, "send", send)
    _replace_method(sender, "_run_rtp", run_rtp)
    _replace_method(sender, "_retransmit", retransmit)


def _report(sender: RTCRtpSender, packets: int, octets: int, rtp_timestamp: int) -> None:
    """The sender report's counters, as aiortc's RTP loop keeps them (once per frame)."""
    setattr(sender, _S_NTP_TIMESTAMP, ntp_now())
    setattr(sender, _S_RTP_TIMESTAMP, rtp_timestamp)
    setattr(sender, _S_OCTET_COUNT, octets)
    setattr(sender, _S_PACKET_COUNT, packets)


check_aiortc_version()


# ---------------------------------------------------------------------------------------
# aioice pins (ICE host gathering: port range, quotas, single-port mux), aioice 0.13.x.
#
# ice.py replaces host-candidate gathering per aioice ``Connection``; udpmux.py hands each
# connection's host ``StunProtocol`` a virtual transport on the node's one UDP port. Every
# private access they need is below, checked by :func:`check_aioice_version` (tested).
# ---------------------------------------------------------------------------------------

AIOICE_PINNED = "0.13."

# aioice.Connection's private attributes used below (each must still be assigned there).
AIOICE_CONNECTION_FIELDS = (
    "_protocols",
    "_transport_policy",
    "_local_candidates_start",
    "_local_username",
    "_nominated",
    "_query_consent_task",
)
# Its public API the override calls or replaces per instance (get_component_candidates,
# query_consent).
AIOICE_CONNECTION_API = (
    "get_component_candidates",
    "gather_candidates",
    "local_password",
    "query_consent",
    "build_request",
)
# Source fragments the ICE override relies on, by class (checked against the source).
AIOICE_CONNECTION_SOURCE = (
    "self._protocols: list[StunProtocol] = []",  # host protocols we append to
    "self._local_candidates_start = True",  # gathering started: too late to patch
    "return self._local_username",  # the ufrag the mux makes node-unique
    "self.get_component_candidates(component=component, addresses=addresses)",
    'message.check_message_integrity(self.local_password.encode("utf8"))',
    "await active_pair.protocol.send_data(data, active_pair.remote_addr)",
    # consent.py: connect() starts the consent loop by this name; it checks nominated pairs
    "self._query_consent_task = asyncio.create_task(self.query_consent())",
    "for pair in self._nominated.values():",
    "request = self.build_request(pair, nominate=False)",
    "self._query_consent_task = None\n                    return await self.close()",
)
AIOICE_PROTOCOL_SOURCE = (
    "self.receiver.protocol_lost(self)",  # connection_lost -> our transport's close()
    "self.transport = cast(asyncio.DatagramTransport, transport)",
    "self.transport.close()\n        await self.__closed",
    "self.transport.sendto(data, addr)",
    "self.transport.sendto(bytes(message), addr)",
    "self.receiver.data_received(data, self.local_candidate.component)",
)
AIORTC_PC_SOURCE = (
    # the local SDP reads the ufrag again after gathering, so a ufrag set while gathering
    # is the one the remote side sees
    "await self.__gather()\n        for i, media in enumerate(description.media):",
)


def check_aioice_version() -> None:
    """Raise ``RuntimeError`` unless aioice is 0.13.x with the internals ice.py/udpmux.py use."""
    from aiortc import rtcicetransport

    _check_version(
        "aioice",
        aioice.__version__,
        AIOICE_PINNED,
        "Connection/StunProtocol internals (taps.py, aioice section)",
    )
    check_fields(aioice_ice.Connection, AIOICE_CONNECTION_FIELDS)
    for cls, fragments in (
        (aioice_ice.Connection, AIOICE_CONNECTION_SOURCE),
        (aioice_ice.StunProtocol, AIOICE_PROTOCOL_SOURCE),
        (RTCPeerConnection, AIORTC_PC_SOURCE),
    ):
        source = inspect.getsource(cls)
        for fragment in fragments:
            if fragment not in source:
                raise RuntimeError(f"{cls.__name__} changed: {fragment.splitlines()[0]!r} is gone")
    if "self._connection = Connection(" not in inspect.getsource(rtcicetransport.RTCIceGatherer):
        raise RuntimeError("RTCIceGatherer no longer owns an aioice Connection as _connection")
    for name in AIOICE_CONNECTION_API:
        if not hasattr(aioice_ice.Connection, name):
            raise RuntimeError(f"aioice.Connection.{name} is gone")


_PC_ICE_TRANSPORTS = "_RTCPeerConnection__iceTransports"  # pinned in AIORTC_FIELDS


def ice_connections(pc: RTCPeerConnection) -> list[aioice_ice.Connection]:
    """The aioice ``Connection`` of every ICE transport of ``pc`` (one under max-bundle)."""
    transports = getattr(pc, _PC_ICE_TRANSPORTS)
    return [transport.iceGatherer._connection for transport in transports]


def ice_gathering_started(connection: aioice_ice.Connection) -> bool:
    return bool(connection._local_candidates_start)


def ice_gathers_host_candidates(connection: aioice_ice.Connection) -> bool:
    """False under the "relay" transport policy (aioice then gathers TURN only)."""
    return connection._transport_policy == aioice_ice.TransportPolicy.ALL


def ice_add_host_protocol(connection: aioice_ice.Connection, protocol: Any) -> None:
    """Register a host ``StunProtocol`` as aioice's own gathering would."""
    connection._protocols.append(protocol)


def ice_replace_host_gathering(
    connection: aioice_ice.Connection,
    gather: Callable[..., Coroutine[Any, Any, list[Any]]],
) -> None:
    """Run ``gather`` for ``get_component_candidates`` (``gather_candidates`` calls it by
    name, pinned in ``AIOICE_CONNECTION_SOURCE``)."""
    _replace_method(connection, "get_component_candidates", gather)


def ice_replace_consent(
    connection: aioice_ice.Connection, query: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run ``query`` instead of aioice's consent loop (``connect()`` starts it by name)."""
    _replace_method(connection, "query_consent", query)


def ice_nominated_pairs(connection: aioice_ice.Connection) -> list[Any]:
    return list(connection._nominated.values())


def ice_consent_request(connection: aioice_ice.Connection, pair: Any) -> Any:
    """The Binding request aioice itself sends as a consent check."""
    return connection.build_request(pair, nominate=False)


def ice_remote_password(connection: aioice_ice.Connection) -> bytes:
    return str(connection.remote_password).encode("utf8")


def ice_forget_consent_task(connection: aioice_ice.Connection) -> None:
    """Detach the running consent task, so ``close()`` does not cancel it mid-close."""
    connection._query_consent_task = None


def ice_set_local_ufrag(connection: aioice_ice.Connection, ufrag: str) -> None:
    """Replace the local ufrag before the local SDP is written (gathering time)."""
    aioice_ice.validate_username(ufrag)
    connection._local_username = ufrag


check_aioice_version()
