"""One subscriber's view of one publisher track: a queue of encoded ``av.Packet[Any]``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

MAX_QUEUE = {"audio": 50, "video": 30}
PTS_STEP = {"audio": 960, "video": 3000}


def _pts(packet: av.Packet[Any]) -> int:
    """A forwarded packet's RTP timestamp (``Publication`` always sets it)."""
    assert packet.pts is not None
    return packet.pts


class DownTrack(MediaStreamTrack):
    """A ``MediaStreamTrack`` whose ``recv()`` returns already-encoded ``av.Packet[Any]``.

    The aiortc sender only packetises what it gets, so nothing is decoded or encoded.
    Video is dropped until a keyframe arrives (after attach, overflow or start of
    reading); the sender's first ``recv()`` means the leg is connected, which is when a
    keyframe is worth requesting. The source can be switched (a subscribe transceiver is
    recycled for another publisher) without touching the sender: timestamps are rebased
    so the outgoing RTP clock stays monotonic.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._queue: deque[av.Packet[Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._max = MAX_QUEUE[kind]
        self._reading = False
        self._need_keyframe = kind == "video"
        self._rebase = True
        self.pts_offset = 0
        self._last_pts = 0
        self.on_keyframe_needed: Callable[[], None] | None = None
        self.forwarded = 0
        self.dropped = 0
        self.bytes_out = 0

    def reset_source(self) -> None:
        """A new source follows: wait for its keyframe, rebase its timestamps."""
        self.dropped += len(self._queue)
        self._queue.clear()
        self._need_keyframe = self.kind == "video"
        self._rebase = True
        if self._reading:
            self._ask_keyframe()

    def push(self, packet: av.Packet[Any], keyframe: bool) -> None:
        """Called by the publication for every frame (on the event loop)."""
        if not self._reading or self.readyState != "live":
            return
        if self._need_keyframe:
            if not keyframe:
                self.dropped += 1
                return
            self._need_keyframe = False
        if len(self._queue) >= self._max:
            # The leg cannot keep up: start over from the next keyframe.
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            if self.kind == "video":
                self._need_keyframe = True
                self._ask_keyframe()
            return
        if self._rebase:
            self._rebase = False
            self.pts_offset = self._last_pts + PTS_STEP[self.kind] - _pts(packet)
        self._queue.append(packet)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ask_keyframe(self) -> None:
        if self.kind == "video" and self.on_keyframe_needed is not None:
            self.on_keyframe_needed()

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._reading:
            self._reading = True
            self._ask_keyframe()
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if self.readyState != "live":
                raise MediaStreamError
        packet = self._queue.popleft()
        self.forwarded += 1
        self.bytes_out += packet.size
        self._last_pts = _pts(packet) + self.pts_offset
        return packet

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
