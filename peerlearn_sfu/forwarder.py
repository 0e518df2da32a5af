"""RTP-level forwarding: one subscriber's down-track of one publisher track.

The publication hands every RTP packet of its receive leg (SRTP-unprotected and parsed
once by aiortc) to each :class:`RtpDownTrack`, which rewrites only what belongs to its
own leg — SSRC, payload type, header extensions, sequence number and timestamp offsets,
the VP8 picture id — and sends it at once: no jitter buffer, no packetiser, no
``RtpPacket`` per subscriber. Offsets are re-based whenever the source changes (a slot
recycled for another publisher, a publisher back after a reconnect or an unmute), so the
subscriber sees one continuous stream. Each down-track keeps the packets it sent, ready
to protect again, and answers its subscriber's NACKs with RTX on its own RTX SSRC.

In LiveKit's vocabulary this is the down-track with its munger; the send path
(:class:`SendBinding`, protect + ``sendto``) is bound in :mod:`peerlearn_sfu.taps`.
"""

from __future__ import annotations

import os
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import vp8

HISTORY = 512  # packets kept per down-track for RTX (~1 s of 800 kb/s video)
CLOCK_RATE = {"audio": 48000, "video": 90000}
MIN_TS_STEP = {"audio": 960, "video": 3000}  # one 20 ms Opus frame / one 30 fps picture
_HEADER = struct.Struct("!BBHII")
MAX_LAYER = 2  # VP8 L1T3: temporal layers 0 (base), 1, 2
UP_SWITCH_WAIT_S = 2.0  # waiting this long for a layer-sync frame, ask for a keyframe


@dataclass(frozen=True)
class SendBinding:
    """What a started subscribe-leg sender gives its down-track.

    ``send(rtp)`` protects and sends one plain RTP packet (drops it when the leg is
    closed); ``report(packets, octets, rtp_timestamp)`` keeps the sender report's
    counters; ``ext_prefix`` + abs-send-time (3 bytes, when ``abs_send_time``) +
    ``ext_suffix`` is this leg's header-extension block (empty when it negotiated none).
    """

    payload_type: int
    ssrc: int
    rtx_payload_type: int | None
    rtx_ssrc: int
    ext_prefix: bytes
    ext_suffix: bytes
    abs_send_time: bool
    send: Callable[[bytes], None]
    report: Callable[[int, int, int], None]


