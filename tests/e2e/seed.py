"""Seed a small, realistic world through the services (used with ``live_server.call``).

Everything goes through the services, as the product would; only the dates of past sessions
are moved back afterwards (the services schedule sessions in the future only), so the charts
have weeks of history to draw.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from control.models import Booking, Session
from control.platform import Platform
from tests.e2e.harness import PASSWORD, TestUser

#: (title, weeks ago, learners who attend of lin/sam/kim, ratings given by them, price)
PAST = [
    ("Python basics", 0, ("lin", "sam"), (5, 4), 0),
    ("Recursion workshop", 1, ("lin", "sam", "kim"), (5, 5, 3), 0),
    ("Sorting, hands on", 3, ("sam", "kim"), (4, 2), 20),
    ("Graphs for beginners", 5, ("lin",), (4,), 0),
]
#: Upcoming sessions of a third mentor, enough to need a second page of results.
EXTRA_TOPICS = [
    ("SQL joins", "SQL"),
    ("Unit testing", "Testing"),
    ("Docker", "DevOps"),
    ("Window functions", "SQL"),
    ("Mocking", "Testing"),
    ("CI pipelines", "DevOps"),
    ("Indexes", "SQL"),
    ("Property-based tests", "Testing"),
    ("Kubernetes", "DevOps"),
    ("Query plans", "SQL"),
    ("Test fixtures", "Testing"),
    ("Shell scripting", "DevOps"),
    ("Transactions", "SQL"),
    ("Flaky tests", "Testing"),
]


async def backdate(platform: Platform, session_id: uuid.UUID, shift: timedelta) -> None:
    """Move a finished session and its bookings ``shift`` into the past."""
    async with platform.db.transaction() as db:
        s = await db.get(Session, session_id)
        assert s is not None and s.started_at and s.ended_at
        s.schedule, s.started_at, s.ended_at = (
            s.schedule - shift,
            s.started_at - shift,
            s.ended_at - shift,
        )
        bookings = await db.scalars(select(Booking).where(Booking.session_id == session_id))
        for b in bookings.unique():
            b.booking_time -= shift
            if b.joined_at:
                b.joined_at -= shift


async def seed_world(platform: Platform) -> dict[str, Any]:
    """Mentors, learners, an admin; completed (rated), live, scheduled and paid sessions."""
    tag = uuid.uuid4().hex[:6]
    acc = platform.accounts
    now = datetime.now(UTC)

    async def user(role: str, name: str, first: str, last: str, **profile: Any) -> Any:
        u = await acc.register(
            username=f"{name}_{tag}",
            email=f"{name}_{tag}@example.org",
            password=PASSWORD,
            role=role,
            first_name=first,
            last_name=last,
        )
        return await acc.update_profile(u, **profile) if profile else u

    ada = await user(
        "mentor",
        "ada",
        "Ada",
        "Lovelace",
        skills=["Python", "Algorithms"],
        bio="I teach programming from first principles.",
        hourly_rate="45",
    )
    alan = await user(
        "mentor",
        "alan",
        "Alan",
        "Turing",
        skills=["Math", "Cryptography"],
        bio="Puzzles, proofs and codes.",
    )
    joan = await user(
        "mentor",
        "joan",
        "Joan",
        "Clarke",
        skills=["SQL", "Testing", "DevOps"],
        bio="Practical tooling sessions.",
    )
    lin = await user("learner", "lin", "Lin", "Chen", interests=["Python", "Data"])
    sam = await user("learner", "sam", "Sam", "Okafor", interests=["Math"])
    kim = await user("learner", "kim", "Kim", "Berg", interests=["Python"])
    admin = await acc.create_admin(f"admin_{tag}", f"admin_{tag}@example.org", PASSWORD)
    learners = {"lin": lin, "sam": sam, "kim": kim}

    async def session(
        mentor: Any,
        title: str,
        minutes: int,
        price: int = 0,
        skills: list[str] | None = None,
        seats: int = 6,
    ) -> Any:
        return await platform.sessions.create(
            mentor,
            title=title,
            description=f"{title}: a live group session.\n\nBring questions.",
            schedule=now + timedelta(minutes=minutes),
            duration=60,
            max_participants=seats,
            skills_required=skills or list(mentor.skills[:1]),
            price=price,
        )

    # Completed sessions, attended and rated, spread over the last weeks.
    done_ids = []
    #: (session date, amount) of every paid seat: the earnings page groups them by month,
    #: so tests compute what to expect from these instead of assuming one calendar month.
    earned: list[tuple[datetime, int]] = []
    for title, weeks_ago, names, ratings, price in PAST:
        s = await session(ada, title, 10, price=price)
        for name in names:
            booking = await platform.bookings.book(learners[name], s.id)
            if price:
                await platform.bookings.mark_paid(ada, booking.id)
        await platform.sessions.start(ada, s.id)
        for name in names:
            await platform.bookings.record_join(s.id, learners[name].id)
        await platform.sessions.end(ada, s.id)
        for name, rating in zip(names, ratings, strict=True):
            await platform.feedback.submit(
                learners[name],
                s.id,
                rating=rating,
                comment=f"{title}: {'great' if rating > 3 else 'ok'}.",
            )
        done_ids.append(s.id)
        if weeks_ago:
            await backdate(platform, s.id, timedelta(weeks=weeks_ago))
        if price:
            earned.append((s.schedule - timedelta(weeks=weeks_ago), price * len(names)))

    # Live now: Sam and Lin are booked, so both see "Join room".
    live = await session(alan, "Number theory live", 5, skills=["Math"])
    await platform.bookings.book(sam, live.id)
    await platform.bookings.book(lin, live.id)
    await platform.sessions.start(alan, live.id)

    # Scheduled: free, paid (one paid, one pending), and later ones.
    free = await session(ada, "Algorithms workshop", 60 * 24, skills=["Algorithms", "Python"])
    await platform.bookings.book(lin, free.id)
    paid = await session(ada, "Python code review clinic", 60 * 48, price=25)
    paid_booking = await platform.bookings.book(kim, paid.id)
    await platform.bookings.mark_paid(ada, paid_booking.id)
    earned.append((paid.schedule, 25))
    await platform.bookings.book(lin, paid.id)  # left pending: shows under Requests
    await session(alan, "Cryptography for beginners", 60 * 72, price=10, skills=["Cryptography"])
    deep = await session(ada, "Data structures deep dive", 60 * 96, skills=["Python", "Algorithms"])
    for day, (topic, skill) in enumerate(EXTRA_TOPICS, start=5):
        await session(joan, topic, 60 * 24 * day, price=(day % 3) * 5, skills=[skill])

    await platform.follows.follow(lin, ada.id)
    await platform.follows.follow(sam, alan.id)
    await platform.follows.follow(kim, ada.id)

    users = {
        "ada": ada,
        "alan": alan,
        "joan": joan,
        "lin": lin,
        "sam": sam,
        "kim": kim,
        "admin": admin,
    }
    tokens = {name: (await platform.accounts.logins.start(u))[1] for name, u in users.items()}
    return {
        "tag": tag,
        "users": users,
        "tokens": tokens,
        "earned": earned,
        "sessions": {
            "done": done_ids[0],
            "live": live.id,
            "free": free.id,
            "paid": paid.id,
            "deep": deep.id,
            "past": done_ids,
        },
    }


def as_user(world: dict[str, Any], name: str) -> TestUser:
    """The seeded account ``name`` as the e2e harness's ``TestUser`` (already signed in)."""
    u = world["users"][name]
    return TestUser(u.id, u.username, u.email, PASSWORD, u.role, world["tokens"][name])
