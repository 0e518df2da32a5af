"""One headless participant: the real signaling socket, one publish and one subscribe
connection (aiortc), pre-encoded camera + microphone, received frames counted (never
decoded) per publisher."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from peerlearn_sfu import taps
from peerlearn_sfu.codecs import pin_codecs
from peerlearn_sfu.ice import IcePolicy, apply_ice_policy
from peerlearn_sfu.keyframes import LossRepair
from web.loadtest.media import Clip, PacedAudioTrack, PacedVideoTrack

#: Appended to every camera frame: its index and a marker. The SFU forwards encoded frames
#: untouched and nobody here decodes them, so a receiver can tell exactly which of the
#: publisher's frames arrived (no guessing about frames in flight at the window's ends).
TRAILER = struct.Struct("!IH")
MARKER = 0x504C


class CountedVideoTrack(PacedVideoTrack):
    """The paced clip, each frame carrying its index in a :data:`TRAILER`."""

    async def recv(self) -> av.Packet[Any]:
        packet = await super().recv()
        data = bytes(packet) + TRAILER.pack(self.index - 1, MARKER)
        out = av.Packet(data)
        out.pts = packet.pts
        out.time_base = packet.time_base
        return out


def frame_index(data: bytes) -> int | None:
    """The publisher's index of a received camera frame (``None``: not one of ours)."""
    if len(data) < TRAILER.size:
        return None
    index, marker = TRAILER.unpack(data[-TRAILER.size :])
    return int(index) if marker == MARKER else None


