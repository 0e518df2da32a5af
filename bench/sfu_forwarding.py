"""Forwarding benchmark: RTP-level vs frame-level forwarding vs aiortc's MediaRelay.

    python bench/sfu_forwarding.py [--sizes 2,4,6,8,10] [--seconds 10] [--repeat 2]
                                   [--modes rtp,frame,relay] [--loss-room 10] [--loss 0.02]

What it measures, and what it leaves out:

* The SFU runs in its own process (this file with ``--serve``) with ``peerlearn serve``'s
  default ``[sfu]``/``[ice]`` settings (config/default.toml through ``web.rooms.sfu_config``:
  single UDP port, default limits), changed only where a benchmark must: host candidates on
  127.0.0.1 only, a free UDP port, and ``forwarding`` per mode. Its signaling is the real
  room protocol (``Room.handle``) behind a bare WebSocket: the HTTP login, the booking checks
  and the database are left out (they cost nothing per packet).
* N headless aiortc participants run in this process, publishing pre-encoded VP8 (640x360,
  20 fps, ~400 kb/s) + Opus and counting received frames without decoding. They share the
  machine's 2 cores with the server: the server's CPU is read from its own process.
* Server CPU per forwarded packet = the server process's CPU time in the window / the RTP
  packets its subscribe legs sent (audio and video). The floor printed beside it is measured
  in the same run: one SRTP protect (pylibsrtp, AES-CM, 1,100-byte packet) + one ``sendto``
  on loopback, the least a forwarded packet can cost here.
* Delay: from the publisher handing a frame to its sender to the subscriber receiving that
  frame's first packet (both in this process), so the jitter buffer's frame of waiting in the
  frame-level path is counted; ``direct`` is the same two clients connected without a server.
* Late joiner: the N-th participant's time from its WebSocket opening to a frame of every
  other participant's camera.
* The loss table (``--loss-room N``, 0 to skip) runs a room of N without loss and with
  ``--loss`` (2 %) random loss on every participant's uplink and downlink (tests/sfu/loss.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import aiortc  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.rtcconfiguration import RTCBundlePolicy  # noqa: E402

from config.settings import DEFAULT_CONFIG_FILE, IceSettings, SfuSettings  # noqa: E402
from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer, taps, vp8  # noqa: E402
from peerlearn_sfu.codecs import pin_codecs  # noqa: E402
from peerlearn_sfu.hooks import ParticipantIdentity  # noqa: E402
from peerlearn_sfu.ice import IcePolicy, apply_ice_policy  # noqa: E402
from peerlearn_sfu.keyframes import LossRepair  # noqa: E402
from tests.sfu import loss  # noqa: E402
from tests.sfu.media import Clip, PacedAudioTrack, PacedVideoTrack, make_clip  # noqa: E402
from web.rooms import sfu_config  # noqa: E402

CLIENT_ICE = IcePolicy(port_min=43000, port_max=43999, interfaces=("127.0.0.1",))
SERVER_ICE = IcePolicy(port_min=44000, port_max=44999, interfaces=("127.0.0.1",))


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


# --------------------------------------------------------------------------- server side


class RelayRoom:
    """aiortc's decode-once / re-encode-per-subscriber relay with the same signaling."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.relay = MediaRelay()
        self.publish: dict[int, RTCPeerConnection] = {}
        self.tracks: dict[int, dict[str, Any]] = {}
        self.subscribe: dict[int, RTCPeerConnection] = {}
        self.sends: dict[int, Any] = {}
        self.started = False

    async def handle(self, user_id: int, message: dict) -> None:
        if message["type"] == "offer":
            pc = self.publish[user_id] = _pc()
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
            tracks = self.tracks.setdefault(user_id, {})
            for t in pc.getTransceivers():  # first audio, first (camera) video
                if t.receiver.track is not None and t.kind not in tracks:
                    tracks[t.kind] = t.receiver.track
            apply_ice_policy(pc, SERVER_ICE)
            await pc.setLocalDescription(await pc.createAnswer())
            await self.sends[user_id](
                {"type": "answer", "pc": "publish", "sdp": pc.localDescription.sdp}
            )
            if len(self.publish) == self.expected and not self.started:
                self.started = True
                for uid in list(self.sends):
                    await self._offer(uid)
        elif message["type"] == "answer":
            await self.subscribe[user_id].setRemoteDescription(
                RTCSessionDescription(message["sdp"], "answer")
            )

    async def _offer(self, user_id: int) -> None:
        pc = self.subscribe[user_id] = _pc()
        owners = []
        for uid, tracks in self.tracks.items():
            if uid == user_id:
                continue
            for kind in ("audio", "video"):
                t = pc.addTransceiver(self.relay.subscribe(tracks[kind]), direction="sendonly")
                pin_codecs(t)
                owners.append((t, uid, "camera" if kind == "video" else "audio"))
        apply_ice_policy(pc, SERVER_ICE)
        await pc.setLocalDescription(await pc.createOffer())
        tracks = [{"mid": t.mid, "user_id": uid, "kind": k} for t, uid, k in owners]
        await self.sends[user_id](
            {"type": "offer", "pc": "subscribe", "sdp": pc.localDescription.sdp, "tracks": tracks}
        )

    def senders(self) -> list[Any]:
        return [s for pc in self.subscribe.values() for s in pc.getSenders()]

    async def close(self) -> None:
        for pc in [*self.publish.values(), *self.subscribe.values()]:
            await pc.close()


