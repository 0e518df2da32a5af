"""The signaling WebSocket ``/ws/session/{id}/``: authenticates, authorises and bridges a
browser to its room in the SFU.  The SFU knows nothing of users or databases; the
``PlatformRoomHooks`` below are how its events reach the domain (attendance, chat, bans).

With a cluster (``control.cluster``) the room may live on another node: the socket then
talks to it through a :class:`RelayLink` instead of a :class:`LocalLink`, and the owner
serves the relayed participant in :meth:`RoomDirectory.serve_relayed`.
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
from control import cluster as clustering
from control.cluster import CLOSE, KEEPALIVE, REMOVE, Cluster, ClusterOptions, RelayChannel
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
from peerlearn_sfu.outbox import Send
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
#: The room moves to another node (its owner died or drains): the page reconnects, and
#: its new join lands on the room's new owner. 1012 is "service restart" (RFC 6455).
CLOSE_RECONNECT = 1012
#: A relayed join the owner has not answered in this long is retried by the page.
RELAY_JOIN_TIMEOUT_S = 30.0
#: A relayed participant whose edge sent nothing (not even its keepalive, every heartbeat)
#: for this many node TTLs has lost its socket.
EDGE_SILENCE_TTLS = 3
#: How long a relayed removal waits for the owner's last message before hanging up.
REMOVE_WAIT_S = 2.0
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
        worker_index=settings.cluster.worker_index,
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
    issued on one node closes the room on whichever node hosts it. With a ``cluster``
    the room is placed on one node of several (``control.cluster``): a join on another
    node is relayed to it (:meth:`join`).
    """

    def __init__(self, platform: Platform, sfu: SfuServer, cluster: Cluster | None = None) -> None:
        self.platform = platform
        self.sfu = sfu
        self.cluster = cluster
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        #: rooms being handed to another node (drain): their sockets are told to reconnect
        self.moving: set[str] = set()

    def room_for(self, session_id: uuid.UUID) -> Room:
        room_id = str(session_id)
        room = self.sfu.get_room(room_id)
        if room is not None:
            return room
        room = self.sfu.open_room(room_id, PlatformRoomHooks(self.platform, session_id))
        if self.cluster is not None:
            self.cluster.adopt(room_id)

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

    async def join(self, session_id: uuid.UUID, who: ParticipantIdentity, send: Send) -> Link:
        """Admit ``who`` to the room wherever it lives; raises :class:`SfuError` as
        ``Room.join`` does. The link is local when this node owns the room."""
        room_id = str(session_id)
        if self.cluster is not None:
            try:
                owner = await self.cluster.place(room_id)
                channel = None
                if owner != self.cluster.node_id:
                    hello = {
                        "room_id": room_id,
                        "user_id": who.user_id,
                        "display_name": who.display_name,
                        "role": who.role,
                    }
                    channel = await self.cluster.connect(owner, hello)
            except Exception as exc:  # redis-py's errors, or a claim that would not settle
                log.warning("room %s: cannot place the join (%s)", room_id, exc)
                raise SfuError("the room is moving to another server", code="room_moving") from None
            if channel is not None:
                return await RelayLink.open(channel, self.cluster, send)
        check_admission(self.sfu, room_id, who.user_id)
        participant = await self.room_for(session_id).join(who, send)
        return LocalLink(self, room_id, participant)

    async def serve_relayed(self, channel: RelayChannel, hello: dict[str, Any]) -> None:
        """Owner side of a relayed participant: join, then pass its messages to the room
        in order until either side ends (``Cluster`` closes the channel afterwards)."""
        assert self.cluster is not None
        room_id = str(hello["room_id"])
        if self.cluster.draining:  # placed here just before the drain: come again
            await channel.close("moved")
            return
        who = ParticipantIdentity(int(hello["user_id"]), str(hello["display_name"]), hello["role"])
        try:
            check_admission(self.sfu, room_id, who.user_id)
            participant = await self.room_for(uuid.UUID(room_id)).join(who, channel.send)
        except SfuError as exc:
            await channel.close("join_failed", code=exc.code, message=str(exc))
            return

        async def farewell() -> None:
            # The room ended this participant (removed, session ended, moving): tell the edge.
            await participant.closed.wait()
            await channel.close("moved" if room_id in self.moving else "ended")

        watcher = asyncio.create_task(farewell(), name=f"relay-farewell-{channel.conn}")
        try:
            while not channel.closed and not participant.closed.is_set():
                entries = await channel.receive()
                room = self.sfu.get_room(room_id)
                if room is None:
                    break
                if not entries and not await self.cluster.alive(channel.peer):
                    log.info("room %s: edge %s is gone", room_id, channel.peer)
                    await room.leave(participant)
                    break
                if channel.silent_for > EDGE_SILENCE_TTLS * self.cluster.options.node_ttl_s:
                    # The edge lives but stopped relaying this socket (its farewell was
                    # lost): no keepalive for this long means the socket is gone.
                    log.info("room %s: relay %s went silent", room_id, channel.conn)
                    await room.leave(participant)
                    break
                for message, control, _sent in entries:
                    if message is not None:
                        await room.handle(participant, message)
                    elif control["c"] == REMOVE:
                        await room.remove(participant, str(control.get("reason")), banned=False)
                    elif control["c"] == CLOSE:
                        await room.leave(participant)
                        return
        finally:
            room = self.sfu.get_room(room_id)
            if room is not None and not participant.left:
                await room.leave(participant)
            # Any last message of the room is flushed by now (Participant.close).
            await channel.close("moved" if room_id in self.moving else "ended")
            watcher.cancel()

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
        if self.cluster is not None:
            with contextlib.suppress(Exception):  # the claim expires by itself anyway
                await self.cluster.release(room_id)

    async def drain(self) -> None:
        """SIGTERM: take no new rooms; hand each room over (its claim freed, then everyone
        told to reconnect, which places it on another node)."""
        if self.cluster is None:
            return
        await self.cluster.drain()
        for room_id in list(self.sfu.rooms):
            await self.move(room_id)
        log.info("node %s drained", self.cluster.node_id)

    async def move(self, room_id: str) -> None:
        """Hand one room over: its claim freed, everyone told to reconnect (1012), and it
        closes here without ``session_ended`` (the session goes on elsewhere)."""
        room = self.sfu.get_room(room_id)
        self.moving.add(room_id)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.release(room_id)
        if room is not None:
            for participant in list(room.participants.values()):
                await room.leave(participant, reason="moved")
        await self.close(room_id)
        # A later claim may bring the room back here: its sockets close normally then.
        asyncio.get_running_loop().call_later(5.0, self.moving.discard, room_id)

    def load(self) -> tuple[int, int]:
        """(rooms, participants) hosted here, for the cluster registry."""
        rooms = [r for r in self.sfu.rooms.values() if not r.closed]
        return len(rooms), sum(len(r.participants) for r in rooms)

    async def close_all(self) -> None:
        for unsubscribe in self._unsubscribe.values():
            unsubscribe()
        self._unsubscribe.clear()
        await self.sfu.close()


