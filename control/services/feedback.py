"""Ratings of sessions by their attendees.

Rule: feedback opens once the session has started (active, then completed) and stays open;
only learners whose booking is confirmed or completed (the attendees) may rate, once each,
and (when ``[auth] require_verified_email`` is in force) only with a verified address.
A scheduled or cancelled session cannot be rated: nothing has happened yet.

What a mentor's rating counts (average, count, distribution, the reviews shown) is narrower:
only ratings by learners who actually joined the room (``bookings.joined_at`` set), so
accounts that booked and never came cannot move it.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from control.errors import Conflict, Forbidden, ValidationFailed
from control.models import Booking, Feedback, Session, User, utcnow

if TYPE_CHECKING:
    from control.platform import Platform

log = logging.getLogger(__name__)
MAX_COMMENT = 2000
OPEN_STATUSES = ("active", "completed")
ATTENDEE_BOOKING_STATUSES = ("confirmed", "completed")


def _counted(stmt: Any) -> Any:
    """Restrict a query over Feedback to ratings by learners who joined the room."""
    return stmt.join(
        Booking,
        and_(
            Booking.session_id == Feedback.session_id,
            Booking.learner_id == Feedback.user_id,
            Booking.joined_at.is_not(None),
        ),
    )


def accepts_feedback(session: Session) -> bool:
    """Whether attendees may rate this session now (pages use it to show the form)."""
    return session.status in OPEN_STATUSES


def is_attendee(booking: Booking | None) -> bool:
    """Whether this booking makes its learner an attendee, who may rate the session."""
    return booking is not None and booking.status in ATTENDEE_BOOKING_STATUSES


def may_rate(session: Session, booking: Booking | None) -> bool:
    """The whole rule ``submit`` applies (bar "once"): what the pages offer a "Rate" for."""
    return is_attendee(booking) and accepts_feedback(session)


class FeedbackService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def submit(
        self, user: User, session_id: uuid.UUID | str, *, rating: int, comment: str = ""
    ) -> Feedback:
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise ValidationFailed("invalid rating", fields={"rating": "an integer from 1 to 5"})
        if len(comment) > MAX_COMMENT:
            raise ValidationFailed(
                "comment too long", fields={"comment": f"at most {MAX_COMMENT} characters"}
            )
        self.platform.accounts.ensure_verified(user, "rate a session")
        session = await self.platform.sessions.get(session_id)
        booking = await self.platform.bookings.booking_of(user.id, session.id)
        if not is_attendee(booking):
            raise Forbidden("only attendees of this session can rate it")
        if not accepts_feedback(session):
            raise Conflict(
                f"a {session.status} session cannot be rated; feedback opens when it starts",
                code="invalid_state",
            )
        try:
            async with self.platform.db.transaction() as db:
                exists = await db.scalar(
                    select(Feedback.id).where(
                        Feedback.session_id == session.id, Feedback.user_id == user.id
                    )
                )
                if exists is not None:
                    raise Conflict("you already rated this session", code="already_rated")
                fb = Feedback(
                    session_id=session.id,
                    user_id=user.id,
                    rating=rating,
                    comment=comment.strip(),
                    created_at=utcnow(),
                )
                db.add(fb)
                await db.flush()
        except IntegrityError:  # a concurrent double submit lost the unique-constraint race
            raise Conflict("you already rated this session", code="already_rated") from None
        fb.user = user
        await self.platform.interactions.record(user.id, session.id, "rating", float(rating))
        try:
            await self.platform.notifications.notify(
                session.mentor_id,
                title="Feedback received",
                message=f"{user.display_name} rated “{session.title}” {rating}/5.",
                type="info",
                event="feedback_received",
                link=f"/sessions/{session.id}/",
            )
        except Exception:  # the rating is stored; a failed notification must not undo it
            log.exception("feedback notification failed")
        return fb

    async def for_session(self, session_id: uuid.UUID | str) -> list[Feedback]:
        session = await self.platform.sessions.get(session_id)
        async with self.platform.db.session() as db:
            rows = await db.scalars(
                select(Feedback)
                .where(Feedback.session_id == session.id)
                .order_by(Feedback.created_at.desc())
            )
            return list(rows.unique().all())

    async def for_mentor(self, mentor_id: int, limit: int = 50) -> list[Feedback]:
        async with self.platform.db.session() as db:
            rows = await db.scalars(
                _counted(select(Feedback).join(Session, Session.id == Feedback.session_id))
                .where(Session.mentor_id == mentor_id)
                .order_by(Feedback.created_at.desc())
                .limit(max(1, min(limit, 500)))
            )
            return list(rows.unique().all())

    async def mentor_rating(self, mentor_id: int) -> tuple[float | None, int]:
        async with self.platform.db.session() as db:
            avg, count = (
                await db.execute(
                    _counted(
                        select(func.avg(Feedback.rating), func.count(Feedback.id)).join(
                            Session, Session.id == Feedback.session_id
                        )
                    ).where(Session.mentor_id == mentor_id)
                )
            ).one()
        return (round(float(avg), 2) if avg is not None else None, int(count))

    async def distribution(self, mentor_id: int) -> dict[int, int]:
        dist = dict.fromkeys(range(1, 6), 0)
        async with self.platform.db.session() as db:
            for rating, n in (
                await db.execute(
                    _counted(
                        select(Feedback.rating, func.count()).join(
                            Session, Session.id == Feedback.session_id
                        )
                    )
                    .where(Session.mentor_id == mentor_id)
                    .group_by(Feedback.rating)
                )
            ).all():
                dist[int(rating)] = int(n)
        return dist

    async def has_rated(self, user_id: int, session_id: uuid.UUID) -> bool:
        async with self.platform.db.session() as db:
            return (
                await db.scalar(
                    select(Feedback.id).where(
                        Feedback.session_id == session_id, Feedback.user_id == user_id
                    )
                )
            ) is not None
