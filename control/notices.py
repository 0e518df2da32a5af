"""Notifications as data: one builder per event, and the one way to send them.

Every text a service tells users in-app is written here, as a function that returns a
:class:`Notice` (title, message, type, event, link) for one event; services pick the
builder and the recipients and hand both to :meth:`NoticeSender.send`. Notices are sent
after the action committed, so sending never raises: a failure is logged and the action
stands.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from control.db import Database
from control.models import Session, User
from control.services.notifications import NotificationService
from control.timezones import DEFAULT_ZONE, format_local

log = logging.getLogger(__name__)

NoticeType = Literal["info", "success", "warning", "error"]


@dataclass(frozen=True)
class Notice:
    """One in-app notification's content (``control.models.Notification`` without the
    recipient)."""

    title: str
    message: str
    type: NoticeType
    event: str
    link: str | None = None

    def fields(self) -> dict[str, Any]:
        """The keyword arguments of ``NotificationService.notify``."""
        return asdict(self)


def session_page(session_id: uuid.UUID) -> str:
    return f"/sessions/{session_id}/"


# ---------------------------------------------------------------- sessions


def followed_mentor_scheduled(mentor: User, session: Session, when: str) -> Notice:
    """To a mentor's followers; ``when`` is the schedule in the follower's zone."""
    return Notice(
        title="New session from a mentor you follow",
        message=f"{mentor.display_name} scheduled “{session.title}” for {when}.",
        type="info",
        event="session_created",
        link=session_page(session.id),
    )


def session_started(session: Session) -> Notice:
    """To the confirmed learners when the mentor opens the room."""
    return Notice(
        title="Your session has started",
        message=f"“{session.title}” is live. Join the room now.",
        type="success",
        event="session_started",
        link=f"/sessions/{session.id}/room",
    )


def session_ended(session: Session) -> Notice:
    """To the attendees when the session ends: an invitation to rate it."""
    return Notice(
        title="Session ended — how was it?",
        message=f"“{session.title}” has ended. Rate it to help others choose.",
        type="info",
        event="session_ended",
        link=f"/sessions/{session.id}/feedback/",
    )


def session_auto_ended(session: Session, grace_minutes: int) -> Notice:
    """To the mentor of a live session the platform ended ``grace_minutes`` after its end."""
    return Notice(
        title="Session ended automatically",
        message=f"“{session.title}” was still live {grace_minutes} minutes after its "
        "planned end, so PeerLearn closed the room.",
        type="warning",
        event="session_ended",
        link=session_page(session.id),
    )


def session_cancelled(session: Session, when: str) -> Notice:
    """To the booked learners; ``when`` is the schedule in the learner's zone."""
    return Notice(
        title="Session cancelled",
        message=f"“{session.title}” on {when} was cancelled.",
        type="warning",
        event="session_cancelled",
        link=session_page(session.id),
    )


def session_cancelled_by_admin(session: Session) -> Notice:
    """To the mentor whose session an administrator cancelled."""
    return Notice(
        title="Session cancelled by an administrator",
        message=f"“{session.title}” was cancelled by an administrator.",
        type="warning",
        event="session_cancelled",
        link=session_page(session.id),
    )


def starting_soon(session: Session, minutes: int) -> Notice:
    """The reminder, to the mentor and the confirmed learners."""
    return Notice(
        title="Starting soon",
        message=f"“{session.title}” starts in {minutes} minutes.",
        type="info",
        event="session_reminder",
        link=session_page(session.id),
    )


# ---------------------------------------------------------------- bookings and payments


def seat_held(session: Session, learner: User, until: datetime | None) -> Notice:
    """To a learner who booked a paid session: the seat waits for the payment."""
    return Notice(
        title="Seat held — payment pending",
        message=f"Your seat in “{session.title}” is held until "
        f"{format_local(until, learner.timezone)} while you pay.",
        type="warning",
        event="booking_pending",
        link=session_page(session.id),
    )


def booking_awaiting_payment(session: Session, learner: User) -> Notice:
    """To the mentor of a paid session someone booked."""
    return Notice(
        title="New booking awaiting payment",
        message=f"{learner.display_name} booked “{session.title}”; "
        "confirm once the payment arrives.",
        type="info",
        event="booking_pending",
        link="/dashboard/",
    )


