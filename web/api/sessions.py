"""REST endpoints: sessions, bookings, payments, feedback, chat history, calendar, stats and
admin session management."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
)

from control.errors import Forbidden
from control.models import Booking, Feedback, Session, User
from control.services.bookings import parse_booking_id
from control.services.payments import PaymentStart
from control.services.sessions import SessionFilters, parse_session_id
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import PageOut, UserPublic
from web.keys import PLATFORM
from web.security import public_base_url

api = ApiRegistry()
SESSION_PATH = "/api/sessions/{id}"
BOOKING_PATH = "/api/bookings/{booking_id}"

# --------------------------------------------------------------------------- input models


def _utc(value: datetime) -> datetime:
    """Normalise to UTC; naive query datetimes are taken as UTC."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range") from None


def _require_text(value: Any) -> Any:
    # pydantic would also accept Unix timestamps; the contract is an ISO 8601 string.
    if not isinstance(value, str):
        raise ValueError("an ISO 8601 datetime string with a timezone")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a timezone, e.g. 2030-01-31T18:00:00Z")
    return _utc(value)


IsoDateTime = Annotated[datetime, BeforeValidator(_require_text), AfterValidator(_aware)]
QueryDateTime = Annotated[datetime, AfterValidator(_utc)]
Money = Annotated[Decimal, Field(ge=0, le=100000, decimal_places=2, max_digits=8)]
Skill = Annotated[str, Field(min_length=1, max_length=60)]


class SessionCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=3, max_length=200)
    description: str = Field(default="", max_length=10000)
    schedule: IsoDateTime
    duration: StrictInt = Field(ge=15, le=480, description="minutes")
    max_participants: StrictInt = Field(ge=1, le=10, description="learner seats")
    skills_required: list[Skill] = Field(min_length=1, max_length=20)
    price: Money = Decimal(0)


class SessionListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: str | None = Field(default=None, max_length=60)
    q: str | None = Field(default=None, max_length=200)
    mentor: str | None = Field(default=None, max_length=150, description="user id or username")
    status: Literal["scheduled", "active", "completed", "cancelled"] | None = None
    date_from: QueryDateTime | None = None
    date_to: QueryDateTime | None = None
    price_min: Money | None = None
    price_max: Money | None = None
    free_only: bool = False
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)

    def filters(self, *, include_cancelled: bool = False) -> SessionFilters:
        return SessionFilters(
            skill=self.skill,
            q=self.q,
            mentor=self.mentor,
            status=self.status,
            date_from=self.date_from,
            date_to=self.date_to,
            price_min=self.price_min,
            price_max=self.price_max,
            free_only=self.free_only,
            include_cancelled=include_cancelled,
        )


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: StrictInt = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)


class ChatQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=200, ge=1, le=1000)


# --------------------------------------------------------------------------- output models


class MentorSummary(BaseModel):
    id: int
    username: str
    display_name: str
    profile_image: str | None

    @classmethod
    def of(cls, user: User) -> MentorSummary:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            profile_image=f"/media/{user.profile_image}" if user.profile_image else None,
        )


class SessionOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    mentor_id: int
    mentor: MentorSummary
    schedule: datetime
    duration: int
    end_time: datetime
    max_participants: int
    current_participants: int
    seats_left: int
    status: str
    skills_required: list[str]
    price: float
    is_free: bool
    created_at: datetime

    @classmethod
    def fields_of(cls, s: Session) -> dict[str, Any]:
        return {
            "id": s.id,
            "title": s.title,
            "description": s.description,
            "mentor_id": s.mentor_id,
            "mentor": MentorSummary.of(s.mentor),
            "schedule": s.schedule,
            "duration": s.duration,
            "end_time": s.schedule + timedelta(minutes=s.duration),
            "max_participants": s.max_participants,
            "current_participants": s.current_participants,
            "seats_left": s.seats_left,
            "status": s.status,
            "skills_required": list(s.skills_required or []),
            "price": float(s.price),
            "is_free": s.price == 0,
            "created_at": s.created_at,
        }

    @classmethod
    def of(cls, s: Session) -> SessionOut:
        return cls(**cls.fields_of(s))


