"""Per-publisher keyframe requests: PLI upstream, throttled and coalesced; and what the
receive leg does about a packet that stays lost (:class:`LossRepair`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc.rtcrtpreceiver import RTCRtpReceiver

from . import taps
from .nack import GapTracker
from .tasks import TaskSet

logger = logging.getLogger(__name__)


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

    @property
    def last_sent_at(self) -> float | None:
        """``time.monotonic()`` of the last PLI sent, if any."""
        return self._last_sent if self.sent else None

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


#: Starts a coroutine (its task, if any, is the caller's business).
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class LossRepair:
    """A video receive leg's answer to loss, on top of aiortc's single NACK per gap.

    aiortc NACKs a gap once, when it appears. If the retransmission is lost too, its
    jitter buffer waits for the 512-packet overflow (~10 s frozen). Here a packet still
    missing after ``renack_after_s`` is NACKed once more; after ``give_up_after_s`` the
    gap is skipped and ``on_unrepairable()`` runs (the SFU asks the publisher for a
    keyframe; a headless test client sends its own PLI, as a browser would).
    RTX routing (:func:`taps.install_rtx_routing`) is installed too: without it a
    retransmission on a leg with two video m-lines never arrives.
    Must be attached before the receiver starts.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_unrepairable: Callable[[], None] | None = None,
        *,
        spawn: Spawn | None = None,
        tracker: GapTracker | None = None,
    ) -> None:
        self._receiver = receiver
        self._on_unrepairable = on_unrepairable or self._send_own_pli
        self._spawn = spawn or _spawn_detached
        self.tracker = tracker or GapTracker()
        self._ssrc: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.skipped = 0  # gaps given up
        self.last_given_up_at: float | None = None
        taps.install_rtx_routing(receiver)
        taps.hook_nacks(receiver, self._on_nack)

    def _on_nack(self, media_ssrc: int, seqs: list[int]) -> None:
        self._ssrc = media_ssrc
        self.tracker.missing(seqs)
        if self._timer is None and not self._closed:
            self._schedule(self.tracker.renack_after_s)

    def _schedule(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._closed:
            return
        decision = self.tracker.check(taps.receiver_missing(self._receiver))
        if decision.renack and self._ssrc is not None:
            self._spawn(taps.send_nack(self._receiver, self._ssrc, decision.renack))
        if decision.give_up:
            newest = max(decision.give_up, key=lambda s: (s - min(decision.give_up)) & 0xFFFF)
            taps.skip_gap(self._receiver, newest)
            self.skipped += 1
            self.last_given_up_at = time.monotonic()
            logger.debug("gave up on %d lost packet(s) up to %d", len(decision.give_up), newest)
            self._on_unrepairable()
        if decision.next_check_s is not None:
            self._schedule(decision.next_check_s)

    def _send_own_pli(self) -> None:
        ssrc = taps.receiver_media_ssrc(self._receiver)
        if ssrc is not None:
            self._spawn(taps.send_pli(self._receiver, ssrc))

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_detached: set[asyncio.Task[None]] = set()


def _spawn_detached(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coro)
    _detached.add(task)
    task.add_done_callback(_detached.discard)
