"""Forwarding benchmark: peerlearn_sfu (frame-level forwarding) vs aiortc MediaRelay.

    python bench/sfu_forwarding.py [--sizes 2,4,6,8,10] [--seconds 20] [--no-relay]
                                   [--aiortc-send-loop] [--loss-room 10] [--loss 0.02]

The server runs in its own process (this file with ``--serve``) behind a tiny aiohttp
WebSocket; N headless aiortc participants run in this process, publishing pre-encoded
VP8 (640x360, 20 fps, ~400 kb/s) + Opus and counting received frames without decoding.
Clients and server share the machine's cores: read the server CPU column as an upper
bound on what the forwarding costs alone.

The SFU is measured twice per N: CPU, cost per packet and delivery without any
instrumentation, then the forwarding delay in a shorter second run with a probe on every
subscriber leg (the probe costs CPU of its own). ``--aiortc-send-loop`` makes the SFU's
forwarding senders use aiortc's own RTP loop instead of ``taps.forward_rtp``, to compare.

The loss table (``--loss-room N``, 0 to skip) measures a room of N twice in the same run:
without loss, then with ``--loss`` (2 %) random loss on every participant's uplink and
downlink (user-space, tests/sfu/loss.py, seeded), RTX and keyframe requests included:
frames delivered, the longest freeze of any camera stream, NACKs, retransmissions sent to
subscribers and keyframes requested from publishers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.rtcconfiguration import RTCBundlePolicy  # noqa: E402

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer, taps  # noqa: E402
from peerlearn_sfu.codecs import pin_codecs  # noqa: E402
from peerlearn_sfu.hooks import ParticipantIdentity  # noqa: E402
from peerlearn_sfu.ice import IcePolicy, apply_ice_policy  # noqa: E402
from peerlearn_sfu.keyframes import LossRepair  # noqa: E402
from tests.sfu import loss  # noqa: E402
from tests.sfu.media import Clip, PacedAudioTrack, PacedVideoTrack, make_clip  # noqa: E402

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


async def serve(mode: str, port: int, expected: int, instrument: bool, lean: bool) -> None:
    sfu = SfuServer(
        SfuConfig(
            udp_port_min=44000,
            udp_port_max=44999,
            interfaces=("127.0.0.1",),
            instrument_delay=instrument,
            lean_send_loop=lean,
            max_room_size=32,
        )
    )
    room = sfu.open_room("bench", RoomHooks())
    relay = RelayRoom(expected)

    def counters() -> dict:
        if mode == "sfu":
            senders = [
                s.transceiver.sender for p in room.participants.values() for s in p.subscribe.slots
            ]
            delays = [
                d
                for p in room.participants.values()
                for s in p.subscribe.slots
                if s.track.delays is not None
                for d in s.track.delays
            ]
        else:
            senders, delays = relay.senders(), []
        packets = sum(taps.sender_counts(s)[0] for s in senders)
        return {"packets": packets, "delays": delays, **repair_counters()}

    def repair_counters() -> dict:
        """Loss repair, server side: NACKs both ways, retransmissions, keyframe requests."""
        if mode != "sfu":
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
                if mode == "sfu":
                    participant = await room.join(
                        ParticipantIdentity(user_id, f"u{user_id}", "learner"), ws.send_json
                    )
                else:
                    relay.sends[user_id] = ws.send_json
            elif message["type"] == "bench_reset":
                for p in room.participants.values():
                    for s in p.subscribe.slots:
                        if s.track.delays is not None:
                            s.track.delays.clear()
                await ws.send_json({"type": "bench", **counters()})
            elif message["type"] == "bench_stats":
                await ws.send_json({"type": "bench", **counters()})
            elif mode == "sfu":
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


class BenchClient:
    def __init__(self, user_id: int, clip: Clip, url: str) -> None:
        self.user_id = user_id
        self.clip = clip
        self.url = url
        self.video = PacedVideoTrack(clip)
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

                taps.install_receiver_tap(t.receiver, sink)
                if t.kind == "video":  # re-NACK, skip and PLI as a browser would
                    self.repairs.append(LossRepair(t.receiver))
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


async def run_one(
    mode: str,
    n: int,
    seconds: float,
    clip: Clip,
    *,
    instrument: bool = False,
    lean: bool = True,
    loss_rate: float = 0.0,
) -> dict:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per run, before timing
        [
            sys.executable,
            __file__,
            "--serve",
            mode,
            "--port",
            str(port),
            "--expected",
            str(n),
            *(["--instrument"] if instrument else []),
            *([] if lean else ["--aiortc-send-loop"]),
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    server = psutil.Process(proc.pid)
    clients = [BenchClient(i + 1, clip, f"http://127.0.0.1:{port}/ws") for i in range(n)]
    try:
        for c in clients:
            await c.start()
        # Measure only a complete room: every subscriber gets video from every publisher.
        everyone = range(1, n + 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(c.missing(everyone) for c in clients):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
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
            c.collecting = mode == "sfu"
        end = await clients[0].query("bench_stats")
        await asyncio.sleep(1.0)  # frames of the window still in flight
        for c in clients:
            c.collecting = False
        expected, delivered = window_delivery(clients, by_content=mode == "sfu")
        freezes = [
            loss.longest_freeze(times, t0 + 0.5, t1)
            for c in clients
            for mid, times in c.arrivals.items()
            if c.track_map.get(mid, (0, ""))[1] == "camera"
        ]
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
    delays = sorted(end["delays"])

    def pct(q: float) -> float | None:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000 if delays else None

    return {
        "mode": mode,
        "n": n,
        "cpu_pct": 100 * cpu / (t1 - t0),
        "clients_cpu_pct": 100 * (me1 - me0) / (t1 - t0),
        "us_per_packet": 1e6 * cpu / packets if packets else None,
        "delay_p50_ms": pct(0.5),
        "delay_p95_ms": pct(0.95),
        "delivered": delivered / expected if expected else 0.0,
        "cpu_per_frame_us": 1e6 * cpu / delivered if delivered else float("inf"),
        "median_delay": statistics.median(delays) * 1000 if delays else None,
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


async def main(
    sizes: list[int],
    seconds: float,
    with_relay: bool,
    lean: bool,
    loss_room: int = 0,
    loss_rate: float = 0.02,
) -> None:
    print(
        f"# encoding the clip (640x360, 20 fps, ~400 kb/s VP8 + Opus) on {os.cpu_count()} "
        "cores; clients and server share them",
        flush=True,
    )
    clip = make_clip(seconds=max(20.0, seconds + 10), width=640, height=360, bitrate=400_000)
    rows = []
    for n in sizes:
        sfu = await run_one("sfu", n, seconds, clip, lean=lean)
        probed = await run_one("sfu", n, max(5.0, seconds / 2), clip, instrument=True, lean=lean)
        sfu.update(delay_p50_ms=probed["delay_p50_ms"], delay_p95_ms=probed["delay_p95_ms"])
        relay = await run_one("relay", n, seconds, clip) if with_relay else None
        if relay is not None and relay["delivered"] == 0:
            # aiortc's MediaRelay sometimes stalls for good at N >= 6 (idle process, no
            # error): say so and measure it once more rather than report a dead run.
            print(f"# N={n}: the relay delivered nothing (stalled); running it again", flush=True)
            relay = await run_one("relay", n, seconds, clip)
            relay["retried"] = True
        rows.append((sfu, relay))
        print(f"# N={n}: sfu {sfu}\n#      relay {relay}", flush=True)
    if rows:
        print_forwarding(rows)
    if loss_room:
        lossy = []
        for rate in (0.0, loss_rate):
            run = await run_one("sfu", loss_room, seconds, clip, lean=lean, loss_rate=rate)
            print(f"# loss {rate:.0%}: {run}", flush=True)
            lossy.append(run)
        print_loss(lossy)


def print_loss(runs: list[dict]) -> None:
    print()
    print(
        "| N | loss up + down | packets dropped | frames delivered | longest freeze, worst "
        "stream / median stream (s) | NACKed to publishers | NACKed by subscribers | RTX sent "
        "to subscribers (refused) | keyframes requested | gaps given up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        rep = r["repair"]
        print(
            f"| {r['n']} | {100 * r['loss_rate']:.0f} % | {r['dropped']} "
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


def print_forwarding(rows: list[tuple[dict, dict | None]]) -> None:
    print()
    print(
        "| N | SFU CPU % of 1 core | µs/fwd packet | delay p50 / p95 ms | SFU delivered "
        "| clients CPU % | relay CPU % | relay delivered | relay/SFU CPU per delivered frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for sfu, relay in rows:
        ratio = (relay["cpu_per_frame_us"] / sfu["cpu_per_frame_us"]) if relay else None
        print(
            f"| {sfu['n']} | {sfu['cpu_pct']:.1f} | {fmt(sfu['us_per_packet'], '.1f')} | "
            f"{fmt(sfu['delay_p50_ms'], '.2f')} / {fmt(sfu['delay_p95_ms'], '.2f')} | "
            f"{delivered(sfu)} | {sfu['clients_cpu_pct']:.0f} | "
            f"{fmt(relay and relay['cpu_pct'], '.1f')} | "
            f"{delivered(relay) if relay else '–'} | {fmt(ratio, '.1f')}× |"
        )
    print()
    print(
        "delivered = of the camera frames each publisher sent in the window, the share each "
        "other participant received, after a 1 s settle: matched by content for the SFU, "
        "counted for the relay (it re-encodes); streams that never started or stalled during "
        "the window are named."
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
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-relay", action="store_true")
    parser.add_argument("--serve", choices=("sfu", "relay"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--expected", type=int, default=0)
    parser.add_argument("--instrument", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--aiortc-send-loop", action="store_true")
    parser.add_argument("--loss-room", type=int, default=10, help="0: no loss table")
    parser.add_argument("--loss", type=float, default=0.02)
    args = parser.parse_args()
    lean = not args.aiortc_send_loop
    if args.serve:
        try:
            asyncio.run(serve(args.serve, args.port, args.expected, args.instrument, lean))
        except KeyboardInterrupt:
            pass
    else:
        sizes = [int(x) for x in args.sizes.split(",") if x]
        asyncio.run(main(sizes, args.seconds, not args.no_relay, lean, args.loss_room, args.loss))
