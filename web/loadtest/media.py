"""Pre-encoded media (VP8 + Opus), made once with PyAV and replayed in real time.

Used by ``peerlearn loadtest`` and by the tests (``tests/sfu/media.py`` re-exports it): no
encoder runs while the clip is replayed, so a headless participant costs little CPU.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000


@dataclass
class Clip:
    """Encoded VP8 frames (+ an intra-only version of each) and Opus packets."""

    fps: int
    video: list[bytes]
    video_key: list[bool]
    video_intra: list[bytes]
    audio: list[bytes]
    audio_tone: list[bytes] = field(default_factory=list)


def _video_frames(width: int, height: int, count: int, fps: int) -> list[av.VideoFrame]:
    frames: list[av.VideoFrame] = []
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[..., 0] = (xx * 255 // width + i * 4) % 256
        img[..., 1] = (yy * 255 // height + i * 2) % 256
        img[..., 2] = (128 + 100 * math.sin(i / fps * 2 * math.pi)) % 256
        size = 40
        x0 = (i * 7) % max(1, width - size)
        img[20 : 20 + size, x0 : x0 + size] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        frames.append(frame)
    return frames


def _encode_vp8(
    frames: list[av.VideoFrame], fps: int, bitrate: int, gop: int
) -> list[tuple[bytes, bool]]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = frames[0].width
    codec.height = frames[0].height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.bit_rate = bitrate
    codec.gop_size = gop
    codec.thread_count = 1  # "auto" threading is pathologically slow on small frames
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[tuple[bytes, bool]] = []
    for frame in [*frames, None]:
        for packet in codec.encode(frame):
            out.append((bytes(packet), bool(packet.is_keyframe)))
    return out


def _encode_opus(seconds: float, freq: float | None) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_CLOCK
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32000
    packets: list[bytes] = []
    samples = 960
    n = int(seconds * AUDIO_CLOCK / samples)
    for i in range(n):
        t = (np.arange(samples) + i * samples) / AUDIO_CLOCK
        if freq is None:
            pcm = np.zeros(samples, dtype=np.int16)
        else:
            pcm = (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)
        data = np.repeat(pcm, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = i * samples
        frame.time_base = Fraction(1, AUDIO_CLOCK)
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return [p for p in packets if p]


def make_clip(
    seconds: float = 10, fps: int = 20, width: int = 320, height: int = 240, bitrate: int = 300_000
) -> Clip:
    """``seconds`` of a moving test picture (VP8) and silence (Opus), plus a tone."""
    frames = _video_frames(width, height, int(seconds * fps), fps)
    normal = _encode_vp8(frames, fps, bitrate, gop=fps * 4)
    intra = _encode_vp8(frames, fps, bitrate * 2, gop=1)
    count = min(len(normal), len(intra))
    return Clip(
        fps=fps,
        video=[d for d, _ in normal[:count]],
        video_key=[k for _, k in normal[:count]],
        video_intra=[d for d, _ in intra[:count]],
        audio=_encode_opus(seconds, None),
        audio_tone=_encode_opus(2, 440.0),
    )


class PacedVideoTrack(MediaStreamTrack):
    """Replays the clip in real time as ``av.Packet``; a keyframe request makes the next
    frame an intra frame (what an encoder would do)."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        self.index = 0
        self.start: float | None = None
        self.force_keyframe = False
        self.keyframe_requests = 0
        self.sent: list[bytes] = []
        self.record = False

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self.force_keyframe = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.index / self.clip.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        i = self.index % len(self.clip.video)
        data = self.clip.video[i]
        if self.index == 0 or self.force_keyframe:
            data = self.clip.video_intra[i]
            self.force_keyframe = False
        packet = av.Packet(data)
        packet.pts = self.index * VIDEO_CLOCK // self.clip.fps
        packet.time_base = Fraction(1, VIDEO_CLOCK)
        self.index += 1
        if self.record:
            self.sent.append(data)
        return packet


class PacedAudioTrack(MediaStreamTrack):
    """Replays Opus packets (20 ms each) in real time."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self.packets = packets
        self.index = 0
        self.start: float | None = None
        self.sent: list[bytes] = []
        self.record = False

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        delay = self.start + self.index * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data = self.packets[self.index % len(self.packets)]
        packet = av.Packet(data)
        packet.pts = self.index * 960
        packet.time_base = Fraction(1, AUDIO_CLOCK)
        self.index += 1
        if self.record:
            self.sent.append(data)
        return packet
