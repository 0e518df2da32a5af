"""Live sessions nobody ends are ended by the background job, exactly as their mentor would
end them: on SQLite and PostgreSQL, the job function driven directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from config.settings import Settings
from control.events import CATALOG_CHANNEL, session_channel
from control.models import Notification
from control.platform import Platform

GRACE = 30  # [sessions] auto_end_grace_minutes, the default


async def _user(p: Platform, name: str, role: str) -> Any:
    return await p.accounts.register(
        username=name, email=f"{name}@example.org", password="s3cret-pass!", role=role
    )


async def _live(p: Platform, mentor: Any, title: str, *, minutes: int = 30) -> Any:
    """A session due in five minutes: its mentor may start it at once."""
    session = await p.sessions.create(
        mentor,
        title=title,
        description="",
        schedule=datetime.now(UTC) + timedelta(minutes=5),
        duration=minutes,
        max_participants=3,
        skills_required=["Go"],
        price=Decimal(0),
    )
    return session


async def _events(p: Platform, user_id: int, event: str) -> list[str | None]:
    async with p.db.session() as db:
        rows = await db.scalars(
            select(Notification).where(Notification.user_id == user_id, Notification.event == event)
        )
        return [n.title for n in rows.all()]


async def test_an_overdue_session_ends_like_the_mentor_ended_it(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    came, absent = await _user(platform, "ann", "learner"), await _user(platform, "bob", "learner")
    session = await _live(platform, mentor, "Forgotten room")
    for learner in (came, absent):
        await platform.bookings.book(learner, session.id)
    await platform.sessions.start(mentor, session.id)
    await platform.bookings.record_join(session.id, came.id)
    room: list[dict[str, Any]] = []
    catalog: list[dict[str, Any]] = []

    async def on_room(message: dict[str, Any]) -> None:
        room.append(message)

    async def on_catalog(message: dict[str, Any]) -> None:
        catalog.append(message)

    platform.bus.subscribe(session_channel(session.id), on_room)
    platform.bus.subscribe(CATALOG_CHANNEL, on_catalog)
    due = platform.sessions.overdue_at(await platform.sessions.get(session.id))
    assert due == session.schedule + timedelta(minutes=30 + GRACE)

    assert await platform.sessions.end_overdue(due - timedelta(seconds=1)) == 0
    assert (await platform.sessions.get(session.id)).status == "active"
    assert await platform.sessions.end_overdue(due) == 1

    ended = await platform.sessions.get(session.id)
    assert ended.status == "completed" and ended.ended_at is not None
    assert room == [{"type": "session_ended"}]  # the room closes over the bus
    assert catalog == [{"type": "session_ended", "session_id": str(session.id)}]
    statuses = {b.learner_id: b.status for b in await platform.bookings.for_session(session.id)}
    assert statuses == {came.id: "completed", absent.id: "confirmed"}  # attendance counts
    for learner in (came, absent):
        assert await _events(platform, learner.id, "session_ended") == [
            "Session ended — how was it?"
        ]
    assert await _events(platform, mentor.id, "session_ended") == ["Session ended automatically"]
    assert await platform.sessions.end_overdue(due + timedelta(hours=1)) == 0  # once


async def test_only_overdue_live_sessions_are_ended(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    short = await _live(platform, mentor, "Short", minutes=15)
    long = await _live(platform, mentor, "Long", minutes=120)
    never_started = await _live(platform, mentor, "Never started", minutes=15)
    for s in (short, long):
        await platform.sessions.start(mentor, s.id)
    later = short.schedule + timedelta(minutes=15 + GRACE + 1)
    assert await platform.sessions.end_overdue(later) == 1
    status = {
        s.title: (await platform.sessions.get(s.id)).status for s in (short, long, never_started)
    }
    assert status == {"Short": "completed", "Long": "active", "Never started": "scheduled"}


async def test_a_late_start_gets_its_full_duration(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    session = await _live(platform, mentor, "Started late")
    await platform.sessions.start(mentor, session.id)
    late = datetime.now(UTC) + timedelta(minutes=50)  # as if started 45 min after the schedule
    async with platform.db.transaction() as db:
        row = await db.get(type(session), session.id)
        row.started_at = late
    started = await platform.sessions.get(session.id)
    assert platform.sessions.overdue_at(started) == late + timedelta(minutes=30 + GRACE)
    assert await platform.sessions.end_overdue(session.schedule + timedelta(minutes=61)) == 0


async def test_racing_passes_and_the_mentor_end_it_once(platform: Platform) -> None:
    """Two nodes' passes at once (and the mentor's own click) end a session exactly once."""
    mentor = await _user(platform, "mia", "mentor")
    session = await _live(platform, mentor, "Raced")
    await platform.sessions.start(mentor, session.id)
    due = session.schedule + timedelta(minutes=30 + GRACE)
    results = await asyncio.gather(
        platform.sessions.end_overdue(due),
        platform.sessions.end_overdue(due),
        platform.sessions.end(mentor, session.id),
        return_exceptions=True,
    )
    ended_by_job = sum(r for r in results[:2] if isinstance(r, int))
    mentor_won = not isinstance(results[2], BaseException)
    assert ended_by_job + mentor_won == 1, results
    assert len(await _events(platform, mentor.id, "session_ended")) == ended_by_job


@pytest.mark.parametrize(
    ("background", "jobs"),
    [(False, []), (True, ["session-reminders", "payment-holds", "session-auto-end"])],
)
async def test_the_job_runs_with_background_loops_only(
    settings: Settings, background: bool, jobs: list[str]
) -> None:
    p = Platform(settings)
    await p.db.migrate()
    await p.start(background=background)
    try:
        assert p.background_jobs == jobs
    finally:
        await p.close()
    assert p.background_jobs == []  # close() stops them
