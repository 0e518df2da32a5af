"""``GET /ws/notifications/``: live notifications and unread counts for the signed-in user.

Authenticated by the session cookie, an ``Authorization: Bearer`` header or a single-use
``?ticket=`` (``web.security.authenticate_socket``; never a token in the URL); the Origin
must be ours.  The socket subscribes to the bus channel ``user:{id}`` and forwards what
services publish there: ``{"type": "notification", "notification": {...}, "unread": n}``
followed by ``{"type": "unread", "count": n}``; mark-read publishes the count alone. A
``sessions_revoked`` event for its session (logout, password change, deactivation...) closes
it with code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from aiohttp import WSMsgType, web

from control.errors import Forbidden, NotAuthenticated
from control.events import user_channel
from control.services.logins import revocation_applies
from peerlearn_sfu import SfuError
from peerlearn_sfu.protocol import parse_frame
from web.keys import PLATFORM, SETTINGS
from web.security import CLOSE_SIGNED_OUT, authenticate_socket, origin_allowed

log = logging.getLogger(__name__)

HEARTBEAT_S = 25.0
QUEUE_SIZE = 200  # a client this far behind is stuck; drop it rather than grow without bound
#: Open sockets, closed at shutdown so the server does not wait for their heartbeats.
SOCKETS = web.AppKey("notification_sockets", weakref.WeakSet[web.WebSocketResponse])


async def notifications_ws(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    platform = request.app[PLATFORM]
    if not origin_allowed(request, settings):
        raise Forbidden("cross-origin WebSocket refused", code="origin_refused")
    identity = await authenticate_socket(request)
    if identity is None:
        raise NotAuthenticated("log in first")
    user = identity.user

    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)

    overflow = asyncio.Event()
    revoked = asyncio.Event()

    async def on_event(message: dict[str, Any]) -> None:
        if revocation_applies(message, identity.sid):
            revoked.set()  # never dropped, however full the queue
            return
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("notification socket of user %s is not reading; closing it", user.id)
            overflow.set()

    unsubscribe = platform.bus.subscribe(user_channel(user.id), on_event)

    async def sender() -> None:
        count = await platform.notifications.unread_count(user.id)
        await ws.send_json({"type": "unread", "count": count})
        while not ws.closed:
            getter = asyncio.ensure_future(queue.get())
            waiter = asyncio.ensure_future(overflow.wait())
            ender = asyncio.ensure_future(revoked.wait())
            done, _ = await asyncio.wait(
                {getter, waiter, ender}, return_when=asyncio.FIRST_COMPLETED
            )
            if ender in done:
                getter.cancel()
                waiter.cancel()
                await ws.close(code=CLOSE_SIGNED_OUT, message=b"signed out")
                return
            ender.cancel()
            if waiter in done:
                getter.cancel()
                await ws.close(code=1008, message=b"too slow")
                return
            waiter.cancel()
            message = getter.result()
            kind = message.get("type")
            if kind == "notification":
                await ws.send_json(message)
                if "unread" in message:
                    await ws.send_json({"type": "unread", "count": message["unread"]})
            elif kind == "unread":
                await ws.send_json({"type": "unread", "count": message.get("count", 0)})

    send_task = asyncio.create_task(sender(), name=f"notify-ws-{user.id}")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                reply = _reply_to(msg.data)
                if reply is not None:
                    await ws.send_json(reply)
            elif msg.type == WSMsgType.ERROR:
                break
            # Anything else is ignored: this socket is push-only.
            if send_task.done():
                break
    finally:
        unsubscribe()
        send_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await send_task
        if not ws.closed:
            await ws.close()
        request.app[SOCKETS].discard(ws)
    return ws


def _reply_to(text: str) -> dict[str, Any] | None:
    """``pong`` to an application-level ping (clients that cannot send WebSocket pings),
    an ``error`` to a frame that is not a sane JSON object (depth-limited parse, lone
    surrogates refused), nothing to the rest."""
    try:
        data = parse_frame(text)
    except SfuError as exc:
        return exc.to_message()
    return {"type": "pong"} if data.get("type") == "ping" else None


async def _close_all(app: web.Application) -> None:
    """Close open sockets on shutdown so the server does not wait for their heartbeats."""
    sockets = app[SOCKETS]  # not inside list(): mypy would take the key type from list's
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


def setup(app: web.Application) -> None:
    app[SOCKETS] = weakref.WeakSet()
    app.router.add_get("/ws/notifications/", notifications_ws, name="notifications_ws")
    app.on_shutdown.append(_close_all)