class Link:
    """A joined participant as the socket handler sees it, wherever its room lives."""

    closed: asyncio.Event
    #: the close code for the browser once ``closed`` is set
    close_code = CLOSE_ENDED

    async def handle(self, message: dict[str, Any]) -> bool:
        """Pass one client message on; False when the room is gone."""
        raise NotImplementedError

    async def leave(self) -> None:
        raise NotImplementedError

    async def remove(self, reason: str) -> None:
        """End this participant from outside (a revoked login)."""
        raise NotImplementedError


class LocalLink(Link):
    """The room is on this node: straight calls, exactly as without a cluster."""

    def __init__(self, directory: RoomDirectory, room_id: str, participant: Participant) -> None:
        self._directory = directory
        self._room_id = room_id
        self.participant = participant
        self.closed = participant.closed

    @property
    def close_code(self) -> int:  # type: ignore[override]
        return CLOSE_RECONNECT if self._room_id in self._directory.moving else CLOSE_ENDED

    async def handle(self, message: dict[str, Any]) -> bool:
        room = self._directory.sfu.get_room(self._room_id)
        if room is None:
            return False
        await room.handle(self.participant, message)
        return True

    async def leave(self) -> None:
        room = self._directory.sfu.get_room(self._room_id)
        if room is not None:
            await room.leave(self.participant)

    async def remove(self, reason: str) -> None:
        room = self._directory.sfu.get_room(self._room_id)
        if room is not None:
            await room.remove(self.participant, reason, banned=False)


