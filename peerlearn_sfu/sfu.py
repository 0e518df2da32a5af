"""The SFU entry point used by the web layer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .config import SfuConfig
from .hooks import RoomHooks
from .ice import IcePolicy
from .room import Room

logger = logging.getLogger(__name__)


class SfuServer:
    """Rooms of forwarding peer connections; one per process is enough."""

    def __init__(self, config: SfuConfig) -> None:
        self.config = config
        self.ice_policy = IcePolicy.from_config(config)
        self.rooms: dict[str, Room] = {}

    def open_room(self, room_id: str, hooks: RoomHooks) -> Room:
        """Create the room, or return the open one with this id (idempotent)."""
        room = self.rooms.get(room_id)
        if room is None or room.closed:
            room = self.rooms[room_id] = Room(
                room_id, self.config, hooks, self.ice_policy.for_room(room_id)
            )
        return room

    def get_room(self, room_id: str) -> Room | None:
        room = self.rooms.get(room_id)
        return room if room is not None and not room.closed else None

    async def close_room(self, room_id: str) -> None:
        """``session_ended`` to every participant; every PC, task and queue released."""
        room = self.rooms.pop(room_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        rooms = list(self.rooms)
        await asyncio.gather(*(self.close_room(r) for r in rooms), return_exceptions=True)
        await self.ice_policy.close()  # the single media port, once every PC is gone

    def stats(self) -> dict[str, Any]:
        """``{"rooms": {room_id: {"participants": {user_id: {...}}}}, "udp": {...}}``
        (see docs/sfu.md)."""
        return {
            "rooms": {rid: room.stats() for rid, room in self.rooms.items()},
            "udp": self.udp_stats(),
        }

    def udp_stats(self) -> dict[str, Any]:
        """Media ports: the single port's sockets and counters, or range-mode ports in use."""
        policy = self.ice_policy
        if policy.mux is not None:
            return {"mode": "single", "port": policy.udp_port, "sockets": policy.mux.stats()}
        budget = policy.budget
        return {
            "mode": "range",
            "range": [policy.port_min, policy.port_max],
            "in_use": budget.in_use if budget else None,
            "by_room": dict(budget.by_room) if budget else {},
        }
