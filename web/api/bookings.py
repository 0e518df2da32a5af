"""REST endpoints: booking a seat, attendee lists, my bookings, cancelling, confirming payment."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel

from control.errors import Forbidden
from control.ids import parse_booking_id
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import BookingOut, UserPublic
from web.api.sessions import SESSION_PATH, session_id_of
from web.keys import PLATFORM

api = ApiRegistry()
BOOKING_PATH = "/api/bookings/{booking_id}"
TAGS = ["bookings"]


def booking_id_of(request: web.Request) -> int:
    """The booking id in the path (404 when it is not one)."""
    return parse_booking_id(request.match_info["booking_id"])


class MyBookingsOut(BaseModel):
    upcoming: list[BookingOut]
    past: list[BookingOut]


class AttendeeOut(BaseModel):
    booking_id: int
    learner: UserPublic
    status: str
    payment_status: str
    payment_id: str | None
    amount: float
    booking_time: datetime
    joined_at: datetime | None
    left_at: datetime | None
    is_ready: bool


@api.route(
    "POST",
    SESSION_PATH + "/book/",
    response=BookingOut,
    status=201,
    auth="learner",
    tags=TAGS,
    errors=[404, 409],
)
async def book_session(request: web.Request, call: ApiCall[None, None]) -> BookingOut:
    """A learner books a seat (paid sessions: the seat is held until payment)."""
    platform = request.app[PLATFORM]
    booking, start = await platform.bookings.book_with_payment(call.me, session_id_of(request))
    return BookingOut.of(booking, start, platform.payments.name)


@api.route(
    "GET",
    SESSION_PATH + "/bookings/",
    response=list[AttendeeOut],
    auth="user",
    tags=TAGS,
    errors=[403, 404],
)
async def session_bookings(request: web.Request, call: ApiCall[None, None]) -> list[AttendeeOut]:
    """Attendee list for the session's mentor or an admin."""
    platform = request.app[PLATFORM]
    session = await platform.sessions.get(session_id_of(request))
    if not (call.me.is_admin or call.me.id == session.mentor_id):
        raise Forbidden("only the session's mentor or an admin sees the attendees")
    return [
        AttendeeOut(
            booking_id=b.id,
            learner=UserPublic.of(b.learner),
            status=b.status,
            payment_status=b.payment_status,
            payment_id=b.payment_id,
            amount=float(b.amount),
            booking_time=b.booking_time,
            joined_at=b.joined_at,
            left_at=b.left_at,
            is_ready=b.is_ready,
        )
        for b in await platform.bookings.for_session(session.id)
    ]


@api.route("GET", "/api/bookings/", response=MyBookingsOut, auth="user", tags=TAGS)
async def my_bookings(request: web.Request, call: ApiCall[None, None]) -> MyBookingsOut:
    """The current user's bookings: upcoming (soonest first) and past (latest first)."""
    now = datetime.now(UTC)
    upcoming: list[BookingOut] = []
    past: list[BookingOut] = []
    for b in await request.app[PLATFORM].bookings.for_learner(call.me.id):
        (upcoming if b.is_upcoming(now) else past).append(BookingOut.of(b))
    past.reverse()
    return MyBookingsOut(upcoming=upcoming, past=past)


@api.route("GET", "/api/bookings/pending/", response=list[BookingOut], auth="mentor", tags=TAGS)
async def pending_bookings(request: web.Request, call: ApiCall[None, None]) -> list[BookingOut]:
    """Bookings of my sessions that await payment confirmation (mentors)."""
    return [
        BookingOut.of(b)
        for b in await request.app[PLATFORM].bookings.pending_for_mentor(call.me.id)
    ]


@api.route(
    "POST",
    BOOKING_PATH + "/cancel/",
    response=BookingOut,
    auth="user",
    tags=TAGS,
    errors=[403, 404, 409],
)
async def cancel_booking(request: web.Request, call: ApiCall[None, None]) -> BookingOut:
    """The booking's learner or an admin cancels it; the seat is freed."""
    booking = await request.app[PLATFORM].bookings.cancel(call.me, booking_id_of(request))
    return BookingOut.of(booking)


@api.route(
    "POST",
    BOOKING_PATH + "/mark-paid/",
    response=BookingOut,
    auth="user",
    tags=TAGS,
    errors=[403, 404, 409],
)
async def mark_paid(request: web.Request, call: ApiCall[None, None]) -> BookingOut:
    """The session's mentor or an admin confirms a payment through the payment provider."""
    booking = await request.app[PLATFORM].bookings.mark_paid(call.me, booking_id_of(request))
    return BookingOut.of(booking)
