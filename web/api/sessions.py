"""REST endpoints: sessions (search, create, the detail, start/end/cancel, the calendar entry).

Bookings, feedback, chat history, stats and admin listings of sessions have their own modules;
they share ``SESSION_PATH`` and ``session_id_of`` from here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import urlsplit

from aiohttp import web
from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from config.settings import SessionSettings
from control.errors import Forbidden
from control.ids import parse_session_id
from control.limits import (
    DESCRIPTION_MAX,
    MAX_PRICE,
    SKILL_MAX_CHARS,
    SKILLS_MAX,
    TITLE_MAX,
    TITLE_MIN,
)
from control.models import Role, Session, SessionStatus, User
from control.services.details import SessionDetail
from control.services.sessions import SessionFilters
from web import ics
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import BookingOut, SessionOut, SessionPage, values_of
from web.cache import CATALOGUE
from web.keys import PLATFORM
from web.security import public_base_url

api = ApiRegistry()
SESSION_PATH = "/api/sessions/{id}"
TAGS = ["sessions"]


def session_id_of(request: web.Request) -> uuid.UUID:
    """The session id in the path (404 when it is not one)."""
    return parse_session_id(request.match_info["id"])


# --------------------------------------------------------------------------- input models


def _settings_bound(field: str, bound: type[Ge] | type[Le]) -> int:
    """The hard bound ``[sessions]`` itself puts on a configurable limit (``SessionSettings``):
    the schema refuses what no configuration allows, the service what this one does not."""
    for rule in SessionSettings.model_fields[field].metadata:
        if isinstance(rule, bound):
            return cast(int, rule.ge if isinstance(rule, Ge) else rule.le)
    raise LookupError(f"SessionSettings.{field} has no {bound.__name__} bound")


DURATION_MIN = _settings_bound("min_duration_minutes", Ge)
DURATION_MAX = _settings_bound("max_duration_minutes", Le)
PARTICIPANTS_MAX = _settings_bound("max_participants", Le)


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
Money = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, decimal_places=2, max_digits=8)]
Skill = Annotated[str, Field(min_length=1, max_length=SKILL_MAX_CHARS)]
if TYPE_CHECKING:
    StatusName = str
else:
    StatusName = values_of(SessionStatus)


# Bounds here are the hard ones; ``SessionService.create`` applies the configured ``[sessions]``
# duration and seat limits with the same ``validation_error`` answer.
class SessionCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=TITLE_MIN, max_length=TITLE_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    schedule: IsoDateTime
    duration: StrictInt = Field(ge=DURATION_MIN, le=DURATION_MAX, description="minutes")
    max_participants: StrictInt = Field(ge=1, le=PARTICIPANTS_MAX, description="learner seats")
    skills_required: list[Skill] = Field(min_length=1, max_length=SKILLS_MAX)
    price: Money = Decimal(0)


class SessionListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: str | None = Field(default=None, max_length=SKILL_MAX_CHARS)
    q: str | None = Field(default=None, max_length=TITLE_MAX)
    mentor: str | None = Field(default=None, max_length=150, description="user id or username")
    status: StatusName | None = None
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


# --------------------------------------------------------------------------- output models


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

    @classmethod
    def of_detail(cls, d: SessionDetail) -> SessionDetailOut:
        s = d.session
        return cls(
            **SessionOut.fields_of(s),
            started_at=s.started_at,
            ended_at=s.ended_at,
            mentor_rating=RatingOut(average=d.rating_average, count=d.rating_count),
            is_mentor=d.is_mentor,
            can_start=d.can_start,
            my_booking=BookingOut.of(d.booking) if d.booking else None,
            my_feedback_given=d.feedback_given,
            meeting_room_id=d.room_id,
        )


async def _answer(request: web.Request, session: Session, me: User) -> SessionDetailOut:
    """The detail of a session ``me`` just created or acted on (no view counted)."""
    return SessionDetailOut.of_detail(await request.app[PLATFORM].details.of(session, me))


# --------------------------------------------------------------------------- endpoints


@api.route("GET", "/api/sessions/", query=SessionListQuery, response=SessionPage, tags=TAGS)
async def list_sessions(
    request: web.Request, call: ApiCall[None, SessionListQuery]
) -> web.Response:
    """Search sessions (cancelled ones only when asked for by status)."""
    q = call.query
    sessions = request.app[PLATFORM].sessions

    async def load() -> bytes:
        # The same for every viewer: the page's JSON is kept whole, serialised once.
        page = await sessions.search(q.filters(), page=q.page, per_page=q.per_page)
        return SessionPage.of(page, SessionOut.of).model_dump_json().encode()

    key = ("api:sessions", q.filters(), q.page, q.per_page)
    body = await request.app[CATALOGUE].get_or_load(key, load)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


@api.route(
    "POST",
    "/api/sessions/create/",
    body=SessionCreateIn,
    response=SessionDetailOut,
    status=201,
    auth="mentor",
    tags=TAGS,
)
async def create_session(
    request: web.Request, call: ApiCall[SessionCreateIn, None]
) -> SessionDetailOut:
    """A mentor schedules a session; the mentor's followers are notified."""
    b = call.body
    if call.me.role != Role.MENTOR:  # the registry lets admins through every role gate
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
    return await _answer(request, session, call.me)


