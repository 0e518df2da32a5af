"""The room's chat relay: from the signaling socket or the ``chat`` data channel to everyone.

Validation and rate limiting are :mod:`.chat`'s; persistence is ``RoomHooks.on_chat``.
Each recipient gets the message over its open ``chat`` data channel, else its WebSocket.
"""

from __future__ import annotations

import json
import logging

from aiortc import RTCDataChannel

from . import protocol
from .chat import validate_text
from .config import SfuConfig
from .errors import SfuError
from .hooks import RoomHooks
from .participant import Participant, post_to_all
from .protocol import Message

logger = logging.getLogger(__name__)

CHAT_CHANNEL = "chat"


class ChatRelay:
    """Validates, rate-limits, persists and relays one room's chat."""

    def __init__(
        self,
        room_id: str,
        config: SfuConfig,
        hooks: RoomHooks,
        participants: dict[int, Participant],
    ) -> None:
        self._room_id = room_id
        self._config = config
        self._hooks = hooks
        self._participants = participants

    async def on_message(self, p: Participant, message: Message) -> None:
        """A ``chat`` signaling message."""
        await self.relay(p, message.get("text"))

    async def relay(self, p: Participant, text: object) -> None:
        """Validate, rate-limit, persist via ``hooks.on_chat`` and relay to everyone."""
        text = validate_text(text, self._config.chat_max_chars)
        p.chat_limiter.check()
        stored = await self._hooks.on_chat(p.user_id, p.identity.display_name, text)
        message = {"type": "chat", "message": stored}
        encoded = json.dumps(message)
        by_socket: list[Participant] = []
        for other in list(self._participants.values()):
            channel = other.chat_channel
            if channel is not None and channel.readyState == "open":
                # aiortc buffers without limit for a peer that does not take the data.
                if channel.bufferedAmount + len(encoded) > self._config.outbox_max_bytes:
                    other.outbox.drop("data channel backlog")
                    continue
                try:
                    channel.send(encoded)
                    continue
                except Exception:  # fall back to the WebSocket
                    logger.debug("data channel send failed; using the WebSocket")
            by_socket.append(other)
        await post_to_all(by_socket, message, len(encoded))

    def on_datachannel(self, p: Participant, channel: RTCDataChannel) -> None:
        """A data channel the client opened on its publish leg."""
        # At most the one "chat" channel: any other (or a second) is closed at once, so
        # a client cannot open thousands of streams on the association.
        if channel.label != CHAT_CHANNEL or p.chat_channel is not None:
            channel.close()
            p.tasks.spawn(
                p.send(protocol.error("bad_request", "only one data channel, 'chat', is allowed")),
                name="dc-refused",
            )
            return
        p.chat_channel = channel

        @channel.on("message")
        def on_message(data: object) -> None:
            p.tasks.spawn(self._on_datachannel_message(p, data), name="chat")

    async def _on_datachannel_message(self, p: Participant, data: object) -> None:
        try:
            # Bytes, not characters, bound the work; 4 bytes per character at most in UTF-8.
            limit = 4 * self._config.chat_max_chars + 256
            if not isinstance(data, str | bytes) or len(data) > limit:
                raise SfuError("chat message too large", code="chat_too_long")
            decoded = protocol.decode_utf8(data, "chat bytes")
            text: object = decoded
            if decoded.startswith("{"):
                try:
                    text = protocol.parse_frame(decoded).get("text")
                except protocol.BadJson:
                    pass  # plain text that happens to start with a brace
            await self.relay(p, text)
        except SfuError as exc:
            await p.send(exc.to_message())
        except Exception:
            logger.exception("room %s: failed to relay a data-channel chat", self._room_id)
            await p.send(protocol.error("internal_error", "the server failed"))
