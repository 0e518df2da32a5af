"""Seed a small, realistic world through the services (used with ``live_server.call``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from control.platform import Platform

PASSWORD = "correct-horse-42"


async def seed_world(platform: Platform) -> dict[str, Any]:
    """Mentors, learners, an admin; completed (rated), live, scheduled and paid sessions."""
    tag = uuid.uuid4().hex[:6]
    acc = platform.accounts
    now = datetime.now(UTC)

    async def user(role: str, name: str, first: str, last: str, **profile: Any) -> Any:
        u = await acc.register(username=f"{name}_{tag}", email=f"{name}_{tag}@example.org",
                               password=PASSWORD, role=role, first_name=first, last_name=last)
        return await acc.update_profile(u, **profile) if profile else u

    ada = await user("mentor", "ada", "Ada", "Lovelace", skills=["Python", "Algorithms"],
                     bio="I teach programming from first principles.", hourly_rate="45")
    alan = await user("mentor", "alan", "Alan", "Turing", skills=["Math", "Cryptography"],
                      bio="Puzzles, proofs and codes.")
    lin = await user("learner", "lin", "Lin", "Chen", interests=["Python", "Data"])
    sam = await user("learner", "sam", "Sam", "Okafor", interests=["Math"])
    kim = await user("learner", "kim", "Kim", "Berg", interests=["Python"])
    admin = await acc.create_admin(f"admin_{tag}", f"admin_{tag}@example.org", PASSWORD)

    async def session(mentor: Any, title: str, minutes: int, price: int = 0,
                      skills: list[str] | None = None, seats: int = 6) -> Any:
        return await platform.sessions.create(
            mentor, title=title, description=f"{title}: a live group session.\n\nBring questions.",
            schedule=now + timedelta(minutes=minutes), duration=60, max_participants=seats,
            skills_required=skills or list(mentor.skills[:1]), price=price,
        )

    # Completed and rated, attended by two learners.
    done = await session(ada, "Python basics", 10)
    for learner in (lin, sam):
        await platform.bookings.book(learner, done.id)
    await platform.sessions.start(ada, done.id)
    for learner in (lin, sam):
        await platform.bookings.record_join(done.id, learner.id)
    await platform.sessions.end(ada, done.id)
    await platform.feedback.submit(lin, done.id, rating=5, comment="Clear and friendly.")
    await platform.feedback.submit(sam, done.id, rating=4, comment="Good pace.")

    # Live now.
    live = await session(alan, "Number theory live", 5, skills=["Math"])
    await platform.bookings.book(sam, live.id)
    await platform.sessions.start(alan, live.id)

    # Scheduled: free, paid (one paid, one pending), and later ones.
    free = await session(ada, "Algorithms workshop", 60 * 24, skills=["Algorithms", "Python"])
    await platform.bookings.book(lin, free.id)
    paid = await session(ada, "Python code review clinic", 60 * 48, price=25)
    paid_booking = await platform.bookings.book(kim, paid.id)
    await platform.bookings.mark_paid(ada, paid_booking.id)
    await platform.bookings.book(lin, paid.id)  # left pending: shows under Requests
    await session(alan, "Cryptography for beginners", 60 * 72, price=10, skills=["Cryptography"])
    await session(ada, "Data structures deep dive", 60 * 96, skills=["Python", "Algorithms"])

    await platform.follows.follow(lin, ada.id)
    await platform.follows.follow(sam, alan.id)
    await platform.follows.follow(kim, ada.id)

    tokens = {name: platform.tokens.issue(u.id, u.role) for name, u in
              (("ada", ada), ("alan", alan), ("lin", lin), ("sam", sam), ("kim", kim),
               ("admin", admin))}
    return {
        "users": {"ada": ada, "alan": alan, "lin": lin, "sam": sam, "kim": kim, "admin": admin},
        "tokens": tokens,
        "sessions": {"done": done.id, "live": live.id, "free": free.id, "paid": paid.id},
    }
