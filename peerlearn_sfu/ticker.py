"""A room's periodic work while anyone is in it: active speaker, REMB, stats."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import taps
from .allocator import Stream, allocate
from .config import SfuConfig
from .forwarder import RtpDownTrack
from .participant import Participant
from .protocol import Message
from .publication import Publication
from .speaker import ActiveSpeakerDetector
from .stats import StatsSampler
from .tasks import TaskSet

# The room's logger: operators find the periodic stats line under it (docs/sfu.md, "Stats").
logger = logging.getLogger("peerlearn_sfu.room")

REMB_INTERVAL_S = 1.0
SAMPLE_INTERVAL_S = 1.0


class RoomTicker:
    """Every ``active_speaker_interval_ms``: ``active_speaker`` on a change; each second
    a REMB to every video publisher and a stats sample; every ``stats_log_interval_s`` the
    room's stats in the log. Started by the first join, stopped when the room empties."""

    def __init__(
        self,
        room_id: str,
        config: SfuConfig,
        participants: dict[int, Participant],
        broadcast: Callable[[Message], Awaitable[None]],
        tasks: TaskSet,
    ) -> None:
        self._room_id = room_id
        self._config = config
        self._participants = participants
        self._broadcast = broadcast
        self._tasks = tasks
        self.speaker = ActiveSpeakerDetector()
        self.sampler = StatsSampler()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the ticker (idempotent)."""
        if self.task is None:
            self.task = self._tasks.spawn(self._run(), name=f"room-{self._room_id}-ticker")

    def stop(self) -> None:
        """Nobody left to speak, measure or cap: the next :meth:`start` runs it again."""
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def forget(self, user_id: int) -> None:
        """``user_id`` left: no longer the active speaker."""
        self.speaker.forget(user_id)

    def stats(self) -> dict[str, Any]:
        return {
            "participants": {
                p.user_id: self.sampler.participant_stats(p) for p in self._participants.values()
            }
        }

    async def _run(self) -> None:
        interval = self._config.active_speaker_interval_ms / 1000
        last_remb = last_log = last_sample = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                await self._update_speaker(now)
                if now - last_sample >= SAMPLE_INTERVAL_S:
                    last_sample = now
                    self.sampler.sample(list(self._participants.values()))
                if now - last_remb >= REMB_INTERVAL_S:
                    last_remb = now
                    self._allocate(now)
                    self._send_remb()
                if now - last_log >= self._config.stats_log_interval_s:
                    last_log = now
                    if self._participants:
                        logger.info("room %s stats %s", self._room_id, json.dumps(self.stats()))
            except Exception:
                logger.exception("room %s: ticker failed", self._room_id)

    async def _update_speaker(self, now: float) -> None:
        levels: dict[int, tuple[int, float]] = {}
        for p in self._participants.values():
            if p.publish is None or p.state.audio_muted:
                continue
            audio = p.publish.publications["audio"]
            if audio.audio_level is not None:
                levels[p.user_id] = (audio.audio_level, audio.audio_level_at)
        speaker = self.speaker.pick(levels, now)
        if speaker is not None:
            await self._broadcast({"type": "active_speaker", "user_id": speaker})

    def _allocate(self, now: float) -> None:
        """Each subscriber's temporal layers from its own estimate (allocator.py)."""
        speaker = self.speaker.current
        for p in self._participants.values():
            tracks: dict[int, tuple[RtpDownTrack, Publication]] = {
                id(s): (s.track, s.publication)
                for s in p.subscribe.slots
                if s.publication is not None and isinstance(s.track, RtpDownTrack)
            }
            # Its REMB covers the whole leg: any video slot's latest value is the budget.
            estimates = [
                s.packer.target_bitrate
                for s in p.subscribe.slots
                if id(s) in tracks and s.track.kind == "video"
            ]
            streams = [
                Stream(
                    key=key,
                    kind="speaker"
                    if pub.kind == "camera" and pub.owner_id == speaker
                    else pub.kind,
                    rate=self.sampler.meter(pub).kbps * 1000,
                    layer_rates=pub.layers.cumulative_bps(now) if pub.bitrate.layered else (),
                    current=track.layer,
                )
                for key, (track, pub) in tracks.items()
            ]
            for key, target in allocate(max(estimates, default=0) or None, streams).items():
                tracks[key][0].target_layer = target

    def _send_remb(self) -> None:
        for p in self._participants.values():
            if p.publish is None:
                continue
            for kind in ("camera", "screen"):
                pub = p.publish.publications[kind]
                ssrc = taps.receiver_media_ssrc(pub.receiver)
                if ssrc is None:
                    continue
                target = pub.bitrate.target()
                pub.bitrate.last_sent = target
                p.tasks.spawn(taps.send_remb(pub.receiver, target, [ssrc]), name="remb")
