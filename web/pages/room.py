"""The live room page ``/sessions/{id}/room``: the browser side of the SFU.

The page itself only decides who may see it and in which state the room is; the media,
chat and room state flow over the signaling WebSocket (``web/rooms.py``), driven by
``static/js/room.js``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.models import SessionStatus
from web.keys import SETTINGS
from web.pages.common import parse_uuid, platform_of, require_user
from web.pages.render import render

routes = web.RouteTableDef()

#: what the page shows before any JavaScript runs, by session status
ROOM_STATES: dict[str, str] = {
    SessionStatus.ACTIVE: "live",
    SessionStatus.SCHEDULED: "waiting",
    SessionStatus.COMPLETED: "ended",
    SessionStatus.CANCELLED: "ended",
}


@routes.get("/sessions/{session_id}/room")
async def room_page(request: web.Request) -> web.Response:
    """The room for the session's mentor, learners with a confirmed seat, and admins.

    Anyone else gets 403 with the reason. A scheduled session shows a waiting room that
    connects by itself once the mentor starts; a finished one shows the end screen.
    """
    user = require_user(request)
    platform = platform_of(request)
    session_id = parse_uuid(request.match_info["session_id"])
    session = await platform.sessions.get(session_id)
    role = await platform.bookings.room_role(user, session_id)  # open or not
    settings = request.app[SETTINGS]
    context: dict[str, Any] = {
        "session": session,
        "room_role": role,
        "room_state": ROOM_STATES.get(session.status, "ended"),
        "session_status": session.status,
        "chat_max_chars": settings.sfu.chat_max_chars,
        "max_room_size": settings.sfu.max_room_size,
        "can_rate": role == "learner",
    }
    return await render(request, "sessions/room.html", context)


@routes.get("/sessions/{session_id}/room/")
async def room_page_slash(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(f"/sessions/{request.match_info['session_id']}/room")
