"""A small world for the signaling tests: users of every role and live sessions, driven
through the real API; sockets opened as a given user."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from web.keys import PLATFORM

ROLES = {"mentor": "mentor", "other_mentor": "mentor", "learner": "learner", "outsider": "learner"}


@dataclass
class World:
    api: Any  # tests.conftest.ApiDriver
    users: dict[str, dict[str, Any]]

    @property
    def platform(self) -> Any:
        return self.api.client.app[PLATFORM]

    async def session(self, *, start: bool) -> str:
        """A free session of "mentor", booked by "learner"; started if asked."""
        body = {
            "title": "Signaling",
            "description": "Sockets.",
            "duration": 60,
            "schedule": (datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
            "max_participants": 5,
            "skills_required": ["WebRTC"],
            "price": 0,
        }
        status, data = await self.api.call(
            "POST", "/api/sessions/create/", self.users["mentor"], json=body
        )
        assert status == 201, data
        sid = data["id"]
        status, data = await self.api.call(
            "POST", f"/api/sessions/{sid}/book/", self.users["learner"]
        )
        assert status == 201, data
        if start:
            status, data = await self.api.call(
                "POST", f"/api/sessions/{sid}/start/", self.users["mentor"]
            )
            assert status == 200, data
        return str(sid)

    async def live_session(self) -> str:
        return await self.session(start=True)


async def make_world(api: Any) -> World:
    users = {name: await api.register(role) for name, role in ROLES.items()}
    await api.client.app[PLATFORM].accounts.create_admin(
        "room_admin", "room_admin@example.org", "s3cret-pass!"
    )
    status, data = await api.call(
        "POST", "/api/auth/login/", json={"username": "room_admin", "password": "s3cret-pass!"}
    )
    assert status == 200, data
    users["admin"] = {"user": data["user"], "headers": {"Authorization": f"Bearer {data['token']}"}}
    users["admin"]["token"] = data["token"]
    return World(api, users)


async def connect(
    world: World, who: str | None, session_id: str, *, origin: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    """The session socket as ``who`` (JWT in the Authorization header; no cookie), or
    anonymous."""
    client = world.api.client
    client.session.cookie_jar.clear()  # the jar holds the last login's cookie
    headers = {"Origin": origin or str(client.make_url("/")).rstrip("/")}
    if who:
        headers["Authorization"] = f"Bearer {world.users[who]['token']}"
    return await client.ws_connect(f"/ws/session/{session_id}/", headers=headers)


async def recv_until(
    ws: aiohttp.ClientWebSocketResponse,
    kind: str,
    timeout: float = 10,  # noqa: ASYNC109
) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended while waiting for {kind!r}: {msg}")
            message = json.loads(msg.data)
            if message.get("type") == kind:
                return message


async def join(world: World, who: str, session_id: str) -> aiohttp.ClientWebSocketResponse:
    """A socket of ``who`` that has joined the room (``joined`` received)."""
    ws = await connect(world, who, session_id)
    await ws.send_json({"type": "join_session"})
    await recv_until(ws, "joined")
    return ws