class SessionPage(PageOut[SessionOut]):
    """A page of sessions."""


class SessionBrief(BaseModel):
    id: uuid.UUID
    title: str
    schedule: datetime
    duration: int
    status: str
    price: float
    mentor: MentorSummary

    @classmethod
    def of(cls, s: Session) -> SessionBrief:
        return cls(
            id=s.id,
            title=s.title,
            schedule=s.schedule,
            duration=s.duration,
            status=s.status,
            price=float(s.price),
            mentor=MentorSummary.of(s.mentor),
        )


class PaymentOut(BaseModel):
    provider: str
    payment_id: str | None
    instructions: str
    expires_at: datetime
    redirect_url: str | None = Field(
        default=None, description="where to send the learner to pay (gateway providers)"
    )


class BookingOut(BaseModel):
    id: int
    session_id: uuid.UUID
    learner_id: int
    status: str
    payment_status: str
    payment_id: str | None
    payment_expires_at: datetime | None
    amount: float
    booking_time: datetime
    joined_at: datetime | None
    left_at: datetime | None
    session: SessionBrief
    payment: PaymentOut | None = None

    @classmethod
    def of(cls, b: Booking, start: PaymentStart | None = None, provider: str = "") -> BookingOut:
        return cls(
            id=b.id,
            session_id=b.session_id,
            learner_id=b.learner_id,
            status=b.status,
            payment_status=b.payment_status,
            payment_id=b.payment_id,
            payment_expires_at=b.payment_expires_at,
            amount=float(b.amount),
            booking_time=b.booking_time,
            joined_at=b.joined_at,
            left_at=b.left_at,
            session=SessionBrief.of(b.session),
            payment=(
                PaymentOut(
                    provider=provider,
                    payment_id=start.payment_id,
                    instructions=start.instructions,
                    expires_at=start.expires_at,
                    redirect_url=start.redirect_url,
                )
                if start
                else None
            ),
        )


class MyBookingsOut(BaseModel):
    upcoming: list[BookingOut]
    past: list[BookingOut]


class RatingOut(BaseModel):
    average: float | None
    count: int


class SessionDetailOut(SessionOut):
    started_at: datetime | None
    ended_at: datetime | None
    mentor_rating: RatingOut
    is_mentor: bool
    can_start: bool
    my_booking: BookingOut | None
    my_feedback_given: bool
    meeting_room_id: str | None = Field(description="only for the mentor and booked learners")


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


class FeedbackOut(BaseModel):
    id: int
    session_id: uuid.UUID
    user: MentorSummary
    rating: int
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, fb: Feedback) -> FeedbackOut:
        return cls(
            id=fb.id,
            session_id=fb.session_id,
            user=MentorSummary.of(fb.user),
            rating=fb.rating,
            comment=fb.comment,
            created_at=fb.created_at,
        )


class ChatMessageOut(BaseModel):
    id: int
    user_id: int
    display_name: str
    text: str
    created_at: datetime


class SessionSummaryOut(BaseModel):
    id: str
    title: str
    schedule: datetime
    status: str
    duration: int


class ActivityOut(BaseModel):
    kind: str
    session_id: str
    title: str
    value: float | None
    at: datetime


class LearnerStatsOut(BaseModel):
    bookings_upcoming: int
    bookings_completed: int
    bookings_total: int
    hours_learned: float
    next_sessions: list[SessionSummaryOut]
    recent_activity: list[ActivityOut]


class SessionEarningOut(SessionSummaryOut):
    bookings: int
    amount: float


class MonthEarningOut(BaseModel):
    month: str
    amount: float


class AttendanceOut(SessionSummaryOut):
    booked: int
    joined: int


class MentorStatsOut(BaseModel):
    currency: str
    earnings_total: float
    earnings_per_session: list[SessionEarningOut]
    earnings_per_month: list[MonthEarningOut]
    sessions_by_status: dict[str, int]
    rating_average: float | None
    rating_count: int
    rating_distribution: dict[str, int]
    attendance: list[AttendanceOut]
    pending_payments: int


class TopMentorOut(BaseModel):
    id: int
    username: str
    bookings: int
    rating: float | None


