"""SessionDetails: the session detail read model, with fake collaborators (no database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from control.errors import NotFound
from control.models import Booking, BookingStatus, Role, Session, SessionStatus, User
from control.services.details import SessionDetail, SessionDetails

MENTOR_ID, LEARNER_ID, OTHER_MENTOR_ID, ADMIN_ID = 1, 2, 3, 4


def user(user_id: int, role: Role) -> User:
    return User(id=user_id, username=f"u{user_id}", role=role)


MENTOR = user(MENTOR_ID, Role.MENTOR)
LEARNER = user(LEARNER_ID, Role.LEARNER)
OTHER_MENTOR = user(OTHER_MENTOR_ID, Role.MENTOR)
ADMIN = user(ADMIN_ID, Role.ADMIN)


def session(status: SessionStatus = SessionStatus.SCHEDULED) -> Session:
    return Session(
        id=uuid.uuid4(), mentor_id=MENTOR_ID, status=status, meeting_room_id="room-42", duration=60
    )


@dataclass
class FakeSessions:
    known: dict[uuid.UUID, Session] = field(default_factory=dict)
    startable: bool = True

    async def get(self, session_id: uuid.UUID | str) -> Session:
        try:
            return self.known[uuid.UUID(str(session_id))]
        except (KeyError, ValueError):
            raise NotFound("no such session") from None

    def can_start(self, session: Session) -> bool:
        return self.startable and session.status == SessionStatus.SCHEDULED


@dataclass
class FakeBookings:
    by_learner: dict[int, Booking] = field(default_factory=dict)

    async def booking_of(self, user_id: int, session_id: uuid.UUID | str) -> Booking | None:
        return self.by_learner.get(user_id)


@dataclass
class FakeFeedback:
    rated: set[int] = field(default_factory=set)
    asked_rated: list[int] = field(default_factory=list)

    async def mentor_rating(self, mentor_id: int) -> tuple[float | None, int]:
        return (4.5, 2) if mentor_id == MENTOR_ID else (None, 0)

    async def has_rated(self, user_id: int, session_id: uuid.UUID) -> bool:
        self.asked_rated.append(user_id)
        return user_id in self.rated


@dataclass
class FakeInteractions:
    recorded: list[tuple[int, uuid.UUID, str]] = field(default_factory=list)
    broken: bool = False

    async def record(
        self, user_id: int, session_id: uuid.UUID | str, kind: str, value: float | None = None
    ) -> dict[str, Any] | None:
        if self.broken:
            raise RuntimeError("database gone")
        self.recorded.append((user_id, uuid.UUID(str(session_id)), kind))
        return {}


@dataclass
class World:
    session: Session
    sessions: FakeSessions
    bookings: FakeBookings
    feedback: FakeFeedback
    interactions: FakeInteractions

    @property
    def details(self) -> SessionDetails:
        return SessionDetails(
            sessions=self.sessions,
            bookings=self.bookings,
            feedback=self.feedback,
            interactions=self.interactions,
        )

    def book(self, status: BookingStatus, learner_id: int = LEARNER_ID) -> Booking:
        b = Booking(learner_id=learner_id, session_id=self.session.id, status=status)
        b.session = self.session
        self.bookings.by_learner[learner_id] = b
        return b

    async def detail(self, viewer: User | None) -> SessionDetail:
        return await self.details.for_viewer(self.session.id, viewer)


def world(status: SessionStatus = SessionStatus.SCHEDULED) -> World:
    s = session(status)
    return World(s, FakeSessions({s.id: s}), FakeBookings(), FakeFeedback(), FakeInteractions())


async def test_signed_out() -> None:
    w = world()
    d = await w.detail(None)
    assert d.session is w.session
    assert (d.rating_average, d.rating_count) == (4.5, 2)
    assert d.booking is None and not d.is_mentor and not d.can_manage and not d.can_start
    assert not d.feedback_given and not d.shows_room and d.room_id is None and not d.can_rate
    assert w.interactions.recorded == []


async def test_unknown_session_is_not_found() -> None:
    with pytest.raises(NotFound):
        await world().details.for_viewer(uuid.uuid4(), LEARNER)


@pytest.mark.parametrize(
    ("viewer", "counted"),
    [(LEARNER, True), (MENTOR, False), (OTHER_MENTOR, False), (ADMIN, False), (None, False)],
    ids=["learner", "its-mentor", "another-mentor", "admin", "signed-out"],
)
async def test_only_a_learner_reading_the_detail_counts_a_view(
    viewer: User | None, counted: bool
) -> None:
    w = world()
    await w.detail(viewer)
    expected = [(LEARNER_ID, w.session.id, "view")] if counted else []
    assert w.interactions.recorded == expected


async def test_the_detail_of_a_session_in_hand_counts_no_view() -> None:
    w = world()
    await w.details.of(w.session, LEARNER)
    assert w.interactions.recorded == []


async def test_a_view_that_cannot_be_stored_does_not_fail_the_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world()
    w.interactions.broken = True
    d = await w.detail(LEARNER)
    assert d.session is w.session
    assert "could not record a view" in caplog.text


@pytest.mark.parametrize(
    ("viewer", "manage", "start"),
    [(MENTOR, True, True), (ADMIN, True, False), (OTHER_MENTOR, False, False)],
    ids=["its-mentor", "admin", "another-mentor"],
)
async def test_managing_and_starting(viewer: User, manage: bool, start: bool) -> None:
    d = await world().detail(viewer)
    assert d.is_mentor is (viewer is MENTOR)
    assert d.can_manage is manage and d.can_start is start


async def test_the_mentor_cannot_start_outside_the_window() -> None:
    w = world()
    w.sessions.startable = False
    d = await w.detail(MENTOR)
    assert d.is_mentor and not d.can_start
    assert d.room_id == "room-42"  # the mentor always sees the room


@pytest.mark.parametrize(
    ("status", "room"),
    [
        (BookingStatus.PENDING, False),
        (BookingStatus.CONFIRMED, True),
        (BookingStatus.COMPLETED, True),
        (BookingStatus.CANCELLED, False),
    ],
)
async def test_the_room_id_is_for_attendees(status: BookingStatus, room: bool) -> None:
    w = world()
    booking = w.book(status)
    d = await w.detail(LEARNER)
    assert d.booking is booking
    assert d.shows_room is room
    assert d.room_id == ("room-42" if room else None)


@pytest.mark.parametrize(
    ("session_status", "booking_status", "can_rate"),
    [
        (SessionStatus.SCHEDULED, BookingStatus.CONFIRMED, False),
        (SessionStatus.ACTIVE, BookingStatus.CONFIRMED, True),
        (SessionStatus.COMPLETED, BookingStatus.COMPLETED, True),
        (SessionStatus.COMPLETED, BookingStatus.PENDING, False),
        (SessionStatus.CANCELLED, BookingStatus.CANCELLED, False),
    ],
)
async def test_who_may_rate(
    session_status: SessionStatus, booking_status: BookingStatus, can_rate: bool
) -> None:
    w = world(session_status)
    w.book(booking_status)
    assert (await w.detail(LEARNER)).can_rate is can_rate


async def test_feedback_given_is_asked_only_of_a_viewer_with_a_booking() -> None:
    w = world(SessionStatus.COMPLETED)
    assert not (await w.detail(LEARNER)).feedback_given
    assert w.feedback.asked_rated == []  # no booking: nothing to ask
    w.book(BookingStatus.COMPLETED)
    w.feedback.rated.add(LEARNER_ID)
    assert (await w.detail(LEARNER)).feedback_given
    assert w.feedback.asked_rated == [LEARNER_ID]


def test_the_detail_is_frozen() -> None:
    d = SessionDetail(
        session=session(),
        rating_average=None,
        rating_count=0,
        booking=None,
        is_mentor=False,
        can_manage=False,
        can_start=False,
        feedback_given=False,
        shows_room=False,
    )
    with pytest.raises(AttributeError):
        d.is_mentor = True  # type: ignore[misc]  # the point: assignment is refused
