"""Implicit feedback for the recommender (views, bookings, completions, ratings) and the export."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from control.errors import ValidationFailed
from control.models import Booking, Feedback, Interaction, Session, User, utcnow

if TYPE_CHECKING:
    from control.platform import Platform

log = logging.getLogger(__name__)

KINDS = ("view", "booking", "completion", "rating")
#: booking statuses that hold a seat (``Booking.holds_seat``)
SEAT_HOLDING = ("pending", "confirmed", "completed")


def interaction_dict(row: Interaction) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "session_id": str(row.session_id),
        "mentor_id": row.mentor_id,
        "kind": row.kind,
        "value": row.value,
        "at": row.created_at.isoformat(),
    }


def session_dict(s: Session) -> dict[str, Any]:
    """A session as the recommender's snapshot format describes it."""
    return {
        "id": str(s.id),
        "mentor_id": s.mentor_id,
        "title": s.title,
        "description": s.description,
        "skills": list(s.skills_required or []),
        "schedule": s.schedule.isoformat(),
        "status": s.status,
        "max_participants": s.max_participants,
        "current_participants": s.current_participants,
        "price": float(s.price),
    }


def mentor_dict(u: User, rating: float | None, rating_count: int) -> dict[str, Any]:
    """A mentor's public profile as the recommender's snapshot format describes it."""
    return {
        "id": u.id,
        "username": u.username,
        "skills": list(u.skills or []),
        "bio": u.bio,
        "rating": rating,
        "rating_count": rating_count,
    }


class InteractionService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        # Called synchronously after commit, one dict per interaction (the recommender hooks in).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    async def record(
        self, user_id: int, session_id: uuid.UUID | str, kind: str, value: float | None = None
    ) -> dict[str, Any] | None:
        """Store one interaction; None when the session does not exist."""
        if kind not in KINDS:
            raise ValidationFailed(f"unknown interaction kind {kind!r}")
        sid = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(str(session_id))
        async with self.platform.db.transaction() as db:
            mentor_id = await db.scalar(select(Session.mentor_id).where(Session.id == sid))
            if mentor_id is None:
                return None
            row = Interaction(
                user_id=user_id,
                session_id=sid,
                mentor_id=mentor_id,
                kind=kind,
                value=value,
                created_at=utcnow(),
            )
            db.add(row)
        data = interaction_dict(row)
        for listener in list(self.listeners):
            try:
                listener(data)
            except Exception:  # a broken listener must not break booking or rating
                log.exception("interaction listener failed")
        return data

    async def export(self) -> dict[str, list[Any]]:
        """Everything the recommender fits on, as plain dicts."""
        async with self.platform.db.session() as db:
            users = (await db.scalars(select(User).where(User.is_active.is_(True)))).all()
            sessions = (await db.scalars(select(Session))).unique().all()
            ratings = {
                mentor_id: (float(avg), int(n))
                for mentor_id, avg, n in (
                    await db.execute(
                        select(Session.mentor_id, func.avg(Feedback.rating), func.count())
                        .join(Session, Session.id == Feedback.session_id)
                        .group_by(Session.mentor_id)
                    )
                ).all()
            }
            interactions = (
                await db.scalars(select(Interaction).order_by(Interaction.created_at))
            ).all()
            seats = (
                await db.execute(
                    select(Booking.learner_id, Booking.session_id).where(
                        Booking.status.in_(SEAT_HOLDING)
                    )
                )
            ).all()
        return {
            "users": [
                {
                    "id": u.id,
                    "role": u.role,
                    "skills": list(u.skills or []),
                    "interests": list(u.interests or []),
                }
                for u in users
            ],
            "sessions": [session_dict(s) for s in sessions],
            "mentors": [
                mentor_dict(u, *ratings.get(u.id, (None, 0))) for u in users if u.role == "mentor"
            ],
            "interactions": [interaction_dict(i) for i in interactions],
            # Who holds a seat now: a cancelled booking's event no longer means "booked".
            "seats": [[learner_id, str(session_id)] for learner_id, session_id in seats],
        }
