"""A participant: identity, signaling callback, publish and subscribe legs, room state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCDataChannel

from .chat import ChatRateLimiter
from .config import SfuConfig
from .hooks import ParticipantIdentity
from .ice import IcePolicy
from .publisher import PublishSession
from .subscriber import SubscribeSession
from .tasks import TaskSet

logger = logging.getLogger(__name__)

Send = Callable[[dict], Awaitable[None]]


@dataclass
class MediaState:
    """What the participant told us (or a moderator imposed)."""

    audio_muted: bool = False
    video_muted: bool = False
    screen_sharing: bool = False

    def as_dict(self) -> dict:
        return {
            "audio_muted": self.audio_muted,
            "video_muted": self.video_muted,
            "screen_sharing": self.screen_sharing,
        }


class Participant:
    """Created by :meth:`Room.join`; pass it back to ``Room.handle`` / ``Room.leave``.

    ``closed`` is set when the SFU ends this participant (left, removed, vanished, room
    closed): the web layer may then close the WebSocket.
    """

    def __init__(
        self,
        identity: ParticipantIdentity,
        send: Send,
        config: SfuConfig,
        ice_policy: IcePolicy,
    ) -> None:
        self.identity = identity
        self._send = send
        self._config = config
        self._ice_policy = ice_policy
        self.tasks = TaskSet()
        self.state = MediaState()
        self.moderator_muted = False
        self.chat_limiter = ChatRateLimiter(config.chat_rate_count, config.chat_rate_window_s)
        self.chat_channel: RTCDataChannel | None = None
        self.publish: PublishSession | None = None
        self.subscribe = SubscribeSession(
            self.send,
            ice_policy,
            self.tasks,
            instrument=config.instrument_delay,
            lean_loop=config.lean_send_loop,
        )
        self.left = False
        self.closed = asyncio.Event()
        self.publish_lock = asyncio.Lock()

    @property
    def user_id(self) -> int:
        return self.identity.user_id

    @property
    def public(self) -> dict:
        """How other participants see this one."""
        return {
            "user_id": self.identity.user_id,
            "display_name": self.identity.display_name,
            "role": self.identity.role,
            "state": self.state.as_dict(),
        }

    async def send(self, message: dict) -> None:
        """Signal the client; a dead socket is the web layer's business, not ours."""
        if self.closed.is_set():
            return
        try:
            await self._send(message)
        except Exception as exc:  # any transport failure
            logger.debug("send to user %s failed: %r", self.user_id, exc)

    def new_publish_session(
        self, on_datachannel: Callable[[RTCDataChannel], None], on_state: Callable[[str], None]
    ) -> PublishSession:
        self.publish = PublishSession(
            self.user_id, self._config, self._ice_policy, self.tasks, on_datachannel, on_state
        )
        return self.publish

    async def close(self) -> None:
        """Release both peer connections and every task; idempotent."""
        self.closed.set()
        if self.publish is not None:
            await self.publish.close()
        await self.subscribe.close()
        await self.tasks.close()
