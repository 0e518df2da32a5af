"""REST endpoint: a room's chat history (the live chat runs over the room's WebSocket)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from web.api.registry import ApiCall, ApiRegistry
from web.api.sessions import SESSION_PATH, session_id_of
from web.keys import PLATFORM

api = ApiRegistry()


class ChatQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=200, ge=1, le=1000)


class ChatMessageOut(BaseModel):
    id: int
    user_id: int
    display_name: str
    text: str
    created_at: datetime


@api.route(
    "GET",
    SESSION_PATH + "/chat/",
    query=ChatQuery,
    response=list[ChatMessageOut],
    auth="user",
    tags=["sessions"],
    errors=[403, 404],
)
async def chat_history(
    request: web.Request, call: ApiCall[None, ChatQuery]
) -> list[ChatMessageOut]:
    """The room's chat, for whoever may be in the room (mentor, confirmed learners, admins;
    not someone removed from it), also before and after the session."""
    platform = request.app[PLATFORM]
    session_id = session_id_of(request)
    await platform.bookings.room_role(call.me, session_id)  # 403 for anyone else
    return [
        ChatMessageOut.model_validate(m)
        for m in await platform.chat.history(session_id, limit=call.query.limit)
    ]