def deployed_config(mode: str, expected: int) -> SfuConfig:
    """``peerlearn serve``'s SFU settings (config/default.toml), loopback-only."""
    with open(DEFAULT_CONFIG_FILE, "rb") as f:
        defaults = tomllib.load(f)
    settings = types.SimpleNamespace(
        sfu=SfuSettings.model_validate(defaults["sfu"]),
        ice=IceSettings.model_validate(defaults["ice"]),
    )
    config = sfu_config(settings)  # type: ignore[arg-type]
    return dataclasses.replace(
        config,
        interfaces=("127.0.0.1",),
        udp_port=_free_udp_port(),
        forwarding=mode if mode in ("rtp", "frame") else config.forwarding,
        max_room_size=max(config.max_room_size, expected),
    )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(mode: str, port: int, expected: int) -> None:
    sfu = SfuServer(deployed_config(mode, expected))
    room = sfu.open_room("bench", RoomHooks())
    relay = RelayRoom(expected)

    def counters() -> dict:
        if mode != "relay":
            senders = [
                s.transceiver.sender for p in room.participants.values() for s in p.subscribe.slots
            ]
        else:
            senders = relay.senders()
        packets = sum(taps.sender_counts(s)[0] for s in senders)
        return {"packets": packets, **repair_counters()}

    def repair_counters() -> dict:
        """Loss repair, server side: NACKs both ways, retransmissions, keyframe requests."""
        if mode == "relay":
            return {}
        pubs = [
            pub
            for p in room.participants.values()
            if p.publish is not None
            for pub in p.publish.publications.values()
        ]
        repairs = [pub.repair for pub in pubs if pub.repair is not None]
        legs = [p.subscribe.nack.counters for p in room.participants.values()]
        return {
            "nacks_to_publishers": sum(r.tracker.nacked + r.tracker.renacked for r in repairs),
            "gaps_given_up": sum(r.skipped for r in repairs),
            "nacked_by_subscribers": sum(c.requested for c in legs),
            "rtx_to_subscribers": sum(c.sent for c in legs),
            "rtx_refused": sum(c.refused_repeat + c.refused_rate for c in legs),
            "keyframes_requested": sum(pub.keyframes.sent for pub in pubs),
        }

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        participant = None
        user_id = 0
        async for msg in ws:
            message = json.loads(msg.data)
            if message["type"] == "join_session":
                user_id = message["user_id"]
                if mode != "relay":
                    participant = await room.join(
                        ParticipantIdentity(user_id, f"u{user_id}", "learner"), ws.send_json
                    )
                else:
                    relay.sends[user_id] = ws.send_json
            elif message["type"] == "bench_reset":
                await ws.send_json({"type": "bench", **counters()})
            elif message["type"] == "bench_stats":
                await ws.send_json({"type": "bench", **counters()})
            elif mode != "relay":
                await room.handle(participant, message)
            else:
                await relay.handle(user_id, message)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sfu.close()
        await relay.close()
        await runner.cleanup()


