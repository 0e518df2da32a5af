""" "Starting soon" reminders: sent once, to confirmed learners and the mentor, across nodes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from control.models import Notification
from control.platform import Platform


async def _platform(settings: Settings) -> Platform:
    platform = Platform(settings)
    await platform.db.migrate()
    await platform.start(background=False)
    return platform


async def _users(platform: Platform) -> tuple[Any, Any, Any]:
    mentor = await platform.accounts.register(
        username="mentor_r", email="m@example.org", password="s3cret-pass!", role="mentor"
    )
    booked = await platform.accounts.register(
        username="booked_r", email="b@example.org", password="s3cret-pass!", role="learner"
    )
    other = await platform.accounts.register(
        username="other_r", email="o@example.org", password="s3cret-pass!", role="learner"
    )
    return mentor, booked, other


async def _reminders(platform: Platform) -> list[tuple[int, str | None]]:
    async with platform.db.session() as db:
        rows = await db.scalars(
            select(Notification).where(Notification.event == "session_reminder")
        )
        return sorted((n.user_id, n.link) for n in rows.all())


async def test_reminders_sent_once_to_the_right_people(settings: Settings) -> None:
    platform = await _platform(settings)
    try:
        mentor, booked, other = await _users(platform)
        now = datetime.now(UTC)
        soon = await platform.sessions.create(
            mentor,
            title="Soon",
            description="",
            schedule=now + timedelta(minutes=10),
            duration=30,
            max_participants=3,
            skills_required=["x"],
            price=Decimal(0),
        )
        later = await platform.sessions.create(
            mentor,
            title="Later",
            description="",
            schedule=now + timedelta(hours=3),
            duration=30,
            max_participants=3,
            skills_required=["x"],
            price=Decimal(0),
        )
        await platform.bookings.book(booked, soon.id)
        await platform.bookings.book(booked, later.id)
        # Two nodes (two concurrent passes) must not both send.
        counts = await asyncio.gather(
            platform.sessions.send_due_reminders(now), platform.sessions.send_due_reminders(now)
        )
        assert sorted(counts) == [0, 1]
        assert await platform.sessions.send_due_reminders(now) == 0
        link = f"/sessions/{soon.id}/"
        assert await _reminders(platform) == sorted([(mentor.id, link), (booked.id, link)])
        assert other.id not in [u for u, _ in await _reminders(platform)]
        # The later session becomes due as time passes.
        assert await platform.sessions.send_due_reminders(now + timedelta(hours=2, minutes=50)) == 1
        assert len(await _reminders(platform)) == 4
    finally:
        await platform.close()


async def test_learners_confirmed_after_the_reminder_get_it_once(settings: Settings) -> None:
    platform = await _platform(settings)
    try:
        mentor, early, late = await _users(platform)
        payer = await platform.accounts.register(
            username="payer_r", email="p@example.org", password="s3cret-pass!", role="learner"
        )
        now = datetime.now(UTC)
        free, paid = [
            await platform.sessions.create(
                mentor,
                title=title,
                description="",
                schedule=now + timedelta(minutes=10),
                duration=30,
                max_participants=3,
                skills_required=["x"],
                price=Decimal(price),
            )
            for title, price in (("Free soon", 0), ("Paid soon", 12))
        ]
        await platform.bookings.book(early, free.id)
        pending = await platform.bookings.book(payer, paid.id)
        assert await platform.sessions.send_due_reminders() == 2
        # Booked (free) or paid (held seat settled) after the pass: reminded at once.
        await platform.bookings.book(late, free.id)
        await platform.bookings.settle_payment(pending.id, "pay-1")
        assert await platform.sessions.send_due_reminders() == 0
        reminded = [user for user, _ in await _reminders(platform)]
        assert sorted(reminded) == sorted([mentor.id, mentor.id, early.id, late.id, payer.id])
    finally:
        await platform.close()


async def test_reminders_skip_cancelled_and_past_sessions(settings: Settings) -> None:
    platform = await _platform(settings)
    try:
        mentor, booked, _ = await _users(platform)
        now = datetime.now(UTC)
        s = await platform.sessions.create(
            mentor,
            title="Cancelled",
            description="",
            schedule=now + timedelta(minutes=5),
            duration=30,
            max_participants=3,
            skills_required=["x"],
            price=Decimal(0),
        )
        await platform.bookings.book(booked, s.id)
        await platform.sessions.cancel(mentor, s.id)
        assert await platform.sessions.send_due_reminders(now) == 0
        assert await platform.sessions.send_due_reminders(now + timedelta(hours=1)) == 0
    finally:
        await platform.close()


async def test_reminder_loop_runs_in_background(make_settings: Any) -> None:
    settings = make_settings(sessions={"reminder_check_seconds": 0.05})
    platform = Platform(settings)
    await platform.db.migrate()
    await platform.start(background=True)
    try:
        mentor, booked, _ = await _users(platform)
        s = await platform.sessions.create(
            mentor,
            title="Loop",
            description="",
            schedule=datetime.now(UTC) + timedelta(minutes=3),
            duration=30,
            max_participants=3,
            skills_required=["x"],
            price=Decimal(0),
        )
        await platform.bookings.book(booked, s.id)
        for _ in range(100):
            if len(await _reminders(platform)) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(await _reminders(platform)) == 2
    finally:
        await platform.close()
