"""RTP-level forwarding, pure: the VP8 descriptor and one down-track's rewriting rules."""

from __future__ import annotations

import itertools
import struct

import pytest
from aiortc.rtp import RtpPacket

from peerlearn_sfu import vp8
from peerlearn_sfu.forwarder import HISTORY, RtpDownTrack, SendBinding

KEY_DATA = b"\x10\x02\x00\x9d\x01\x2a" + bytes(20)  # frame tag (key) + start code
DELTA_DATA = b"\x31\x02\x00" + bytes(23)


def vp8_payload(pid: int, *, start: bool = True, key: bool = False, width: int = 15) -> bytes:
    """X=1, I=1 and the picture id, S per ``start``, partition 0; then frame data."""
    first = 0x80 | (0x10 if start else 0)
    if width == 15:
        descriptor = bytes((first, 0x80)) + (0x8000 | pid).to_bytes(2, "big")
    else:
        descriptor = bytes((first, 0x80, pid & 0x7F))
    return descriptor + ((KEY_DATA if key else DELTA_DATA) if start else bytes(30))


class Wire:
    """A fake leg: what the down-track sent, parsed."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.reports: list[tuple[int, int, int]] = []

    def binding(self, *, rtx: int | None = 97) -> SendBinding:
        prefix = b"\xbe\xde\x00\x02" + bytes((0x32,))  # abs-send-time, id 3
        suffix = bytes((0x40,)) + b"0" + bytes(2)  # MID "0", id 4, padding
        return SendBinding(
            payload_type=96,
            ssrc=0x11111111,
            rtx_payload_type=rtx,
            rtx_ssrc=0x22222222,
            ext_prefix=prefix,
            ext_suffix=suffix,
            abs_send_time=True,
            send=self.sent.append,
            report=lambda *r: self.reports.append(r),
        )

    def packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(p) for p in self.sent]


def started(kind: str = "video", **kw: object) -> tuple[RtpDownTrack, Wire, list[int]]:
    asks: list[int] = []
    track = RtpDownTrack(kind, **kw)  # type: ignore[arg-type]
    track.on_keyframe_needed = lambda: asks.append(1)
    wire = Wire()
    track.start(wire.binding())
    return track, wire, asks


def send_frames(track: RtpDownTrack, first_seq: int, ts: int, pids: list[int], key_at: set[int]):
    """One packet per frame (marker set), picture ids ``pids``."""
    seq = first_seq
    for i, pid in enumerate(pids):
        payload = vp8_payload(pid, key=i in key_at)
        track.forward(seq & 0xFFFF, ts + 3000 * i, 1, payload, vp8.parse(payload), b"\x00\x00\x01")
        seq += 1


# ---------------------------------------------------------------- the descriptor


def test_descriptor_fields():
    d = vp8.parse(vp8_payload(0x1234, key=True))
    assert d.keyframe_start and d.frame_start and d.picture_id == 0x1234
    assert (d.picture_id_offset, d.picture_id_width, d.size) == (2, 15, 4)
    d = vp8.parse(vp8_payload(5, width=7))
    assert not d.keyframe_start and d.frame_start and (d.picture_id, d.picture_id_width) == (5, 7)
    d = vp8.parse(vp8_payload(5, start=False, key=True))
    assert not d.keyframe_start and not d.frame_start


def test_descriptor_temporal_layer_fields():
    # X, I (15 bit), L, T: TL0PICIDX then TID=2 / Y=1
    payload = bytes((0x90, 0xE0)) + (0x8000 | 7).to_bytes(2, "big") + bytes((3, 0xA0)) + DELTA_DATA
    d = vp8.parse(payload)
    assert (d.tid, d.layer_sync, d.size, d.picture_id) == (2, True, 6, 7)


@pytest.mark.parametrize(
    "payload", [b"", b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x90\xe0\x80\x01\x03", b"\x10"]
)
def test_a_malformed_descriptor_is_no_descriptor(payload):
    assert vp8.parse(payload) == vp8.NO_DESCRIPTOR


def test_a_cut_frame_is_not_a_keyframe():
    # Key-frame bit clear but no start code: the tail of a frame cut by a gap.
    assert not vp8.parse(bytes((0x90, 0x80, 0x80, 0x01)) + bytes(26)).keyframe_start


def test_picture_id_rewrite_keeps_the_length():
    payload = vp8_payload(0x7FFF)
    d = vp8.parse(payload)
    out = vp8.with_picture_id(payload, d, 3)
    assert len(out) == len(payload) and vp8.parse(out).picture_id == 3
    assert out[d.size :] == payload[d.size :]


# ---------------------------------------------------------------- one down-track


def test_video_waits_for_a_keyframe_and_asks_for_one():
    track, wire, asks = started()
    assert asks == [1]  # started: a keyframe is worth asking for
    send_frames(track, 100, 9000, [10, 11, 12, 13], key_at={2})
    assert track.dropped == 2 and len(wire.sent) == 2
    first = wire.packets()[0]
    assert first.ssrc == 0x11111111 and first.payload_type == 96 and first.marker == 1
    assert vp8.parse(first.payload).keyframe_start


def test_payload_is_the_publishers_but_for_the_picture_id():
    track, wire, _ = started()
    send_frames(track, 100, 9000, [10, 11], key_at={0})
    for sent, pid in zip(wire.packets(), [10, 11], strict=True):
        original = vp8_payload(pid, key=pid == 10)
        assert sent.payload[4:] == original[4:]


def test_numbering_stays_continuous_across_a_source_switch():
    track, wire, _ = started()
    send_frames(track, 60000, 1000, [100, 101, 102], key_at={0})
    track.reset_source()  # the slot is recycled for another publisher
    send_frames(track, 5, 777, [9, 10], key_at={0})
    packets = wire.packets()
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    tss = [p.timestamp for p in packets]
    assert all(0 < (b - a) & 0xFFFFFFFF < 1 << 31 for a, b in itertools.pairwise(tss))
    pids = [vp8.parse(p.payload).picture_id for p in packets]
    assert all((b - a) & 0x7FFF == 1 for a, b in itertools.pairwise(pids))


def test_a_publisher_gap_stays_a_gap_and_late_packets_keep_their_place():
    track, wire, _ = started()
    send_frames(track, 10, 0, [1], key_at={0})
    p3 = vp8_payload(3)
    track.forward(12, 6000, 1, p3, vp8.parse(p3), b"\x00\x00\x00")  # 11 is missing
    p2 = vp8_payload(2)
    track.forward(11, 3000, 1, p2, vp8.parse(p2), b"\x00\x00\x00")  # repaired late
    seqs = [p.sequence_number for p in wire.packets()]
    assert (seqs[1] - seqs[0]) & 0xFFFF == 2 and (seqs[2] - seqs[0]) & 0xFFFF == 1


def test_packets_from_before_the_keyframe_are_dropped():
    track, wire, _ = started()
    send_frames(track, 500, 0, [7], key_at={0})
    old = vp8_payload(6)
    track.forward(499, 0, 1, old, vp8.parse(old), b"\x00\x00\x00")
    assert len(wire.sent) == 1 and track.dropped == 1


def test_nack_is_answered_with_rtx_from_the_history():
    allowed: list[tuple[int, int]] = []
    track, wire, _ = started(allow_resend=lambda ssrc, seq: allowed.append((ssrc, seq)) or True)
    send_frames(track, 100, 0, [1, 2, 3], key_at={0})
    media = wire.packets()
    assert track.retransmit(media[1].sequence_number)
    rtx = wire.packets()[-1]
    assert rtx.ssrc == 0x22222222 and rtx.payload_type == 97
    assert rtx.timestamp == media[1].timestamp and rtx.marker == media[1].marker
    assert struct.unpack("!H", rtx.payload[:2])[0] == media[1].sequence_number
    assert rtx.payload[2:] == media[1].payload
    assert allowed == [(0x11111111, media[1].sequence_number)]
    # Never sent, or overwritten in the ring: not answered.
    assert not track.retransmit((media[0].sequence_number - 1) & 0xFFFF)
    assert not track.retransmit((media[0].sequence_number + HISTORY) & 0xFFFF)


def test_the_leg_budget_can_refuse_a_retransmission():
    track, wire, _ = started(allow_resend=lambda ssrc, seq: False)
    send_frames(track, 1, 0, [1], key_at={0})
    assert not track.retransmit(wire.packets()[0].sequence_number)
    assert len(wire.sent) == 1


def test_audio_needs_no_keyframe_and_reports_each_packet():
    track, wire, asks = started("audio")
    for i in range(3):
        track.forward(40 + i, 960 * i, 0, b"opus" * 10, vp8.NO_DESCRIPTOR, b"\x00\x00\x00")
    assert asks == [] and len(wire.sent) == 3 and track.forwarded == 3
    assert wire.reports[-1][0] == 3


def test_nothing_is_sent_before_start_or_after_stop():
    track = RtpDownTrack("audio")
    track.forward(1, 0, 0, b"x", vp8.NO_DESCRIPTOR, b"\x00\x00\x00")
    wire = Wire()
    track.start(wire.binding())
    track.stop()
    track.forward(2, 960, 0, b"x", vp8.NO_DESCRIPTOR, b"\x00\x00\x00")
    assert wire.sent == [] and track.readyState == "ended"


# ---------------------------------------------------------------- temporal layers (L1T3)

L1T3_TIDS = (0, 2, 1, 2)  # libvpx's 3-layer pattern: base, top, middle, top


def l1t3_payload(pid: int, tl0: int, tid: int, *, sync: bool, key: bool, start: bool = True):
    """X, S (per ``start``), partition 0; I (15-bit pid), L (TL0PICIDX), T (TID, Y)."""
    first = 0x80 | (0x10 if start else 0)
    descriptor = bytes((first, 0xE0)) + (0x8000 | pid).to_bytes(2, "big")
    descriptor += bytes((tl0 & 0xFF, (tid << 6) | (0x20 if sync else 0)))
    return descriptor + ((KEY_DATA if key else DELTA_DATA) if start else bytes(30))


class L1T3Source:
    """Frames of an L1T3 publisher: ``packets_per_frame`` packets each, numbered on."""

    def __init__(self, seq: int = 1000, pid: int = 300) -> None:
        self.seq, self.pid, self.tl0, self.index, self.ts = seq, pid, 7, 0, 0
        self.sent: list[tuple[int, int, int]] = []  # (seq, pid, tid) of every packet

    def frame(self, track: RtpDownTrack, *, packets: int = 1, key: bool = False) -> int:
        tid = 0 if key else L1T3_TIDS[self.index % 4]
        if tid == 0 and self.index:
            self.tl0 += 1
        sync = key or (self.index % 4 in (1, 2) and self.index < 4)
        for i in range(packets):
            payload = l1t3_payload(
                self.pid, self.tl0, tid, sync=sync, key=key and i == 0, start=i == 0
            )
            marker = int(i == packets - 1)
            self.sent.append((self.seq, self.pid, tid))
            track.forward(self.seq, self.ts, marker, payload, vp8.parse(payload), b"\0\0\0")
            self.seq = (self.seq + 1) & 0xFFFF
        self.pid = (self.pid + 1) & 0x7FFF
        self.index += 1
        self.ts += 4500
        return tid


def layers_seen(wire: Wire) -> list[int]:
    return [vp8.parse(p.payload).tid for p in wire.packets()]


def assert_contiguous(wire: Wire) -> None:
    packets = wire.packets()
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)), seqs
    starts = [vp8.parse(p.payload) for p in packets]
    pids = [d.picture_id for d in starts if d.frame_start]
    assert all((b - a) & 0x7FFF == 1 for a, b in itertools.pairwise(pids)), pids


def test_descriptor_says_layered_only_with_the_t_bit():
    assert vp8.parse(l1t3_payload(1, 1, 2, sync=False, key=False)).layered
    assert not vp8.parse(vp8_payload(1)).layered


def test_base_layer_only_keeps_numbering_contiguous_and_tl0picidx_untouched():
    track, wire, _ = started()
    track.target_layer = 0
    source = L1T3Source()
    source.frame(track, key=True, packets=2)
    for _ in range(11):
        source.frame(track, packets=2)
    assert set(layers_seen(wire)) == {0}
    assert_contiguous(wire)
    tl0 = [p.payload[4] for p in wire.packets()]
    assert tl0 == sorted(tl0) and len(set(tl0)) == 3  # the publisher's own TL0PICIDX values


def test_switching_up_waits_for_a_layer_sync_frame_and_down_is_at_a_frame_boundary():
    track, wire, _ = started()
    track.target_layer = 0
    source = L1T3Source()
    source.frame(track, key=True)
    for _ in range(3):  # tid 2, 1, 2 (the sync frames of the first cycle): all dropped
        source.frame(track)
    track.target_layer = 2
    source.frame(track)  # tid 0
    assert source.frame(track) == 2  # tid 2 without the Y bit: still not forwarded
    assert track.layer == 0
    source.frame(track, key=True)  # a keyframe switches straight up
    assert track.layer == 2
    source.frame(track)
    assert layers_seen(wire)[-1] == 2
    # Down: asked in the middle of a two-packet top-layer frame, the frame still completes.
    source.index = 1  # next: tid 2
    tid_packets_before = len(wire.sent)
    source.frame(track, packets=1)
    track.target_layer = 0
    assert track.layer == 2  # not before the next frame starts
    source.frame(track)  # tid 1: dropped now
    assert len(wire.sent) == tid_packets_before + 1
    assert_contiguous(wire)
    assert track.layer_switches == 2


def test_a_late_packet_from_before_a_drop_keeps_its_place():
    track, wire, _ = started()
    track.target_layer = 1
    source = L1T3Source(seq=65530)  # across the 16-bit wrap too
    source.frame(track, key=True)
    lost_seq = source.seq
    source.frame(track)  # tid 2: dropped
    source.frame(track, packets=2)  # tid 1
    late = wire.sent.pop(-2)  # its first packet "was lost" on the way to us
    before = len(wire.sent)
    for _ in range(3):
        source.frame(track)  # tid 2 (dropped), 0, 2 (dropped)
    original = RtpPacket.parse(late)
    # The publisher's retransmission of it arrives late: same output number as the first time.
    seq = (lost_seq + 1) & 0xFFFF
    payload = l1t3_payload(source.pid - 4, 7, 1, sync=False, key=False)
    track.forward(seq, 9000, 0, payload, vp8.parse(payload), b"\0\0\0")
    again = RtpPacket.parse(wire.sent[-1])
    assert len(wire.sent) == before + 2
    assert again.sequence_number == original.sequence_number
    assert vp8.parse(again.payload).picture_id == vp8.parse(original.payload).picture_id