# --------------------------------------------------------------------------- client side


FRAME_KEY = 32  # bytes of VP8 frame data that identify a frame of the clip


class TimedVideoTrack(PacedVideoTrack):
    """Remembers when each frame was handed to the sender (keyed by its first bytes)."""

    def __init__(self, clip: Clip) -> None:
        super().__init__(clip)
        self.sent_at: dict[bytes, float] = {}

    async def recv(self) -> Any:
        packet = await super().recv()
        self.sent_at[bytes(packet)[:FRAME_KEY]] = time.monotonic()
        return packet


def first_packet_tap(table_of: Any, delays: list[float], collecting: Any) -> Any:
    """``on_packet`` for a video receiver: a frame's first packet -> its delay, from the
    publisher's send times ``table_of()`` (None until the track map names the publisher)."""
    seen: dict[bytes, float] = {}

    def on_packet(packet: Any) -> None:
        if not collecting():
            return
        d = vp8.parse(packet.payload)
        if not (d.frame_start and d.size):
            return
        key = packet.payload[d.size : d.size + FRAME_KEY]
        now = time.monotonic()
        if now - seen.get(key, -10.0) < 2.0:
            return  # a retransmission of a frame already counted
        seen[key] = now
        table = table_of()
        t = table.get(key) if table is not None else None
        if t is not None and now >= t:
            delays.append(now - t)

    return on_packet


