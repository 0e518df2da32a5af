"""Implicit feedback for the recommender (views, bookings, completions, ratings) and the export."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select

from control.db import Database
from control.errors import ValidationFailed
from control.events import INTERACTIONS_CHANNEL, ORIGIN, EventBus
from control.ids import parse_session_id
from control.models import (
    INTERACTION_KINDS,
    SEAT_HOLDING_STATUSES,
    Booking,
    Feedback,
    Interaction,
    Session,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

#: The export hands a refit at most this many interactions, the newest. Popularity halves
#: every week (``half_life_days``), so older events barely count there, while every extra
#: event costs the refit memory and time (about a second of fit per 200,000, read on the
#: event loop). A user whose only events are older keeps their declared profile.
EXPORT_MAX_INTERACTIONS = 500_000


def interaction_dict(
    row: Interaction | Row[int, uuid.UUID, int, str, float | None, datetime],
) -> dict[str, Any]:
    """An interaction (an ORM row, or a row of the same columns) as the listeners and the
    recommender's snapshot format describe it."""
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
        "created_at": s.created_at.isoformat(),
    }


def mentor_dict(u: User, rating: float | None, rating_count: int) -> dict[str, Any]:
    """A mentor's public profile as the recommender's snapshot format describes it."""
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "skills": list(u.skills or []),
        "bio": u.bio,
        "rating": rating,
        "rating_count": rating_count,
    }


INTERACTION_COLUMNS = (
    Interaction.user_id,
    Interaction.session_id,
    Interaction.mentor_id,
    Interaction.kind,
    Interaction.value,
    Interaction.created_at,
)


class InteractionService:
    def __init__(self, db: Database, bus: EventBus | None = None) -> None:
        self.db = db
        self.bus = bus
        # Called synchronously after commit, one dict per interaction (the recommender hooks in).
        # The other nodes hear it on ``INTERACTIONS_CHANNEL`` (with ``origin``: this bus's node).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    async def record(
        self, user_id: int, session_id: uuid.UUID | str, kind: str, value: float | None = None
    ) -> dict[str, Any] | None:
        """Store one interaction; None when the session does not exist."""
        if kind not in INTERACTION_KINDS:
            raise ValidationFailed(f"unknown interaction kind {kind!r}")
        sid = parse_session_id(session_id)
        async with self.db.transaction() as db:
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
        if self.bus is not None:
            try:
                await self.bus.publish(INTERACTIONS_CHANNEL, {**data, ORIGIN: self.bus.node})
            except Exception:  # the interaction stands; other nodes catch up at their refit
                log.exception("could not publish an interaction to the other nodes")
        return data

    async def export(self, max_interactions: int = EXPORT_MAX_INTERACTIONS) -> dict[str, list[Any]]:
        """Everything the recommender fits on, as plain dicts: active users, every session
        (with ``created_at``, which the offline evaluation's temporal split uses), mentors
        with their ratings, the newest ``max_interactions`` interactions (oldest first) and
        who holds a seat now."""
        async with self.db.session() as db:
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
            # Plain rows, not ORM objects: hundreds of thousands are read on the event loop.
            newest_first = (
                await db.execute(
                    select(*INTERACTION_COLUMNS)
                    .order_by(Interaction.created_at.desc(), Interaction.id.desc())
                    .limit(max(0, max_interactions))
                )
            ).all()
            seats = (
                await db.execute(
                    select(Booking.learner_id, Booking.session_id).where(
                        Booking.status.in_(SEAT_HOLDING_STATUSES)
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
                mentor_dict(u, *ratings.get(u.id, (None, 0))) for u in users if u.is_mentor
            ],
            "interactions": [interaction_dict(i) for i in reversed(newest_first)],
            # Who holds a seat now: a cancelled booking's event no longer means "booked".
            "seats": [[learner_id, str(session_id)] for learner_id, session_id in seats],
        }
