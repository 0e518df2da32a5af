"""Sessions: creation, search, the lifecycle state machine and "starting soon" reminders.

State machine: scheduled → active → completed, or scheduled → cancelled.  Every transition is
one conditional UPDATE (``WHERE status = <expected>``), so two nodes or two clicks can never
both win; the loser gets 409 ``invalid_state``.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from sqlalchemy import String, cast, func, or_, select, update

from config.settings import SessionSettings
from control import notices
from control.db import Database, rows_changed
from control.errors import Conflict, Forbidden, NotFound, ValidationFailed
from control.events import EventBus, announce, session_channel
from control.ids import parse_session_id
from control.jobs import run_every
from control.limits import (
    DESCRIPTION_MAX,
    MAX_PRICE,
    MAX_SCHEDULE_AHEAD,
    SKILL_MAX_CHARS,
    SKILLS_MAX,
    TITLE_MAX,
    TITLE_MIN,
)
from control.models import (
    ATTENDEE_STATUSES,
    SEAT_STATUSES,
    Booking,
    BookingStatus,
    PaymentStatus,
    Session,
    SessionStatus,
    User,
    utcnow,
)
from control.notices import NoticeSender
from control.services.common import Page, page_bounds
from control.services.follows import FollowService
from control.services.interactions import InteractionService

__all__ = ["SessionFilters", "SessionService", "clean_skills"]

log = logging.getLogger(__name__)

#: how often the background job looks for live sessions nobody ended
AUTO_END_CHECK_SECONDS = 60.0


@dataclass(frozen=True)
class SessionFilters:
    """Search filters of ``GET /api/sessions/`` (all optional)."""

    skill: str | None = None
    q: str | None = None
    mentor: str | None = None  # a user id or a username
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    free_only: bool = False
    include_cancelled: bool = False


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def clean_skills(skills: Iterable[str]) -> list[str]:
    """1–``SKILLS_MAX`` unique (case-insensitively) trimmed skills of at most
    ``SKILL_MAX_CHARS`` characters."""
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in skills:
        skill = str(raw).strip()
        if not skill or len(skill) > SKILL_MAX_CHARS:
            raise ValidationFailed(
                "invalid skills",
                fields={"skills_required": f"each skill needs 1–{SKILL_MAX_CHARS} characters"},
            )
        if skill.lower() in seen:
            raise ValidationFailed(
                "invalid skills", fields={"skills_required": f"duplicate skill {skill!r}"}
            )
        seen.add(skill.lower())
        cleaned.append(skill)
    if not 1 <= len(cleaned) <= SKILLS_MAX:
        raise ValidationFailed(
            "invalid skills", fields={"skills_required": f"give 1–{SKILLS_MAX} skills"}
        )
    return cleaned


class SessionService:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        settings: SessionSettings,
        *,
        follows: FollowService,
        interactions: InteractionService,
        notices: NoticeSender,
    ) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.follows = follows
        self.interactions = interactions
        self.notices = notices

    async def _lifecycle(self, session_id: uuid.UUID, event: str) -> None:
        """Tell the session's room (its ``session_channel``) and the catalogue's followers."""
        await self.bus.publish(session_channel(session_id), {"type": event})
        await announce(self.bus, event, session_id)

    # ------------------------------------------------------------------ create / read

    async def create(
        self,
        mentor: User,
        *,
        title: str,
        description: str,
        schedule: datetime,
        duration: int,
        max_participants: int,
        skills_required: list[str],
        price: Decimal | float | int | str,
    ) -> Session:
        if not mentor.is_mentor:
            raise Forbidden("only mentors can create sessions")
        cfg = self.settings
        fields: dict[str, str] = {}
        title = (title or "").strip()
        if not TITLE_MIN <= len(title) <= TITLE_MAX:
            fields["title"] = f"{TITLE_MIN}–{TITLE_MAX} characters"
        description = (description or "").strip()
        if len(description) > DESCRIPTION_MAX:
            fields["description"] = f"at most {DESCRIPTION_MAX} characters"
        now = utcnow()
        if schedule.tzinfo is None:
            fields["schedule"] = "give a timezone (e.g. 2030-01-31T18:00:00Z)"
        elif schedule <= now:
            fields["schedule"] = "must be in the future"
        elif schedule > now + MAX_SCHEDULE_AHEAD:
            fields["schedule"] = "at most two years ahead"
        if not cfg.min_duration_minutes <= duration <= cfg.max_duration_minutes:
            fields["duration"] = f"{cfg.min_duration_minutes}–{cfg.max_duration_minutes} minutes"
        if not 1 <= max_participants <= cfg.max_participants:
            fields["max_participants"] = f"1–{cfg.max_participants}"
        try:
            amount = Decimal(str(price))
            if not amount.is_finite() or amount < 0 or amount > MAX_PRICE:
                raise InvalidOperation
            if amount != amount.quantize(Decimal("0.01")):
                fields["price"] = "at most two decimals"
        except (InvalidOperation, ValueError):
            fields["price"] = f"a number from 0 to {MAX_PRICE}"
            amount = Decimal(0)
        try:
            skills = clean_skills(skills_required)
        except ValidationFailed as exc:
            fields.update(exc.fields)
            skills = []
        if fields:
            raise ValidationFailed("invalid session", fields=fields)
        async with self.db.transaction() as db:
            session = Session(
                title=title,
                description=description,
                mentor_id=mentor.id,
                schedule=schedule.astimezone(UTC),
                duration=duration,
                max_participants=max_participants,
                current_participants=0,
                status=SessionStatus.SCHEDULED.value,
                meeting_room_id=secrets.token_urlsafe(16),
                skills_required=skills,
                price=amount.quantize(Decimal("0.01")),
                created_at=now,
                updated_at=now,
            )
            db.add(session)
        session.mentor = mentor
        await announce(self.bus, "session_created", session.id)
        await self._notify_followers(mentor, session)
        return session

    async def _notify_followers(self, mentor: User, session: Session) -> None:
        try:
            followers = await self.follows.followers(mentor.id)
        except Exception:
            log.exception("could not load followers of mentor %s", mentor.id)
            return
        await self.notices.send_in_zones(
            [f.id for f in followers],
            session.schedule,
            partial(notices.followed_mentor_scheduled, mentor, session),
        )

    async def get(self, session_id: uuid.UUID | str) -> Session:
        sid = parse_session_id(session_id)
        async with self.db.session() as db:
            session = await db.get(Session, sid)
        if session is None:
            raise NotFound("no such session")
        return session

    async def get_many(self, session_ids: Iterable[uuid.UUID | str]) -> list[Session]:
        """The sessions among ``session_ids``, in the order asked, in one query (e.g. the
        rows behind a recommendation answer); unknown or malformed ids are left out."""
        wanted: dict[uuid.UUID, None] = {}
        for value in session_ids:
            try:
                wanted[parse_session_id(value)] = None
            except NotFound:
                continue
        if not wanted:
            return []
        async with self.db.session() as db:
            rows = await db.scalars(select(Session).where(Session.id.in_(list(wanted))))
            found = {s.id: s for s in rows.unique().all()}
        return [found[sid] for sid in wanted if sid in found]

    async def search(
        self, filters: SessionFilters, *, page: int = 1, per_page: int = 20
    ) -> Page[Session]:
        offset, limit = page_bounds(page, per_page)
        conditions: list[Any] = []
        f = filters
        if f.skill and f.skill.strip():
            # JSON arrays are stored as text on both backends; match the quoted element.
            needle = json.dumps(f.skill.strip())[1:-1]
            conditions.append(
                cast(Session.skills_required, String).ilike(
                    f'%"{_like_escape(needle)}"%', escape="\\"
                )
            )
        if f.q and f.q.strip():
            pattern = f"%{_like_escape(f.q.strip())}%"
            conditions.append(
                or_(
                    Session.title.ilike(pattern, escape="\\"),
                    Session.description.ilike(pattern, escape="\\"),
                )
            )
        if f.mentor and f.mentor.strip():
            mentor = f.mentor.strip()
            if mentor.isdigit() and len(mentor) < 18:
                conditions.append(Session.mentor_id == int(mentor))
            else:
                conditions.append(
                    Session.mentor_id.in_(select(User.id).where(User.username == mentor))
                )
        if f.status:
            conditions.append(Session.status == f.status)
        elif not f.include_cancelled:
            conditions.append(Session.status != SessionStatus.CANCELLED)
        if f.date_from:
            conditions.append(Session.schedule >= f.date_from)
        if f.date_to:
            conditions.append(Session.schedule <= f.date_to)
        if f.free_only:
            conditions.append(Session.price == 0)
        if f.price_min is not None:
            conditions.append(Session.price >= f.price_min)
        if f.price_max is not None:
            conditions.append(Session.price <= f.price_max)
        # One statement: the page and, on each of its rows, the count of every match (an
        # uncorrelated subquery, computed once). Not ``count(*) OVER ()``: that makes the
        # database sort every match whole before LIMIT (5x slower at 2,000 sessions on
        # SQLite). Only a page past the end has no row to carry it and asks once more.
        matches = select(func.count(Session.id)).where(*conditions).scalar_subquery()
        async with self.db.session() as db:
            rows = (
                await db.execute(
                    select(Session, matches)
                    .where(*conditions)
                    .order_by(Session.schedule, Session.id)
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
            if rows:
                total = int(rows[0][1])
            elif offset:
                total = int(await db.scalar(select(func.count(Session.id)).where(*conditions)) or 0)
            else:
                total = 0
        items = [row[0] for row in rows]
        return Page(items=items, total=total, page=max(1, page), per_page=limit)

    async def for_mentor(self, mentor_id: int) -> list[Session]:
        async with self.db.session() as db:
            rows = await db.scalars(
                select(Session).where(Session.mentor_id == mentor_id).order_by(Session.schedule)
            )
            return list(rows.unique().all())

    async def upcoming(self, limit: int = 20) -> list[Session]:
        async with self.db.session() as db:
            rows = await db.scalars(
                select(Session)
                .where(Session.status == SessionStatus.SCHEDULED, Session.schedule >= utcnow())
                .order_by(Session.schedule)
                .limit(max(1, min(limit, 500)))
            )
            return list(rows.unique().all())

    # ------------------------------------------------------------------ state machine

    def can_start(self, session: Session, now: datetime | None = None) -> bool:
        now = now or utcnow()
        window = timedelta(minutes=self.settings.start_window_minutes)
        return session.status == SessionStatus.SCHEDULED and now >= session.schedule - window

    async def _transition(
        self, sid: uuid.UUID, expected: SessionStatus, new: SessionStatus, **values: Any
    ) -> None:
        """Move ``sid`` from ``expected`` to ``new`` or raise 409 invalid_state."""
        now = utcnow()
        async with self.db.transaction() as db:
            result = await db.execute(
                update(Session)
                .where(Session.id == sid, Session.status == expected)
                .values(status=new, updated_at=now, **values)
            )
            if rows_changed(result) != 1:
                raise Conflict(f"the session is no longer {expected}", code="invalid_state")
            if new == SessionStatus.CANCELLED:
                await db.execute(
                    update(Booking)
                    .where(
                        Booking.session_id == sid,
                        Booking.status.in_(SEAT_STATUSES),
                        Booking.payment_status == PaymentStatus.PENDING,
                    )
                    .values(
                        status=BookingStatus.CANCELLED,
                        payment_status=PaymentStatus.FAILED,
                        updated_at=now,
                    )
                )
                await db.execute(
                    update(Booking)
                    .where(Booking.session_id == sid, Booking.status.in_(SEAT_STATUSES))
                    .values(status=BookingStatus.CANCELLED, updated_at=now)
                )
                await db.execute(
                    update(Session).where(Session.id == sid).values(current_participants=0)
                )
            if new == SessionStatus.COMPLETED:
                # Attendees are the learners who actually joined the room.
                await db.execute(
                    update(Booking)
                    .where(
                        Booking.session_id == sid,
                        Booking.status == BookingStatus.CONFIRMED,
                        Booking.joined_at.is_not(None),
                    )
                    .values(status=BookingStatus.COMPLETED, updated_at=now)
                )

    async def _learner_ids(self, sid: uuid.UUID, statuses: Iterable[BookingStatus]) -> list[int]:
        async with self.db.session() as db:
            return list(
                (
                    await db.scalars(
                        select(Booking.learner_id).where(
                            Booking.session_id == sid, Booking.status.in_(statuses)
                        )
                    )
                ).all()
            )

    async def start(self, actor: User, session_id: uuid.UUID | str) -> Session:
        session = await self.get(session_id)
        if actor.id != session.mentor_id:
            raise Forbidden("only the session's mentor can start it")
        if session.status != SessionStatus.SCHEDULED:
            raise Conflict(f"a {session.status} session cannot be started", code="invalid_state")
        if not self.can_start(session):
            window = self.settings.start_window_minutes
            raise Conflict(
                f"the room opens {window} minutes before the scheduled time", code="too_early"
            )
        await self._check_live_quota(actor)
        await self._transition(
            session.id, SessionStatus.SCHEDULED, SessionStatus.ACTIVE, started_at=utcnow()
        )
        await self._lifecycle(session.id, "session_started")
        learners = await self._learner_ids(session.id, [BookingStatus.CONFIRMED])
        await self.notices.send(learners, notices.session_started(session))
        return await self.get(session.id)

    async def _check_live_quota(self, mentor: User) -> None:
        """Conflict ``too_many_live_sessions`` past ``[sessions] max_live_per_mentor``: one
        account must not hold many rooms (and their media ports) open at once."""
        limit = self.settings.max_live_per_mentor
        async with self.db.session() as db:
            live = await db.scalar(
                select(func.count(Session.id)).where(
                    Session.mentor_id == mentor.id, Session.status == SessionStatus.ACTIVE
                )
            )
        if (live or 0) >= limit:
            raise Conflict(
                f"you already have {live} live sessions (at most {limit}): end one first",
                code="too_many_live_sessions",
            )

    async def end(self, actor: User, session_id: uuid.UUID | str) -> Session:
        session = await self.get(session_id)
        if actor.id != session.mentor_id:
            raise Forbidden("only the session's mentor can end it")
        if session.status != SessionStatus.ACTIVE:
            raise Conflict(f"a {session.status} session cannot be ended", code="invalid_state")
        await self._complete(session)
        return await self.get(session.id)

    async def _complete(self, session: Session) -> None:
        """active → completed, and everything that follows: the room closes (the bus's
        ``session_ended``), attendees' bookings complete, learners are asked to rate.
        Conflict ``invalid_state`` when it was no longer active (ended meanwhile)."""
        await self._transition(
            session.id, SessionStatus.ACTIVE, SessionStatus.COMPLETED, ended_at=utcnow()
        )
        await self._lifecycle(session.id, "session_ended")
        for learner_id in await self._learner_ids(session.id, [BookingStatus.COMPLETED]):
            await self.interactions.record(learner_id, session.id, "completion", 1.0)
        attendees = await self._learner_ids(session.id, ATTENDEE_STATUSES)
        await self.notices.send(attendees, notices.session_ended(session))

    def overdue_at(self, session: Session) -> datetime:
        """When a live session nobody ended is ended for them: its planned end (from the
        schedule, or from the start if the mentor started late) plus
        ``[sessions] auto_end_grace_minutes``."""
        began = max(session.schedule, session.started_at or session.schedule)
        grace = self.settings.auto_end_grace_minutes
        return began + timedelta(minutes=session.duration + grace)

    async def end_overdue(self, now: datetime | None = None) -> int:
        """End every active session past ``overdue_at`` exactly as its mentor would (one
        pass of the background job); returns how many this call ended. The conditional
        transition makes a session end once, whoever else (its mentor, another node) races
        for it."""
        now = now or utcnow()
        async with self.db.session() as db:
            active = (
                await db.scalars(select(Session).where(Session.status == SessionStatus.ACTIVE))
            ).unique()
            overdue = [s for s in active.all() if self.overdue_at(s) <= now]
        ended = 0
        grace = self.settings.auto_end_grace_minutes
        for session in overdue:
            try:
                await self._complete(session)
            except Conflict:  # ended meanwhile
                continue
            ended += 1
            log.info("ended session %s, still live %s after its planned end", session.id, grace)
            await self.notices.send([session.mentor_id], notices.session_auto_ended(session, grace))
        return ended

    async def run_auto_end(self) -> None:
        """Background loop: end overdue live sessions every ``AUTO_END_CHECK_SECONDS``."""
        await run_every(AUTO_END_CHECK_SECONDS, self.end_overdue, "ending overdue sessions")

    async def cancel(self, actor: User, session_id: uuid.UUID | str) -> Session:
        session = await self.get(session_id)
        if not (actor.is_admin or actor.id == session.mentor_id):
            raise Forbidden("only the session's mentor or an admin can cancel it")
        if session.status != SessionStatus.SCHEDULED:
            raise Conflict(f"a {session.status} session cannot be cancelled", code="invalid_state")
        learners = await self._learner_ids(session.id, SEAT_STATUSES)
        await self._transition(session.id, SessionStatus.SCHEDULED, SessionStatus.CANCELLED)
        await self._lifecycle(session.id, "session_cancelled")
        await self.notices.send_in_zones(
            learners, session.schedule, partial(notices.session_cancelled, session)
        )
        if actor.id != session.mentor_id:
            await self.notices.send(
                [session.mentor_id], notices.session_cancelled_by_admin(session)
            )
        return await self.get(session.id)

    # ------------------------------------------------------------------ reminders

    async def send_due_reminders(self, now: datetime | None = None) -> int:
        """Notify sessions starting within ``reminder_minutes``; returns how many were sent.

        Each session is claimed with ``UPDATE ... WHERE reminder_sent = false``: only the
        node whose update changed the row sends, so reminders go out once across nodes.
        """
        now = now or utcnow()
        horizon = now + timedelta(minutes=self.settings.reminder_minutes)
        async with self.db.session() as db:
            due = (
                (
                    await db.scalars(
                        select(Session).where(
                            Session.status == SessionStatus.SCHEDULED,
                            Session.reminder_sent.is_(False),
                            Session.schedule > now,
                            Session.schedule <= horizon,
                        )
                    )
                )
                .unique()
                .all()
            )
        sent = 0
        for session in due:
            async with self.db.transaction() as db:
                claimed = await db.execute(
                    update(Session)
                    .where(Session.id == session.id, Session.reminder_sent.is_(False))
                    .values(reminder_sent=True)
                )
                if rows_changed(claimed) != 1:
                    continue
                # Read in the claiming transaction: a booking confirmed concurrently either
                # commits first (and is listed here) or sees reminder_sent and reminds itself
                # (BookingService), so every attendee hears it exactly once.
                learners = (
                    await db.scalars(
                        select(Booking.learner_id).where(
                            Booking.session_id == session.id,
                            Booking.status == BookingStatus.CONFIRMED,
                        )
                    )
                ).all()
            sent += 1
            await self._send_reminder(session, [*learners, session.mentor_id], now)
        return sent

    async def _send_reminder(
        self, session: Session, user_ids: list[int], now: datetime | None = None
    ) -> None:
        minutes = max(1, int((session.schedule - (now or utcnow())).total_seconds() // 60))
        await self.notices.send(user_ids, notices.starting_soon(session, minutes))

    async def remind_late_attendee(self, session: Session, learner_id: int) -> None:
        """A learner confirmed after the session's reminder went out gets it at once."""
        if session.status == SessionStatus.SCHEDULED and session.schedule > utcnow():
            await self._send_reminder(session, [learner_id])

    async def run_reminders(self) -> None:
        """Background loop: send due reminders every ``reminder_check_seconds``."""
        interval = self.settings.reminder_check_seconds
        await run_every(interval, self.send_due_reminders, "sending reminders")