@api.route("GET", SESSION_PATH + "/", response=SessionDetailOut, tags=TAGS, errors=[404])
async def session_detail(request: web.Request, call: ApiCall[None, None]) -> SessionDetailOut:
    """Details, seats left, the mentor's rating and the viewer's booking."""
    details = request.app[PLATFORM].details
    session_id = session_id_of(request)
    if call.user is not None:  # personal: the viewer's booking, a view counted
        return SessionDetailOut.of_detail(await details.for_viewer(session_id, call.user))

    async def load() -> SessionDetailOut:
        return SessionDetailOut.of_detail(await details.for_viewer(session_id, None))

    return await request.app[CATALOGUE].get_or_load(("api:session", session_id), load)


# Start, end and cancel: the state machine's moves (SessionService), each answered with the
# session's detail as the actor now sees it.


@api.route(
    "POST",
    SESSION_PATH + "/start/",
    response=SessionDetailOut,
    auth="user",
    tags=TAGS,
    errors=[403, 404, 409],
)
async def start_session(request: web.Request, call: ApiCall[None, None]) -> SessionDetailOut:
    """The session's mentor opens the room (from the start window on)."""
    session = await request.app[PLATFORM].sessions.start(call.me, session_id_of(request))
    return await _answer(request, session, call.me)


@api.route(
    "POST",
    SESSION_PATH + "/end/",
    response=SessionDetailOut,
    auth="user",
    tags=TAGS,
    errors=[403, 404, 409],
)
async def end_session(request: web.Request, call: ApiCall[None, None]) -> SessionDetailOut:
    """The session's mentor closes the room; attendees' bookings complete."""
    session = await request.app[PLATFORM].sessions.end(call.me, session_id_of(request))
    return await _answer(request, session, call.me)


@api.route(
    "POST",
    SESSION_PATH + "/cancel/",
    response=SessionDetailOut,
    auth="user",
    tags=TAGS,
    errors=[403, 404, 409],
)
async def cancel_session(request: web.Request, call: ApiCall[None, None]) -> SessionDetailOut:
    """The session's mentor or an admin cancels a scheduled session."""
    session = await request.app[PLATFORM].sessions.cancel(call.me, session_id_of(request))
    return await _answer(request, session, call.me)


@api.route(
    "GET",
    SESSION_PATH + "/calendar.ics",
    auth="user",
    tags=TAGS,
    errors=[403, 404],
    response=str,
    content_type="text/calendar",
)
async def session_calendar(request: web.Request, call: ApiCall[None, None]) -> web.Response:
    """An iCalendar event for the session's mentor or a booked learner."""
    platform = request.app[PLATFORM]
    session = await platform.sessions.get(session_id_of(request))
    me = call.me
    if not (me.is_admin or me.id == session.mentor_id):
        booking = await platform.bookings.booking_of(me.id, session.id)
        if booking is None or not booking.holds_seat:  # cancelled
            raise Forbidden("only the mentor and booked learners get the calendar entry")
    base = public_base_url(request)  # never the request's own Host in production
    body = ics.event(
        uid=ics.uid_for(session.id, urlsplit(base).netloc),
        start=session.schedule,
        end=session.ends_at,
        title=session.title,
        description=session.description,
        url=f"{base}/sessions/{session.id}/",
        cancelled=session.status == SessionStatus.CANCELLED,
    )
    return web.Response(
        body=body.encode(),
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="session-{session.id}.ics"'},
    )
