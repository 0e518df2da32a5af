"""The VP8 RTP payload descriptor (RFC 7741 §4.2), read and rewritten in place.

The RTP-level forwarder needs three facts per packet: whether it starts a keyframe (a
down-track starts a subscriber on one), where the picture id is (it is kept contiguous per
down-track across source switches and dropped pictures), and how many bytes the
descriptor takes. Nothing here allocates beyond the small result tuple.
"""

from __future__ import annotations

from typing import NamedTuple

VP8_START_CODE = b"\x9d\x01\x2a"


class Descriptor(NamedTuple):
    """What one packet's descriptor says (``picture_id_width``: 0, 7 or 15 bits;
    ``frame_start``: the packet starts a frame; ``size``: the descriptor's length;
    ``layered``: it carries a temporal layer index (T bit), ``tid`` and ``layer_sync`` (the
    Y bit, or a keyframe: no later frame of this layer depends on a dropped one)."""

    keyframe_start: bool
    picture_id: int
    picture_id_offset: int
    picture_id_width: int
    tid: int
    layer_sync: bool
    frame_start: bool
    size: int
    layered: bool = False


NO_DESCRIPTOR = Descriptor(False, 0, 0, 0, 0, False, False, 0)


def parse(payload: bytes) -> Descriptor:
    """The descriptor of one VP8 RTP payload; ``NO_DESCRIPTOR`` when it is malformed.

    ``keyframe_start``: the packet starts partition 0 of a frame whose VP8 frame tag has
    the key-frame bit clear (RFC 6386 §9.1: bit 0 of the first byte is 0 for a key frame).
    """
    n = len(payload)
    if n < 1:
        return NO_DESCRIPTOR
    first = payload[0]
    i = 1
    pid = 0
    pid_offset = 0
    pid_width = 0
    tid = 0
    sync = False
    if first & 0x80:  # X: extension byte follows
        if n < 2:
            return NO_DESCRIPTOR
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id
            if n <= i:
                return NO_DESCRIPTOR
            if payload[i] & 0x80:  # M: 15-bit picture id
                if n <= i + 1:
                    return NO_DESCRIPTOR
                pid = ((payload[i] & 0x7F) << 8) | payload[i + 1]
                pid_offset, pid_width = i, 15
                i += 2
            else:
                pid = payload[i] & 0x7F
                pid_offset, pid_width = i, 7
                i += 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID / Y / KEYIDX byte
            if n <= i:
                return NO_DESCRIPTOR
            if ext & 0x20:
                tid = payload[i] >> 6
                sync = bool(payload[i] & 0x20)
            i += 1
    if n <= i:
        return NO_DESCRIPTOR
    start = bool(first & 0x10) and (first & 0x0F) == 0  # S and partition index 0
    # The start code after the 3-byte frame tag keeps a cut frame from passing for one.
    keyframe = start and not (payload[i] & 0x01) and payload[i + 3 : i + 6] == VP8_START_CODE
    layered = bool(first & 0x80) and bool(payload[1] & 0x20)
    return Descriptor(
        keyframe, pid, pid_offset, pid_width, tid, sync or keyframe, start, i, layered
    )


def with_picture_id(payload: bytes, descriptor: Descriptor, picture_id: int) -> bytes:
    """``payload`` with its picture id replaced (same width, so the length is unchanged)."""
    o = descriptor.picture_id_offset
    if descriptor.picture_id_width == 15:
        value = 0x8000 | (picture_id & 0x7FFF)
        return b"".join((payload[:o], value.to_bytes(2, "big"), payload[o + 2 :]))
    if descriptor.picture_id_width == 7:
        return b"".join((payload[:o], bytes((picture_id & 0x7F,)), payload[o + 1 :]))
    return payload


def picture_id_mask(width: int) -> int:
    return (1 << width) - 1 if width else 0
