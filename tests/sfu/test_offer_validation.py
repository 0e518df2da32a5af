"""Issue 10, point 1: offers and answers are validated before aiortc applies them.

The attack: a publish offer with a 4th video m-line used to be accepted; aiortc made a
receive transceiver for it that the SFU never tapped, so every frame sent on it was decoded
into a queue nobody read (13 MB/s for one stream). Here the attacker is a raw participant
(its own aiortc PC, the room's ``send`` is ours) so it can forge what a browser would not.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
from typing import Any

import aiortc.rtcrtpreceiver
import psutil
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpsender import RTCRtpSender

from peerlearn_sfu import RoomHooks, taps
from peerlearn_sfu.codecs import pin_codecs
from peerlearn_sfu.hooks import ParticipantIdentity
from peerlearn_sfu.ice import apply_ice_policy
from peerlearn_sfu.room import Room
from tests.sfu.client import CLIENT_ICE
from tests.sfu.media import Clip, PacedAudioTrack, PacedVideoTrack


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every decoder aiortc creates in this process (server and clients)."""
    calls: list[str] = []
    real = aiortc.rtcrtpreceiver.get_decoder

    def get_decoder(codec: Any) -> Any:
        calls.append(codec.mimeType)
        return real(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
    return calls


class Attacker:
    """A participant that builds its publish PC by hand and reads its messages itself."""

    def __init__(self, room: Room, user_id: int, clip: Clip) -> None:
        self.room = room
        self.clip = clip
        self.identity = ParticipantIdentity(user_id, f"attacker{user_id}", "learner")
        self.messages: list[dict] = []
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.participant: Any = None
        self.tracks: list[Any] = []

    async def on_message(self, message: dict) -> None:
        self.messages.append(message)

    async def join(self) -> Attacker:
        self.participant = await self.room.join(self.identity, self.on_message)
        return self

    def add(self, kind: str, codecs: list[str] | None = None) -> Any:
        """A sendonly transceiver that forwards the clip's pre-encoded media (no encoder)."""
        track: Any = None
        if kind == "audio":
            track = PacedAudioTrack(self.clip.audio)
        elif kind == "video":
            track = PacedVideoTrack(self.clip)
        self.tracks.append(track)
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        if codecs:
            caps = RTCRtpSender.getCapabilities(kind).codecs
            transceiver.setCodecPreferences([c for c in caps if c.mimeType in codecs])
        else:
            pin_codecs(transceiver)
        taps.install_sender_hooks(
            transceiver.sender, on_keyframe_request=getattr(track, "request_keyframe", None)
        )
        return transceiver

    async def local_offer(self) -> str:
        offer = await self.pc.createOffer()
        apply_ice_policy(self.pc, CLIENT_ICE)
        await self.pc.setLocalDescription(offer)
        return self.pc.localDescription.sdp

    async def offer(self, sdp: str) -> dict:
        """Send a publish offer; the room's reply (answer or error)."""
        before = len(self.messages)
        await self.room.handle(self.participant, {"type": "offer", "pc": "publish", "sdp": sdp})
        replies = [m for m in self.messages[before:] if m["type"] in ("answer", "error")]
        assert replies, self.messages[before:]
        return replies[-1]

    async def close(self) -> None:
        await self.pc.close()
        for track in self.tracks:
            if track is not None:
                track.stop()


def sections(sdp: str) -> tuple[str, list[str]]:
    """The session part and each m-section of an SDP."""
    parts = re.split(r"\r\n(?=m=)", sdp.strip("\r\n"))
    return parts[0], parts[1:]


def join_sdp(session: str, media: list[str]) -> str:
    return "\r\n".join([session, *media]) + "\r\n"


def drop_mline(sdp: str, index: int) -> str:
    """``sdp`` without m-line ``index`` (and its mid in the BUNDLE group)."""
    session, media = sections(sdp)
    mid = re.search(r"a=mid:(\S+)", media[index]).group(1)  # type: ignore[union-attr]
    session = re.sub(rf"(a=group:BUNDLE.*?) {re.escape(mid)}\b", r"\1", session)
    del media[index]
    return join_sdp(session, media)


def forge_answer(answer: str, local_offer: str, copy_index: int) -> str:
    """The server's ``answer`` with an m-section for each m-line of ``local_offer`` it
    lacks (copied from its section ``copy_index``), in the offer's order: what the
    attacker applies to send media on m-lines the server never accepted."""
    session, media = sections(answer)
    by_mid = {re.search(r"a=mid:(\S+)", m).group(1): m for m in media}  # type: ignore[union-attr]
    out = []
    for m in sections(local_offer)[1]:
        mid = re.search(r"a=mid:(\S+)", m).group(1)  # type: ignore[union-attr]
        if mid not in by_mid:
            by_mid[mid] = re.sub(r"a=mid:\S+", f"a=mid:{mid}", media[copy_index])
            session = re.sub(r"(a=group:BUNDLE[^\r\n]*)", rf"\1 {mid}", session)
        out.append(by_mid[mid])
    return join_sdp(session, out)


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1e6


Layout = list[tuple[str, list[str] | None]]


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        (
            [("audio", None), ("video", None), ("video", None), ("video", None)],
            "got: audio, video, video, video",
        ),
        ([("video", None), ("audio", None), ("video", None)], "got: video, audio, video"),
        ([("audio", None), ("video", None)], "got: audio, video"),
        ([("audio", None), ("video", ["video/H264"]), ("video", None)], "does not offer vp8"),
        ([("audio", ["audio/PCMU"]), ("video", None), ("video", None)], "does not offer opus"),
    ],
    ids=["extra m-line", "wrong order", "missing m-line", "no vp8", "no opus"],
)
async def test_publish_offers_outside_the_layout_are_refused(
    server, clip, decoders, layout: Layout, why: str
):
    room = server.open_room("v", RoomHooks())
    attacker = await Attacker(room, 1, clip).join()
    for kind, codecs in layout:
        attacker.add(kind, codecs)
    attacker.pc.createDataChannel("chat")
    reply = await attacker.offer(await attacker.local_offer())
    assert reply["type"] == "error" and reply["code"] == "invalid_sdp", reply
    assert why in reply["message"], reply["message"]
    # No connection was created for the refused offer.
    assert attacker.participant.publish is None
    await attacker.close()
    assert decoders == []