class AdminStatsOut(BaseModel):
    currency: str
    users_by_role: dict[str, int]
    sessions_by_status: dict[str, int]
    bookings_by_status: dict[str, int]
    revenue: float
    top_mentors: list[TopMentorOut]


class StatsOut(BaseModel):
    role: str
    learner: LearnerStatsOut | None = None
    mentor: MentorStatsOut | None = None
    admin: AdminStatsOut | None = None


# --------------------------------------------------------------------------- helpers


def _sid(request: web.Request) -> uuid.UUID:
    return parse_session_id(request.match_info["id"])


def _bid(request: web.Request) -> int:
    return parse_booking_id(request.match_info["booking_id"])


async def _detail(request: web.Request, session: Session, viewer: User | None) -> SessionDetailOut:
    platform = request.app[PLATFORM]
    avg, count = await platform.feedback.mentor_rating(session.mentor_id)
    booking = await platform.bookings.booking_of(viewer.id, session.id) if viewer else None
    is_mentor = viewer is not None and viewer.id == session.mentor_id
    inside = is_mentor or (booking is not None and booking.status in ("confirmed", "completed"))
    rated = (
        await platform.feedback.has_rated(viewer.id, session.id)
        if viewer is not None and booking is not None
        else False
    )
    return SessionDetailOut(
        **SessionOut.fields_of(session),
        started_at=session.started_at,
        ended_at=session.ended_at,
        mentor_rating=RatingOut(average=avg, count=count),
        is_mentor=is_mentor,
        can_start=is_mentor and platform.sessions.can_start(session),
        my_booking=BookingOut.of(booking) if booking else None,
        my_feedback_given=rated,
        meeting_room_id=session.meeting_room_id if inside else None,
    )


# --------------------------------------------------------------------------- sessions


@api.route("GET", "/api/sessions/", query=SessionListQuery, response=SessionPage, tags=["sessions"])
async def list_sessions(request: web.Request, call: ApiCall[None, SessionListQuery]) -> SessionPage:
    """Search sessions (cancelled ones only when asked for by status)."""
    q = call.query
    sessions = request.app[PLATFORM].sessions
    page = await sessions.search(q.filters(), page=q.page, per_page=q.per_page)
    return SessionPage.of(page, SessionOut.of)


@api.route(
    "POST",
    "/api/sessions/create/",
    body=SessionCreateIn,
    response=SessionDetailOut,
    status=201,
    auth="mentor",
    tags=["sessions"],
)
async def create_session(
    request: web.Request, call: ApiCall[SessionCreateIn, None]
) -> SessionDetailOut:
    """A mentor schedules a session; the mentor's followers are notified."""
    b = call.body
    if call.me.role != "mentor":  # the registry lets admins through every role gate
        raise Forbidden("only mentors can create sessions")
    session = await request.app[PLATFORM].sessions.create(
        call.me,
        title=b.title,
        description=b.description,
        schedule=b.schedule,
        duration=b.duration,
        max_participants=b.max_participants,
        skills_required=b.skills_required,
        price=b.price,
    )
    return await _detail(request, session, call.me)


@api.route("GET", SESSION_PATH + "/", response=SessionDetailOut, tags=["sessions"], errors=[404])
async def session_detail(request: web.Request, call: ApiCall[None, None]) -> SessionDetailOut:
    """Details, seats left, the mentor's rating and the viewer's booking."""
    platform = request.app[PLATFORM]
    session = await platform.sessions.get(_sid(request))
    if call.user is not None and call.user.id != session.mentor_id:
        await platform.interactions.record(call.user.id, session.id, "view")
    return await _detail(request, session, call.user)


def _lifecycle(action: str, doc: str) -> None:
    async def handler(request: web.Request, call: ApiCall[None, None]) -> SessionDetailOut:
        service = request.app[PLATFORM].sessions
        session = await getattr(service, action)(call.me, _sid(request))
        return await _detail(request, session, call.me)

    handler.__name__ = f"{action}_session"
    handler.__doc__ = doc
    api.route(
        "POST",
        f"{SESSION_PATH}/{action}/",
        response=SessionDetailOut,
        auth="user",
        tags=["sessions"],
        errors=[403, 404, 409],
    )(handler)


