"""Per-publisher keyframe requests: PLI upstream, throttled and coalesced."""

from __future__ import annotations

import asyncio
import time

from aiortc.rtcrtpreceiver import RTCRtpReceiver

from . import taps
from .tasks import TaskSet


class KeyframeRequester:
    """Turns any number of keyframe wishes into at most one PLI per ``min_interval_s``.

    A request inside the quiet period is not lost: one PLI is sent when it ends
    (a storm of subscriber PLIs otherwise makes the publisher send keyframe after
    keyframe).
    """

    def __init__(self, receiver: RTCRtpReceiver, min_interval_s: float, tasks: TaskSet) -> None:
        self._receiver = receiver
        self._interval = min_interval_s
        self._tasks = tasks
        self._last_sent = -1e9
        self._pending: asyncio.TimerHandle | None = None
        self.requested = 0
        self.sent = 0

    def request(self) -> None:
        self.requested += 1
        if self._pending is not None:
            return
        wait = self._last_sent + self._interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._pending = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        ssrc = taps.receiver_media_ssrc(self._receiver)
        if ssrc is None:
            # Nothing received yet: the publisher's first frame is a keyframe anyway.
            return
        self._last_sent = time.monotonic()
        self.sent += 1
        self._tasks.spawn(taps.send_pli(self._receiver, ssrc), name="pli")

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