class BenchClient:
    def __init__(self, user_id: int, clip: Clip, url: str, peers: dict[int, Any]) -> None:
        self.user_id = user_id
        self.clip = clip
        self.url = url
        self.peers = peers  # user id -> BenchClient (the publishers' send times)
        self.delays: list[float] = []
        self.started_at = 0.0
        self.complete_at: float | None = None
        self.video = TimedVideoTrack(clip)
        self.audio = PacedAudioTrack(clip.audio)
        self.received: dict[str, int] = {}
        # Frames seen per mid while ``collecting`` (the measured window plus a settle).
        self.seen: dict[str, set[bytes]] = {}
        self.arrivals: dict[str, list[float]] = {}  # frame arrival times while collecting
        self.repairs: list[LossRepair] = []
        self.collecting = False
        self.track_map: dict[str, tuple[int, str]] = {}
        self.pub = _pc()
        self.sub: RTCPeerConnection | None = None
        self.replies: asyncio.Queue = asyncio.Queue()
        self.session: aiohttp.ClientSession | None = None
        self.ws: Any = None
        self.reader: asyncio.Task | None = None

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0)
        self.reader = asyncio.create_task(self._read())
        await self.ws.send_json({"type": "join_session", "user_id": self.user_id})
        for track in (self.audio, self.video):
            t = self.pub.addTransceiver(track, direction="sendonly")
            pin_codecs(t)
            taps.install_sender_hooks(
                t.sender, on_keyframe_request=getattr(track, "request_keyframe", None)
            )
        t = self.pub.addTransceiver("video", direction="sendonly")  # screen slot, unused
        taps.install_sender_hooks(t.sender)
        apply_ice_policy(self.pub, CLIENT_ICE)
        await self.pub.setLocalDescription(await self.pub.createOffer())
        await self.ws.send_json(
            {"type": "offer", "pc": "publish", "sdp": self.pub.localDescription.sdp}
        )

    async def _read(self) -> None:
        async for msg in self.ws:
            m = json.loads(msg.data)
            if m["type"] == "answer":
                await self.pub.setRemoteDescription(RTCSessionDescription(m["sdp"], "answer"))
            elif m["type"] == "offer":
                await self._answer(m)
            elif m["type"] == "bench":
                await self.replies.put(m)

    async def _answer(self, m: dict) -> None:
        if self.sub is None:
            self.sub = _pc()
        await self.sub.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
        for t in self.sub.getTransceivers():
            if t.mid not in self.received:
                self.received[t.mid] = 0

                def sink(codec: Any, frame: Any, mid: str = t.mid) -> None:
                    self.received[mid] += 1
                    if self.collecting:
                        self.seen.setdefault(mid, set()).add(frame.data)
                        self.arrivals.setdefault(mid, []).append(time.monotonic())

                on_packet = None
                if t.kind == "video":

                    def table_of(mid: str = t.mid) -> Any:
                        peer = self.peers.get(self.track_map.get(mid, (0, ""))[0])
                        return peer.video.sent_at if peer is not None else None

                    on_packet = first_packet_tap(table_of, self.delays, lambda: self.collecting)
                taps.install_receiver_tap(t.receiver, sink, on_packet=on_packet)
                if t.kind == "video":  # re-NACK, skip and PLI as a browser would
                    self.repairs.append(LossRepair(t.receiver))
                else:  # conceal a lost Opus packet at once, as a browser does
                    taps.use_passthrough_audio_buffer(t.receiver)
        self.track_map = {x["mid"]: (x["user_id"], x["kind"]) for x in m["tracks"]}
        apply_ice_policy(self.sub, CLIENT_ICE)
        await self.sub.setLocalDescription(await self.sub.createAnswer())
        await self.ws.send_json(
            {"type": "answer", "pc": "subscribe", "sdp": self.sub.localDescription.sdp}
        )

    def video_received(self) -> int:
        return sum(
            n for mid, n in self.received.items() if self.track_map.get(mid, (0, ""))[1] == "camera"
        )

    def video_from(self) -> dict[int, int]:
        """Camera frames received so far, per publisher."""
        out: dict[int, int] = {}
        for mid, n in self.received.items():
            uid, kind = self.track_map.get(mid, (0, ""))
            if kind == "camera":
                out[uid] = out.get(uid, 0) + n
        return out

    def missing(self, everyone: range) -> list[int]:
        got = self.video_from()
        return [uid for uid in everyone if uid != self.user_id and not got.get(uid)]

    async def query(self, kind: str) -> dict:
        await self.ws.send_json({"type": kind})
        return await asyncio.wait_for(self.replies.get(), 10)

    async def close(self) -> None:
        for pc in (self.pub, self.sub):
            if pc is not None:
                await pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
        if self.session is not None:
            await self.session.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_one(mode: str, n: int, seconds: float, clip: Clip, *, loss_rate: float = 0.0) -> dict:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per run, before timing
        [sys.executable, __file__, "--serve", mode, "--port", str(port), "--expected", str(n)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    server = psutil.Process(proc.pid)
    peers: dict[int, BenchClient] = {}
    clients = [BenchClient(i + 1, clip, f"http://127.0.0.1:{port}/ws", peers) for i in range(n)]
    peers.update({c.user_id: c for c in clients})
    everyone = range(1, n + 1)

    async def until_complete(group: list[BenchClient], limit: float) -> None:
        """Until each of ``group`` has a camera frame of every other one of ``group``."""
        ids = range(1, len(group) + 1)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            now = time.monotonic()
            for c in group:
                if c.complete_at is None and not c.missing(ids):
                    c.complete_at = now
            if all(c.complete_at is not None for c in group):
                return
            await asyncio.sleep(0.02)

    try:
        for c in clients[:-1]:
            await c.start()
        # The room of N-1 first, then the late joiner alone: its time to everyone's video.
        await until_complete(clients[:-1], 60)
        for c in clients[:-1]:
            c.complete_at = None
        await asyncio.sleep(1.0)
        await clients[-1].start()
        await until_complete(clients, 60)
        late = clients[-1]
        late_join_s = late.complete_at - late.started_at if late.complete_at else None
        # A relay that cannot keep up never completes the room: measured anyway, and the
        # streams that never arrived are reported.
        never = sum(len(c.missing(everyone)) for c in clients)
        shim = loss.LossShim(seed=n)
        if loss_rate:
            for c in clients:
                shim.attach_uplink(c.pub)
                if c.sub is not None:
                    shim.attach_downlink(c.sub, lambda c=c: c.track_map)
            shim.drop_random(loss_rate)
        await asyncio.sleep(2.0)  # warm-up: keyframes, REMB, RTCP settle
        before = {c.user_id: c.video_from() for c in clients}
        start = await clients[0].query("bench_reset")
        cpu0 = sum(server.cpu_times()[:2])
        me0 = sum(psutil.Process().cpu_times()[:2])
        t0 = time.monotonic()
        for c in clients:  # which frames each publisher sends in the window, by content
            c.video.sent.clear()
            c.video.record = c.collecting = True
        if os.environ.get("PEERLEARN_BENCH_PROFILE"):  # py-spy the server meanwhile
            print(f"# profile: server pid {proc.pid}", flush=True)
        await asyncio.sleep(seconds)
        cpu1 = sum(server.cpu_times()[:2])
        me1 = sum(psutil.Process().cpu_times()[:2])
        t1 = time.monotonic()
        for c in clients:
            c.video.record = False
            # Counting (relay) stops with the window; matching by content (SFU) may wait
            # for the window's last frames.
            c.collecting = mode != "relay"
        end = await clients[0].query("bench_stats")
        await asyncio.sleep(1.0)  # frames of the window still in flight
        for c in clients:
            c.collecting = False
        expected, delivered = window_delivery(clients, by_content=mode != "relay")
        freezes = [
            loss.longest_freeze(times, t0 + 0.5, t1)
            for c in clients
            for mid, times in c.arrivals.items()
            if c.track_map.get(mid, (0, ""))[1] == "camera"
        ]
        delays = sorted(d for c in clients for d in c.delays)
        dropped = len(shim.dropped)
        seen_packets = sum(shim.seen.values())
        stalled = {
            c.user_id: [
                uid for uid, k in c.video_from().items() if k == before[c.user_id].get(uid, 0)
            ]
            for c in clients
        }
        stalled = {k: v for k, v in stalled.items() if v}
    finally:
        for c in clients:
            await c.close()
        proc.terminate()
        proc.wait()
    cpu = cpu1 - cpu0
    packets = end["packets"] - start["packets"]
    return {
        "mode": mode,
        "n": n,
        "cpu_pct": 100 * cpu / (t1 - t0),
        "clients_cpu_pct": 100 * (me1 - me0) / (t1 - t0),
        "us_per_packet": 1e6 * cpu / packets if packets else None,
        "packets_per_s": packets / (t1 - t0),
        "delay_p50_ms": percentile(delays, 0.5),
        "delay_p95_ms": percentile(delays, 0.95),
        "delivered": delivered / expected if expected else 0.0,
        "late_join_s": late_join_s,
        "stalled": stalled,
        "never_started": never,
        "loss_rate": loss_rate,
        "dropped": dropped,
        "dropped_share": dropped / seen_packets if seen_packets else 0.0,
        "longest_freeze_s": max(freezes) if freezes else None,
        "median_freeze_s": statistics.median(freezes) if freezes else None,
        "repair": {
            k: v - start.get(k, 0) for k, v in end.items() if k != "packets" and isinstance(v, int)
        },
    }


def percentile(values: list[float], q: float) -> float | None:
    """``q`` quantile of sorted seconds, in ms."""
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def direct_delay(clip: Clip, seconds: float) -> float | None:
    """p95 delay (ms) of the same publisher and subscriber connected without a server."""
    pub, sub = _pc(), _pc()
    video = TimedVideoTrack(clip)
    t = pub.addTransceiver(video, direction="sendonly")
    pin_codecs(t)
    taps.install_sender_hooks(t.sender, on_keyframe_request=video.request_keyframe)
    delays: list[float] = []
    collecting = [False]
    apply_ice_policy(pub, CLIENT_ICE)
    await pub.setLocalDescription(await pub.createOffer())
    await sub.setRemoteDescription(pub.localDescription)
    for tr in sub.getTransceivers():
        taps.install_receiver_tap(
            tr.receiver,
            lambda codec, frame: None,
            on_packet=first_packet_tap(lambda: video.sent_at, delays, lambda: collecting[0]),
        )
    apply_ice_policy(sub, CLIENT_ICE)
    await sub.setLocalDescription(await sub.createAnswer())
    await pub.setRemoteDescription(sub.localDescription)
    await asyncio.sleep(2.0)
    collecting[0] = True
    await asyncio.sleep(seconds)
    collecting[0] = False
    await pub.close()
    await sub.close()
    return percentile(sorted(delays), 0.95)


def window_delivery(clients: list[BenchClient], by_content: bool) -> tuple[int, int]:
    """(frames expected, frames delivered): each camera frame a publisher sent in the window
    counts once per other participant. Forwarded frames are matched by content (the clip
    does not repeat within a window, so a frame's bytes identify it); the relay re-encodes,
    so for it the distinct frames each subscriber received are counted instead."""
    sent = {c.user_id: set(c.video.sent) for c in clients}
    expected = delivered = 0
    for sub in clients:
        got: dict[int, set[bytes]] = {}
        for mid, frames in sub.seen.items():
            uid, kind = sub.track_map.get(mid, (0, ""))
            if kind == "camera":
                got.setdefault(uid, set()).update(frames)
        for uid, frames in sent.items():
            if uid != sub.user_id:
                expected += len(frames)
                received = got.get(uid, set())
                delivered += len(frames & received) if by_content else len(received)
    return expected, delivered


def fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}, {os.cpu_count()} cores, load {load:.2f}; Python {platform.python_version()}, "
        f"aiortc {aiortc.__version__}"
    )