def booking_confirmed(session: Session, learner: User) -> Notice:
    """To a learner who booked a free session."""
    return Notice(
        title="Booking confirmed",
        message=f"You are booked into “{session.title}” on "
        f"{format_local(session.schedule, learner.timezone)}.",
        type="success",
        event="booking_confirmed",
        link=session_page(session.id),
    )


def new_booking(session: Session, learner: User) -> Notice:
    """To the mentor of a free session someone booked."""
    return Notice(
        title="New booking",
        message=f"{learner.display_name} booked “{session.title}”.",
        type="info",
        event="booking_confirmed",
        link=session_page(session.id),
    )


def booking_cancelled(session: Session, *, by_admin: bool) -> Notice:
    """To the learner whose booking was cancelled (by them, or by an administrator)."""
    who = " by an administrator" if by_admin else ""
    return Notice(
        title="Booking cancelled",
        message=f"Your booking of “{session.title}” was cancelled{who}.",
        type="warning",
        event="booking_cancelled",
        link=session_page(session.id),
    )


def attendee_left(session: Session, learner: User) -> Notice:
    """To the mentor when a booking of their session is cancelled."""
    return Notice(
        title="Booking cancelled",
        message=f"{learner.display_name} no longer attends “{session.title}”.",
        type="info",
        event="booking_cancelled",
        link=session_page(session.id),
    )


def payment_received(session: Session) -> Notice:
    """To the learner whose held seat was paid."""
    return Notice(
        title="Payment received — booking confirmed",
        message=f"Your seat in “{session.title}” is confirmed.",
        type="success",
        event="booking_confirmed",
        link=session_page(session.id),
    )


def payment_failed(session: Session) -> Notice:
    """To the learner whose payment the provider reported failed."""
    return Notice(
        title="Payment failed — seat released",
        message=f"The payment for “{session.title}” did not go through; "
        "your held seat was released.",
        type="error",
        event="payment_failed",
        link=session_page(session.id),
    )


def hold_expired(session: Session) -> Notice:
    """To the learner whose payment hold ran out."""
    return Notice(
        title="Seat released",
        message=f"No payment arrived for “{session.title}” in time; your held seat was released.",
        type="error",
        event="booking_expired",
        link=session_page(session.id),
    )


# ---------------------------------------------------------------- feedback and follows


def feedback_received(session: Session, rater: User, rating: int) -> Notice:
    """To the mentor of a session someone rated."""
    return Notice(
        title="Feedback received",
        message=f"{rater.display_name} rated “{session.title}” {rating}/5.",
        type="info",
        event="feedback_received",
        link=session_page(session.id),
    )


def new_follower(follower: User) -> Notice:
    """To a mentor someone started following."""
    return Notice(
        title="New follower",
        message=f"{follower.display_name} started following you.",
        type="info",
        event="new_follower",
        link=f"/profile/{follower.username}/",
    )


# ---------------------------------------------------------------- sending


class NoticeSender:
    """Stores and pushes notices through ``NotificationService``, after the fact."""

    def __init__(self, db: Database, notifications: NotificationService) -> None:
        self.db = db
        self.notifications = notifications

    async def send(self, user_ids: Iterable[int], notice: Notice) -> None:
        """Notify each of ``user_ids`` (once); the action already committed, so a failure
        is only logged."""
        ids = sorted(set(user_ids))
        if not ids:
            return
        try:
            if len(ids) == 1:
                await self.notifications.notify(ids[0], **notice.fields())
            else:
                await self.notifications.notify_many(ids, **notice.fields())
        except Exception:
            log.exception("notification %s failed", notice.event)

    async def send_in_zones(
        self, user_ids: Iterable[int], when: datetime, notice: Callable[[str], Notice]
    ) -> None:
        """``send`` for a text that names a time: ``notice(text)`` is given ``when``
        written in each recipient's own zone (``users.timezone``), one batch per zone."""
        ids = sorted(set(user_ids))
        if not ids:
            return
        try:
            async with self.db.session() as s:
                rows = (
                    await s.execute(select(User.id, User.timezone).where(User.id.in_(ids)))
                ).all()
        except Exception:
            log.exception("could not load the time zones of %s recipients", len(ids))
            rows = []
        zones = {int(uid): zone for uid, zone in rows}
        by_zone: dict[str, list[int]] = {}
        for uid in ids:
            by_zone.setdefault(zones.get(uid) or DEFAULT_ZONE, []).append(uid)
        for zone, members in by_zone.items():
            await self.send(members, notice(format_local(when, zone)))
