"""What the web layer hands to a room: who joins, and callbacks into the domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Role = Literal["mentor", "learner", "admin"]


@dataclass
class ParticipantIdentity:
    """An authenticated user, as vouched for by the web layer."""

    user_id: int
    display_name: str
    role: Role


class RoomHooks:
    """Async callbacks into the domain. Defaults do nothing (and keep chat in memory), so
    tests can pass a plain ``RoomHooks()``. Exceptions raised here are logged, not fatal."""

    def __init__(self) -> None:
        self._chat: list[dict[str, Any]] = []

    async def on_joined(self, user_id: int) -> None:
        """Attendance: the user entered the room."""

    async def on_left(self, user_id: int) -> None:
        """Attendance: the user left, was removed, vanished, or the room closed."""

    async def on_chat(self, user_id: int, display_name: str, text: str) -> dict[str, Any]:
        """Persist a chat message; return ``{id, user_id, display_name, text, created_at}``."""
        message = {
            "id": len(self._chat) + 1,
            "user_id": user_id,
            "display_name": display_name,
            "text": text,
            "created_at": datetime.now(UTC).isoformat(),
        }
        self._chat.append(message)
        return message

    async def chat_history(self) -> list[dict[str, Any]]:
        """Stored messages, oldest first, sent to each joiner."""
        return list(self._chat)

    async def on_removed(self, user_id: int) -> None:
        """A mentor removed the user: the web layer should refuse their future joins."""
