"""A publisher's track on the receive leg: fans its media out to the down-tracks.

RTP-level (the default): every packet goes to each :class:`~.forwarder.RtpDownTrack` as it
arrives. Frame-level (``[sfu] forwarding = "frame"``): aiortc's jitter buffer
re-assembles frames, which each :class:`~.downtrack.DownTrack` re-packetises.
"""

from __future__ import annotations

import time
from fractions import Fraction

import av
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from . import taps, vp8
from .bitrate import BitrateController, LayerRates
from .downtrack import DownTrack
from .forwarder import RtpDownTrack
from .keyframes import KeyframeRequester, LossRepair
from .tasks import TaskSet

TRACK_KINDS = ("audio", "camera", "screen")


VP8_START_CODE = b"\x9d\x01\x2a"


def is_vp8_keyframe(data: bytes) -> bool:
    """VP8 frame tag: bit 0 of the first byte is 0 for a key frame, and the start code
    follows the 3-byte tag (RFC 6386 §9.1). The start code keeps the tail of a frame cut
    by a skipped gap from passing for a keyframe."""
    return len(data) >= 6 and not (data[0] & 0x01) and data[3:6] == VP8_START_CODE


class Publication:
    """One of a participant's three published tracks (``audio``, ``camera``, ``screen``)."""

    def __init__(
        self,
        owner_id: int,
        kind: str,
        receiver: RTCRtpReceiver,
        keyframe_interval_s: float,
        max_bitrate_bps: int,
        tasks: TaskSet,
        on_audio_level: object = None,
        rtp_level: bool = True,
    ) -> None:
        self.owner_id = owner_id
        self.kind = kind
        self.media_kind = "audio" if kind == "audio" else "video"
        self.receiver = receiver
        self.rtp_level = rtp_level
        self.downtracks: set[DownTrack] = set()
        self.rtp_downtracks: set[RtpDownTrack] = set()
        self.packets_in = 0
        self.layers = LayerRates()  # bytes per temporal layer (layered publishers only)
        self._paused = False  # muted by a moderator since the last forwarded packet
        self.forwarding = True  # False while muted by a moderator
        self.keyframes = KeyframeRequester(receiver, keyframe_interval_s, tasks)
        self.bitrate = BitrateController(max_bitrate_bps)
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframes_in = 0
        self.audio_level: int | None = None  # last RFC 6464 level, dBov (127 = silence)
        self.audio_level_at = 0.0
        self._time_bases: dict[int, Fraction] = {}
        # After a gap we gave up on, delta frames are undecodable until the next keyframe.
        self._await_keyframe = False
        self.frames_skipped = 0
        self.repair: LossRepair | None = None
        if self.media_kind == "video":
            self.repair = LossRepair(
                receiver,
                self._on_unrepairable,
                spawn=lambda coro: tasks.spawn(coro, name="renack"),
            )
        if rtp_level:
            taps.use_forwarding_buffer(receiver, self._on_rtp)
        elif self.media_kind == "audio":
            # Opus: one packet is one frame; forward as it comes (see taps).
            taps.use_passthrough_audio_buffer(receiver)
        taps.install_receiver_tap(
            receiver,
            self._on_frame,
            on_packet=self._on_packet if self.media_kind == "audio" and not rtp_level else None,
            on_estimate=self.bitrate.set_uplink if self.media_kind == "video" else None,
        )

    def _on_packet(self, packet: RtpPacket) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            self.audio_level = level[1]
            self.audio_level_at = time.monotonic()

    def _on_rtp(self, packet: RtpPacket) -> None:
        """One packet from the publisher (RTX already unwrapped): to every down-track."""
        payload = packet.payload
        if not payload:
            return  # padding only (bandwidth probing): nothing to forward
        self.packets_in += 1
        self.bytes_in += len(payload)
        if self.media_kind == "video":
            descriptor = vp8.parse(payload)
            if descriptor.layered:
                self.bitrate.layered = True
                self.layers.add(descriptor.tid, len(payload), time.monotonic())
            if descriptor.keyframe_start:
                self.keyframes_in += 1
            if packet.marker:
                self.frames_in += 1
        else:
            descriptor = vp8.NO_DESCRIPTOR
            self.frames_in += 1
            self._on_packet(packet)
        if not self.forwarding:
            self._paused = True
            return
        if self._paused:
            # Unmuted: every subscriber re-bases (and video waits for a keyframe).
            self._paused = False
            for track in self.rtp_downtracks:
                track.reset_source()
        if not self.rtp_downtracks:
            return
        abs_send_time = taps.abs_send_time()
        seq = packet.sequence_number
        timestamp = packet.timestamp
        marker = packet.marker
        for track in self.rtp_downtracks:
            track.forward(seq, timestamp, marker, payload, descriptor, abs_send_time)

    def _on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        data = frame.data
        self.frames_in += 1
        self.bytes_in += len(data)
        keyframe = self.media_kind == "video" and is_vp8_keyframe(data)
        if keyframe:
            self.keyframes_in += 1
            self._await_keyframe = False
        elif self._await_keyframe:
            self.frames_skipped += 1
            # Asked again while waiting (the PLI may be lost too); the throttle keeps
            # this to one PLI per keyframe interval.
            self.keyframes.request()
            return
        if not self.forwarding or not self.downtracks:
            return
        time_base = self._time_bases.get(codec.clockRate)
        if time_base is None:
            time_base = self._time_bases[codec.clockRate] = Fraction(1, codec.clockRate)
        packet = av.Packet(data)
        packet.pts = frame.timestamp
        packet.time_base = time_base
        for track in self.downtracks:
            track.push(packet, keyframe)

    def request_keyframe(self) -> None:
        if self.media_kind == "video":
            self.keyframes.request()

    def _on_unrepairable(self) -> None:
        # A packet stayed lost: the receive leg skipped it; only a keyframe helps now.
        # Frame-level, the frames before it are undecodable and are not forwarded;
        # RTP-level, the subscribers' decoders see the gap themselves.
        if not self.rtp_level:
            self._await_keyframe = True
        self.keyframes.request()

    def close(self) -> None:
        if self.repair is not None:
            self.repair.close()
        self.keyframes.close()
        self.downtracks.clear()
        self.rtp_downtracks.clear()