def _forge(name: str, good: str) -> str:
    session, media = sections(good)
    if name == "sendrecv":
        return good.replace("a=sendonly", "a=sendrecv", 1)
    if name == "two data channels":
        return join_sdp(session, [*media, media[3].replace("a=mid:3", "a=mid:9")])
    if name == "no bundle":
        return re.sub(r"a=group:BUNDLE[^\r\n]*\r\n", "", good)
    if name == "duplicate mid":
        return good.replace("a=mid:1", "a=mid:0")
    assert name == "garbage"
    return "v=0\r\nm=audio x\r\n"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("sendrecv", "must be sendonly"),
        ("two data channels", "at most the 'chat' data channel"),
        ("no bundle", "BUNDLE"),
        ("duplicate mid", "share a mid"),
        ("garbage", "cannot parse"),
    ],
)
async def test_text_forgeries_of_a_valid_offer_are_refused(
    server, clip, decoders, name: str, why: str
):
    room = server.open_room("v", RoomHooks())
    attacker = await Attacker(room, 99, clip).join()
    for kind in ("audio", "video", "video"):
        attacker.add(kind)
    attacker.pc.createDataChannel("chat")
    good = await attacker.local_offer()
    reply = await attacker.offer(_forge(name, good))
    assert reply["type"] == "error" and reply["code"] == "invalid_sdp", (name, reply)
    assert why in reply["message"], (name, reply["message"])
    assert attacker.participant.publish is None, name
    # The real offer is still accepted after that.
    assert (await attacker.offer(good))["type"] == "answer"
    assert len(attacker.participant.publish.pc.getTransceivers()) == 3
    await attacker.close()
    assert decoders == []


async def test_media_on_unaccepted_mlines_is_never_decoded(make_client, server, clip, decoders):
    """Media sent on an m-line the server refused — in a first offer and in a
    renegotiation — reaches no decoder, and the server's memory stays flat."""
    viewer = await make_client(1).join()
    room = server.get_room("room")

    # 1. A first offer with a 4th video m-line: refused; the attacker then sends the
    # accepted 3-m-line part and forges an answer for its 4th m-line locally.
    first = await Attacker(room, 2, clip).join()
    for kind in ("audio", "video", "video", "video"):
        first.add(kind)
    first.pc.createDataChannel("chat")
    local = await first.local_offer()
    refused = await first.offer(local)
    assert refused["code"] == "invalid_sdp"
    answer = await first.offer(drop_mline(local, 3))
    assert answer["type"] == "answer", answer
    await first.pc.setRemoteDescription(
        RTCSessionDescription(sdp=forge_answer(answer["sdp"], local, 2), type="answer")
    )

    # 2. A valid publisher that adds a 4th video m-line in a renegotiation.
    second = await Attacker(room, 3, clip).join()
    for kind in ("audio", "video", "video"):
        second.add(kind)
    second.pc.createDataChannel("chat")
    answer = await second.offer(await second.local_offer())
    assert answer["type"] == "answer", answer
    await second.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    await viewer.wait_for(lambda: len(viewer.frames_from(3, "camera")) > 5, timeout=15)
    second.add("video")
    local = await second.local_offer()
    refused = await second.offer(local)
    assert refused["code"] == "invalid_sdp", refused
    assert "got: audio, video, video, application, video" in refused["message"]
    await second.pc.setRemoteDescription(
        RTCSessionDescription(sdp=forge_answer(answer["sdp"], local, 2), type="answer")
    )

    # Both now push video on an m-line the server never accepted; watch for ~6 s.
    for attacker in (first, second):
        assert len(attacker.participant.publish.pc.getTransceivers()) == 3
    start = rss_mb()
    samples = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        samples.append(rss_mb() - start)
    # Decoding one 640x480 stream grows ~9 MB/s; allocator noise is a few MB.
    assert max(samples) < 25, samples
    assert decoders == []
    for attacker in (first, second):
        assert len(attacker.participant.publish.pc.getTransceivers()) == 3
    # The legitimate media kept flowing to the viewer throughout.
    n = len(viewer.frames_from(3, "camera"))
    await viewer.wait_for(lambda: len(viewer.frames_from(3, "camera")) > n + 5, timeout=5)
    await first.close()
    await second.close()


