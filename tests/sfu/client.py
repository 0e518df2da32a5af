"""A headless aiortc participant driving a Room in-process (the room's ``send`` is ours)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceServer, RTCIceTransportPolicy

from peerlearn_sfu import SfuConfig, taps
from peerlearn_sfu.codecs import pin_codecs
from peerlearn_sfu.hooks import ParticipantIdentity
from peerlearn_sfu.ice import IcePolicy, apply_ice_policy
from peerlearn_sfu.keyframes import LossRepair
from peerlearn_sfu.publication import is_vp8_keyframe
from peerlearn_sfu.room import Room
from tests.sfu.media import Clip, PacedAudioTrack, PacedVideoTrack


def host_candidates(sdp: str) -> list[tuple[str, int]]:
    """``(address, port)`` of every host candidate in ``sdp``."""
    return [
        (m.group(1), int(m.group(2)))
        for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", sdp)
    ]


#: The SFU of the ``server`` fixture (tests/sfu/conftest.py): range mode on loopback.
TEST_CONFIG = SfuConfig(interfaces=("127.0.0.1",))
CLIENT_ICE = IcePolicy(port_min=42000, port_max=42999, interfaces=("127.0.0.1",))


class Received:
    """Frames that arrived on one subscribe m-line (encoded, never decoded)."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, bytes, bool]] = []

    def add(self, data: bytes, keyframe: bool) -> None:
        self.frames.append((time.monotonic(), data, keyframe))