_lifecycle("start", "The session's mentor opens the room (from the start window on).")
_lifecycle("end", "The session's mentor closes the room; attendees' bookings complete.")
_lifecycle("cancel", "The session's mentor or an admin cancels a scheduled session.")


@api.route(
    "GET",
    SESSION_PATH + "/calendar.ics",
    auth="user",
    tags=["sessions"],
    errors=[403, 404],
    response=str,
    content_type="text/calendar",
)
async def session_calendar(request: web.Request, call: ApiCall[None, None]) -> web.Response:
    """An iCalendar event for the session's mentor or a booked learner."""
    platform = request.app[PLATFORM]
    session = await platform.sessions.get(_sid(request))
    me = call.me
    if not (me.is_admin or me.id == session.mentor_id):
        booking = await platform.bookings.booking_of(me.id, session.id)
        if booking is None or booking.status == "cancelled":
            raise Forbidden("only the mentor and booked learners get the calendar entry")
    base = public_base_url(request)  # never the request's own Host in production
    body = ics_event(session, f"{base}/sessions/{session.id}/", urlsplit(base).netloc)
    return web.Response(
        body=body.encode(),
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="session-{session.id}.ics"'},
    )


def _ics_escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _fold(line: str) -> str:
    """RFC 5545 §3.1: lines longer than 75 octets continue on lines starting with a space."""
    out, current = [], b""
    for ch in line:
        enc = ch.encode()
        if len(current) + len(enc) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += enc
    out.append(current.decode())
    return "\r\n ".join(out)


def ics_event(session: Session, url: str, host: str) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    start = session.schedule.astimezone(UTC)
    end = start + timedelta(minutes=session.duration)
    status = {"cancelled": "CANCELLED"}.get(session.status, "CONFIRMED")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//PeerLearn//Sessions//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{session.id}@{host.split(':')[0] or 'peerlearn'}",
        f"DTSTAMP:{datetime.now(UTC).strftime(fmt)}",
        f"DTSTART:{start.strftime(fmt)}",
        f"DTEND:{end.strftime(fmt)}",
        f"SUMMARY:{_ics_escape(session.title)}",
        f"DESCRIPTION:{_ics_escape(session.description)}",
        f"URL:{url}",
        f"STATUS:{status}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(_fold(line) + "\r\n" for line in lines)


# --------------------------------------------------------------------------- bookings


@api.route(
    "POST",
    SESSION_PATH + "/book/",
    response=BookingOut,
    status=201,
    auth="learner",
    tags=["bookings"],
    errors=[404, 409],
)
async def book_session(request: web.Request, call: ApiCall[None, None]) -> BookingOut:
    """A learner books a seat (paid sessions: the seat is held until payment)."""
    platform = request.app[PLATFORM]
    booking, start = await platform.bookings.book_with_payment(call.me, _sid(request))
    return BookingOut.of(booking, start, platform.payments.name)


@api.route(
    "GET",
    SESSION_PATH + "/bookings/",
    response=list[AttendeeOut],
    auth="user",
    tags=["bookings"],
    errors=[403, 404],
)
async def session_bookings(request: web.Request, call: ApiCall[None, None]) -> list[AttendeeOut]:
    """Attendee list for the session's mentor or an admin."""
    platform = request.app[PLATFORM]
    session = await platform.sessions.get(_sid(request))
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


@api.route("GET", "/api/bookings/", response=MyBookingsOut, auth="user", tags=["bookings"])
async def my_bookings(request: web.Request, call: ApiCall[None, None]) -> MyBookingsOut:
    """The current user's bookings: upcoming (soonest first) and past (latest first)."""
    now = datetime.now(UTC)
    upcoming: list[BookingOut] = []
    past: list[BookingOut] = []
    for b in await request.app[PLATFORM].bookings.for_learner(call.me.id):
        s = b.session
        ends = s.schedule + timedelta(minutes=s.duration)
        live = b.status in ("pending", "confirmed") and s.status in ("scheduled", "active")
        (upcoming if live and ends >= now else past).append(BookingOut.of(b))
    past.reverse()
    return MyBookingsOut(upcoming=upcoming, past=past)


