"""Bookings: race-safe seat taking, cancellation, payment holds and room access.

Seats are counted in ``sessions.current_participants`` and only ever changed by conditional
UPDATEs inside the same transaction that writes the booking row:

    UPDATE sessions SET current_participants = current_participants + 1
     WHERE id = :id AND status = 'scheduled' AND current_participants < max_participants

PostgreSQL row-locks the session for the rest of the transaction (concurrent bookers queue and
re-check the WHERE clause); SQLite has a single writer.  A duplicate booking hits the unique
(learner, session) constraint, and the rollback returns the seat.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import PaymentSettings
from control import notices
from control.db import Database, rows_changed
from control.errors import Conflict, Forbidden, NotFound
from control.events import EventBus, announce, session_channel
from control.ids import parse_booking_id, parse_session_id
from control.jobs import run_every
from control.models import (
    SEAT_STATUSES,
    Booking,
    BookingStatus,
    PaymentStatus,
    Role,
    RoomBan,
    Session,
    SessionStatus,
    User,
    utcnow,
)
from control.notices import NoticeSender
from control.services.accounts import AccountService
from control.services.interactions import InteractionService
from control.services.payments import PaymentProvider, PaymentStart
from control.services.sessions import SessionService

__all__ = ["BookingService", "RoomRole"]

log = logging.getLogger(__name__)

RoomRole = Literal["mentor", "admin", "learner"]
HOLD_CHECK_SECONDS = 30.0


class BookingService:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        settings: PaymentSettings,
        *,
        sessions: SessionService,
        payments: PaymentProvider,
        notices: NoticeSender,
        interactions: InteractionService,
        accounts: AccountService,
    ) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.sessions = sessions
        #: the payment provider (``Platform.payments`` swaps it)
        self.payments = payments
        self.notices = notices
        self.interactions = interactions
        self.accounts = accounts

    # ------------------------------------------------------------------ booking

    async def book(self, learner: User, session_id: uuid.UUID | str) -> Booking:
        booking, _ = await self.book_with_payment(learner, session_id)
        return booking

    async def book_with_payment(
        self, learner: User, session_id: uuid.UUID | str
    ) -> tuple[Booking, PaymentStart | None]:
        """Take a seat; for paid sessions also start the payment (seat held meanwhile)."""
        if learner.role != Role.LEARNER:
            raise Forbidden("only learners can book sessions")
        self.accounts.ensure_verified(learner, "book a session")
        session, current = await self._session_and_booking_status(learner.id, session_id)
        if session.mentor_id == learner.id:
            raise Forbidden("you cannot book your own session")
        if session.status != SessionStatus.SCHEDULED:
            raise Conflict(f"a {session.status} session cannot be booked", code="invalid_state")
        now = utcnow()
        if session.schedule <= now:
            raise Conflict("this session has already begun", code="session_past")
        if current is not None and current != BookingStatus.CANCELLED:
            # Checked first so a booked learner hears "already booked", not "full".
            raise Conflict("you already booked this session", code="already_booked")
        if session.current_participants >= session.max_participants:
            # Full when read: answered without queuing for the writer. Only the conditional
            # UPDATE below gives seats; a seat freed since this read is the next caller's.
            raise Conflict("the session is full", code="session_full")
        paid = session.price > 0
        hold_until = now + timedelta(minutes=self.settings.hold_minutes)
        values = {
            "status": BookingStatus.PENDING if paid else BookingStatus.CONFIRMED,
            "payment_status": PaymentStatus.PENDING if paid else PaymentStatus.NOT_REQUIRED,
            "payment_id": None,
            "payment_expires_at": hold_until if paid else None,
            "amount": session.price,
            "booking_time": now,
            "joined_at": None,
            "left_at": None,
            "is_ready": False,
            "updated_at": now,
        }
        try:
            async with self.db.transaction() as db:
                taken = await db.execute(
                    update(Session)
                    .where(
                        Session.id == session.id,
                        Session.status == SessionStatus.SCHEDULED,
                        Session.current_participants < Session.max_participants,
                    )
                    .values(current_participants=Session.current_participants + 1)
                    .execution_options(synchronize_session=False)
                )
                if rows_changed(taken) != 1:
                    raise await self._why_no_seat(db, session.id)
                # Stable until commit: the UPDATE above holds the session row (see
                # SessionService.send_due_reminders for the other half).
                reminded = bool(
                    await db.scalar(select(Session.reminder_sent).where(Session.id == session.id))
                )
                existing = await db.scalar(
                    select(Booking).where(
                        Booking.learner_id == learner.id, Booking.session_id == session.id
                    )
                )
                if existing is not None and existing.status != BookingStatus.CANCELLED:
                    raise Conflict("you already booked this session", code="already_booked")
                if existing is not None:
                    # Re-booking after a cancellation reuses the row (unique learner+session);
                    # the status guard makes a concurrent re-book lose cleanly.
                    again = await db.execute(
                        update(Booking)
                        .where(Booking.id == existing.id, Booking.status == BookingStatus.CANCELLED)
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    )
                    if rows_changed(again) != 1:
                        raise Conflict("you already booked this session", code="already_booked")
                    booking_id = existing.id
                else:
                    booking = Booking(
                        learner_id=learner.id, session_id=session.id, created_at=now, **values
                    )
                    db.add(booking)
                    await db.flush()
                    booking_id = booking.id
        except IntegrityError:
            raise Conflict("you already booked this session", code="already_booked") from None
        booking = await self._load(booking_id)
        start: PaymentStart | None = None
        if paid:
            start = await self.payments.start(booking)
            async with self.db.transaction() as db:
                await db.execute(
                    update(Booking)
                    .where(Booking.id == booking_id)
                    .values(payment_id=start.payment_id, payment_expires_at=start.expires_at)
                )
            booking = await self._load(booking_id)
        # A seat fewer in every node's catalogue (the public catalogue cache empties on it).
        await announce(self.bus, "booking_created", session.id, user_id=learner.id)
        await self.interactions.record(learner.id, session.id, "booking", 1.0)
        await self._notify_booked(booking, paid)
        if reminded and not paid:
            await self.sessions.remind_late_attendee(booking.session, learner.id)
        return booking, start

    async def _session_and_booking_status(
        self, learner_id: int, session_id: uuid.UUID | str
    ) -> tuple[Session, str | None]:
        """The session and the status of ``learner_id``'s booking of it (None: never booked),
        read in one statement before booking (every racer for a seat reads this)."""
        sid = parse_session_id(session_id)
        mine = and_(Booking.session_id == Session.id, Booking.learner_id == learner_id)
        query = select(Session, Booking.status).outerjoin(Booking, mine).where(Session.id == sid)
        async with self.db.session() as db:
            row = (await db.execute(query)).first()
        if row is None:
            raise NotFound("no such session")
        return row[0], row[1]

    @staticmethod
    async def _why_no_seat(db: AsyncSession, session_id: uuid.UUID) -> Conflict:
        row = (
            await db.execute(
                select(
                    Session.status, Session.current_participants, Session.max_participants
                ).where(Session.id == session_id)
            )
        ).one_or_none()
        if row is None or row[0] != SessionStatus.SCHEDULED:
            return Conflict("the session can no longer be booked", code="invalid_state")
        return Conflict("the session is full", code="session_full")

    async def _notify_booked(self, booking: Booking, paid: bool) -> None:
        session, learner = booking.session, booking.learner
        if paid:
            await self.notices.send(
                [learner.id], notices.seat_held(session, learner, booking.payment_expires_at)
            )
            await self.notices.send(
                [session.mentor_id], notices.booking_awaiting_payment(session, learner)
            )
            return
        await self.notices.send([learner.id], notices.booking_confirmed(session, learner))
        await self.notices.send([session.mentor_id], notices.new_booking(session, learner))

    async def _load(self, booking_id: int) -> Booking:
        async with self.db.session() as db:
            booking = await db.get(Booking, booking_id)
        if booking is None:
            raise NotFound("no such booking")
        return booking

    async def get(self, booking_id: int | str) -> Booking:
        return await self._load(parse_booking_id(booking_id))

    async def _release(self, booking: Booking, *, payment_status: PaymentStatus | None) -> bool:
        """Cancel a seat-holding booking and free its seat; False if it no longer held one."""
        now = utcnow()
        values: dict[str, object] = {"status": BookingStatus.CANCELLED, "updated_at": now}
        if payment_status:
            values["payment_status"] = payment_status
        async with self.db.transaction() as db:
            done = await db.execute(
                update(Booking)
                .where(Booking.id == booking.id, Booking.status.in_(SEAT_STATUSES))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if rows_changed(done) != 1:
                return False
            await db.execute(
                update(Session)
                .where(Session.id == booking.session_id, Session.current_participants > 0)
                .values(current_participants=Session.current_participants - 1)
                .execution_options(synchronize_session=False)
            )
        await announce(
            self.bus, "booking_cancelled", booking.session_id, user_id=booking.learner_id
        )
        return True

    async def cancel(self, actor: User, booking_id: int | str) -> Booking:
        booking = await self.get(booking_id)
        if not (actor.is_admin or actor.id == booking.learner_id):
            raise Forbidden("only the learner who booked (or an admin) can cancel a booking")
        if not booking.is_kept:
            raise Conflict(f"a {booking.status} booking cannot be cancelled", code="invalid_state")
        if booking.session.status != SessionStatus.SCHEDULED:
            raise Conflict(
                f"the session is {booking.session.status}; the booking can no longer be cancelled",
                code="invalid_state",
            )
        # An unpaid hold simply lapses; a paid booking keeps "paid" so the refund is visible.
        pay = PaymentStatus.FAILED if booking.payment_status == PaymentStatus.PENDING else None
        if not await self._release(booking, payment_status=pay):
            raise Conflict("the booking was already cancelled", code="invalid_state")
        session = booking.session
        by_admin = actor.id != booking.learner_id
        await self.notices.send(
            [booking.learner_id], notices.booking_cancelled(session, by_admin=by_admin)
        )
        await self.notices.send(
            [session.mentor_id], notices.attendee_left(session, booking.learner)
        )
        return await self._load(booking.id)

    # ------------------------------------------------------------------ reading

    async def for_learner(self, user_id: int) -> list[Booking]:
        async with self.db.session() as db:
            rows = await db.scalars(
                select(Booking)
                .join(Session, Session.id == Booking.session_id)
                .where(Booking.learner_id == user_id)
                .order_by(Session.schedule)
            )
            return list(rows.unique().all())

    async def for_session(self, session_id: uuid.UUID | str) -> list[Booking]:
        sid = parse_session_id(session_id)
        async with self.db.session() as db:
            rows = await db.scalars(
                select(Booking).where(Booking.session_id == sid).order_by(Booking.booking_time)
            )
            return list(rows.unique().all())

    async def booking_of(self, user_id: int, session_id: uuid.UUID | str) -> Booking | None:
        sid = parse_session_id(session_id)
        async with self.db.session() as db:
            return await db.scalar(
                select(Booking).where(Booking.learner_id == user_id, Booking.session_id == sid)
            )

    async def pending_for_mentor(self, mentor_id: int) -> list[Booking]:
        async with self.db.session() as db:
            rows = await db.scalars(
                select(Booking)
                .join(Session, Session.id == Booking.session_id)
                .where(Session.mentor_id == mentor_id, Booking.status == BookingStatus.PENDING)
                .order_by(Booking.booking_time)
            )
            return list(rows.unique().all())

    # ------------------------------------------------------------------ payments

    async def mark_paid(self, actor: User, booking_id: int | str) -> Booking:
        """The session's mentor or an admin says the money arrived; the provider decides."""
        booking = await self.get(booking_id)
        if not (actor.is_admin or actor.id == booking.session.mentor_id):
            raise Forbidden("only the session's mentor or an admin can confirm a payment")
        self._require_payment_pending(booking)
        payment_id = await self.payments.confirm(actor, booking)
        return await self.settle_payment(booking.id, payment_id)

    @staticmethod
    def _require_payment_pending(booking: Booking) -> None:
        if not booking.awaits_payment:
            raise Conflict(
                f"the booking is {booking.status} / {booking.payment_status}", code="invalid_state"
            )

    async def settle_payment(self, booking_id: int | str, payment_id: str) -> Booking:
        """Confirm a held booking as paid under the provider's ``payment_id``.

        The only way a booking becomes paid: ``mark_paid`` calls it with the id the provider's
        ``confirm`` returned, a gateway's webhook handler with the id from its verified event.
        """
        if not payment_id:
            raise ValueError("a payment id from the payment provider is required")
        booking = await self.get(booking_id)
        self._require_payment_pending(booking)
        async with self.db.transaction() as db:
            # Lock the session row so the "starting soon" claim cannot interleave (see book).
            reminded = bool(
                await db.scalar(
                    select(Session.reminder_sent)
                    .where(Session.id == booking.session_id)
                    .with_for_update()
                )
            )
            done = await db.execute(
                update(Booking)
                .where(
                    Booking.id == booking.id,
                    Booking.status == BookingStatus.PENDING,
                    Booking.payment_status == PaymentStatus.PENDING,
                )
                .values(
                    status=BookingStatus.CONFIRMED,
                    payment_status=PaymentStatus.PAID,
                    payment_id=payment_id[:100],
                    payment_expires_at=None,
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            if rows_changed(done) != 1:
                raise Conflict("the booking changed meanwhile", code="invalid_state")
        session = booking.session
        await self.notices.send([booking.learner_id], notices.payment_received(session))
        if reminded:
            await self.sessions.remind_late_attendee(session, booking.learner_id)
        return await self._load(booking.id)

    async def payment_failed(self, booking_id: int | str) -> bool:
        """The provider reports the payment failed: release the held seat (False if it was no
        longer held)."""
        booking = await self.get(booking_id)
        if booking.payment_status != PaymentStatus.PENDING:
            return False
        return await self._drop_hold(booking, notices.payment_failed(booking.session))

    async def _drop_hold(self, booking: Booking, notice: notices.Notice) -> bool:
        """Release an unpaid hold and tell the learner; False if it was no longer held."""
        if not await self._release(booking, payment_status=PaymentStatus.FAILED):
            return False
        await self.notices.send([booking.learner_id], notice)
        return True

    async def release_expired_holds(self, now: datetime | None = None) -> int:
        """Cancel pending paid bookings whose hold expired; returns how many were released."""
        now = now or utcnow()
        async with self.db.session() as db:
            expired = (
                (
                    await db.scalars(
                        select(Booking).where(
                            Booking.status == BookingStatus.PENDING,
                            Booking.payment_status == PaymentStatus.PENDING,
                            Booking.payment_expires_at.is_not(None),
                            Booking.payment_expires_at <= now,
                        )
                    )
                )
                .unique()
                .all()
            )
        released = 0
        for booking in expired:
            # False when it was paid or cancelled meanwhile.
            released += await self._drop_hold(booking, notices.hold_expired(booking.session))
        return released

    async def run_hold_expiry(self) -> None:
        """Background loop releasing expired payment holds."""
        await run_every(HOLD_CHECK_SECONDS, self.release_expired_holds, "releasing payment holds")

    # ------------------------------------------------------------------ the room

    async def room_role(self, user: User, session_id: uuid.UUID | str) -> RoomRole:
        """Who ``user`` is in the session's room, whether or not it is open: ``"mentor"``
        (the session's), ``"admin"``, or ``"learner"`` (a confirmed or completed booking).

        The room page, the chat history and (through ``room_access``) the signaling socket
        all ask this. Raises NotFound (no session) or Forbidden: code ``removed`` for someone
        a moderator removed from the room (they never come back), ``forbidden`` otherwise.
        """
        return await self._role_in(user, await self.sessions.get(session_id))

    async def room_access(self, user: User, session_id: uuid.UUID | str) -> RoomRole:
        """``room_role``, for entering the live room now: also raises Conflict
        ``session_not_active`` unless the session is active."""
        session = await self.sessions.get(session_id)
        role = await self._role_in(user, session)
        if session.status != SessionStatus.ACTIVE:
            raise Conflict(f"the session is {session.status}", code="session_not_active")
        return role

    async def _role_in(self, user: User, session: Session) -> RoomRole:
        if await self.is_banned(session.id, user.id):
            raise Forbidden("the mentor removed you from this session", code="removed")
        if user.id == session.mentor_id:
            return "mentor"
        if user.is_admin:
            return "admin"
        booking = await self.booking_of(user.id, session.id)
        if booking is None or not booking.is_attendee:
            raise Forbidden(
                "only the mentor, learners with a confirmed booking and admins "
                "may enter this session's room"
            )
        return "learner"

    async def record_join(self, session_id: uuid.UUID | str, user_id: int) -> None:
        sid = parse_session_id(session_id)
        now = utcnow()
        async with self.db.transaction() as db:
            # joined_at keeps the first join (attendance); left_at is cleared while present.
            await db.execute(
                update(Booking)
                .where(
                    Booking.session_id == sid,
                    Booking.learner_id == user_id,
                    Booking.joined_at.is_(None),
                )
                .values(joined_at=now)
            )
            await db.execute(
                update(Booking)
                .where(Booking.session_id == sid, Booking.learner_id == user_id)
                .values(left_at=None, is_ready=True)
            )

    async def record_leave(self, session_id: uuid.UUID | str, user_id: int) -> None:
        sid = parse_session_id(session_id)
        async with self.db.transaction() as db:
            await db.execute(
                update(Booking)
                .where(Booking.session_id == sid, Booking.learner_id == user_id)
                .values(left_at=utcnow(), is_ready=False)
            )

    async def ban(self, session_id: uuid.UUID | str, user_id: int) -> None:
        sid = parse_session_id(session_id)
        try:
            async with self.db.transaction() as db:
                if await db.get(RoomBan, (sid, user_id)) is None:
                    db.add(RoomBan(session_id=sid, user_id=user_id, created_at=utcnow()))
        except IntegrityError:  # banned concurrently: the ban exists, which is all we want
            pass
        # Whichever node hosts a socket of this user for the session drops it at once.
        await self.bus.publish(
            session_channel(sid),
            {"type": "user_banned", "session_id": str(sid), "user_id": user_id},
        )

    async def is_banned(self, session_id: uuid.UUID | str, user_id: int) -> bool:
        sid = parse_session_id(session_id)
        async with self.db.session() as db:
            return await db.get(RoomBan, (sid, user_id)) is not None