def measure_floor(count: int = 20000) -> float:
    """µs of one SRTP protect (AES-CM, 1,100-byte packet) + one ``sendto`` on loopback."""
    from pylibsrtp import Policy, Session

    policy = Policy(
        key=os.urandom(30),
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    session = Session(policy)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = rx.getsockname()
    stop = threading.Event()

    def drain() -> None:  # a reader, so the socket never overflows
        while not stop.is_set():
            with contextlib.suppress(OSError):
                rx.recv(2048)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    payload = os.urandom(1100 - 12)
    best = float("inf")
    for _ in range(3):
        packets = [
            bytes((0x80, 96)) + (i & 0xFFFF).to_bytes(2, "big") + bytes(8) + payload
            for i in range(count)
        ]
        t0 = time.thread_time()
        for p in packets:
            tx.sendto(session.protect(p), addr)
        best = min(best, (time.thread_time() - t0) / count * 1e6)
        session = Session(policy)
    stop.set()
    reader.join()
    tx.close()
    rx.close()
    return best


async def main(
    sizes: list[int],
    seconds: float,
    modes: list[str],
    repeat: int,
    loss_room: int = 0,
    loss_rate: float = 0.02,
) -> None:
    print(f"# machine: {machine()}", flush=True)
    floor = measure_floor()
    print(f"# floor: {floor:.1f} µs per packet (SRTP protect + sendto, measured now)", flush=True)
    clip = make_clip(seconds=max(20.0, seconds + 10), width=640, height=360, bitrate=400_000)
    direct = await direct_delay(clip, min(seconds, 5.0))
    print(f"# direct (no server) delay p95: {fmt(direct, '.1f')} ms", flush=True)
    rows: list[tuple[int, str, list[dict]]] = []
    for n in sizes:
        for mode in modes:
            runs = []
            for _ in range(repeat):
                run = await run_one(mode, n, seconds, clip)
                if mode == "relay" and run["delivered"] == 0:
                    # aiortc's MediaRelay sometimes stalls for good at N >= 6 (idle
                    # process, no error): say so and measure it once more.
                    print(f"# N={n}: the relay delivered nothing; running it again", flush=True)
                    run = await run_one(mode, n, seconds, clip)
                    run["retried"] = True
                print(f"# N={n} {mode}: {run}", flush=True)
                runs.append(run)
            rows.append((n, mode, runs))
    if rows:
        print_forwarding(rows, floor, direct)
    if loss_room:
        lossy = []
        for mode in [m for m in modes if m != "relay"]:
            for rate in (0.0, loss_rate):
                run = await run_one(mode, loss_room, seconds, clip, loss_rate=rate)
                print(f"# loss {mode} {rate:.0%}: {run}", flush=True)
                lossy.append(run)
        print_loss(lossy)
    print(f"\n# machine at the end: {machine()}")


def print_loss(runs: list[dict]) -> None:
    print()
    print(
        "| N | path | loss up + down | packets dropped | frames delivered | longest freeze, worst "
        "stream / median stream (s) | NACKed to publishers | NACKed by subscribers | RTX sent "
        "to subscribers (refused) | keyframes requested | gaps given up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        rep = r["repair"]
        print(
            f"| {r['n']} | {r['mode']} | {100 * r['loss_rate']:.0f} % | {r['dropped']} "
            f"({100 * r['dropped_share']:.1f} %) | {delivered(r)} | "
            f"{fmt(r['longest_freeze_s'], '.2f')} / {fmt(r['median_freeze_s'], '.2f')} | "
            f"{rep.get('nacks_to_publishers', 0)} | {rep.get('nacked_by_subscribers', 0)} | "
            f"{rep.get('rtx_to_subscribers', 0)} ({rep.get('rtx_refused', 0)}) | "
            f"{rep.get('keyframes_requested', 0)} | {rep.get('gaps_given_up', 0)} |"
        )
    print()
    print(
        "Loss is random on every RTP packet (RTX included) of every participant's uplink and "
        "downlink; freeze = the longest time without a frame on one camera stream in the "
        "window; NACK and RTX counts are the server's, for the window."
    )


def print_forwarding(
    rows: list[tuple[int, str, list[dict]]], floor: float, direct: float | None
) -> None:
    print()
    print(
        "| N | path | server CPU % of 1 core (median) | µs per forwarded packet, min / median "
        "| × floor | delay p95 ms (added) | delivered | late joiner s | clients CPU % |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, mode, runs in rows:
        cpu = statistics.median(r["cpu_pct"] for r in runs)
        us = [r["us_per_packet"] for r in runs if r["us_per_packet"]]
        p95 = [r["delay_p95_ms"] for r in runs if r["delay_p95_ms"] is not None]
        late = [r["late_join_s"] for r in runs if r["late_join_s"] is not None]
        worst = min(runs, key=lambda r: r["delivered"])
        us_med = statistics.median(us) if us else None
        delay = statistics.median(p95) if p95 else None
        added = delay - direct if delay is not None and direct is not None else None
        print(
            f"| {n} | {mode} | {cpu:.1f} | {fmt(min(us) if us else None, '.1f')} / "
            f"{fmt(us_med, '.1f')} | {fmt(us_med / floor if us_med else None, '.1f')} | "
            f"{fmt(delay, '.1f')} ({fmt(added, '+.1f')}) | {delivered(worst)} | "
            f"{fmt(max(late) if late else None, '.2f')} | "
            f"{statistics.median(r['clients_cpu_pct'] for r in runs):.0f} |"
        )
    print()
    print(
        f"floor = {floor:.1f} µs (one SRTP protect + one sendto, measured in this run); "
        f"delay from the publisher's sender to the subscriber's first packet of a frame; "
        f"added = minus the same clients connected directly ({fmt(direct, '.1f')} ms p95); "
        "delivered = the worst repeat's share of the camera frames each publisher sent in the "
        "window that each other participant received (by content; the relay re-encodes, so "
        "its distinct frames are counted); late joiner = the N-th participant's time from "
        "its socket to every camera (worst repeat). The relay forwards nothing RTP-level: "
        "it decodes once and re-encodes per subscriber, so it has no µs-per-packet floor."
    )


def delivered(run: dict) -> str:
    text = f"{100 * run['delivered']:.1f}%"
    if run["never_started"]:
        text += f" ({run['never_started']} of {run['n'] * (run['n'] - 1)} streams never started)"
    stalled = sum(len(v) for v in run["stalled"].values())
    if stalled:
        text += f" ({stalled} stalled)"
    if run.get("retried"):
        text += " (second run: the first stalled)"
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,6,8,10")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--modes", default="rtp,frame,relay")
    parser.add_argument("--serve", choices=("rtp", "frame", "relay"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--expected", type=int, default=0)
    parser.add_argument("--loss-room", type=int, default=10, help="0: no loss table")
    parser.add_argument("--loss", type=float, default=0.02)
    args = parser.parse_args()
    if args.serve:
        try:
            asyncio.run(serve(args.serve, args.port, args.expected))
        except KeyboardInterrupt:
            pass
    else:
        sizes = [int(x) for x in args.sizes.split(",") if x]
        modes = [m for m in args.modes.split(",") if m]
        asyncio.run(main(sizes, args.seconds, modes, args.repeat, args.loss_room, args.loss))