class RelayLink(Link):
    """The room is on another node: messages go up its relay stream, and what comes down
    goes to the browser in order; the browser cannot tell the difference."""

    def __init__(self, channel: RelayChannel, cluster: Cluster, send: Send) -> None:
        self._channel = channel
        self._cluster = cluster
        self._send = send
        self.closed = asyncio.Event()
        self._joined = asyncio.Event()
        self.refusal: SfuError | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, channel: RelayChannel, cluster: Cluster, send: Send) -> RelayLink:
        """Wait for the owner's ``joined`` (or its refusal, raised as the room would)."""
        link = cls(channel, cluster, send)
        link._reader = asyncio.create_task(link._read(), name=f"relay-{channel.conn}")
        link._keepalive = asyncio.create_task(link._beat(), name=f"relay-ka-{channel.conn}")
        done = asyncio.create_task(link._joined.wait())
        ended = asyncio.create_task(link.closed.wait())
        try:
            await asyncio.wait(
                {done, ended}, timeout=RELAY_JOIN_TIMEOUT_S, return_when="FIRST_COMPLETED"
            )
        finally:
            done.cancel()
            ended.cancel()
        if link._joined.is_set():
            return link
        await link.leave()
        if link.refusal is not None:
            raise link.refusal
        raise SfuError("the room is moving to another server", code="room_moving")

    async def _read(self) -> None:
        channel = self._channel
        try:
            while not self.closed.is_set():
                entries = await channel.receive()
                if not entries and not await self._cluster.alive(channel.peer):
                    log.info("relay %s: owner %s is gone", channel.conn, channel.peer)
                    self._end(CLOSE_RECONNECT)
                    return
                for message, control, _sent in entries:
                    if message is not None:
                        if message.get("type") == "joined":
                            self._joined.set()
                        await self._send(message)
                    elif control["c"] == CLOSE:
                        reason = control.get("reason")
                        if reason == "join_failed":
                            self.refusal = SfuError(
                                str(control.get("message")), code=str(control.get("code"))
                            )
                        self._end(CLOSE_RECONNECT if reason == "moved" else CLOSE_ENDED)
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay %s failed", channel.conn)
            self._end(CLOSE_RECONNECT)

    async def _beat(self) -> None:
        """Tell the owner this socket is still here (it drops a relay that goes silent)."""
        while not self.closed.is_set():
            await asyncio.sleep(self._cluster.options.heartbeat_s)
            with contextlib.suppress(Exception):  # a Redis blip: the next beat will do
                await self._channel.control(KEEPALIVE)

    def _end(self, code: int) -> None:
        self.close_code = code
        self._channel.closed = True  # the owner closed its side: no farewell needed
        self.closed.set()
        if self._keepalive is not None:
            self._keepalive.cancel()

    async def handle(self, message: dict[str, Any]) -> bool:
        if self.closed.is_set():
            return False
        await self._channel.send(message)
        return True

    async def leave(self) -> None:
        await self._channel.close("left")
        self.closed.set()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def remove(self, reason: str) -> None:
        if not self.closed.is_set():
            await self._channel.control(REMOVE, reason=reason)
            # The owner's session_ended(reason) comes down first, then its farewell.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), REMOVE_WAIT_S)


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
    link: Link | None = None
    watcher: asyncio.Task[None] | None = None

    async def close_when_ended(joined: Link) -> None:
        # The SFU ended this participant (removed, session ended, room moving): hang up too.
        await joined.closed.wait()
        code = joined.close_code
        await ws.close(code=code, message=b"reconnect" if code == CLOSE_RECONNECT else b"ended")

    # Authorisation lasts only as long as the login: a revocation (logout, logout
    # everywhere, password change, deactivation) arrives on the bus from any node.
    ending: set[asyncio.Task[None]] = set()

    async def end_signed_out(reason: str) -> None:
        if link is not None:
            await link.remove(reason)
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
            if link is None:
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
                    link = await directory.join(session_id, who, send)
                    watcher = asyncio.create_task(close_when_ended(link))
                except SfuError as exc:
                    if exc.code == "room_moving":  # the page reconnects and lands anew
                        await ws.close(code=CLOSE_RECONNECT, message=b"reconnect")
                        break
                    await send(exc.to_message())
                    if exc.code in FINAL_JOIN_ERRORS:
                        break
                continue
            if kind == "leave":
                break
            if not await link.handle(message):
                break
    finally:
        unsubscribe_user()
        if watcher is not None:
            watcher.cancel()
        if link is not None:
            await link.leave()
        if not ws.closed:
            await ws.close()
    return ws


def _cluster(settings: Settings, directory: RoomDirectory) -> Cluster | None:
    """This node's cluster membership, when rooms are placed across nodes."""
    options = settings.cluster
    if not options.clustered or not settings.redis.url:
        return None  # cmd_serve refuses a cluster without Redis before getting here
    config = directory.sfu.config
    node_id = options.node_id or clustering.new_node_id(options.worker_index)
    if options.node_id and options.worker_count > 1:
        node_id = f"{options.node_id}-w{options.worker_index}"  # one configured id per machine
    return Cluster(
        settings.redis.url,
        node_id=node_id,
        media=clustering.default_media_address(
            config.announced_ip, settings.server.host, config.media_port
        ),
        options=ClusterOptions(
            heartbeat_s=options.heartbeat_s,
            node_ttl_s=options.node_ttl_s,
            relay_backlog=options.relay_backlog,
            relay_maxlen=options.relay_maxlen,
        ),
        load=directory.load,
    )


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]

    async def sfu_ctx(app: web.Application) -> AsyncIterator[None]:
        sfu = SfuServer(sfu_config(settings))
        app[SFU] = sfu
        directory = app[ROOMS] = RoomDirectory(app[PLATFORM], sfu)
        directory.cluster = _cluster(settings, directory)
        if directory.cluster is not None:
            await directory.cluster.start(directory.serve_relayed, directory.move)
        yield  # each room logs its own stats every [sfu] stats_log_interval_s
        await directory.close_all()
        if directory.cluster is not None:
            await directory.cluster.close()

    async def drain(app: web.Application) -> None:
        # Shutdown (SIGTERM): listening has stopped; hand the rooms over before the
        # remaining requests are waited for.
        await app[ROOMS].drain()

    app.cleanup_ctx.append(sfu_ctx)
    app.on_shutdown.append(drain)
    app.router.add_get("/ws/session/{session_id}/", session_socket)
