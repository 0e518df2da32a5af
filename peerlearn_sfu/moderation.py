"""Hands, mute state and the mentor's moderation (mute, remove, clear hands) of one room.

``hands`` and ``participant_state`` messages describe current state, so a burst of them
is coalesced (:class:`StateBroadcaster`): a client toggling its hand 500 times costs the
others a few messages, not 500 (docs/sfu.md, "Limits").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from . import protocol
from .errors import ProtocolError, SfuError
from .participant import Participant
from .protocol import Message
from .tasks import TaskSet

MODERATORS = ("mentor", "admin")

#: What a coalesced update is about: ``("hands", user_id)`` or ``("state", user_id)``.
StateKey = tuple[str, int]
#: Repeats are skipped per topic: ``"hands"`` (one queue) or ``("state", user_id)``.
Topic = str | StateKey
#: Builds the current state message when it is sent (None: nothing to send any more).
Build = Callable[[], Message | None]
Broadcast = Callable[[Message], Awaitable[None]]


class StateBroadcaster:
    """Broadcasts state at most once per ``interval_s`` per key; a burst ends with one
    trailing update carrying the latest state, and an unchanged message is not repeated."""

    def __init__(self, interval_s: float, broadcast: Broadcast, tasks: TaskSet) -> None:
        self._interval_s = interval_s
        self._broadcast = broadcast
        self._tasks = tasks
        # When each key last went out, the trailing update scheduled for it, and the last
        # message per topic.
        self._sent_at: dict[StateKey, float] = {}
        self._deferred: dict[StateKey, asyncio.Task[None]] = {}
        self._last: dict[Topic, Message] = {}

    async def coalesced(self, key: StateKey, topic: Topic, build: Build) -> None:
        """Broadcast ``build()`` now, or once the key's interval has passed."""
        if key in self._deferred:
            return  # the trailing update will carry the latest state
        wait = self._sent_at.get(key, -1e9) + self._interval_s - time.monotonic()
        if wait <= 0:
            await self.now(key, topic, build)
        else:
            self._deferred[key] = self._tasks.spawn(
                self._deferred_send(key, topic, build, wait), name="state-coalesce"
            )

    async def now(self, key: StateKey, topic: Topic, build: Build) -> None:
        """Broadcast ``build()`` at once (unless it repeats the topic's last message)."""
        self._sent_at[key] = time.monotonic()
        message = build()
        if message is None or self._last.get(topic) == message:
            return
        self._last[topic] = message
        await self._broadcast(message)

    async def _deferred_send(self, key: StateKey, topic: Topic, build: Build, wait: float) -> None:
        await asyncio.sleep(wait)
        self._deferred.pop(key, None)
        await self.now(key, topic, build)


class Moderation:
    """The raised-hands queue, participants' media state, and what moderators may do.

    ``ban(target, by)`` is the room's: it refuses the target's next join and removes them.
    """

    def __init__(
        self,
        participants: dict[int, Participant],
        states: StateBroadcaster,
        ban: Callable[[Participant, int], Awaitable[None]],
    ) -> None:
        self._participants = participants
        self._states = states
        self._ban = ban
        self.hands: list[int] = []

    # -- signaling (Room.handle dispatches here) -------------------------------------

    async def mute(self, p: Participant, message: Message) -> None:
        """The participant's own ``mute``: media state, and unmuting lifts a moderator's mute."""
        kind = message.get("kind")
        if kind not in protocol.MUTE_KINDS:
            raise ProtocolError("'kind' must be audio, video or screen")
        muted = protocol.field(message, "muted", bool)
        if kind == "audio":
            p.state.audio_muted = muted
            if not muted and p.moderator_muted:
                p.moderator_muted = False
                _set_forwarding(p, "audio", True)
        elif kind == "video":
            p.state.video_muted = muted
        else:
            p.state.screen_sharing = not muted
            if not muted and p.publish is not None:
                # A fresh screen track starts with a keyframe; ask anyway for late legs.
                p.publish.publications["screen"].request_keyframe()
        await self._broadcast_participant_state(p)

    async def raise_hand(self, p: Participant, message: Message) -> None:
        raised = protocol.field(message, "raised", bool)
        if raised and p.user_id not in self.hands:
            self.hands.append(p.user_id)
        elif not raised and p.user_id in self.hands:
            self.hands.remove(p.user_id)
        else:
            return
        await self._states.coalesced(("hands", p.user_id), "hands", self.hands_message)

    async def moderate(self, p: Participant, message: Message) -> None:
        if p.identity.role not in MODERATORS:
            raise SfuError("only the mentor can moderate", code="forbidden")
        action = message.get("action")
        if action not in protocol.MODERATE_ACTIONS:
            raise ProtocolError("'action' must be mute, remove or clear_hands")
        if action == "clear_hands":
            self.hands.clear()
            await self._states.coalesced(("hands", p.user_id), "hands", self.hands_message)
            return
        target_id = protocol.field(message, "target", int)
        target = self._participants.get(target_id)
        if target is None:
            raise SfuError("no such participant", code="not_found")
        if target is p:
            raise ProtocolError("cannot moderate yourself")
        if action == "mute":
            target.moderator_muted = True
            target.state.audio_muted = True
            _set_forwarding(target, "audio", False)
            target.post({"type": "muted_by_moderator", "kind": "audio", "by": p.user_id})
            await self._broadcast_participant_state(target)
        else:
            await self._ban(target, p.user_id)

    # -- a participant leaving ---------------------------------------------------------

    def lower_hand(self, user_id: int) -> bool:
        """Take ``user_id`` out of the queue; True if it was in it (see :meth:`send_hands`)."""
        if user_id not in self.hands:
            return False
        self.hands.remove(user_id)
        return True

    async def send_hands(self, user_id: int) -> None:
        """The queue to everyone at once (not coalesced): ``user_id`` left it."""
        await self._states.now(("hands", user_id), "hands", self.hands_message)

    def hands_message(self) -> Message:
        return {"type": "hands", "queue": list(self.hands)}

    async def _broadcast_participant_state(self, p: Participant) -> None:
        def build() -> Message | None:
            if p.left:
                return None
            return {"type": "participant_state", "user_id": p.user_id, "state": p.state.as_dict()}

        key = ("state", p.user_id)
        await self._states.coalesced(key, key, build)


def _set_forwarding(p: Participant, kind: str, on: bool) -> None:
    if p.publish is not None:
        p.publish.publications[kind].forwarding = on
