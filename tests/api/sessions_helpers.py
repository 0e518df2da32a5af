"""Helpers shared by the session/booking API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from control.models import Notification, Session
from web.keys import PLATFORM


def iso_in(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def session_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Intro to Python",
        "description": "Lists, dicts and a little asyncio.",
        "schedule": iso_in(24 * 60),
        "duration": 60,
        "max_participants": 5,
        "skills_required": ["Python", "asyncio"],
        "price": 0,
    }
    body.update(over)
    return body


async def create_session(api: Any, mentor: dict[str, Any], **over: Any) -> dict[str, Any]:
    status, data = await api.call(
        "POST", "/api/sessions/create/", mentor, json=session_body(**over)
    )
    assert status == 201, data
    return data


def platform_of(api: Any) -> Any:
    return api.client.app[PLATFORM]


async def set_session(api: Any, session_id: str, **values: Any) -> None:
    """Force session columns (e.g. move the schedule into the past) behind the API's back."""
    import uuid

    async with platform_of(api).db.transaction() as db:
        await db.execute(
            update(Session).where(Session.id == uuid.UUID(session_id)).values(**values)
        )


async def notifications_of(api: Any, user: dict[str, Any]) -> list[Notification]:
    async with platform_of(api).db.session() as db:
        rows = await db.scalars(
            select(Notification)
            .where(Notification.user_id == user["user"]["id"])
            .order_by(Notification.id)
        )
        return list(rows.all())


async def run_session(api: Any, mentor: dict[str, Any], learners: list[dict[str, Any]]) -> str:
    """A session the learners booked, started (learners joined) and ended: ready for feedback."""
    s = await create_session(api, mentor, schedule=iso_in(10))
    for learner in learners:
        status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
        assert status == 201, data
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/start/", mentor)
    assert status == 200, data
    for learner in learners:
        await platform_of(api).bookings.record_join(s["id"], learner["user"]["id"])
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/end/", mentor)
    assert status == 200, data
    return str(s["id"])


async def anon(api: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Call without credentials: the client's cookie jar still holds the last login's cookie."""
    api.client.session.cookie_jar.clear()
    return await api.call(method, path, None, **kwargs)


async def admin_of(api: Any, name: str = "root") -> dict[str, Any]:
    await platform_of(api).accounts.create_admin(name, f"{name}@example.org", "s3cret-pass!")
    resp = await api.client.post(
        "/api/auth/login/", json={"username": name, "password": "s3cret-pass!"}
    )
    data = await resp.json()
    return {
        "user": data["user"],
        "token": data["token"],
        "headers": {"Authorization": f"Bearer {data['token']}"},
    }
