"""The signaling WebSocket ``/ws/session/{id}/``: authenticates, authorises and bridges a
browser to its room in the SFU.  The SFU knows nothing of users or databases; the
``PlatformRoomHooks`` below are how its events reach the domain (attendance, chat, bans).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import WSMsgType, web

from config.settings import Settings
from control.errors import DomainError, Forbidden, NotAuthenticated
from control.events import session_channel, user_channel
from control.platform import Platform
from control.services.logins import revocation_applies
from peerlearn_sfu import (
    Participant,
    ParticipantIdentity,
    Room,
    RoomHooks,
    SfuConfig,
    SfuError,
    SfuServer,
)
from peerlearn_sfu.protocol import parse_frame
from peerlearn_sfu.quotas import check_admission
from web.keys import PLATFORM, SETTINGS, SFU
from web.security import CLOSE_SIGNED_OUT, Identity, authenticate_socket, origin_allowed

log = logging.getLogger(__name__)

# A signaling message is an SDP or a small command; the SFU sizes the limit from the room
# (SfuConfig.max_message_bytes, ~140 KB for 11 people). Bigger frames up to the transport
# limit get a `message_too_large` error and the socket stays; only a frame beyond the
# transport limit makes aiohttp drop the connection (1009).
MAX_FRAME_BYTES = 1024 * 1024
CLOSE_FORBIDDEN = 4403
CLOSE_ENDED = 4000
#: A join refused with one of these will not succeed by retrying on this socket.
FINAL_JOIN_ERRORS = ("room_full", "removed", "room_closed", "server_full", "too_many_rooms")


def sfu_config(settings: Settings) -> SfuConfig:
    sfu, ice = settings.sfu, settings.ice
    return SfuConfig(
        udp_port_min=sfu.udp_port_min,
        udp_port_max=sfu.udp_port_max,
        udp_port=sfu.udp_port,
        max_ports_per_room=sfu.max_ports_per_room,
        max_ports_per_server=sfu.max_ports_per_server,
        announced_ip=sfu.announced_ip,
        interfaces=tuple(sfu.interfaces),
        max_room_size=sfu.max_room_size,
        keyframe_min_interval_ms=sfu.keyframe_min_interval_ms,
        video_max_bitrate_kbps=sfu.video_max_bitrate_kbps,
        chat_max_chars=sfu.chat_max_chars,
        chat_rate_count=sfu.chat_rate_count,
        chat_rate_window_s=sfu.chat_rate_window_s,
        active_speaker_interval_ms=sfu.active_speaker_interval_ms,
        stun_urls=tuple(ice.stun_urls),
        turn_urls=tuple(ice.turn_urls),
        turn_secret=ice.turn_secret,
        turn_ttl_s=ice.turn_ttl_s,
        stats_log_interval_s=sfu.stats_log_interval_s,
        max_participants_per_server=sfu.max_participants_per_server,
        max_rooms_per_user=sfu.max_rooms_per_user,
        outbox_max_bytes=sfu.outbox_max_bytes,
        outbox_max_stall_s=sfu.outbox_max_stall_s,
        state_update_interval_ms=sfu.state_update_interval_ms,
        forwarding=sfu.forwarding,
    )


class PlatformRoomHooks(RoomHooks):
    """Room events written through to the domain services."""

    def __init__(self, platform: Platform, session_id: uuid.UUID) -> None:
        super().__init__()
        self._platform = platform
        self._session_id = session_id

    async def on_joined(self, user_id: int) -> None:
        await self._platform.bookings.record_join(self._session_id, user_id)

    async def on_left(self, user_id: int) -> None:
        await self._platform.bookings.record_leave(self._session_id, user_id)

    async def on_chat(self, user_id: int, display_name: str, text: str) -> dict[str, Any]:
        return await self._platform.chat.add(self._session_id, user_id, text)

    async def chat_history(self) -> list[dict[str, Any]]:
        return await self._platform.chat.history(self._session_id)

    async def on_removed(self, user_id: int) -> None:
        await self._platform.bookings.ban(self._session_id, user_id)


class RoomDirectory:
    """Opens a session's room on first join and closes it when the session ends.

    Session lifecycle arrives over the event bus (``session:<id>``), so with Redis an end
    issued on one node closes the room on whichever node hosts it.
    """

    def __init__(self, platform: Platform, sfu: SfuServer) -> None:
        self.platform = platform
        self.sfu = sfu
        self._unsubscribe: dict[str, Callable[[], None]] = {}

    def room_for(self, session_id: uuid.UUID) -> Room:
        room_id = str(session_id)
        room = self.sfu.get_room(room_id)
        if room is not None:
            return room
        room = self.sfu.open_room(room_id, PlatformRoomHooks(self.platform, session_id))

        async def on_session_event(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind in ("session_ended", "session_cancelled"):
                await self.close(room_id)
            elif kind == "user_banned":
                await self._banned(room_id, message.get("user_id"))

        self._unsubscribe[room_id] = self.platform.bus.subscribe(
            session_channel(room_id), on_session_event
        )
        return room

    async def _banned(self, room_id: str, user_id: Any) -> None:
        """A ban issued on any node (``BookingService.ban``): the user leaves this node's
        room at once. The room that issued it has already removed them."""
        room = self.sfu.get_room(room_id)
        if room is None or not isinstance(user_id, int) or user_id in room.banned:
            return
        participant = room.participants.get(user_id)
        room.banned.add(user_id)
        if participant is not None:
            await room.remove(participant, "banned", banned=True)

    async def close(self, room_id: str) -> None:
        unsubscribe = self._unsubscribe.pop(room_id, None)
        if unsubscribe:
            unsubscribe()
        await self.sfu.close_room(room_id)

    async def close_all(self) -> None:
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()
        self._unsubscribe.clear()
        await self.sfu.close()


ROOMS = web.AppKey("rooms", RoomDirectory)


async def _authenticate(request: web.Request) -> Identity:
    """The cookie, an ``Authorization: Bearer`` header or a single-use ``?ticket=`` (never a
    token in the URL). A revocation on the bus ends the socket later (``on_user_event``)."""
    identity = await authenticate_socket(request)
    if identity is None:
        raise NotAuthenticated("log in to join this session")
    return identity


async def session_socket(request: web.Request) -> web.StreamResponse:
    """One participant's signaling connection."""
    settings, platform = request.app[SETTINGS], request.app[PLATFORM]
    if not origin_allowed(request, settings):
        raise Forbidden("this origin may not open the session socket")
    try:
        session_id = uuid.UUID(request.match_info["session_id"])
    except ValueError:
        raise web.HTTPNotFound() from None

    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)

    async def send(message: dict[str, Any]) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(message)

    async def refuse(code: str, message: str) -> web.StreamResponse:
        await send({"type": "error", "code": code, "message": message})
        await ws.close(code=CLOSE_FORBIDDEN, message=code.encode())
        return ws

    # Permission failures are reported inside the socket: browsers cannot read an HTTP
    # status from a failed WebSocket upgrade, and the room page shows the reason.
    try:
        identity = await _authenticate(request)
        user = identity.user
        role = await platform.bookings.room_access(user, session_id)  # bans: code "removed"
    except DomainError as exc:
        return await refuse(exc.code, exc.message)

    directory = request.app[ROOMS]
    limit = directory.sfu.config.max_message_bytes
    room_id = str(session_id)
    participant: Participant | None = None
    watcher: asyncio.Task[None] | None = None

    async def close_when_ended(ended: asyncio.Event) -> None:
        # The SFU ended this participant (removed, session ended): hang up the socket too.
        await ended.wait()
        await ws.close(code=CLOSE_ENDED, message=b"ended")

    # Authorisation lasts only as long as the login: a revocation (logout, logout
    # everywhere, password change, deactivation) arrives on the bus from any node.
    ending: set[asyncio.Task[None]] = set()

    async def end_signed_out(reason: str) -> None:
        room = directory.sfu.get_room(room_id)
        if participant is not None and room is not None:
            await room.remove(participant, reason, banned=False)
        else:
            await send({"type": "session_ended", "reason": reason})
        await ws.close(code=CLOSE_SIGNED_OUT, message=b"signed out")

    async def on_user_event(message: dict[str, Any]) -> None:
        if not revocation_applies(message, identity.sid):
            return
        reason = str(message.get("reason") or "signed_out")[:40]
        # Not inline: the bus may be delivering inside the request that revoked.
        task = asyncio.create_task(end_signed_out(reason), name=f"room-revoke-{user.id}")
        ending.add(task)
        task.add_done_callback(ending.discard)

    unsubscribe_user = platform.bus.subscribe(user_channel(user.id), on_user_event)

    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    await send({"type": "error", "code": "bad_request", "message": "text only"})
                    continue
                break
            if len(msg.data) > limit:
                await send(
                    {
                        "type": "error",
                        "code": "message_too_large",
                        "message": f"messages are limited to {limit} bytes",
                    }
                )
                continue
            try:
                # Depth-limited, lone surrogates refused: every hostile frame gets an error.
                message = parse_frame(msg.data)
            except SfuError as exc:
                await send(exc.to_message())
                continue
            target = message.get("session_id")
            if target is not None and str(target) != room_id:
                await send(
                    {
                        "type": "error",
                        "code": "wrong_room",
                        "message": "this socket belongs to another session",
                    }
                )
                continue
            kind = message.get("type")
            if participant is None:
                if kind != "join_session":
                    await send(
                        {
                            "type": "error",
                            "code": "not_joined",
                            "message": "send join_session first",
                        }
                    )
                    continue
                who = ParticipantIdentity(user.id, user.display_name, role)
                try:
                    check_admission(directory.sfu, room_id, user.id)
                    participant = await directory.room_for(session_id).join(who, send)
                    watcher = asyncio.create_task(close_when_ended(participant.closed))
                except SfuError as exc:
                    await send(exc.to_message())
                    if exc.code in FINAL_JOIN_ERRORS:
                        break
                continue
            if kind == "leave":
                break
            room = directory.sfu.get_room(room_id)
            if room is None:
                break
            await room.handle(participant, message)
    finally:
        unsubscribe_user()
        if watcher is not None:
            watcher.cancel()
        room = directory.sfu.get_room(room_id)
        if participant is not None and room is not None:
            await room.leave(participant)
        if not ws.closed:
            await ws.close()
    return ws


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]

    async def sfu_ctx(app: web.Application) -> AsyncIterator[None]:
        sfu = SfuServer(sfu_config(settings))
        app[SFU] = sfu
        app[ROOMS] = RoomDirectory(app[PLATFORM], sfu)
        yield  # each room logs its own stats every [sfu] stats_log_interval_s
        await app[ROOMS].close_all()

    app.cleanup_ctx.append(sfu_ctx)
    app.router.add_get("/ws/session/{session_id}/", session_socket)
