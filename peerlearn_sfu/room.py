"""A room: admission, signaling dispatch, fan-out wiring, chat, hands, speaker, REMB."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiortc import RTCDataChannel
from aiortc.sdp import candidate_from_sdp

from . import protocol, sdp_validation, taps
from .chat import validate_text
from .config import SfuConfig
from .errors import Banned, ProtocolError, RoomClosed, RoomFull, SfuError
from .hooks import ParticipantIdentity, RoomHooks
from .ice import IcePolicy
from .outbox import encoded_size
from .participant import Participant, Send
from .speaker import ActiveSpeakerDetector
from .stats import StatsSampler
from .tasks import TaskSet
from .turn import ice_servers_for

logger = logging.getLogger(__name__)

MODERATORS = ("mentor", "admin")
REMB_INTERVAL_S = 1.0
#: How long a broadcast waits for clients whose queue was empty (prompt, ordered delivery
#: to healthy sockets); a client already behind is never waited for.
BROADCAST_WAIT_S = 0.1


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
        self.hands: list[int] = []
        self.closed = False
        self.tasks = TaskSet()
        self.speaker = ActiveSpeakerDetector()
        self.sampler = StatsSampler()
        self._ticker: asyncio.Task | None = None
        # State coalescing (hands, mute state): when each key last went out, the trailing
        # update scheduled for it, and the last message per topic (to skip repeats).
        self._state_sent_at: dict[tuple, float] = {}
        self._state_deferred: dict[tuple, asyncio.Task] = {}
        self._state_last: dict[Any, dict] = {}

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
        if self._ticker is None:
            self._ticker = self.tasks.spawn(self._tick(), name=f"room-{self.room_id}-ticker")
        await participant.send(
            {
                "type": "joined",
                "room_id": self.room_id,
                "user_id": identity.user_id,
                "role": identity.role,
                "participants": [
                    p.public for p in self.participants.values() if p is not participant
                ],
                "hands": list(self.hands),
                "ice_servers": ice_servers_for(self.config, identity.user_id),
                "limits": {
                    "chat_max_chars": self.config.chat_max_chars,
                    "max_room_size": self.config.max_room_size,
                },
            }
        )
        history = await self._hook("chat_history", default=[])
        await participant.send({"type": "chat_history", "messages": history or []})
        await self.broadcast({"type": "user_joined", **participant.public}, exclude=participant)
        await self._hook("on_joined", identity.user_id)
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
        hands_changed = participant.user_id in self.hands
        if hands_changed:
            self.hands.remove(participant.user_id)
        self.speaker.forget(participant.user_id)
        for other in self.participants.values():
            other.subscribe.remove_owner(participant.user_id)
        await self.broadcast(
            {"type": "user_left", "user_id": participant.user_id, "reason": reason}
        )
        if hands_changed:
            await self._send_state(("hands", participant.user_id), "hands", self._hands_message)
        if not self.participants and self._ticker is not None:
            # Nobody left to speak, measure or cap: the next join starts it again.
            self._ticker.cancel()
            self._ticker = None
        await participant.close()
        await self._hook("on_left", participant.user_id)

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
            await self._hook("on_left", p.user_id)
        await self.tasks.close()

    async def broadcast(self, message: dict, exclude: Participant | None = None) -> None:
        """Queue ``message`` for everyone (but ``exclude``); never blocks on a slow client."""
        size = encoded_size(message)
        waits = [
            f
            for p in list(self.participants.values())
            if p is not exclude and (f := p.post(message, size)) is not None
        ]
        if waits:
            await asyncio.wait(waits, timeout=BROADCAST_WAIT_S)

    def _drop(self, p: Participant, why: str) -> None:
        """``p``'s outbox overflowed: it stopped reading. It leaves; the room goes on."""
        if not p.left and not self.closed:
            self.tasks.spawn(self.leave(p, reason="too_slow"), name="drop-slow")

    async def _broadcast_state(self, key: tuple, topic: Any, build: Any) -> None:
        """Broadcast ``build()`` (the current state, built when sent) at most once per
        ``state_update_interval_ms`` per ``key``; a burst ends with one trailing update."""
        if key in self._state_deferred:
            return  # the trailing update will carry the latest state
        interval = self.config.state_update_interval_ms / 1000
        wait = self._state_sent_at.get(key, -1e9) + interval - time.monotonic()
        if wait <= 0:
            await self._send_state(key, topic, build)
        else:
            self._state_deferred[key] = self.tasks.spawn(
                self._deferred_state(key, topic, build, wait), name="state-coalesce"
            )

    async def _deferred_state(self, key: tuple, topic: Any, build: Any, wait: float) -> None:
        await asyncio.sleep(wait)
        self._state_deferred.pop(key, None)
        await self._send_state(key, topic, build)

    async def _send_state(self, key: tuple, topic: Any, build: Any) -> None:
        self._state_sent_at[key] = time.monotonic()
        message = build()
        if message is None or self._state_last.get(topic) == message:
            return
        self._state_last[topic] = message
        await self.broadcast(message)

    # -- signaling -----------------------------------------------------------------

    async def handle(self, participant: Participant, message: Any) -> None:
        """Process one client message. Never raises: problems become an ``error`` to the
        sender only, and the room goes on."""
        try:
            if participant.left or self.closed:
                raise SfuError("you are not in this room", code="not_joined")
            kind = protocol.check_message(message, self.config.max_message_bytes)
            await getattr(self, f"_on_{kind}")(participant, message)
        except SfuError as exc:
            await participant.send(exc.to_message())
        except Exception:
            logger.exception("room %s: failed to handle a message", self.room_id)
            await participant.send(protocol.error("internal_error", "the server failed"))

    async def _on_join_session(self, p: Participant, message: dict) -> None:
        raise SfuError("already joined", code="already_joined")

    async def _on_ping(self, p: Participant, message: dict) -> None:
        await p.send({"type": "pong"})

    async def _on_leave(self, p: Participant, message: dict) -> None:
        await self.leave(p, reason="left")

    async def _on_offer(self, p: Participant, message: dict) -> None:
        protocol.pc_field(message, "publish")
        sdp = protocol.sdp_field(message, self.config.max_sdp_bytes)
        async with p.publish_lock:
            first = p.publish is None
            if first:
                # Refused before any connection exists (PublishSession.answer checks again,
                # against the accepted mids, for renegotiations).
                sdp_validation.check_publish_offer(sdp)
            session = p.publish or p.new_publish_session(
                lambda channel: self._on_datachannel(p, channel),
                lambda state: self._on_publish_state(p, state),
            )
            try:
                answer = await session.answer(sdp)
            except Exception as exc:
                if first:
                    p.publish = None
                    await session.close()
                if isinstance(exc, SfuError):
                    raise
                raise SfuError(f"cannot apply the offer: {exc}"[:300], code="invalid_sdp") from exc
        await p.send({"type": "answer", "pc": "publish", "sdp": answer})
        if first:
            for other in list(self.participants.values()):
                if other is not p:
                    for publication in session.publications.values():
                        other.subscribe.add(publication)

    async def _on_answer(self, p: Participant, message: dict) -> None:
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

    async def _on_ice_candidate(self, p: Participant, message: dict) -> None:
        pc_name = message.get("pc")
        if pc_name not in ("publish", "subscribe"):
            raise SfuError("'pc' must be 'publish' or 'subscribe'", code="wrong_pc")
        pc = p.publish.pc if pc_name == "publish" and p.publish else None
        if pc_name == "subscribe":
            pc = p.subscribe.pc
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

    async def _on_chat(self, p: Participant, message: dict) -> None:
        await self.chat(p, message.get("text"))

    async def _on_mute(self, p: Participant, message: dict) -> None:
        kind = message.get("kind")
        if kind not in protocol.MUTE_KINDS:
            raise ProtocolError("'kind' must be audio, video or screen")
        muted = protocol.field(message, "muted", bool)
        if kind == "audio":
            p.state.audio_muted = muted
            if not muted and p.moderator_muted:
                p.moderator_muted = False
                self._set_forwarding(p, "audio", True)
        elif kind == "video":
            p.state.video_muted = muted
        else:
            p.state.screen_sharing = not muted
            if not muted and p.publish is not None:
                # A fresh screen track starts with a keyframe; ask anyway for late legs.
                p.publish.publications["screen"].request_keyframe()
        await self._broadcast_participant_state(p)

    async def _on_raise_hand(self, p: Participant, message: dict) -> None:
        raised = protocol.field(message, "raised", bool)
        if raised and p.user_id not in self.hands:
            self.hands.append(p.user_id)
        elif not raised and p.user_id in self.hands:
            self.hands.remove(p.user_id)
        else:
            return
        await self._broadcast_state(("hands", p.user_id), "hands", self._hands_message)

    async def _on_moderate(self, p: Participant, message: dict) -> None:
        if p.identity.role not in MODERATORS:
            raise SfuError("only the mentor can moderate", code="forbidden")
        action = message.get("action")
        if action not in protocol.MODERATE_ACTIONS:
            raise ProtocolError("'action' must be mute, remove or clear_hands")
        if action == "clear_hands":
            self.hands.clear()
            await self._broadcast_state(("hands", p.user_id), "hands", self._hands_message)
            return
        target_id = protocol.field(message, "target", int)
        target = self.participants.get(target_id)
        if target is None:
            raise SfuError("no such participant", code="not_found")
        if target is p:
            raise ProtocolError("cannot moderate yourself")
        if action == "mute":
            target.moderator_muted = True
            target.state.audio_muted = True
            self._set_forwarding(target, "audio", False)
            target.post({"type": "muted_by_moderator", "kind": "audio", "by": p.user_id})
            await self._broadcast_participant_state(target)
        else:
            # Persist the ban before telling anyone: a reload must already be refused.
            self.banned.add(target_id)
            await self._hook("on_removed", target_id)
            target.post({"type": "removed", "by": p.user_id})
            await self.leave(target, reason="removed")  # flushes that last message

    # -- helpers ---------------------------------------------------------------------

    def _set_forwarding(self, p: Participant, kind: str, on: bool) -> None:
        if p.publish is not None:
            p.publish.publications[kind].forwarding = on

    def _hands_message(self) -> dict:
        return {"type": "hands", "queue": list(self.hands)}

    async def _broadcast_participant_state(self, p: Participant) -> None:
        def build() -> dict | None:
            if p.left:
                return None
            return {"type": "participant_state", "user_id": p.user_id, "state": p.state.as_dict()}

        topic = ("state", p.user_id)
        await self._broadcast_state(topic, topic, build)

    async def chat(self, p: Participant, text: object) -> None:
        """Validate, rate-limit, persist via ``hooks.on_chat`` and relay to everyone."""
        text = validate_text(text, self.config.chat_max_chars)
        p.chat_limiter.check()
        stored = await self.hooks.on_chat(p.user_id, p.identity.display_name, text)
        message = {"type": "chat", "message": stored}
        encoded = json.dumps(message)
        waits = []
        for other in list(self.participants.values()):
            channel = other.chat_channel
            if channel is not None and channel.readyState == "open":
                # aiortc buffers without limit for a peer that does not take the data.
                if channel.bufferedAmount + len(encoded) > self.config.outbox_max_bytes:
                    other.outbox.drop("data channel backlog")
                    continue
                try:
                    channel.send(encoded)
                    continue
                except Exception:  # fall back to the WebSocket
                    logger.debug("data channel send failed; using the WebSocket")
            if (done := other.post(message, len(encoded))) is not None:
                waits.append(done)
        if waits:
            await asyncio.wait(waits, timeout=BROADCAST_WAIT_S)

    def _on_datachannel(self, p: Participant, channel: RTCDataChannel) -> None:
        # At most the one "chat" channel: any other (or a second) is closed at once, so
        # a client cannot open thousands of streams on the association.
        if channel.label != "chat" or p.chat_channel is not None:
            channel.close()
            p.tasks.spawn(
                p.send(protocol.error("bad_request", "only one data channel, 'chat', is allowed")),
                name="dc-refused",
            )
            return
        p.chat_channel = channel

        @channel.on("message")
        def on_message(data: object) -> None:
            p.tasks.spawn(self._on_chat_datachannel(p, data), name="chat")

    async def _on_chat_datachannel(self, p: Participant, data: object) -> None:
        try:
            # Bytes, not characters, bound the work; 4 bytes per character at most in UTF-8.
            limit = 4 * self.config.chat_max_chars + 256
            if not isinstance(data, str | bytes) or len(data) > limit:
                raise SfuError("chat message too large", code="chat_too_long")
            if isinstance(data, bytes):
                try:
                    data = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("chat bytes are not valid UTF-8") from None
            text: object = data
            if data.startswith("{"):
                try:
                    text = protocol.parse_frame(data).get("text")
                except protocol.BadJson:
                    pass  # plain text that happens to start with a brace
            await self.chat(p, text)
        except SfuError as exc:
            await p.send(exc.to_message())
        except Exception:
            logger.exception("room %s: failed to relay a data-channel chat", self.room_id)
            await p.send(protocol.error("internal_error", "the server failed"))

    def _on_publish_state(self, p: Participant, state: str) -> None:
        # The client vanished (tab closed, network gone) without a "leave".
        if state in ("failed", "closed") and not p.left and not self.closed:
            self.tasks.spawn(self.leave(p, reason="disconnected"), name="vanished")

    async def _hook(self, name: str, *args: Any, default: Any = None) -> Any:
        try:
            return await getattr(self.hooks, name)(*args)
        except Exception:
            logger.exception("room %s: hook %s failed", self.room_id, name)
            return default

    # -- periodic work -----------------------------------------------------------------

    async def _tick(self) -> None:
        interval = self.config.active_speaker_interval_ms / 1000
        last_remb = last_log = last_sample = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            try:
                await self._update_speaker(now)
                if now - last_sample >= 1.0:
                    last_sample = now
                    self.sampler.sample(list(self.participants.values()))
                if now - last_remb >= REMB_INTERVAL_S:
                    last_remb = now
                    self._send_remb()
                if now - last_log >= self.config.stats_log_interval_s:
                    last_log = now
                    if self.participants:
                        logger.info("room %s stats %s", self.room_id, json.dumps(self.stats()))
            except Exception:
                logger.exception("room %s: ticker failed", self.room_id)

    async def _update_speaker(self, now: float) -> None:
        levels: dict[int, tuple[int, float]] = {}
        for p in self.participants.values():
            if p.publish is None or p.state.audio_muted:
                continue
            audio = p.publish.publications["audio"]
            if audio.audio_level is not None:
                levels[p.user_id] = (audio.audio_level, audio.audio_level_at)
        speaker = self.speaker.pick(levels, now)
        if speaker is not None:
            await self.broadcast({"type": "active_speaker", "user_id": speaker})

    def _send_remb(self) -> None:
        for p in self.participants.values():
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

    def stats(self) -> dict:
        return {
            "participants": {
                p.user_id: self.sampler.participant_stats(p) for p in self.participants.values()
            }
        }
