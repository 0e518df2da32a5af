"""Chat history of a session's room (the SFU relays live messages; this keeps them)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from control.db import Database
from control.errors import NotFound, ValidationFailed
from control.ids import parse_session_id
from control.limits import CHAT_MAX_CHARS
from control.models import ChatMessage, Session, User, utcnow


def message_dict(msg: ChatMessage, user: User | None) -> dict[str, Any]:
    return {
        "id": msg.id,
        "user_id": msg.user_id,
        "display_name": user.display_name if user else "",
        "text": msg.text,
        "created_at": msg.created_at.isoformat(),
    }


class ChatService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, session_id: uuid.UUID | str, user_id: int, text: str) -> dict[str, Any]:
        """Store a message as given (escaping is the renderer's job)."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationFailed("empty message", fields={"text": "must not be empty"})
        if len(text) > CHAT_MAX_CHARS:
            raise ValidationFailed(
                "message too long", fields={"text": f"at most {CHAT_MAX_CHARS} characters"}
            )
        if "\x00" in text:
            raise ValidationFailed("invalid characters", fields={"text": "contains NUL"})
        sid = parse_session_id(session_id)
        async with self.db.transaction() as db:
            if await db.scalar(select(Session.id).where(Session.id == sid)) is None:
                raise NotFound("no such session")
            msg = ChatMessage(session_id=sid, user_id=user_id, text=text, created_at=utcnow())
            db.add(msg)
            await db.flush()
            user = await db.get(User, user_id)
        return message_dict(msg, user)

    async def history(self, session_id: uuid.UUID | str, limit: int = 200) -> list[dict[str, Any]]:
        """The latest ``limit`` messages, oldest first."""
        sid = parse_session_id(session_id)
        limit = max(1, min(limit, 1000))
        async with self.db.session() as db:
            rows = (
                await db.scalars(
                    select(ChatMessage)
                    .where(ChatMessage.session_id == sid)
                    .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
                    .limit(limit)
                )
            ).all()
        return [message_dict(m, m.user) for m in reversed(rows)]
