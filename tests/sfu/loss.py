"""User-space packet loss for the SFU tests and the benchmark (there is no netem here).

A :class:`LossShim` sits on a peer connection's datagram path, where SRTP meets RTP:

* ``attach_uplink(pc)`` — a publisher's outgoing RTP, just before SRTP protection (the
  DTLS transport's ``_send_rtp``): a dropped packet is never encrypted nor sent;
* ``attach_downlink(pc, track_map)`` — a subscriber's incoming RTP, just after SRTP
  decryption and before routing (``taps.install_receive_filter``);
* ``attach_server_uplink(pc)`` — the same receive-side filter on the *server's* publish
  leg, which shapes the uplink of a publisher we cannot reach (a real browser).

Every RTP packet is classified from its clear header and the connection's SDP
(:class:`RtpInfo`: direction, kind — audio/camera/screen —, publisher, RTX or not, the
original sequence number an RTX packet repairs), then dropped by rules: the next N packets
matching a predicate (:meth:`LossShim.drop_next`) and/or a random share of the matching
ones from a seeded RNG (:meth:`LossShim.drop_random`). RTCP is never dropped.

Also here: :func:`longest_freeze` and :func:`frames_kept`, the measures the loss tests and
the benchmark report.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, sdp
from aiortc.codecs import is_rtx
from aiortc.rtp import is_rtcp

from peerlearn_sfu import taps

TRACK_ORDER = ("audio", "camera", "screen")  # a publish leg's m-lines, in order


@dataclass(frozen=True)
class RtpInfo:
    """What the shim knows about one RTP packet."""

    direction: str  # "up" (publisher -> server) or "down" (server -> subscriber)
    ssrc: int
    seq: int
    payload_type: int
    kind: str | None  # "audio" | "camera" | "screen"; None when not known (yet)
    rtx: bool
    osn: int | None  # RTX: the sequence number of the packet it repairs
    user_id: int | None  # downlink: whose track it is


Match = Callable[[RtpInfo], bool]


@dataclass
class Chosen:
    """A :meth:`LossShim.drop_next` rule: drops the next ``remaining`` matching packets."""

    match: Match
    remaining: int
    dropped: list[tuple[float, RtpInfo]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.remaining <= 0


@dataclass
class RandomLoss:
    rate: float
    match: Match | None
    dropped: int = 0
    seen: int = 0


def _header(data: bytes) -> tuple[int, int, int, int] | None:
    """(ssrc, seq, payload type, payload offset) of a plain or SRTP packet's clear header."""
    if len(data) < 12 or is_rtcp(data) or data[0] >> 6 != 2:
        return None
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:  # header extension: 4-byte header + length words
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    ssrc = int.from_bytes(data[8:12], "big")
    seq = int.from_bytes(data[2:4], "big")
    return ssrc, seq, data[1] & 0x7F, offset


class _Describer:
    """SSRC -> (mid, rtx) from an SDP, refreshed when an unknown SSRC shows up."""

    def __init__(
        self, sdp_of: Callable[[], str | None], kind_of: Callable[[str], tuple[str, int | None]]
    ) -> None:
        self._sdp_of = sdp_of
        self._kind_of = kind_of
        self._sdp: str | None = None
        self._ssrcs: dict[int, tuple[str, bool]] = {}
        self._rtx_pts: set[int] = set()

    def _refresh(self) -> None:
        text = self._sdp_of()
        if not text or text == self._sdp:
            return
        self._sdp = text
        self._ssrcs.clear()
        self._rtx_pts.clear()
        for media in sdp.SessionDescription.parse(text).media:
            mid = media.rtp.muxId
            if mid is None:
                continue
            self._rtx_pts.update(c.payloadType for c in media.rtp.codecs if is_rtx(c))
            rtx = {g.items[1] for g in media.ssrc_group if g.semantic == "FID" and len(g.items) > 1}
            for s in media.ssrc:
                self._ssrcs[s.ssrc] = (mid, s.ssrc in rtx)

    def describe(self, direction: str, data: bytes) -> RtpInfo | None:
        header = _header(data)
        if header is None:
            return None
        ssrc, seq, pt, offset = header
        if ssrc not in self._ssrcs:
            self._refresh()
        mid, rtx = self._ssrcs.get(ssrc, (None, pt in self._rtx_pts))
        kind, user_id = self._kind_of(mid) if mid is not None else (None, None)
        osn = None
        if rtx and len(data) >= offset + 2:
            osn = int.from_bytes(data[offset : offset + 2], "big")
        return RtpInfo(direction, ssrc, seq, pt, kind, rtx, osn, user_id)


def _transport(pc: RTCPeerConnection) -> Any:
    transceivers = pc.getTransceivers()
    if not transceivers:
        raise ValueError("the peer connection has no transceivers yet")
    return transceivers[0].receiver.transport  # max-bundle: one transport for all


def _publish_kinds(pc: RTCPeerConnection) -> dict[str, str]:
    """mid -> audio/camera/screen for a publish leg (m-lines in that order)."""
    out = {}
    videos = 0
    for t in pc.getTransceivers():
        if t.mid is None:
            continue
        if t.kind == "audio":
            out[t.mid] = "audio"
        else:
            out[t.mid] = TRACK_ORDER[1 + min(videos, 1)]
            videos += 1
    return out