async def test_renegotiation_must_keep_the_accepted_mlines(server, clip):
    room = server.open_room("r", RoomHooks())
    attacker = await Attacker(room, 1, clip).join()
    for kind in ("audio", "video", "video"):
        attacker.add(kind)
    attacker.pc.createDataChannel("chat")
    good = await attacker.local_offer()
    answer = await attacker.offer(good)
    assert answer["type"] == "answer"
    session = attacker.participant.publish
    # Valid renegotiations reuse the one publish connection (2 PCs per participant, ever).
    for _ in range(3):
        await attacker.pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer["sdp"], type="answer")
        )
        answer = await attacker.offer(await attacker.local_offer())
        assert answer["type"] == "answer", answer
        assert attacker.participant.publish is session
        assert len(session.pc.getTransceivers()) == 3
    renamed = re.sub(r"a=mid:2\b", "a=mid:7", good)
    renamed = re.sub(r"(a=group:BUNDLE[^\r\n]*) 2\b", r"\1 7", renamed)
    reply = await attacker.offer(renamed)
    assert reply["code"] == "invalid_sdp" and "must keep the m-lines" in reply["message"], reply
    assert len(attacker.participant.publish.pc.getTransceivers()) == 3
    await attacker.close()


async def test_subscribe_answers_must_mirror_the_offer(make_client, server, clip, decoders):
    publisher = await make_client(1).join()
    await publisher.publish()
    room = server.get_room("room")
    viewer = await Attacker(room, 2, clip).join()

    def subscribe_offer() -> dict | None:
        offers = [m for m in viewer.messages if m["type"] == "offer"]
        return offers[-1] if offers else None

    deadline = time.monotonic() + 10
    while subscribe_offer() is None or len(subscribe_offer()["tracks"]) < 3:  # type: ignore[index]
        assert time.monotonic() < deadline, viewer.messages
        await asyncio.sleep(0.05)
    offer = subscribe_offer()
    assert offer is not None
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    answer = await viewer.pc.createAnswer()
    await viewer.pc.setLocalDescription(answer)
    good = viewer.pc.localDescription.sdp
    session, media = sections(good)
    forged = {
        "sendrecv": (good.replace("a=recvonly", "a=sendrecv"), "recvonly or inactive"),
        "missing m-line": (join_sdp(session, media[:-1]), "m-lines; the offer has"),
        "extra m-line": (join_sdp(session, [*media, media[-1]]), "m-lines; the offer has"),
        "other mid": (good.replace("a=mid:1", "a=mid:x"), "the offer's is '1'"),
        "unoffered codec": (good.replace("VP8/90000", "H264/90000"), "not offered"),
    }
    for name, (sdp, why) in forged.items():
        before = len(viewer.messages)
        await room.handle(viewer.participant, {"type": "answer", "pc": "subscribe", "sdp": sdp})
        errors = [m for m in viewer.messages[before:] if m["type"] == "error"]
        assert errors and errors[-1]["code"] == "invalid_sdp", (name, viewer.messages[before:])
        assert why in errors[-1]["message"], (name, errors[-1]["message"])
    # The real answer still applies: the offer stayed outstanding.
    before = len(viewer.messages)
    await room.handle(viewer.participant, {"type": "answer", "pc": "subscribe", "sdp": good})
    assert not [m for m in viewer.messages[before:] if m["type"] == "error"]
    assert viewer.participant.subscribe.pc.signalingState == "stable"
    await viewer.close()
    assert decoders == []


def test_firefox_bundle_only_offer_is_accepted_and_a_bare_port_0_is_not():
    """Firefox (ESR 153, recorded) offers every m-line but the first with port 0 and
    ``a=bundle-only`` (RFC 8843): those ride the first m-line's transport, not rejected."""
    from pathlib import Path

    from peerlearn_sfu.sdp_validation import InvalidSdp, check_publish_offer

    sdp = (Path(__file__).parent / "firefox_publish_offer.sdp").read_text()
    assert "a=bundle-only" in sdp and "\nm=video 0 " in sdp
    layout = check_publish_offer(sdp, None)
    assert layout.mids == ("0", "1", "2", "3") and layout.has_datachannel
    # The same m-line without bundle-only is a rejected one.
    bare = sdp.replace("a=bundle-only\r\n", "", 1).replace("a=bundle-only\n", "", 1)
    with pytest.raises(InvalidSdp, match="rejected"):
        check_publish_offer(bare, None)
