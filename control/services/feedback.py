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

import uuid
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from control import notices
from control.db import Database
from control.errors import Conflict, Forbidden, ValidationFailed
from control.ids import parse_session_id
from control.limits import COMMENT_MAX, RATING_MAX, RATING_MIN
from control.models import Booking, Feedback, Session, User, utcnow
from control.notices import NoticeSender
from control.services.accounts import AccountService
from control.services.bookings import BookingService
from control.services.interactions import InteractionService
from control.services.sessions import SessionService


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


class FeedbackService:
    def __init__(
        self,
        db: Database,
        *,
        accounts: AccountService,
        sessions: SessionService,
        bookings: BookingService,
        interactions: InteractionService,
        notices: NoticeSender,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.sessions = sessions
        self.bookings = bookings
        self.interactions = interactions
        self.notices = notices

    async def submit(
        self, user: User, session_id: uuid.UUID | str, *, rating: int, comment: str = ""
    ) -> Feedback:
        if (
            isinstance(rating, bool)
            or not isinstance(rating, int)
            or not RATING_MIN <= rating <= RATING_MAX
        ):
            raise ValidationFailed(
                "invalid rating",
                fields={"rating": f"an integer from {RATING_MIN} to {RATING_MAX}"},
            )
        if len(comment) > COMMENT_MAX:
            raise ValidationFailed(
                "comment too long", fields={"comment": f"at most {COMMENT_MAX} characters"}
            )
        self.accounts.ensure_verified(user, "rate a session")
        session = await self.sessions.get(session_id)
        booking = await self.bookings.booking_of(user.id, session.id)
        if booking is None or not booking.is_attendee:
            raise Forbidden("only attendees of this session can rate it")
        if not session.accepts_feedback:
            raise Conflict(
                f"a {session.status} session cannot be rated; feedback opens when it starts",
                code="invalid_state",
            )
        try:
            async with self.db.transaction() as db:
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
        await self.interactions.record(user.id, session.id, "rating", float(rating))
        await self.notices.send(
            [session.mentor_id], notices.feedback_received(session, user, rating)
        )
        return fb

    async def for_session(
        self, session_id: uuid.UUID | str, *, known: bool = False
    ) -> list[Feedback]:
        """Newest first; NotFound for no such session, unless the caller ``known`` it exists
        (it just read the session: no second read)."""
        sid = parse_session_id(session_id) if known else (await self.sessions.get(session_id)).id
        async with self.db.session() as db:
            rows = await db.scalars(
                select(Feedback)
                .where(Feedback.session_id == sid)
                .order_by(Feedback.created_at.desc())
            )
            return list(rows.unique().all())

    async def for_mentor(self, mentor_id: int, limit: int = 50) -> list[Feedback]:
        async with self.db.session() as db:
            rows = await db.scalars(
                _counted(select(Feedback).join(Session, Session.id == Feedback.session_id))
                .where(Session.mentor_id == mentor_id)
                .order_by(Feedback.created_at.desc())
                .limit(max(1, min(limit, 500)))
            )
            return list(rows.unique().all())

    async def mentor_rating(self, mentor_id: int) -> tuple[float | None, int]:
        async with self.db.session() as db:
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
        async with self.db.session() as db:
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
        async with self.db.session() as db:
            return (
                await db.scalar(
                    select(Feedback.id).where(
                        Feedback.session_id == session_id, Feedback.user_id == user_id
                    )
                )
            ) is not None
