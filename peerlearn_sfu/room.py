"""A room: admission and signaling dispatch; it holds the parts that do the rest.

:class:`~.moderation.Moderation` (hands, mute state, moderation), :class:`~.chatrelay.ChatRelay`
(signaling and data-channel chat) and :class:`~.ticker.RoomTicker` (active speaker, REMB,
stats) each get from the room only what they use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiortc.sdp import candidate_from_sdp

from . import protocol, sdp_validation
from .chatrelay import ChatRelay
from .config import SfuConfig
from .errors import Banned, ProtocolError, RoomClosed, RoomFull, SfuError
from .hooks import ParticipantIdentity, RoomHooks
from .ice import IcePolicy
from .moderation import Moderation, StateBroadcaster
from .outbox import Send, encoded_size
from .participant import Participant, post_to_all
from .protocol import Message
from .tasks import TaskSet
from .ticker import RoomTicker
from .turn import ice_servers_for

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
#: Handles one client message of a type (``Room.handle`` dispatches by ``type``).
Handler = Callable[[Participant, Message], Awaitable[None]]


class Room:
    """Obtained from :meth:`SfuServer.open_room`; see docs/protocol.md for messages."""

    def __init__(
        self, room_id: str, config: SfuConfig, hooks: RoomHooks, ice_policy: IcePolicy
    ) -> None:
        self.room_id = room_id
        self.config = config
        self.hooks = hooks
        self._ice_policy = ice_policy
        self.participants: dict[int, Participant] = {}
        self.banned: set[int] = set()
        self.closed = False
        self.tasks = TaskSet()
        states = StateBroadcaster(
            config.state_update_interval_ms / 1000, self.broadcast, self.tasks
        )
        self.moderation = Moderation(self.participants, states, self._ban)
        self.chat = ChatRelay(room_id, config, hooks, self.participants)
        self.ticker = RoomTicker(room_id, config, self.participants, self.broadcast, self.tasks)
        self._handlers: dict[str, Handler] = {
            "join_session": self._on_join_session,
            "ping": self._on_ping,
            "leave": self._on_leave,
            "offer": self._on_offer,
            "answer": self._on_answer,
            "ice_candidate": self._on_ice_candidate,
            "chat": self.chat.on_message,
            "mute": self.moderation.mute,
            "raise_hand": self.moderation.raise_hand,
            "moderate": self.moderation.moderate,
        }

    # -- admission ---------------------------------------------------------------

    async def join(self, identity: ParticipantIdentity, send: Send) -> Participant:
        """Admit a user; raises :class:`RoomFull`, :class:`Banned` or :class:`RoomClosed`.

        Sends ``joined`` and ``chat_history`` to the newcomer, ``user_joined`` to the others.
        A second join by the same user replaces the first connection.
        """
        if self.closed:
            raise RoomClosed("the session has ended")
        if identity.user_id in self.banned:
            raise Banned("you were removed from this session")
        previous = self.participants.get(identity.user_id)
        if previous is not None:
            previous.post({"type": "session_ended", "reason": "replaced"})
            await self.leave(previous, reason="replaced")  # flushes that last message
        if len(self.participants) >= self.config.max_room_size:
            raise RoomFull(f"the room is full ({self.config.max_room_size} participants)")
        participant = Participant(
            identity,
            send,
            self.config,
            self._ice_policy,
            on_drop=lambda why: self._drop(participant, why),
        )
        self.participants[identity.user_id] = participant
        self.ticker.start()
        await participant.send(
            {
                "type": "joined",
                "room_id": self.room_id,
                "user_id": identity.user_id,
                "role": identity.role,
                "participants": [
                    p.public for p in self.participants.values() if p is not participant
                ],
                "hands": list(self.moderation.hands),
                "ice_servers": ice_servers_for(self.config, identity.user_id),
                "limits": {
                    "chat_max_chars": self.config.chat_max_chars,
                    "max_room_size": self.config.max_room_size,
                },
            }
        )
        history = await self._hook("chat_history", self.hooks.chat_history(), [])
        await participant.send({"type": "chat_history", "messages": history or []})
        await self.broadcast({"type": "user_joined", **participant.public}, exclude=participant)
        await self._hook("on_joined", self.hooks.on_joined(identity.user_id), None)
        # Existing publishers' tracks are offered to the newcomer straight away.
        for other in self.participants.values():
            if other is not participant and other.publish is not None:
                for publication in other.publish.publications.values():
                    participant.subscribe.add(publication)
        return participant

    async def leave(self, participant: Participant, reason: str = "left") -> None:
        """Remove a participant (idempotent): ``user_left`` to all, their tracks withdrawn."""
        if participant.left:
            return
        participant.left = True
        if self.participants.get(participant.user_id) is participant:
            del self.participants[participant.user_id]
        hands_changed = self.moderation.lower_hand(participant.user_id)
        self.ticker.forget(participant.user_id)
        for other in self.participants.values():
            other.subscribe.remove_owner(participant.user_id)
        await self.broadcast(
            {"type": "user_left", "user_id": participant.user_id, "reason": reason}
        )
        if hands_changed:
            await self.moderation.send_hands(participant.user_id)
        if not self.participants:
            self.ticker.stop()
        await participant.close()
        await self._hook("on_left", self.hooks.on_left(participant.user_id), None)

    async def remove(self, participant: Participant, reason: str, *, banned: bool) -> None:
        """End one participant from outside the room's own signaling: a revoked login
        (``session_ended``, ``reason`` e.g. ``signed_out``) or a ban issued elsewhere
        (``removed``; ``banned`` also refuses their next join here). Idempotent."""
        if banned:
            self.banned.add(participant.user_id)
        if participant.left:
            return
        if banned:
            participant.post({"type": "removed", "by": None, "reason": reason})
        else:
            participant.post({"type": "session_ended", "reason": reason})
        # The others learn only that they left: why someone's login ended is not theirs.
        await self.leave(participant, reason="removed" if banned else "left")

    async def close(self) -> None:
        """End the session: ``session_ended`` to everyone, everything released."""
        if self.closed:
            return
        self.closed = True
        participants = list(self.participants.values())
        for p in participants:
            p.left = True
            p.post({"type": "session_ended"})
        self.participants.clear()
        await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
        for p in participants:
            await self._hook("on_left", self.hooks.on_left(p.user_id), None)
        await self.tasks.close()

    async def broadcast(self, message: Message, exclude: Participant | None = None) -> None:
        """Queue ``message`` for everyone (but ``exclude``); never blocks on a slow client."""
        others = [p for p in list(self.participants.values()) if p is not exclude]
        await post_to_all(others, message, encoded_size(message))

    async def _ban(self, target: Participant, by: int) -> None:
        """A moderator removed ``target``: refused from now on, then out of the room."""
        # Persist the ban before telling anyone: a reload must already be refused.
        self.banned.add(target.user_id)
        await self._hook("on_removed", self.hooks.on_removed(target.user_id), None)
        target.post({"type": "removed", "by": by})
        await self.leave(target, reason="removed")  # flushes that last message

    def _drop(self, p: Participant, why: str) -> None:
        """``p``'s outbox overflowed: it stopped reading. It leaves; the room goes on."""
        if not p.left and not self.closed:
            self.tasks.spawn(self.leave(p, reason="too_slow"), name="drop-slow")

    # -- signaling -----------------------------------------------------------------

    async def handle(self, participant: Participant, message: Any) -> None:
        """Process one client message. Never raises: problems become an ``error`` to the
        sender only, and the room goes on."""
        try:
            if participant.left or self.closed:
                raise SfuError("you are not in this room", code="not_joined")
            kind = protocol.check_message(message, self.config.max_message_bytes)
            await self._handlers[kind](participant, message)
        except SfuError as exc:
            await participant.send(exc.to_message())
        except Exception:
            logger.exception("room %s: failed to handle a message", self.room_id)
            await participant.send(protocol.error("internal_error", "the server failed"))

    async def _on_join_session(self, p: Participant, message: Message) -> None:
        raise SfuError("already joined", code="already_joined")

    async def _on_ping(self, p: Participant, message: Message) -> None:
        await p.send({"type": "pong"})

    async def _on_leave(self, p: Participant, message: Message) -> None:
        await self.leave(p, reason="left")

    async def _on_offer(self, p: Participant, message: Message) -> None:
        protocol.pc_field(message, "publish")
        sdp = protocol.sdp_field(message, self.config.max_sdp_bytes)
        async with p.publish_lock:
            first = p.publish is None
            if first:
                # Refused before any connection exists (PublishLeg.answer checks again,
                # against the accepted mids, for renegotiations).
                sdp_validation.check_publish_offer(sdp)
            leg = p.publish or p.new_publish_leg(
                lambda channel: self.chat.on_datachannel(p, channel),
                lambda state: self._on_publish_state(p, state),
            )
            try:
                answer = await leg.answer(sdp)
            except Exception as exc:
                if first:
                    p.publish = None
                    await leg.close()
                if isinstance(exc, SfuError):
                    raise
                raise SfuError(f"cannot apply the offer: {exc}"[:300], code="invalid_sdp") from exc
        await p.send({"type": "answer", "pc": "publish", "sdp": answer})
        if first:
            for other in list(self.participants.values()):
                if other is not p:
                    for publication in leg.publications.values():
                        other.subscribe.add(publication)

    async def _on_answer(self, p: Participant, message: Message) -> None:
        protocol.pc_field(message, "subscribe")
        sdp = protocol.sdp_field(message, self.config.max_sdp_bytes)
        try:
            await p.subscribe.apply_answer(sdp)
        except SfuError:
            raise
        except ValueError as exc:
            raise SfuError(str(exc), code="wrong_state") from exc
        except Exception as exc:
            raise SfuError(f"cannot apply the answer: {exc}"[:300], code="invalid_sdp") from exc

    async def _on_ice_candidate(self, p: Participant, message: Message) -> None:
        pc_name = protocol.pc_name(message)
        if pc_name == "subscribe":
            pc = p.subscribe.pc
        else:
            pc = p.publish.pc if p.publish is not None else None
        if pc is None:
            raise SfuError(f"no {pc_name} connection yet", code="wrong_pc")
        data = message.get("candidate")
        if data is None:
            return  # end of candidates
        if isinstance(data, str):
            data = {"candidate": data}
        if not isinstance(data, dict):
            raise ProtocolError("'candidate' must be an object")
        line = protocol.field(data, "candidate", str)
        if not line:
            return  # browsers signal end-of-candidates with an empty string
        if len(line) > protocol.MAX_CANDIDATE_CHARS:
            raise SfuError("candidate too long", code="invalid_candidate")
        try:
            candidate = candidate_from_sdp(line.split(":", 1)[1] if ":" in line else line)
            candidate.sdpMid = data.get("sdpMid")
            candidate.sdpMLineIndex = data.get("sdpMLineIndex")
            await pc.addIceCandidate(candidate)
        except Exception as exc:
            raise SfuError(f"bad ICE candidate: {exc}"[:200], code="invalid_candidate") from exc

    def _on_publish_state(self, p: Participant, state: str) -> None:
        # The client vanished (tab closed, network gone) without a "leave".
        if state in ("failed", "closed") and not p.left and not self.closed:
            self.tasks.spawn(self.leave(p, reason="disconnected"), name="vanished")

    async def _hook(self, name: str, call: Awaitable[_T], default: _T) -> _T:
        """Await a ``RoomHooks`` call: a failing hook is logged and the room goes on."""
        try:
            return await call
        except Exception:
            logger.exception("room %s: hook %s failed", self.room_id, name)
            return default

    def stats(self) -> dict[str, Any]:
        """``{"participants": {user_id: {...}}}`` (docs/sfu.md, "Stats")."""
        return self.ticker.stats()
