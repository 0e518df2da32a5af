"""The permission matrix of the whole API: who may do what, as one table.

Rows are actions, columns the actors; each cell is the expected HTTP status.  Every cell runs
against fresh objects (a new session / booking per actor), so one actor's success does not
change what the next one sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.api.sessions_helpers import create_session, iso_in, platform_of, run_session
from tests.support import ApiDriver

ACTORS = ("anonymous", "learner", "mentor", "other_mentor", "admin")

# action: (anonymous, learner, mentor = the session's mentor, other mentor, admin)
MATRIX: dict[str, tuple[int, int, int, int, int]] = {
    "create_session": (401, 403, 201, 201, 403),
    "view_session": (200, 200, 200, 200, 200),
    "list_sessions": (200, 200, 200, 200, 200),
    "book": (401, 201, 403, 403, 403),
    "cancel_booking": (401, 200, 403, 403, 200),
    "start": (401, 403, 200, 403, 403),
    "end": (401, 403, 200, 403, 403),
    "cancel_session": (401, 403, 200, 403, 200),
    "feedback": (401, 201, 403, 403, 403),
    "list_feedback": (200, 200, 200, 200, 200),
    "mark_paid": (401, 403, 200, 403, 200),
    "attendees": (401, 403, 200, 403, 200),
    "chat_history": (401, 200, 200, 403, 200),
    "calendar": (401, 200, 200, 403, 200),
    "my_bookings": (401, 200, 200, 200, 200),
    "pending_payments": (401, 403, 200, 200, 200),
    "stats": (401, 200, 200, 200, 200),
    "admin_sessions": (401, 403, 403, 403, 200),
    "admin_users": (401, 403, 403, 403, 200),
    "admin_settings": (401, 403, 403, 403, 200),
    "profile": (401, 200, 200, 200, 200),
    "profile_update": (401, 200, 200, 200, 200),
    "follow": (401, 200, 400, 200, 200),  # anyone may follow a mentor, not oneself
    "notifications": (401, 200, 200, 200, 200),
}

Request = tuple[str, str, dict[str, Any] | None]


class World:
    """Users shared by one row; fresh sessions/bookings are made per cell."""

    def __init__(self, api: Any, users: dict[str, Any]) -> None:
        self.api = api
        self.users = users

    async def session(self, **over: Any) -> dict[str, Any]:
        return await create_session(self.api, self.users["mentor"], **over)

    async def booking(self, **over: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        s = await self.session(**over)
        status, b = await self.api.call(
            "POST", f"/api/sessions/{s['id']}/book/", self.users["learner"]
        )
        assert status == 201, b
        return s, b


async def _setup(action: str, w: World) -> Request:
    """The request for one cell (creating whatever it acts on)."""
    api, u = w.api, w.users
    if action == "create_session":
        from sessions_helpers import session_body

        return "POST", "/api/sessions/create/", session_body()
    if action == "view_session":
        return "GET", f"/api/sessions/{(await w.session())['id']}/", None
    if action == "list_sessions":
        return "GET", "/api/sessions/?skill=python", None
    if action == "book":
        return "POST", f"/api/sessions/{(await w.session())['id']}/book/", None
    if action == "cancel_booking":
        _, b = await w.booking()
        return "POST", f"/api/bookings/{b['id']}/cancel/", None
    if action == "start":
        s, _ = await w.booking(schedule=iso_in(10))
        return "POST", f"/api/sessions/{s['id']}/start/", None
    if action == "end":
        s, _ = await w.booking(schedule=iso_in(10))
        assert (await api.call("POST", f"/api/sessions/{s['id']}/start/", u["mentor"]))[0] == 200
        return "POST", f"/api/sessions/{s['id']}/end/", None
    if action == "cancel_session":
        return "POST", f"/api/sessions/{(await w.booking())[0]['id']}/cancel/", None
    if action == "feedback":
        sid = await run_session(api, u["mentor"], [u["learner"]])
        return "POST", f"/api/sessions/{sid}/feedback/", {"rating": 5, "comment": "ok"}
    if action == "list_feedback":
        return "GET", f"/api/sessions/{(await w.session())['id']}/feedback/", None
    if action == "mark_paid":
        _, b = await w.booking(price=10)
        return "POST", f"/api/bookings/{b['id']}/mark-paid/", None
    if action in ("attendees", "chat_history", "calendar"):
        s, _ = await w.booking()
        suffix = {"attendees": "bookings/", "chat_history": "chat/", "calendar": "calendar.ics"}
        return "GET", f"/api/sessions/{s['id']}/{suffix[action]}", None
    simple: dict[str, Request] = {
        "my_bookings": ("GET", "/api/bookings/", None),
        "pending_payments": ("GET", "/api/bookings/pending/", None),
        "stats": ("GET", "/api/stats/overview/", None),
        "admin_sessions": ("GET", "/api/admin/sessions/", None),
        "admin_users": ("GET", "/api/admin/users/", None),
        "admin_settings": ("GET", "/api/admin/settings/", None),
        "profile": ("GET", "/api/users/profile/", None),
        "profile_update": ("PUT", "/api/users/profile/update/", {"bio": "Hello there"}),
        "follow": ("POST", "/api/users/follow/", {"mentor_id": u["mentor"]["user"]["id"]}),
        "notifications": ("GET", "/api/notifications/", None),
    }
    return simple[action]


@pytest.fixture
async def world(app_factory: Callable[..., Awaitable[Any]], make_settings: Any) -> World:
    # Every cell starts a session of its own: the live-rooms quota per mentor is not what
    # this matrix is about (tests/signaling/test_room_security.py tests it).
    settings = make_settings(sessions={"max_live_per_mentor": 100})
    api = ApiDriver(await app_factory(settings))
    users = {
        "learner": await api.register("learner"),
        "mentor": await api.register("mentor"),
        "other_mentor": await api.register("mentor"),
    }
    await platform_of(api).accounts.create_admin("boss", "boss@example.org", "s3cret-pass!")
    resp = await api.client.post(
        "/api/auth/login/", json={"username": "boss", "password": "s3cret-pass!"}
    )
    users["admin"] = {"headers": {"Authorization": f"Bearer {(await resp.json())['token']}"}}
    return World(api, users)


@pytest.mark.parametrize("action", list(MATRIX))
async def test_permission_matrix(world: World, action: str) -> None:
    got: dict[str, int] = {}
    for actor in ACTORS:
        method, path, body = await _setup(action, world)
        who = world.users.get(actor)
        if who is None:
            world.api.client.session.cookie_jar.clear()  # truly anonymous: no session cookie
        call: Callable[..., Awaitable[tuple[int, Any]]] = world.api.call
        status, data = (
            await call(method, path, who, json=body)
            if body is not None
            else await call(method, path, who)
        )
        got[actor] = status
        if status >= 400:
            assert set(data["error"]) >= {"code", "message"}, data
    assert got == dict(zip(ACTORS, MATRIX[action], strict=True)), action
