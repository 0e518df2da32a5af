"""Checks on client SDP before aiortc applies it (see docs/protocol.md, "Connections").

aiortc accepts whatever a remote description asks for: an extra m-line in a publish offer
becomes a new receive transceiver whose decoder thread nobody taps (13 MB/s of decoded
frames queued for one 300 kb/s stream), and a ``sendrecv`` subscribe answer would start
receivers on the subscribe leg. So the publish offer must be exactly the layout the SFU
pre-allocated and the subscribe answer must mirror the server's offer m-line for m-line;
anything else is refused with ``invalid_sdp`` naming what was wrong, before any
connection exists or changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp

from .errors import SfuError

#: What each publish m-line carries, in order; the data channel may follow.
PUBLISH_LAYOUT = (("audio", "audio"), ("video", "camera"), ("video", "screen"))
PINNED_CODEC = {"audio": "audio/opus", "video": "video/vp8"}
PUBLISH_DIRECTIONS = ("sendonly", "inactive")
ANSWER_DIRECTIONS = ("recvonly", "inactive")
DATACHANNEL_PROFILES = ("UDP/DTLS/SCTP", "DTLS/SCTP")
#: A browser declares a primary and an RTX SSRC per video m-line; leave room for one
#: change of track, refuse lists that only serve to fill the router's tables.
MAX_SSRCS_PER_MLINE = 4
MAX_MID_CHARS = 32


class InvalidSdp(SfuError):
    """The SDP is not acceptable."""

    code = "invalid_sdp"


@dataclass(frozen=True)
class PublishLayout:
    """The mids of an accepted publish offer, to hold later offers to."""

    mids: tuple[str, ...]
    has_datachannel: bool


def parse(sdp: str) -> aiortc_sdp.SessionDescription:
    try:
        return aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises anything from IndexError to KeyError
        raise InvalidSdp(f"cannot parse the SDP ({type(exc).__name__})") from exc


def _describe(media: list[aiortc_sdp.MediaDescription]) -> str:
    return ", ".join(m.kind for m in media) or "none"


def _mid(media: aiortc_sdp.MediaDescription, index: int) -> str:
    mid = media.rtp.muxId
    if not mid:
        raise InvalidSdp(f"m-line {index} ({media.kind}) has no a=mid")
    if len(mid) > MAX_MID_CHARS or not mid.isprintable():
        raise InvalidSdp(f"m-line {index} has an unusable mid")
    return mid


def _bundle_only_sections(sdp: str) -> set[int]:
    """Indexes of the m-lines carrying ``a=bundle-only`` (aiortc's parser drops it)."""
    sections = re.split(r"\r?\nm=", sdp)[1:]
    return {i for i, text in enumerate(sections) if re.search(r"^a=bundle-only\s*$", text, re.M)}


def _check_bundle(description: aiortc_sdp.SessionDescription, mids: list[str]) -> None:
    bundles = [g for g in description.group if g.semantic == "BUNDLE"]
    if len(bundles) != 1 or sorted(bundles[0].items) != sorted(mids):
        raise InvalidSdp("every m-line must be in one a=group:BUNDLE (max-bundle)")


def check_publish_offer(sdp: str, previous: PublishLayout | None = None) -> PublishLayout:
    """Raise :class:`InvalidSdp` unless ``sdp`` is audio, camera, screen (+ ``chat``).

    ``previous`` is the layout of the last accepted offer: a renegotiation must keep every
    mid (aiortc would add a transceiver for a new one) and may only add the data channel.
    """
    description = parse(sdp)
    media = description.media
    rtp = [m for m in media if m.kind in ("audio", "video")]
    apps = [m for m in media if m.kind == "application"]
    expected = [kind for kind, _ in PUBLISH_LAYOUT]
    shape_ok = [m.kind for m in media[: len(expected)]] == expected and len(rtp) == len(expected)
    if not shape_ok or len(apps) > 1 or len(media) != len(rtp) + len(apps):
        raise InvalidSdp(
            "a publish offer has exactly audio, camera video and screen video m-lines in this "
            f"order, then at most the 'chat' data channel (got: {_describe(media)})"
        )
    mids: list[str] = []
    bundle_only = _bundle_only_sections(sdp)
    for index, m in enumerate(media):
        mids.append(_mid(m, index))
        # Port 0 rejects an m-line, unless it is "bundle-only" (RFC 8843 §6): Firefox offers
        # every m-line but the first so, to ride the first one's transport.
        if m.port == 0 and index not in bundle_only:
            raise InvalidSdp(f"m-line {index} ({m.kind}) is rejected (port 0)")
        if m.kind == "application":
            if m.profile not in DATACHANNEL_PROFILES:
                raise InvalidSdp(f"m-line {index}: {m.profile!r} is not a data channel")
            continue
        label = PUBLISH_LAYOUT[index][1]
        if m.direction not in PUBLISH_DIRECTIONS:
            raise InvalidSdp(
                f"m-line {index} ({label}) must be sendonly or inactive (got {m.direction})"
            )
        wanted = PINNED_CODEC[m.kind]
        if not any(c.mimeType.lower() == wanted for c in m.rtp.codecs):
            raise InvalidSdp(f"m-line {index} ({label}) does not offer {wanted.split('/')[1]}")
        if len({s.ssrc for s in m.ssrc}) > MAX_SSRCS_PER_MLINE:
            raise InvalidSdp(f"m-line {index} ({label}) declares too many SSRCs")
    if len(set(mids)) != len(mids):
        raise InvalidSdp("two m-lines share a mid")
    _check_bundle(description, mids)
    layout = PublishLayout(tuple(mids), bool(apps))
    if previous is not None:
        grown = previous.mids == layout.mids[: len(previous.mids)] and (
            layout.mids == previous.mids
            or (not previous.has_datachannel and layout.has_datachannel)
        )
        if not grown:
            raise InvalidSdp(
                f"a renegotiation must keep the m-lines {list(previous.mids)} "
                f"(got {mids}); only the data channel may be added"
            )
    return layout


def check_subscribe_answer(sdp: str, offer_sdp: str) -> None:
    """Raise :class:`InvalidSdp` unless ``sdp`` answers ``offer_sdp`` m-line for m-line."""
    answer = parse(sdp)
    offer = parse(offer_sdp)
    if len(answer.media) != len(offer.media):
        raise InvalidSdp(
            f"the answer has {len(answer.media)} m-lines; the offer has {len(offer.media)}"
        )
    for index, (a, o) in enumerate(zip(answer.media, offer.media, strict=True)):
        if a.kind != o.kind:
            raise InvalidSdp(f"m-line {index} is {a.kind} in the answer, {o.kind} in the offer")
        if a.rtp.muxId != o.rtp.muxId:
            raise InvalidSdp(
                f"m-line {index} has mid {a.rtp.muxId!r}; the offer's is {o.rtp.muxId!r}"
            )
        if a.kind not in ("audio", "video"):
            continue
        allowed = ("inactive",) if o.direction == "inactive" else ANSWER_DIRECTIONS
        if a.direction not in allowed:
            raise InvalidSdp(
                f"m-line {index} must be {' or '.join(allowed)} in the answer (got {a.direction})"
            )
        offered = {c.mimeType.lower() for c in o.rtp.codecs}
        unknown = [c.mimeType for c in a.rtp.codecs if c.mimeType.lower() not in offered]
        if unknown:
            raise InvalidSdp(f"m-line {index} answers codecs that were not offered: {unknown[:3]}")
        if len({s.ssrc for s in a.ssrc}) > MAX_SSRCS_PER_MLINE:
            raise InvalidSdp(f"m-line {index} declares too many SSRCs")