@api.route(
    "GET", "/api/bookings/pending/", response=list[BookingOut], auth="mentor", tags=["bookings"]
)
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
    tags=["bookings"],
    errors=[403, 404, 409],
)
async def cancel_booking(request: web.Request, call: ApiCall[None, None]) -> BookingOut:
    """The booking's learner or an admin cancels it; the seat is freed."""
    return BookingOut.of(await request.app[PLATFORM].bookings.cancel(call.me, _bid(request)))


@api.route(
    "POST",
    BOOKING_PATH + "/mark-paid/",
    response=BookingOut,
    auth="user",
    tags=["bookings"],
    errors=[403, 404, 409],
)
async def mark_paid(request: web.Request, call: ApiCall[None, None]) -> BookingOut:
    """The session's mentor or an admin confirms a payment through the payment provider."""
    return BookingOut.of(await request.app[PLATFORM].bookings.mark_paid(call.me, _bid(request)))


# --------------------------------------------------------------------------- feedback, chat


@api.route(
    "POST",
    SESSION_PATH + "/feedback/",
    body=FeedbackIn,
    response=FeedbackOut,
    status=201,
    auth="user",
    tags=["feedback"],
    errors=[403, 404, 409],
)
async def submit_feedback(request: web.Request, call: ApiCall[FeedbackIn, None]) -> FeedbackOut:
    """An attendee rates a started or completed session 1–5, once."""
    fb = await request.app[PLATFORM].feedback.submit(
        call.me, _sid(request), rating=call.body.rating, comment=call.body.comment
    )
    return FeedbackOut.of(fb)


@api.route(
    "GET",
    SESSION_PATH + "/feedback/",
    response=list[FeedbackOut],
    tags=["feedback"],
    errors=[404],
)
async def list_feedback(request: web.Request, call: ApiCall[None, None]) -> list[FeedbackOut]:
    """Public ratings of a session, newest first."""
    return [
        FeedbackOut.of(f) for f in await request.app[PLATFORM].feedback.for_session(_sid(request))
    ]


@api.route(
    "GET",
    SESSION_PATH + "/chat/",
    query=ChatQuery,
    response=list[ChatMessageOut],
    auth="user",
    tags=["sessions"],
    errors=[403, 404],
)
async def chat_history(
    request: web.Request, call: ApiCall[None, ChatQuery]
) -> list[ChatMessageOut]:
    """The room's chat, for whoever may be in the room (mentor, confirmed learners, admins;
    not someone removed from it), also before and after the session."""
    platform = request.app[PLATFORM]
    session_id = _sid(request)
    await platform.bookings.room_role(call.me, session_id)
    return [
        ChatMessageOut.model_validate(m)
        for m in await platform.chat.history(session_id, limit=call.query.limit)
    ]


# --------------------------------------------------------------------------- stats, admin


@api.route("GET", "/api/stats/overview/", response=StatsOut, auth="user", tags=["stats"])
async def stats_overview(request: web.Request, call: ApiCall[None, None]) -> StatsOut:
    """Dashboard figures for the current user's role."""
    stats = request.app[PLATFORM].stats
    me = call.me
    if me.role == "learner":
        return StatsOut(role=me.role, learner=LearnerStatsOut(**await stats.learner_overview(me)))
    if me.role == "mentor":
        return StatsOut(role=me.role, mentor=MentorStatsOut(**await stats.mentor_overview(me)))
    return StatsOut(role=me.role, admin=AdminStatsOut(**await stats.admin_overview()))


@api.route(
    "GET",
    "/api/admin/sessions/",
    query=SessionListQuery,
    response=SessionPage,
    auth="admin",
    tags=["admin"],
)
async def admin_sessions(
    request: web.Request, call: ApiCall[None, SessionListQuery]
) -> SessionPage:
    """All sessions including cancelled ones (cancel through /api/sessions/{id}/cancel/)."""
    q = call.query
    page = await request.app[PLATFORM].sessions.search(
        q.filters(include_cancelled=True), page=q.page, per_page=q.per_page
    )
    return SessionPage.of(page, SessionOut.of)


