"""The rules that live on the models, checked without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from control.models import (
    ATTENDEE_STATUSES,
    FEEDBACK_SESSION_STATUSES,
    OPEN_SESSION_STATUSES,
    SEAT_HOLDING_STATUSES,
    SEAT_STATUSES,
    Booking,
    BookingStatus,
    PaymentStatus,
    Session,
    SessionStatus,
)

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def session(status: SessionStatus = SessionStatus.SCHEDULED, starts_in: int = 60) -> Session:
    return Session(
        id=uuid.uuid4(),
        title="t",
        description="d",
        mentor_id=1,
        schedule=NOW + timedelta(minutes=starts_in),
        duration=60,
        status=status,
        max_participants=10,
        current_participants=0,
    )


def booking(status: BookingStatus, of: Session) -> Booking:
    b = Booking(learner_id=2, session_id=of.id, status=status)
    b.session = of
    return b


def test_ends_at_is_schedule_plus_duration() -> None:
    s = session(starts_in=0)
    assert s.ends_at == NOW + timedelta(minutes=60)


@pytest.mark.parametrize(
    ("status", "open_", "feedback"),
    [
        (SessionStatus.SCHEDULED, True, False),
        (SessionStatus.ACTIVE, True, True),
        (SessionStatus.COMPLETED, False, True),
        (SessionStatus.CANCELLED, False, False),
    ],
)
def test_session_status_rules(status: SessionStatus, open_: bool, feedback: bool) -> None:
    s = session(status)
    assert (s.is_open, s.accepts_feedback) == (open_, feedback)


@pytest.mark.parametrize(
    ("status", "kept", "attendee", "seat"),
    [
        (BookingStatus.PENDING, True, False, True),
        (BookingStatus.CONFIRMED, True, True, True),
        (BookingStatus.COMPLETED, False, True, True),
        (BookingStatus.CANCELLED, False, False, False),
    ],
)
def test_booking_status_rules(
    status: BookingStatus, kept: bool, attendee: bool, seat: bool
) -> None:
    b = booking(status, session())
    assert (b.is_kept, b.is_attendee, b.holds_seat) == (kept, attendee, seat)


@pytest.mark.parametrize(
    ("booking_status", "session_status", "starts_in", "upcoming"),
    [
        (BookingStatus.CONFIRMED, SessionStatus.SCHEDULED, 60, True),
        (BookingStatus.PENDING, SessionStatus.SCHEDULED, 60, True),
        (BookingStatus.CONFIRMED, SessionStatus.ACTIVE, -30, True),
        # Scheduled but past its end (the mentor never came): no longer upcoming.
        (BookingStatus.CONFIRMED, SessionStatus.SCHEDULED, -61, False),
        (BookingStatus.CONFIRMED, SessionStatus.ACTIVE, -61, False),
        (BookingStatus.CANCELLED, SessionStatus.SCHEDULED, 60, False),
        (BookingStatus.COMPLETED, SessionStatus.COMPLETED, -90, False),
        (BookingStatus.CONFIRMED, SessionStatus.CANCELLED, 60, False),
    ],
)
def test_is_upcoming(
    booking_status: BookingStatus, session_status: SessionStatus, starts_in: int, upcoming: bool
) -> None:
    assert booking(booking_status, session(session_status, starts_in)).is_upcoming(NOW) is upcoming


def test_statuses_compare_as_the_stored_strings() -> None:
    assert SessionStatus.ACTIVE == "active"
    assert f"{BookingStatus.CONFIRMED}" == "confirmed"


@pytest.mark.parametrize(
    ("status", "payment", "earned", "awaits"),
    [
        (BookingStatus.PENDING, PaymentStatus.PENDING, False, True),
        (BookingStatus.CONFIRMED, PaymentStatus.PAID, True, False),
        (BookingStatus.COMPLETED, PaymentStatus.PAID, True, False),
        (BookingStatus.CANCELLED, PaymentStatus.PAID, True, False),  # refund still visible
        (BookingStatus.CONFIRMED, PaymentStatus.NOT_REQUIRED, True, False),
        (BookingStatus.COMPLETED, PaymentStatus.NOT_REQUIRED, True, False),
        (BookingStatus.CANCELLED, PaymentStatus.NOT_REQUIRED, False, False),
        (BookingStatus.CANCELLED, PaymentStatus.FAILED, False, False),
    ],
)
def test_payment_rules(
    status: BookingStatus, payment: PaymentStatus, earned: bool, awaits: bool
) -> None:
    b = booking(status, session())
    b.payment_status = payment
    assert (b.is_earned, b.awaits_payment) == (earned, awaits)


@pytest.mark.parametrize("status", list(BookingStatus))
def test_status_sets_match_the_rules(status: BookingStatus) -> None:
    b = booking(status, session())
    assert (status in SEAT_STATUSES) == b.is_kept
    assert (status in SEAT_HOLDING_STATUSES) == b.holds_seat
    assert (status in ATTENDEE_STATUSES) == b.is_attendee


@pytest.mark.parametrize("status", list(SessionStatus))
def test_session_status_sets_match_the_rules(status: SessionStatus) -> None:
    s = session(status)
    assert (status in OPEN_SESSION_STATUSES) == s.is_open
    assert (status in FEEDBACK_SESSION_STATUSES) == s.accepts_feedback
