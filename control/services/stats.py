"""Dashboard figures per role.  Aggregation is done in Python over one user's rows (small) and
with GROUP BY for the admin totals, so it is identical on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from control.db import Database
from control.models import (
    ATTENDEE_STATUSES,
    Booking,
    BookingStatus,
    Feedback,
    Interaction,
    PaymentStatus,
    Role,
    Session,
    SessionStatus,
    User,
    utcnow,
)
from control.services.bookings import BookingService
from control.services.feedback import FeedbackService
from control.services.sessions import SessionService

#: the order of ``users_by_role`` in the admin overview
ROLE_ORDER = (Role.LEARNER, Role.MENTOR, Role.ADMIN)


def _session_summary(s: Session) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "title": s.title,
        "schedule": s.schedule.isoformat(),
        "status": s.status,
        "duration": s.duration,
    }


class StatsService:
    def __init__(
        self,
        db: Database,
        *,
        currency: str,
        bookings: BookingService,
        feedback: FeedbackService,
        sessions: SessionService,
    ) -> None:
        self.db = db
        #: ``[payments] currency``, which the money figures are in
        self.currency = currency
        self.bookings = bookings
        self.feedback = feedback
        self.sessions = sessions

    async def learner_overview(
        self, user: User, *, bookings: list[Booking] | None = None
    ) -> dict[str, Any]:
        """``bookings``: the learner's, when the caller has read them already."""
        now = utcnow()
        if bookings is None:
            bookings = await self.bookings.for_learner(user.id)
        upcoming = [b for b in bookings if b.is_upcoming(now)]
        completed = [
            b
            for b in bookings
            if b.status == BookingStatus.COMPLETED
            or (b.status == BookingStatus.CONFIRMED and b.session.status == SessionStatus.COMPLETED)
        ]
        # Hours learned counts sessions actually attended (joined the room).
        minutes = sum(b.session.duration for b in completed if b.joined_at is not None)
        async with self.db.session() as db:
            recent = (
                await db.execute(
                    select(Interaction, Session.title)
                    .join(Session, Session.id == Interaction.session_id)
                    .where(Interaction.user_id == user.id, Interaction.kind != "view")
                    .order_by(Interaction.created_at.desc())
                    .limit(10)
                )
            ).all()
        return {
            "bookings_upcoming": len(upcoming),
            "bookings_completed": len(completed),
            "bookings_total": len([b for b in bookings if b.status != BookingStatus.CANCELLED]),
            "hours_learned": round(minutes / 60, 2),
            "next_sessions": [_session_summary(b.session) for b in upcoming[:5]],
            "recent_activity": [
                {
                    "kind": i.kind,
                    "session_id": str(i.session_id),
                    "title": title,
                    "value": i.value,
                    "at": i.created_at.isoformat(),
                }
                for i, title in recent
            ],
        }

    async def mentor_overview(self, user: User) -> dict[str, Any]:
        sessions = await self.sessions.for_mentor(user.id)
        ids = [s.id for s in sessions]
        bookings: list[Booking] = []
        if ids:
            async with self.db.session() as db:
                bookings = list(
                    (await db.scalars(select(Booking).where(Booking.session_id.in_(ids))))
                    .unique()
                    .all()
                )
        by_session: dict[Any, list[Booking]] = defaultdict(list)
        for b in bookings:
            by_session[b.session_id].append(b)
        per_session = []
        per_month: dict[str, Decimal] = defaultdict(Decimal)
        total = Decimal(0)
        for s in sessions:
            earned = [b for b in by_session[s.id] if b.is_earned]
            amount = (
                sum((b.amount or s.price for b in earned), Decimal(0)) if s.price else Decimal(0)
            )
            total += amount
            per_month[f"{s.schedule:%Y-%m}"] += amount
            per_session.append(
                {**_session_summary(s), "bookings": len(earned), "amount": float(amount)}
            )
        attendance = [
            {
                **_session_summary(s),
                "booked": len([b for b in by_session[s.id] if b.is_attendee]),
                "joined": len([b for b in by_session[s.id] if b.joined_at is not None]),
            }
            for s in sessions
            if s.status == SessionStatus.COMPLETED
        ]
        status_counts = Counter(s.status for s in sessions)
        avg, count = await self.feedback.mentor_rating(user.id)
        dist = await self.feedback.distribution(user.id)
        return {
            "currency": self.currency,
            "earnings_total": float(total),
            "earnings_per_session": per_session,
            "earnings_per_month": [
                {"month": m, "amount": float(a)} for m, a in sorted(per_month.items())
            ],
            "sessions_by_status": {k.value: status_counts.get(k, 0) for k in SessionStatus},
            "rating_average": avg,
            "rating_count": count,
            "rating_distribution": {str(k): v for k, v in dist.items()},
            "attendance": attendance,
            "pending_payments": len([b for b in bookings if b.status == BookingStatus.PENDING]),
        }

    async def admin_overview(self) -> dict[str, Any]:
        async with self.db.session() as db:
            users = dict(
                (await db.execute(select(User.role, func.count()).group_by(User.role))).all()
            )
            sessions = dict(
                (
                    await db.execute(select(Session.status, func.count()).group_by(Session.status))
                ).all()
            )
            bookings = dict(
                (
                    await db.execute(select(Booking.status, func.count()).group_by(Booking.status))
                ).all()
            )
            revenue = await db.scalar(
                select(func.coalesce(func.sum(Booking.amount), 0)).where(
                    Booking.payment_status == PaymentStatus.PAID
                )
            )
            top = (
                await db.execute(
                    select(User.id, User.username, func.count(Booking.id).label("n"))
                    .join(Session, Session.mentor_id == User.id)
                    .join(Booking, Booking.session_id == Session.id)
                    .where(Booking.status.in_(ATTENDEE_STATUSES))
                    .group_by(User.id, User.username)
                    .order_by(func.count(Booking.id).desc(), User.id)
                    .limit(5)
                )
            ).all()
            ratings: dict[int, Any] = dict(
                (
                    await db.execute(
                        select(Session.mentor_id, func.avg(Feedback.rating))
                        .join(Feedback, Feedback.session_id == Session.id)
                        .group_by(Session.mentor_id)
                    )
                ).all()
            )
        return {
            "currency": self.currency,
            "users_by_role": {k.value: int(users.get(k, 0)) for k in ROLE_ORDER},
            "sessions_by_status": {k.value: int(sessions.get(k, 0)) for k in SessionStatus},
            "bookings_by_status": {k.value: int(bookings.get(k, 0)) for k in BookingStatus},
            "revenue": float(revenue or 0),
            "top_mentors": [
                {
                    "id": uid,
                    "username": name,
                    "bookings": int(n),
                    "rating": round(float(ratings[uid]), 2)
                    if ratings.get(uid) is not None
                    else None,
                }
                for uid, name, n in top
            ],
        }

    async def mentor_pending_amount(self, mentor_id: int) -> Decimal:
        """Money held in seats whose payment the mentor has not confirmed yet."""
        async with self.db.session() as db:
            total = await db.scalar(
                select(func.coalesce(func.sum(Booking.amount), 0))
                .join(Session, Session.id == Booking.session_id)
                .where(
                    Session.mentor_id == mentor_id,
                    Booking.payment_status == PaymentStatus.PENDING,
                    Booking.status == BookingStatus.PENDING,
                )
            )
        return Decimal(total or 0)

    async def weekly_activity(self, weeks: int = 8) -> dict[str, list[Any]]:
        """New accounts and new bookings per week (weeks start on Monday, oldest first).

        Bucketing is done in Python over the timestamps of the period so it is the same on
        SQLite and PostgreSQL (their date functions differ).
        """
        today = utcnow().date()
        start = today - timedelta(days=today.weekday(), weeks=weeks - 1)
        since = datetime.combine(start, time.min, tzinfo=UTC)
        async with self.db.session() as db:
            joined = await db.scalars(select(User.date_joined).where(User.date_joined >= since))
            booked = await db.scalars(
                select(Booking.booking_time).where(Booking.booking_time >= since)
            )
            joined_times, booked_times = list(joined.all()), list(booked.all())

        def per_week(times: list[datetime]) -> list[int]:
            counts = [0] * weeks
            for t in times:
                index = (t.date() - start).days // 7
                if 0 <= index < weeks:
                    counts[index] += 1
            return counts

        return {
            "weeks": [(start + timedelta(weeks=i)).isoformat() for i in range(weeks)],
            "signups": per_week(joined_times),
            "bookings": per_week(booked_times),
        }
