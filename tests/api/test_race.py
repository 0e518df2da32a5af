"""Concurrent booking through the HTTP API on SQLite and PostgreSQL: never oversold."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from control.models import Booking
from tests.api.sessions_helpers import create_session, iso_in, platform_of
from tests.support import ApiDriver


async def register_many(api: ApiDriver, n: int) -> list[dict[str, Any]]:
    """Register n learners through the account service (concurrently: Argon2 is the slow part)
    and give each a Bearer token, as login would."""
    platform = platform_of(api)
    tag = uuid.uuid4().hex[:6]
    users = await asyncio.gather(
        *(
            platform.accounts.register(
                username=f"racer{i}_{tag}",
                email=f"racer{i}_{tag}@example.org",
                password="s3cret-pass!",
                role="learner",
            )
            for i in range(n)
        )
    )
    tokens = [(await platform.accounts.logins.start(u))[1] for u in users]
    return [
        {"user": {"id": u.id}, "headers": {"Authorization": f"Bearer {t}"}}
        for u, t in zip(users, tokens, strict=True)
    ]


@pytest.fixture
async def race_api(app_factory: Any, make_settings: Any, database_url: str) -> ApiDriver:
    """The parametrised (SQLite, PostgreSQL) app, with login throttling raised for 51 logins."""
    settings = make_settings(
        database={"url": database_url}, auth={"login_max_attempts_per_ip": 10_000}
    )
    return ApiDriver(await app_factory(settings))


async def test_fifty_learners_race_for_ten_seats(race_api: ApiDriver) -> None:
    api = race_api
    mentor = await api.register("mentor")
    learners = await register_many(api, 50)
    s = await create_session(api, mentor, max_participants=10)
    results = await asyncio.gather(
        *(api.call("POST", f"/api/sessions/{s['id']}/book/", who) for who in learners)
    )
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 10, statuses
    assert statuses.count(409) == 40, statuses
    assert {body["error"]["code"] for status, body in results if status == 409} == {"session_full"}
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/")
    assert detail["current_participants"] == 10 and detail["seats_left"] == 0
    sid = uuid.UUID(detail["id"])
    async with platform_of(api).db.session() as db:
        confirmed = await db.scalar(
            select(func.count()).where(Booking.session_id == sid, Booking.status == "confirmed")
        )
        total = await db.scalar(select(func.count()).where(Booking.session_id == sid))
    assert confirmed == 10 and total == 10


async def test_same_learner_double_click(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor, max_participants=3)
    results = await asyncio.gather(
        *(api.call("POST", f"/api/sessions/{s['id']}/book/", learner) for _ in range(5))
    )
    assert sorted(status for status, _ in results) == [201, 409, 409, 409, 409]
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/")
    assert detail["current_participants"] == 1


async def test_walk_from_the_issue(api: Any) -> None:
    """A mentor and three learners, a 2-seat session, all book at once; start; rate."""
    mentor = await api.register("mentor")
    learners = [await api.register("learner") for _ in range(3)]
    s = await create_session(api, mentor, max_participants=2, schedule=iso_in(10))
    results = await asyncio.gather(
        *(api.call("POST", f"/api/sessions/{s['id']}/book/", who) for who in learners)
    )
    assert sorted(status for status, _ in results) == [201, 201, 409]
    assert [body["status"] for status, body in results if status == 201] == ["confirmed"] * 2
    assert [body["error"]["code"] for status, body in results if status == 409] == ["session_full"]
    winners = [who for who, (status, _) in zip(learners, results, strict=True) if status == 201]
    loser = next(w for w in learners if w not in winners)
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/start/", mentor)
    assert status == 200 and data["status"] == "active"
    assert data["current_participants"] == 2 and data["seats_left"] == 0
    for who in winners:  # only attendees who came into the room rate the mentor
        await platform_of(api).bookings.record_join(uuid.UUID(s["id"]), who["user"]["id"])
    for rating, who in zip((4, 5), winners, strict=True):
        status, data = await api.call(
            "POST", f"/api/sessions/{s['id']}/feedback/", who, json={"rating": rating}
        )
        assert status == 201, data
    status, data = await api.call(
        "POST", f"/api/sessions/{s['id']}/feedback/", loser, json={"rating": 1}
    )
    assert status == 403 and data["error"]["code"] == "forbidden"
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/")
    assert detail["mentor_rating"] == {"average": 4.5, "count": 2}
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/end/", mentor)
    assert status == 200 and data["status"] == "completed"
