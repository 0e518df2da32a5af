"""Demo data: mentors, learners, upcoming and past sessions with bookings, chat and feedback.

``peerlearn seed-demo`` and the page screenshots use it.  It is idempotent: a second run finds
the demo mentor and changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from config.settings import Settings
from control.models import (
    Booking,
    BookingStatus,
    ChatMessage,
    Feedback,
    Interaction,
    PaymentStatus,
    Role,
    Session,
    SessionStatus,
    User,
)
from control.platform import Platform

MENTORS = [
    (
        "ada",
        "Ada",
        "Lovelace",
        ["Python", "Algorithms", "Data Science"],
        "Mathematician turned programmer; I teach algorithms with pen, paper and Python.",
        "40",
    ),
    (
        "grace",
        "Grace",
        "Hopper",
        ["Compilers", "COBOL", "Debugging"],
        "Navy rear admiral, compiler pioneer. Bring your bugs.",
        "55",
    ),
    (
        "linus",
        "Linus",
        "Torvalds",
        ["Linux", "C", "Git"],
        "Kernel hacker. Sessions on Git internals and systems programming.",
        "60",
    ),
    (
        "margaret",
        "Margaret",
        "Hamilton",
        ["Software Engineering", "Testing", "Rust"],
        "Led Apollo flight software. Reliability, testing and careful design.",
        "50",
    ),
]
LEARNERS = [
    ("alice", "Alice", "Nguyen", ["Python", "Data Science"]),
    ("bob", "Bob", "Martin", ["Git", "Linux"]),
    ("chloe", "Chloe", "Dubois", ["Rust", "Testing"]),
    ("dev", "Dev", "Patel", ["Algorithms", "Python"]),
    ("emma", "Emma", "Schmidt", ["Compilers", "C"]),
]
# (mentor, title, skills, days from now, hour UTC, duration, seats, price)
SESSIONS = [
    ("ada", "Python for data wrangling", ["Python", "Data Science"], 2, 17, 60, 8, "0"),
    ("ada", "Dynamic programming, gently", ["Algorithms", "Python"], 5, 18, 90, 6, "15"),
    ("grace", "Debugging like an admiral", ["Debugging"], 1, 16, 45, 10, "0"),
    ("grace", "How compilers think", ["Compilers"], 9, 15, 120, 5, "25"),
    ("linus", "Git internals in one hour", ["Git"], 3, 19, 60, 10, "0"),
    ("linus", "Writing your first kernel module", ["Linux", "C"], 12, 18, 120, 4, "30"),
    ("margaret", "Property-based testing", ["Testing", "Python"], 4, 14, 60, 6, "0"),
    ("margaret", "Rust ownership for the impatient", ["Rust"], 7, 17, 90, 8, "10"),
    # past sessions (completed, with attendance and ratings)
    ("ada", "Big-O without tears", ["Algorithms"], -6, 17, 60, 8, "0"),
    ("grace", "Reading stack traces", ["Debugging"], -4, 16, 45, 10, "0"),
    ("linus", "Rebase vs merge", ["Git"], -10, 19, 60, 10, "5"),
    ("margaret", "Testing legacy code", ["Testing"], -2, 14, 60, 6, "0"),
]
COMMENTS = [
    "Clear and practical, thank you!",
    "Great pace, loved the live examples.",
    "Good session; a bit fast at the end.",
    "Exactly what I needed.",
    "",
]


async def seed_demo(settings: Settings, password: str) -> str:
    """Fill the database with demo content (migrating first in development); returns a summary."""
    platform = Platform(settings)
    try:
        await platform.db.prepare(production=settings.is_production)
        await platform.start(background=False)
        existing = await platform.accounts.get_by_username("ada")
        if existing is not None:
            return "demo data already present (mentor 'ada' exists); nothing changed"
        return await _seed(platform, password)
    finally:
        await platform.close()


async def _seed(platform: Platform, password: str) -> str:
    mentors: dict[str, User] = {}
    for username, first, last, skills, bio, rate in MENTORS:
        user = await platform.accounts.register(
            username=username,
            email=f"{username}@demo.peerlearn.local",
            password=password,
            role=Role.MENTOR,
            first_name=first,
            last_name=last,
        )
        mentors[username] = await platform.accounts.update_profile(
            user, skills=skills, bio=bio, hourly_rate=Decimal(rate)
        )
    learners: list[User] = []
    for username, first, last, interests in LEARNERS:
        user = await platform.accounts.register(
            username=username,
            email=f"{username}@demo.peerlearn.local",
            password=password,
            role=Role.LEARNER,
            first_name=first,
            last_name=last,
        )
        learners.append(await platform.accounts.update_profile(user, interests=interests))
    admin = await platform.accounts.create_admin("admin", "admin@demo.peerlearn.local", password)
    for learner in learners[:3]:
        await platform.follows.follow(learner, mentors["ada"].id)

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    created = past = booked = 0
    for i, (mentor_name, title, skills, days, hour, duration, seats, price) in enumerate(SESSIONS):
        mentor = mentors[mentor_name]
        when = (now + timedelta(days=days)).replace(hour=hour)
        description = (
            f"{title}: a live small-group session with {mentor.display_name}. "
            "Bring questions; we work through examples together and share notes in the chat."
        )
        if days > 0:
            session = await platform.sessions.create(
                mentor,
                title=title,
                description=description,
                schedule=when,
                duration=duration,
                max_participants=seats,
                skills_required=skills,
                price=Decimal(price),
            )
            for learner in learners[i % 3 : i % 3 + 2]:
                booking = await platform.bookings.book(learner, session.id)
                if booking.awaits_payment and i % 2 == 0:
                    await platform.bookings.mark_paid(mentor, booking.id)
                booked += 1
            created += 1
            continue
        await _past_session(
            platform,
            mentor,
            learners,
            title,
            description,
            skills,
            when,
            duration,
            seats,
            Decimal(price),
            i,
        )
        past += 1
    return (
        f"demo data created: {len(mentors)} mentors, {len(learners)} learners, admin "
        f"'{admin.username}', {created} upcoming and {past} past sessions, {booked} upcoming "
        f"bookings; every password is the one given"
    )


async def _past_session(
    platform: Platform,
    mentor: User,
    learners: list[User],
    title: str,
    description: str,
    skills: list[str],
    when: datetime,
    duration: int,
    seats: int,
    price: Decimal,
    index: int,
) -> None:
    """A completed session written directly (the API only schedules future sessions)."""
    attendees = learners[index % 2 : index % 2 + 4]
    async with platform.db.transaction() as db:
        session = Session(
            title=title,
            description=description,
            mentor_id=mentor.id,
            schedule=when,
            duration=duration,
            max_participants=seats,
            current_participants=len(attendees),
            status=SessionStatus.COMPLETED.value,
            meeting_room_id=secrets.token_urlsafe(16),
            skills_required=skills,
            price=price,
            started_at=when,
            ended_at=when + timedelta(minutes=duration),
            reminder_sent=True,
            created_at=when - timedelta(days=7),
            updated_at=when,
        )
        db.add(session)
        await db.flush()
        for n, learner in enumerate(attendees):
            joined = n < 3  # the fourth booked but never showed up
            db.add(
                Booking(
                    learner_id=learner.id,
                    session_id=session.id,
                    status=(BookingStatus.COMPLETED if joined else BookingStatus.CONFIRMED).value,
                    payment_status=(
                        PaymentStatus.PAID if price else PaymentStatus.NOT_REQUIRED
                    ).value,
                    payment_id=f"manual-demo-{secrets.token_hex(4)}" if price else None,
                    amount=price,
                    booking_time=when - timedelta(days=3),
                    joined_at=when + timedelta(minutes=n) if joined else None,
                    left_at=when + timedelta(minutes=duration) if joined else None,
                    created_at=when - timedelta(days=3),
                    updated_at=when,
                )
            )
            db.add(
                Interaction(
                    user_id=learner.id,
                    session_id=session.id,
                    mentor_id=mentor.id,
                    kind="booking",
                    value=1.0,
                    created_at=when - timedelta(days=3),
                )
            )
            if not joined:
                continue
            db.add(
                Interaction(
                    user_id=learner.id,
                    session_id=session.id,
                    mentor_id=mentor.id,
                    kind="completion",
                    value=1.0,
                    created_at=when,
                )
            )
            rating = 5 - (index + n) % 3
            db.add(
                Feedback(
                    session_id=session.id,
                    user_id=learner.id,
                    rating=rating,
                    comment=COMMENTS[(index + n) % len(COMMENTS)],
                    created_at=when + timedelta(minutes=duration + 5),
                )
            )
            db.add(
                Interaction(
                    user_id=learner.id,
                    session_id=session.id,
                    mentor_id=mentor.id,
                    kind="rating",
                    value=float(rating),
                    created_at=when + timedelta(minutes=duration + 5),
                )
            )
            db.add(
                ChatMessage(
                    session_id=session.id,
                    user_id=learner.id,
                    text=f"Thanks {mentor.first_name}!",
                    created_at=when + timedelta(minutes=duration - 1),
                )
            )
        db.add(
            ChatMessage(
                session_id=session.id,
                user_id=mentor.id,
                text="Welcome everyone — slides are in the description.",
                created_at=when + timedelta(minutes=1),
            )
        )