class LossShim:
    """Drops chosen and/or random RTP packets on the peer connections it is attached to."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._chosen: list[Chosen] = []
        self._random: list[RandomLoss] = []
        self.seen: Counter[tuple[str, str | None]] = Counter()  # (direction, kind)
        self.dropped: list[tuple[float, RtpInfo]] = []
        self.enabled = True

    # -- rules ----------------------------------------------------------------------

    def drop_next(self, match: Match, count: int = 1) -> Chosen:
        rule = Chosen(match, count)
        self._chosen.append(rule)
        return rule

    def drop_random(self, rate: float, match: Match | None = None) -> RandomLoss:
        if not 0 <= rate < 1:
            raise ValueError("rate must be in [0, 1)")
        rule = RandomLoss(rate, match)
        self._random.append(rule)
        return rule

    def clear(self) -> None:
        self._chosen.clear()
        self._random.clear()

    def dropped_where(self, match: Match) -> list[tuple[float, RtpInfo]]:
        return [(t, p) for t, p in self.dropped if match(p)]

    def decide(self, info: RtpInfo) -> bool:
        """True: drop this packet."""
        self.seen[(info.direction, info.kind)] += 1
        if not self.enabled:
            return False
        for rule in self._chosen:
            if not rule.done and rule.match(info):
                rule.remaining -= 1
                now = time.monotonic()
                rule.dropped.append((now, info))
                self.dropped.append((now, info))
                return True
        for loss in self._random:
            if loss.match is None or loss.match(info):
                loss.seen += 1
                if self.rng.random() < loss.rate:
                    loss.dropped += 1
                    self.dropped.append((time.monotonic(), info))
                    return True
        return False

    # -- attachment -----------------------------------------------------------------

    def attach_uplink(self, pc: RTCPeerConnection) -> None:
        """A publisher's outgoing RTP (its publish connection, after setLocalDescription)."""
        kinds = _publish_kinds(pc)
        local = pc.localDescription
        describer = _Describer(
            lambda: local.sdp if local else None, lambda mid: (kinds.get(mid), None)
        )
        transport = _transport(pc)
        original = transport._send_rtp

        async def send_rtp(data: bytes) -> None:
            info = describer.describe("up", data)
            if info is not None and self.decide(info):
                return
            await original(data)

        transport._send_rtp = send_rtp

    def attach_downlink(
        self, pc: RTCPeerConnection, track_map: Callable[[], dict[str, tuple[int, str]]]
    ) -> None:
        """A subscriber's incoming RTP; ``track_map()`` is mid -> (publisher, kind)."""

        def kind_of(mid: str) -> tuple[str | None, int | None]:
            user_id, kind = track_map().get(mid, (None, None))
            return kind, user_id

        describer = _Describer(
            lambda: pc.remoteDescription.sdp if pc.remoteDescription else None, kind_of
        )
        taps.install_receive_filter(
            _transport(pc), lambda data: self._drop("down", describer, data)
        )

    def attach_server_uplink(self, pc: RTCPeerConnection, user_id: int | None = None) -> None:
        """The server's publish leg of one participant: what it receives from them."""
        kinds = _publish_kinds(pc)
        describer = _Describer(
            lambda: pc.remoteDescription.sdp if pc.remoteDescription else None,
            lambda mid: (kinds.get(mid), user_id),
        )
        taps.install_receive_filter(_transport(pc), lambda data: self._drop("up", describer, data))

    def _drop(self, direction: str, describer: _Describer, data: bytes) -> bool:
        info = describer.describe(direction, data)
        return info is not None and self.decide(info)


# ------------------------------------------------------------------------------ measures


def longest_freeze(times: Iterable[float], start: float, end: float) -> float:
    """The longest time without a frame within ``[start, end]`` (edges included)."""
    inside = sorted(t for t in times if start <= t <= end)
    points = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(points))


def load_allowance(times: Iterable[float], before: float, window_s: float = 2.0) -> float:
    """How long the machine's own load already stalled this stream just before ``before``:
    the longest gap in the ``window_s`` before it, less one 20 fps frame interval. Clients
    and server share one event loop and two busy cores; a bound on what a loss adds is
    this allowance plus the bound (the repair counters say how the loss was handled)."""
    times = list(times)
    return max(0.0, longest_freeze(times, before - window_s, before - 0.1) - 0.05)


def frames_kept(sent: list[bytes], received: Iterable[bytes]) -> float:
    """Share of the frames ``sent`` (by content) that arrived."""
    if not sent:
        return 1.0
    got = set(received)
    return sum(1 for f in sent if f in got) / len(sent)


def camera(info: RtpInfo) -> bool:
    return info.kind == "camera" and not info.rtx


def media_of(kind: str, user_id: int | None = None) -> Match:
    """Original (non-RTX) packets of ``kind`` (of ``user_id``'s track on a downlink)."""

    def match(info: RtpInfo) -> bool:
        return info.kind == kind and not info.rtx and (user_id is None or info.user_id == user_id)

    return match