class Client:
    def __init__(
        self,
        room: Room,
        user_id: int,
        clip: Clip | None = None,
        role: str = "learner",
        name: str | None = None,
        ice_servers: list[RTCIceServer] | None = None,
        relay_only: bool = False,
    ) -> None:
        self.room = room
        self.identity = ParticipantIdentity(user_id, name or f"user{user_id}", role)  # type: ignore[arg-type]
        self.clip = clip
        self.messages: list[dict] = []
        self.datachannel_messages: list[str] = []
        self.participant: Any = None
        self.publish_pc: RTCPeerConnection | None = None
        self.subscribe_pc: RTCPeerConnection | None = None
        self.track_map: dict[str, tuple[int, str]] = {}
        self.received: dict[str, Received] = {}
        self.video: PacedVideoTrack | None = None
        self.audio: PacedAudioTrack | None = None
        self.screen: PacedVideoTrack | None = None
        self.audio_level: int | None = None  # dBov to announce in the RFC 6464 extension
        self.remb: list[int] = []
        self.repairs: list[LossRepair] = []
        self.chat = None
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._ice_servers = ice_servers or []
        self._relay_only = relay_only

    # -- signaling ------------------------------------------------------------------

    async def on_message(self, message: dict) -> None:
        self.messages.append(message)
        self._changed.set()
        if message.get("type") == "offer" and message.get("pc") == "subscribe":
            self._spawn(self._answer_subscribe(message))
        elif message.get("type") == "answer" and message.get("pc") == "publish":
            self._spawn(
                self.publish_pc.setRemoteDescription(
                    RTCSessionDescription(sdp=message["sdp"], type="answer")
                )
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(
            RTCConfiguration(
                iceServers=self._ice_servers,
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=(
                    RTCIceTransportPolicy.RELAY if self._relay_only else RTCIceTransportPolicy.ALL
                ),
            )
        )

    async def join(self) -> Client:
        self.participant = await self.room.join(self.identity, self.on_message)
        return self

    async def send(self, message: dict) -> None:
        await self.room.handle(self.participant, message)

    async def publish(self, screen: bool = False) -> None:
        assert self.clip is not None
        pc = self.publish_pc = self._pc()
        self.audio = PacedAudioTrack(self.clip.audio)
        self.video = PacedVideoTrack(self.clip)
        self.screen = PacedVideoTrack(self.clip) if screen else None
        for track, kind in ((self.audio, "audio"), (self.video, "video"), (self.screen, "video")):
            transceiver = pc.addTransceiver(track or kind, direction="sendonly")
            pin_codecs(transceiver)
            keyframe: Callable[[], None] | None = getattr(track, "request_keyframe", None)
            taps.install_sender_hooks(
                transceiver.sender, on_keyframe_request=keyframe, on_remb=self.remb.append
            )
            if kind == "audio":
                self._announce_audio_level(transceiver.sender)
        self.chat = pc.createDataChannel("chat")
        self.chat.on("message", self.datachannel_messages.append)
        offer = await pc.createOffer()
        apply_ice_policy(pc, CLIENT_ICE)
        await pc.setLocalDescription(offer)
        await self.send({"type": "offer", "pc": "publish", "sdp": pc.localDescription.sdp})

    def _announce_audio_level(self, sender: Any) -> None:
        original = sender._next_encoded_frame

        async def next_encoded_frame(codec: Any) -> Any:
            frame = await original(codec)
            if frame is not None and self.audio_level is not None:
                frame.audio_level = -self.audio_level
            return frame

        sender._next_encoded_frame = next_encoded_frame

    async def _answer_subscribe(self, message: dict) -> None:
        if self.subscribe_pc is None:
            self.subscribe_pc = self._pc()
        pc = self.subscribe_pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            mid = transceiver.mid
            if mid is not None and mid not in self.received:
                received = self.received[mid] = Received()
                kind = transceiver.kind

                def sink(codec: Any, frame: Any, r: Received = received, k: str = kind) -> None:
                    r.add(frame.data, k == "video" and is_vp8_keyframe(frame.data))

                taps.install_receiver_tap(transceiver.receiver, sink)
                if kind == "video":
                    # Re-NACK, then skip and PLI, as a browser would (and route RTX).
                    self.repairs.append(LossRepair(transceiver.receiver))
                else:
                    # A lost Opus packet is concealed at once, as a browser's NetEq does
                    # (aiortc's audio buffer would wait 16 packets for it).
                    taps.use_passthrough_audio_buffer(transceiver.receiver)
        self.track_map = {t["mid"]: (t["user_id"], t["kind"]) for t in message["tracks"]}
        apply_ice_policy(pc, CLIENT_ICE)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        await self.send({"type": "answer", "pc": "subscribe", "sdp": pc.localDescription.sdp})
        self._changed.set()

    # -- observations ---------------------------------------------------------------

    def frames_from(self, user_id: int, kind: str) -> list[tuple[float, bytes, bool]]:
        out: list[tuple[float, bytes, bool]] = []
        for mid, (uid, k) in self.track_map.items():
            if uid == user_id and k == kind and mid in self.received:
                out += self.received[mid].frames
        return out

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(m.get("type"), m.get("code")) for m in self.messages[-8:]]
                raise AssertionError(
                    f"timed out waiting for a condition on user {self.identity.user_id}; "
                    f"last messages: {seen}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass

    async def wait_message(self, kind: str, timeout: float = 10.0, **match: Any) -> dict:  # noqa: ASYNC109
        def find() -> dict | None:
            for m in self.messages:
                if m.get("type") == kind and all(m.get(k) == v for k, v in match.items()):
                    return m
            return None

        return await self.wait_for(find, timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()


class WsClient(Client):
    """The same headless participant, signaling over the app's real ``/ws/session/{id}/``
    (cookie-less: the JWT goes in the ``Authorization`` header, as for API clients; never
    in the URL)."""

    def __init__(
        self, base_url: str, session_id: str, token: str, user_id: int, clip: Clip, **kw: Any
    ) -> None:
        super().__init__(None, user_id, clip, **kw)  # type: ignore[arg-type]
        self._url = base_url.replace("http", "ws", 1) + f"/ws/session/{session_id}/"
        self._origin = base_url
        self._token = token
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def join(self) -> WsClient:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            self._url,
            headers={"Origin": self._origin, "Authorization": f"Bearer {self._token}"},
        )
        self._spawn(self._read())
        await self.send({"type": "join_session"})
        await self.wait_message("joined")
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self.on_message(json.loads(msg.data))

    async def send(self, message: dict) -> None:
        assert self._ws is not None
        await self._ws.send_json(message)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        await super().close()
        if self._http is not None:
            await self._http.close()