class Participant:
    """Joins ``session_id`` on ``base_url`` as the owner of ``token`` (a Bearer token, the
    way API clients authenticate; the socket's ``Origin`` is the server's own)."""

    def __init__(
        self,
        base_url: str,
        session_id: str,
        token: str,
        user_id: int,
        clip: Clip,
        ice: IcePolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session_id = session_id
        self.user_id = user_id
        self._token = token
        self._clip = clip
        self._ice = ice
        self.started_at = 0.0
        self.joined_at: float | None = None
        #: When the first camera frame of each other participant arrived.
        self.first_video: dict[int, float] = {}
        #: Indices of the camera frames received so far, per publisher.
        self.video_frames: dict[int, set[int]] = {}
        self.nacked = 0  # sequence numbers NACKed by our receivers
        self.failure: str | None = None
        self.video: CountedVideoTrack | None = None
        self._track_map: dict[str, tuple[int, str]] = {}
        self._tapped: set[str] = set()
        self._repairs: list[LossRepair] = []
        self._publish: RTCPeerConnection | None = None
        self._subscribe: RTCPeerConnection | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._joined = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------

    async def join(self, timeout_s: float) -> None:
        """Open the socket, join, publish; returns once ``joined`` came back."""
        self.started_at = time.monotonic()
        self._http = aiohttp.ClientSession()
        url = self.base_url.replace("http", "ws", 1) + f"/ws/session/{self.session_id}/"
        self._ws = await self._http.ws_connect(
            url,
            headers={"Origin": self.base_url, "Authorization": f"Bearer {self._token}"},
            heartbeat=20.0,
        )
        self._spawn(self._read())
        await self._send({"type": "join_session"})
        async with asyncio.timeout(timeout_s):
            await self._joined.wait()
        self.joined_at = time.monotonic()
        await self._start_publishing()

    async def close(self) -> None:
        for repair in self._repairs:
            repair.close()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pc in (self._publish, self._subscribe):
            if pc is not None:
                await pc.close()
        if self._http is not None:
            await self._http.close()

    # -- observations -------------------------------------------------------------

    def frames_sent(self) -> int:
        """Camera frames handed to the sender so far (the next frame's index)."""
        return self.video.index if self.video is not None else 0

    def received_between(self, user_id: int, first: int, end: int) -> int:
        """How many of ``user_id``'s frames ``first`` .. ``end - 1`` arrived."""
        return sum(first <= i < end for i in self.video_frames.get(user_id, ()))

    def sees_all(self, others: set[int]) -> bool:
        return others <= self.first_video.keys()

    def join_to_all_video_s(self, others: set[int]) -> float | None:
        """Socket opened → a camera frame from every other participant."""
        if not others:
            return 0.0
        if not self.sees_all(others):
            return None
        return max(self.first_video[u] for u in others) - self.started_at

    # -- signaling ----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            exc = task.exception()
            self.failure = f"{type(exc).__name__}: {exc}"

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_json(message)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            kind = message.get("type")
            if kind == "joined":
                self._joined.set()
            elif kind == "ping":
                await self._send({"type": "pong"})
            elif kind == "offer" and message.get("pc") == "subscribe":
                await self._answer_subscribe(message)
            elif kind == "answer" and message.get("pc") == "publish":
                assert self._publish is not None
                await self._publish.setRemoteDescription(
                    RTCSessionDescription(sdp=message["sdp"], type="answer")
                )
            elif kind == "error" and self.failure is None and not self._joined.is_set():
                self.failure = f"server error {message.get('code')}"
        if self.failure is None and self._ws.close_code not in (None, 1000):
            self.failure = f"socket closed ({self._ws.close_code})"

    def _pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

    def _apply_ice(self, pc: RTCPeerConnection) -> None:
        if self._ice is not None:
            apply_ice_policy(pc, self._ice)

    async def _start_publishing(self) -> None:
        pc = self._publish = self._pc()
        self.video = CountedVideoTrack(self._clip)
        audio = PacedAudioTrack(self._clip.audio)
        for track in (audio, self.video):
            transceiver = pc.addTransceiver(track, direction="sendonly")
            pin_codecs(transceiver)
            request: Callable[[], None] | None = getattr(track, "request_keyframe", None)
            taps.install_sender_hooks(transceiver.sender, on_keyframe_request=request)
        pc.addTransceiver("video", direction="sendonly")  # the screen m-line, never used
        pc.createDataChannel("chat")
        offer = await pc.createOffer()
        self._apply_ice(pc)
        await pc.setLocalDescription(offer)
        await self._send({"type": "offer", "pc": "publish", "sdp": pc.localDescription.sdp})

    async def _answer_subscribe(self, message: dict[str, Any]) -> None:
        if self._subscribe is None:
            self._subscribe = self._pc()
        pc = self._subscribe
        self._track_map = {
            str(t["mid"]): (int(t["user_id"]), str(t["kind"])) for t in message["tracks"]
        }
        await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid in self._tapped:
                continue
            self._tapped.add(mid)
            if transceiver.kind == "video":
                taps.install_receiver_tap(transceiver.receiver, self._video_sink(mid))
                # Re-NACK, then skip and PLI, as a browser would (and route RTX).
                self._repairs.append(LossRepair(transceiver.receiver))
                taps.hook_nacks(transceiver.receiver, self._on_nack)
            else:
                taps.install_receiver_tap(transceiver.receiver, _drop)
                taps.use_passthrough_audio_buffer(transceiver.receiver)
        self._apply_ice(pc)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        await self._send({"type": "answer", "pc": "subscribe", "sdp": pc.localDescription.sdp})

    def _video_sink(self, mid: str) -> taps.FrameSink:
        def sink(_codec: Any, frame: Any) -> None:
            self._on_video(mid, frame.data)

        return sink

    def _on_video(self, mid: str, data: bytes) -> None:
        owner = self._track_map.get(mid)
        index = frame_index(data)
        if owner is None or owner[1] != "camera" or index is None:
            return
        self.video_frames.setdefault(owner[0], set()).add(index)
        self.first_video.setdefault(owner[0], time.monotonic())

    def _on_nack(self, _ssrc: int, seqs: list[int]) -> None:
        self.nacked += len(seqs)


def _drop(_codec: Any, _frame: Any) -> None:
    """Audio is received (so it is paced and acknowledged) but neither decoded nor kept."""
