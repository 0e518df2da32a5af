"""control.notices without a database: every builder's text, and the sender's one path."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast, get_args

import pytest

from control import notices
from control.models import NOTIFICATION_TYPES, Session, User
from control.notices import Notice, NoticeSender, NoticeType

SID = uuid.UUID("12345678-1234-5678-1234-567812345678")
PAGE = f"/sessions/{SID}/"
WHEN = datetime(2030, 7, 1, 16, 0, tzinfo=UTC)


S = Session(id=SID, title="Rust 101", mentor_id=1, schedule=WHEN, duration=60)
U = User(id=7, username="ada", first_name="Ada", last_name="Lovelace", timezone="Europe/Berlin")
CASES: list[tuple[str, Callable[[], Notice], Notice]] = [
    (
        "followed_mentor_scheduled",
        lambda: notices.followed_mentor_scheduled(U, S, "Mon 01 Jul 2030, 18:00 CEST"),
        Notice(
            "New session from a mentor you follow",
            "Ada Lovelace scheduled “Rust 101” for Mon 01 Jul 2030, 18:00 CEST.",
            "info",
            "session_created",
            PAGE,
        ),
    ),
    (
        "session_started",
        lambda: notices.session_started(S),
        Notice(
            "Your session has started",
            "“Rust 101” is live. Join the room now.",
            "success",
            "session_started",
            f"/sessions/{SID}/room",
        ),
    ),
    (
        "session_ended",
        lambda: notices.session_ended(S),
        Notice(
            "Session ended — how was it?",
            "“Rust 101” has ended. Rate it to help others choose.",
            "info",
            "session_ended",
            f"/sessions/{SID}/feedback/",
        ),
    ),
    (
        "session_auto_ended",
        lambda: notices.session_auto_ended(S, 30),
        Notice(
            "Session ended automatically",
            "“Rust 101” was still live 30 minutes after its planned end, so PeerLearn closed "
            "the room.",
            "warning",
            "session_ended",
            PAGE,
        ),
    ),
    (
        "session_cancelled",
        lambda: notices.session_cancelled(S, "Mon 01 Jul 2030, 16:00 UTC"),
        Notice(
            "Session cancelled",
            "“Rust 101” on Mon 01 Jul 2030, 16:00 UTC was cancelled.",
            "warning",
            "session_cancelled",
            PAGE,
        ),
    ),
    (
        "session_cancelled_by_admin",
        lambda: notices.session_cancelled_by_admin(S),
        Notice(
            "Session cancelled by an administrator",
            "“Rust 101” was cancelled by an administrator.",
            "warning",
            "session_cancelled",
            PAGE,
        ),
    ),
    (
        "starting_soon",
        lambda: notices.starting_soon(S, 14),
        Notice(
            "Starting soon", "“Rust 101” starts in 14 minutes.", "info", "session_reminder", PAGE
        ),
    ),
    (
        "seat_held",
        lambda: notices.seat_held(S, U, WHEN),
        Notice(
            "Seat held — payment pending",
            "Your seat in “Rust 101” is held until Mon 01 Jul 2030, 18:00 CEST while you pay.",
            "warning",
            "booking_pending",
            PAGE,
        ),
    ),
    (
        "booking_awaiting_payment",
        lambda: notices.booking_awaiting_payment(S, U),
        Notice(
            "New booking awaiting payment",
            "Ada Lovelace booked “Rust 101”; confirm once the payment arrives.",
            "info",
            "booking_pending",
            "/dashboard/",
        ),
    ),
    (
        "booking_confirmed",
        lambda: notices.booking_confirmed(S, U),
        Notice(
            "Booking confirmed",
            "You are booked into “Rust 101” on Mon 01 Jul 2030, 18:00 CEST.",
            "success",
            "booking_confirmed",
            PAGE,
        ),
    ),
    (
        "new_booking",
        lambda: notices.new_booking(S, U),
        Notice("New booking", "Ada Lovelace booked “Rust 101”.", "info", "booking_confirmed", PAGE),
    ),
    (
        "booking_cancelled",
        lambda: notices.booking_cancelled(S, by_admin=False),
        Notice(
            "Booking cancelled",
            "Your booking of “Rust 101” was cancelled.",
            "warning",
            "booking_cancelled",
            PAGE,
        ),
    ),
    (
        "booking_cancelled_by_admin",
        lambda: notices.booking_cancelled(S, by_admin=True),
        Notice(
            "Booking cancelled",
            "Your booking of “Rust 101” was cancelled by an administrator.",
            "warning",
            "booking_cancelled",
            PAGE,
        ),
    ),
    (
        "attendee_left",
        lambda: notices.attendee_left(S, U),
        Notice(
            "Booking cancelled",
            "Ada Lovelace no longer attends “Rust 101”.",
            "info",
            "booking_cancelled",
            PAGE,
        ),
    ),
    (
        "payment_received",
        lambda: notices.payment_received(S),
        Notice(
            "Payment received — booking confirmed",
            "Your seat in “Rust 101” is confirmed.",
            "success",
            "booking_confirmed",
            PAGE,
        ),
    ),
    (
        "payment_failed",
        lambda: notices.payment_failed(S),
        Notice(
            "Payment failed — seat released",
            "The payment for “Rust 101” did not go through; your held seat was released.",
            "error",
            "payment_failed",
            PAGE,
        ),
    ),
    (
        "hold_expired",
        lambda: notices.hold_expired(S),
        Notice(
            "Seat released",
            "No payment arrived for “Rust 101” in time; your held seat was released.",
            "error",
            "booking_expired",
            PAGE,
        ),
    ),
    (
        "feedback_received",
        lambda: notices.feedback_received(S, U, 4),
        Notice(
            "Feedback received",
            "Ada Lovelace rated “Rust 101” 4/5.",
            "info",
            "feedback_received",
            PAGE,
        ),
    ),
    (
        "new_follower",
        lambda: notices.new_follower(U),
        Notice(
            "New follower",
            "Ada Lovelace started following you.",
            "info",
            "new_follower",
            "/profile/ada/",
        ),
    ),
]


@pytest.mark.parametrize(("name", "build", "expected"), CASES, ids=[c[0] for c in CASES])
def test_builder_text(name: str, build: Callable[[], Notice], expected: Notice) -> None:
    assert build() == expected


def test_every_builder_is_covered() -> None:
    builders = {
        name
        for name, value in vars(notices).items()
        if callable(value)
        and getattr(value, "__module__", "") == notices.__name__
        and not name[0].isupper()
        and name != "session_page"
    }
    assert builders <= {c[0] for c in CASES}


def test_notice_fields_are_notify_keywords() -> None:
    notice = notices.session_started(S)
    assert notice.fields() == {
        "title": notice.title,
        "message": notice.message,
        "type": "success",
        "event": "session_started",
        "link": notice.link,
    }


class FakeNotifications:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    async def notify(self, user_id: int, **fields: Any) -> None:
        self.calls.append(("notify", user_id, fields))
        if self.fail:
            raise RuntimeError("database down")

    async def notify_many(self, user_ids: list[int], **fields: Any) -> None:
        self.calls.append(("notify_many", list(user_ids), fields))
        if self.fail:
            raise RuntimeError("database down")


class FakeDb:
    """``Database.session()`` answering the zone query with fixed rows (or failing)."""

    def __init__(self, zones: dict[int, str] | None) -> None:
        self.zones = zones

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        if self.zones is None:
            raise RuntimeError("database down")
        rows = list(self.zones.items())

        class Result:
            def all(self) -> list[tuple[int, str]]:
                return rows

        class Session:
            async def execute(self, stmt: Any) -> Result:
                return Result()

        yield Session()


def _sender(notifications: FakeNotifications, zones: dict[int, str] | None = None) -> NoticeSender:
    return NoticeSender(cast(Any, FakeDb(zones)), cast(Any, notifications))


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([], []),
        ([5], [("notify", 5)]),
        ([5, 5], [("notify", 5)]),
        ([9, 5, 9], [("notify_many", [5, 9])]),
    ],
)
async def test_send_notifies_each_recipient_once(ids: list[int], expected: list[Any]) -> None:
    fake = FakeNotifications()
    await _sender(fake).send(ids, notices.session_started(S))
    assert [(kind, who) for kind, who, _ in fake.calls] == expected
    assert all(f == notices.session_started(S).fields() for _, _, f in fake.calls)


async def test_send_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="control.notices"):
        await _sender(FakeNotifications(fail=True)).send([1], notices.session_started(S))
    assert "notification session_started failed" in caplog.text


async def test_send_in_zones_batches_by_zone() -> None:
    fake = FakeNotifications()
    sender = _sender(fake, {1: "Europe/Berlin", 2: "UTC", 3: "Europe/Berlin"})
    await sender.send_in_zones([1, 2, 3, 4], WHEN, partial(notices.session_cancelled, S))
    sent = {
        tuple(who) if isinstance(who, list) else (who,): f["message"] for _, who, f in fake.calls
    }
    assert sent == {
        (1, 3): "“Rust 101” on Mon 01 Jul 2030, 18:00 CEST was cancelled.",
        (2, 4): "“Rust 101” on Mon 01 Jul 2030, 16:00 UTC was cancelled.",  # 4: no zone known
    }


async def test_send_in_zones_falls_back_to_utc(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNotifications()
    with caplog.at_level(logging.ERROR, logger="control.notices"):
        await _sender(fake, None).send_in_zones([1], WHEN, partial(notices.session_cancelled, S))
    assert [f["message"] for _, _, f in fake.calls] == [
        "“Rust 101” on Mon 01 Jul 2030, 16:00 UTC was cancelled."
    ]
    assert "could not load the time zones" in caplog.text


def test_notice_types_are_the_stored_types() -> None:
    assert get_args(NoticeType) == NOTIFICATION_TYPES
