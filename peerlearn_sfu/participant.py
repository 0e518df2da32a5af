"""A participant: identity, signaling callback, publish and subscribe legs, room state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel

from .chat import ChatRateLimiter
from .config import SfuConfig
from .hooks import ParticipantIdentity
from .ice import IcePolicy
from .outbox import Outbox, Send
from .protocol import Message
from .publisher import PublishLeg
from .subscriber import SubscribeLeg
from .tasks import TaskSet

logger = logging.getLogger(__name__)

#: How long a broadcast waits for clients whose queue was empty (prompt, ordered delivery
#: to healthy sockets); a client already behind is never waited for.
BROADCAST_WAIT_S = 0.1


@dataclass
class MediaState:
    """What the participant told us (or a moderator imposed)."""

    audio_muted: bool = False
    video_muted: bool = False
    screen_sharing: bool = False

    def as_dict(self) -> dict[str, bool]:
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
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.identity = identity
        self._on_drop = on_drop
        # Every message to this client goes through one bounded, ordered queue.
        self.outbox = Outbox(
            send,
            max_bytes=config.outbox_max_bytes,
            max_stall_s=config.outbox_max_stall_s,
            on_overflow=self._overflow,
        )
        self._config = config
        self._ice_policy = ice_policy
        self.tasks = TaskSet()
        self.state = MediaState()
        self.moderator_muted = False
        self.chat_limiter = ChatRateLimiter(config.chat_rate_count, config.chat_rate_window_s)
        self.chat_channel: RTCDataChannel | None = None
        self.publish: PublishLeg | None = None
        self.subscribe = SubscribeLeg(
            self.send,
            ice_policy,
            self.tasks,
            lean_loop=config.lean_send_loop,
            rtp_level=config.forwarding == "rtp",
        )
        self.left = False
        self.closed = asyncio.Event()
        self.publish_lock = asyncio.Lock()

    @property
    def user_id(self) -> int:
        return self.identity.user_id

    @property
    def public(self) -> dict[str, Any]:
        """How other participants see this one."""
        return {
            "user_id": self.identity.user_id,
            "display_name": self.identity.display_name,
            "role": self.identity.role,
            "state": self.state.as_dict(),
        }

    async def send(self, message: Message) -> None:
        """Signal the client and wait until it is written (replies to its own messages;
        at most ``outbox_max_stall_s``). A dead socket is the web layer's business."""
        if not self.closed.is_set():
            await self.outbox.send(message)

    def post(self, message: Message, size: int | None = None) -> asyncio.Future[None] | None:
        """Queue a message without waiting (broadcasts, messages caused by others)."""
        if self.closed.is_set():
            return None
        return self.outbox.post(message, size)

    def _overflow(self, why: str) -> None:
        logger.warning("user %s is not reading its socket (%s): dropping it", self.user_id, why)
        if self._on_drop is not None:
            self._on_drop(why)

    def new_publish_leg(
        self, on_datachannel: Callable[[RTCDataChannel], None], on_state: Callable[[str], None]
    ) -> PublishLeg:
        self.publish = PublishLeg(
            self.user_id, self._config, self._ice_policy, self.tasks, on_datachannel, on_state
        )
        return self.publish

    async def close(self) -> None:
        """Release both peer connections and every task; idempotent."""
        if not self.closed.is_set():
            # A last "removed" / "session_ended" is still queued: give it a moment.
            await self.outbox.flush(min(1.0, self._config.outbox_max_stall_s))
        self.closed.set()
        await self.outbox.close()
        if self.publish is not None:
            await self.publish.close()
        await self.subscribe.close()
        await self.tasks.close()


async def post_to_all(participants: Iterable[Participant], message: Message, size: int) -> None:
    """Queue ``message`` (``size`` bytes on the wire) for each; never blocks on a slow client:
    waits at most ``BROADCAST_WAIT_S``, and only for those whose queue was empty."""
    waits = [f for p in participants if (f := p.post(message, size)) is not None]
    if waits:
        await asyncio.wait(waits, timeout=BROADCAST_WAIT_S)
