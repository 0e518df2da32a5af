"""``GET /ws/notifications/``: live notifications and unread counts for the signed-in user.

Authenticated by the session cookie or ``?token=``; the Origin must be ours.  The socket
subscribes to the bus channel ``user:{id}`` and forwards what services publish there:
``{"type": "notification", "notification": {...}, "unread": n}`` followed by
``{"type": "unread", "count": n}``; mark-read publishes the count alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from typing import Any

from aiohttp import WSMsgType, web

from control.errors import Forbidden, NotAuthenticated
from control.services.notifications import user_channel
from web.keys import PLATFORM, SETTINGS
from web.security import SESSION_COOKIE, bearer_token, origin_allowed, user_from_token

log = logging.getLogger(__name__)

HEARTBEAT_S = 25.0
QUEUE_SIZE = 200  # a client this far behind is stuck; drop it rather than grow without bound
SOCKETS = web.AppKey("notification_sockets", weakref.WeakSet)


async def notifications_ws(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    platform = request.app[PLATFORM]
    if not origin_allowed(request, settings):
        raise Forbidden("cross-origin WebSocket refused", code="origin_refused")
    token = (
        request.query.get("token") or bearer_token(request) or request.cookies.get(SESSION_COOKIE)
    )
    user = await user_from_token(request, token)
    if user is None:
        raise NotAuthenticated("log in first")

    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)

    overflow = asyncio.Event()

    async def on_event(message: dict[str, Any]) -> None:
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
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                getter.cancel()
                await ws.close(code=1008, message=b"too slow")
                return
            waiter.cancel()
            message = getter.result()
            kind = message.get("type")
            if kind == "account_disabled":
                await ws.close(code=4403, message=b"account disabled")
                return
            if kind == "notification":
                await ws.send_json(message)
                if "unread" in message:
                    await ws.send_json({"type": "unread", "count": message["unread"]})
            elif kind == "unread":
                await ws.send_json({"type": "unread", "count": message.get("count", 0)})

    send_task = asyncio.create_task(sender(), name=f"notify-ws-{user.id}")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and _is_ping(msg.data):
                await ws.send_json({"type": "pong"})
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


def _is_ping(text: str) -> bool:
    """Application-level keep-alive for clients that cannot send WebSocket pings."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "ping"


async def _close_all(app: web.Application) -> None:
    """Close open sockets on shutdown so the server does not wait for their heartbeats."""
    for ws in list(app[SOCKETS]):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


def setup(app: web.Application) -> None:
    app[SOCKETS] = weakref.WeakSet()
    app.router.add_get("/ws/notifications/", notifications_ws, name="notifications_ws")
    app.on_shutdown.append(_close_all)
