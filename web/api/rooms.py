"""REST endpoints about live rooms (media-plane stats for admins and the room's mentor)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from control.errors import Forbidden, NotFound
from web.api.registry import ApiCall, ApiRegistry
from web.keys import PLATFORM, SFU

api = ApiRegistry()


@api.route(
    "GET",
    "/api/admin/rooms/",
    auth="admin",
    response=dict[str, Any],
    tags=["rooms"],
    summary="Live rooms with per-participant media stats (admin)",
)
async def list_room_stats(request: web.Request, call: ApiCall[None, None]) -> dict[str, Any]:
    return request.app[SFU].stats()


@api.route(
    "GET",
    "/api/sessions/{session_id}/room/stats/",
    auth="user",
    response=dict[str, Any],
    tags=["rooms"],
    errors=[404],
    summary="Media stats of one live room (its mentor or an admin)",
)
async def room_stats(request: web.Request, call: ApiCall[None, None]) -> dict[str, Any]:
    try:
        session_id = uuid.UUID(request.match_info["session_id"])
    except ValueError:
        raise NotFound("no such session") from None
    session = await request.app[PLATFORM].sessions.get(session_id)
    if not (call.me.is_admin or session.mentor_id == call.me.id):
        raise Forbidden("only the session's mentor or an admin can see its room stats")
    rooms: dict[str, dict[str, Any]] = request.app[SFU].stats().get("rooms", {})
    room = rooms.get(str(session_id))
    if room is None:
        raise NotFound("the room is not open", code="room_not_open")
    return room