def _newer(a: int, b: int) -> bool:
    """Sequence number ``a`` comes after ``b`` (RFC 3550 arithmetic, 16 bits)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class RtpDownTrack:
    """Rewrites and sends one publisher track's packets to one subscriber.

    Video starts on a keyframe (after attach, a source switch or start of sending):
    until one arrives packets are dropped and a keyframe is asked for.
    """

    def __init__(self, kind: str, allow_resend: Callable[[int, int], bool] | None = None) -> None:
        self.kind = kind
        self._clock_rate = CLOCK_RATE[kind]
        self._min_step = MIN_TS_STEP[kind]
        self._allow_resend = allow_resend
        self.on_keyframe_needed: Callable[[], None] | None = None
        self._binding: SendBinding | None = None
        self._need_keyframe = kind == "video"
        self._resync = True
        # Source -> output offsets, and where the current source started.
        self._seq_offset = 0
        self._ts_offset = 0
        self._pid_offset = 0
        self._src_start = 0
        # Last packet sent (output numbering), for continuity across source switches.
        self._last_seq = int.from_bytes(os.urandom(2), "big")
        self._last_ts = int.from_bytes(os.urandom(4), "big")
        self._last_pid = 0
        self._last_at: float | None = None
        self._rtx_seq = int.from_bytes(os.urandom(2), "big")
        # Temporal layers (issue 15): what the allocator wants, and what is forwarded now.
        self.target_layer = MAX_LAYER
        self.layer = MAX_LAYER
        self.layer_switches = 0
        self._up_wanted_since: float | None = None
        # Newest source sequence number seen, and the offsets in force before each drop of
        # a layer's packet: (first source seq of the newer offsets, seq offset, pid offset).
        self._src_last = 0
        self._before_drops: deque[tuple[int, int, int]] = deque(maxlen=256)
        self._header_len = 12
        self._history: list[bytes | None] = [None] * HISTORY
        self.forwarded = 0  # frames (video: marker packets; audio: packets)
        self.packets_out = 0
        self.dropped = 0  # packets not sent (waiting for a keyframe, before a switch)
        self.bytes_out = 0
        self.retransmitted = 0
        self.stopped = False

    # ------------------------------------------------------------------ leg lifecycle

    def start(self, binding: SendBinding) -> None:
        """The sender started (the leg is connected): packets can flow."""
        self._binding = binding
        ext = len(binding.ext_prefix) + len(binding.ext_suffix)
        self._header_len = 12 + ext + (3 if binding.abs_send_time else 0)
        self._ask_keyframe()

    def stop_sending(self) -> None:
        self._binding = None

    def stop(self) -> None:
        self.stopped = True
        self._binding = None
        self._history = [None] * HISTORY

    @property
    def readyState(self) -> str:  # MediaStreamTrack's name, as DownTrack has
        return "ended" if self.stopped else "live"

    def reset_source(self) -> None:
        """A new source follows (or the same one after a pause): re-base, and video waits
        for a keyframe."""
        self._resync = True
        if self.kind == "video":
            self._need_keyframe = True
            if self._binding is not None:
                self._ask_keyframe()

    def _ask_keyframe(self) -> None:
        if self.kind == "video" and self.on_keyframe_needed is not None:
            self.on_keyframe_needed()

    # ------------------------------------------------------------------ forwarding

    def forward(
        self,
        seq: int,
        timestamp: int,
        marker: int,
        payload: bytes,
        descriptor: vp8.Descriptor,
        abs_send_time: bytes,
    ) -> None:
        """One packet of the source (called on the event loop, once per subscriber)."""
        binding = self._binding
        if binding is None:
            return
        if self._need_keyframe:
            if not descriptor.keyframe_start:
                self.dropped += 1
                return
            self._need_keyframe = False
            self._rebase(seq, timestamp, descriptor)
        elif self._resync:
            self._rebase(seq, timestamp, descriptor)
        else:
            ahead = (seq - self._src_start) & 0xFFFF
            if ahead >= 0x8000:
                self.dropped += 1  # older than the source's first forwarded packet
                return
            if ahead > 0x4000:
                # Keep the start a window behind, so that "older" stays meaningful.
                self._src_start = (seq - 0x2000) & 0xFFFF
        seq_offset, pid_offset = self._seq_offset, self._pid_offset
        newest = _newer(seq, self._src_last) or seq == self._src_last
        if descriptor.layered:
            if descriptor.frame_start and newest:
                self._switch_layer(descriptor)
            if descriptor.tid > self.layer:
                self._drop_layer_packet(seq, descriptor, newest)
                return
        if newest:
            self._src_last = seq
        elif self._before_drops:
            seq_offset, pid_offset = self._offsets_at(seq)
        out_seq = (seq + seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        if descriptor.picture_id_width:
            out_pid = (descriptor.picture_id + pid_offset) & vp8.picture_id_mask(
                descriptor.picture_id_width
            )
            payload = vp8.with_picture_id(payload, descriptor, out_pid)
        else:
            out_pid = self._last_pid
        header = _HEADER.pack(
            0x90 if self._header_len > 12 else 0x80,
            (marker << 7) | binding.payload_type,
            out_seq,
            out_ts,
            binding.ssrc,
        )
        if binding.abs_send_time:
            rtp = b"".join((header, binding.ext_prefix, abs_send_time, binding.ext_suffix, payload))
        else:
            rtp = b"".join((header, binding.ext_prefix, binding.ext_suffix, payload))
        self._history[out_seq % HISTORY] = rtp
        if _newer(out_seq, self._last_seq):
            self._last_seq = out_seq
            self._last_ts = out_ts
            self._last_pid = out_pid
            self._last_at = time.monotonic() if marker or self.kind == "audio" else None
        binding.send(rtp)
        self.packets_out += 1
        self.bytes_out += len(payload)
        if marker or self.kind == "audio":
            self.forwarded += 1
            binding.report(self.packets_out, self.bytes_out, out_ts)

    # ------------------------------------------------------------------ temporal layers

    def _switch_layer(self, descriptor: vp8.Descriptor) -> None:
        """At a frame boundary: down at once; up only where the new layer's frames no longer
        depend on a dropped one (a keyframe, or a layer-sync frame of that layer)."""
        target = self.target_layer
        if target < self.layer:
            self.layer = target
            self.layer_switches += 1
        elif target > self.layer:
            if descriptor.keyframe_start:
                self.layer = target
                self.layer_switches += 1
            elif descriptor.layer_sync and self.layer < descriptor.tid <= target:
                self.layer = descriptor.tid
                self.layer_switches += 1
            else:
                # Encoders need not mark sync frames after the first cycle: after a while,
                # a keyframe (through the publisher's throttle) lets every layer in.
                now = time.monotonic()
                if self._up_wanted_since is None:
                    self._up_wanted_since = now
                elif now - self._up_wanted_since >= UP_SWITCH_WAIT_S:
                    self._up_wanted_since = now
                    self._ask_keyframe()
                return
        self._up_wanted_since = None

    def _drop_layer_packet(self, seq: int, descriptor: vp8.Descriptor, newest: bool) -> None:
        """Not forwarded: later packets close the gap (sequence numbers), and a dropped
        picture's id is skipped (picture ids stay contiguous); TL0PICIDX is left alone,
        the base layer is never dropped."""
        self.dropped += 1
        if not newest:
            return  # a late packet of a dropped layer: its place was never counted
        self._src_last = seq
        self._before_drops.append(((seq + 1) & 0xFFFF, self._seq_offset, self._pid_offset))
        self._seq_offset = (self._seq_offset - 1) & 0xFFFF
        if descriptor.frame_start and descriptor.picture_id_width:
            self._pid_offset -= 1

    def _offsets_at(self, seq: int) -> tuple[int, int]:
        """The offsets in force when ``seq`` (older than the newest packet) would have been
        forwarded: those before the first drop that came after it."""
        for first_after, seq_offset, pid_offset in self._before_drops:
            if _newer(first_after, seq):
                return seq_offset, pid_offset
        return self._seq_offset, self._pid_offset

    def _rebase(self, seq: int, timestamp: int, descriptor: vp8.Descriptor) -> None:
        """Map the source's numbering onto ours, continuing from the last packet sent."""
        self._resync = False
        self._src_start = seq
        self._src_last = seq
        self._before_drops.clear()
        # A new source starts on a keyframe: every layer decodes from here.
        self.layer = self.target_layer
        self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
        step = self._min_step
        if self._last_at is not None:
            step = max(step, int((time.monotonic() - self._last_at) * self._clock_rate))
        self._ts_offset = (self._last_ts + step - timestamp) & 0xFFFFFFFF
        if descriptor.picture_id_width:
            mask = vp8.picture_id_mask(descriptor.picture_id_width)
            self._pid_offset = (self._last_pid + 1 - descriptor.picture_id) & mask

    # ------------------------------------------------------------------ retransmission

    def retransmit(self, seq: int) -> bool:
        """Answer the subscriber's NACK for ``seq`` (RTX when negotiated); False when it
        is no longer in the history or the leg's budget refuses it."""
        binding = self._binding
        rtp = self._history[seq % HISTORY]
        if binding is None or rtp is None or int.from_bytes(rtp[2:4], "big") != seq:
            return False
        if self._allow_resend is not None and not self._allow_resend(binding.ssrc, seq):
            return False
        if binding.rtx_payload_type is not None:
            hl = self._header_len
            rtx_header = _HEADER.pack(
                rtp[0], (rtp[1] & 0x80) | binding.rtx_payload_type, self._rtx_seq, 0, 0
            )
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            rtp = b"".join(
                (
                    rtx_header[:4],
                    rtp[4:8],
                    binding.rtx_ssrc.to_bytes(4, "big"),
                    rtp[12:hl],
                    rtp[2:4],  # OSN: the original sequence number (RFC 4588)
                    rtp[hl:],
                )
            )
        binding.send(rtp)
        self.retransmitted += 1
        return True
