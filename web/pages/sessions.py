"""Session pages: browse with filters, details with booking, actions, and the feedback form."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from control.errors import DomainError, Forbidden, ValidationFailed
from control.models import BookingStatus, Feedback, Session, SessionStatus, User, session_status
from control.services.common import Page
from control.services.details import SessionDetail
from control.services.sessions import SessionFilters, SessionService
from web.cache import CATALOGUE
from web.keys import SETTINGS
from web.pages.common import (
    field_errors,
    form_data,
    parse_int,
    parse_uuid,
    platform_of,
    query_int,
    redirect,
    require_user,
    safe_next,
)
from web.pages.render import render, render_public
from web.security import current_user

routes = web.RouteTableDef()

PER_PAGE = 12
#: transitional, for web/pages/dashboard.py until it uses ``SessionStatus`` itself
#: the listing's "from now on" moves in steps of this many seconds (a divisor of 60; see
#: ``session_filters``)
LISTING_CLOCK_SECONDS = 10
#: a page number past this is no page of any catalogue (and would overflow the database)
MAX_PAGE = 100_000


def _date(value: str, *, end: bool = False) -> datetime | None:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    except ValueError:
        return None
    except OverflowError:  # 9999-12-31 as an end date: a 400, not a 500
        raise ValidationFailed("that date is out of range", code="invalid_date") from None


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value.strip() else None
    except InvalidOperation:
        return None


def session_filters(query: Any) -> tuple[dict[str, str], SessionFilters]:
    """The browse form's values and the service's ``SessionFilters`` built from them.

    With no status chosen the list shows what a learner can still book: scheduled sessions
    from now on ("live" and past ones are a status choice away).
    """
    values = {
        k: query.get(k, "").strip()
        for k in ("q", "skill", "status", "date_from", "date_to", "max_price", "free", "mentor")
    }
    status = session_status(values["status"])
    date_from = _date(values["date_from"])
    if status is None and values["status"] != "any":
        status = SessionStatus.SCHEDULED
        # In steps of LISTING_CLOCK_SECONDS: the filters are the catalogue cache's key
        # (``web.cache``), so each step costs every listing one miss, not each second. A
        # session whose start passed less than a step ago may still show; booking it is
        # refused then (``session_past``), as it is once a page sat open for that long.
        now = datetime.now(UTC).replace(microsecond=0)
        now -= timedelta(seconds=now.second % LISTING_CLOCK_SECONDS)
        date_from = max(date_from or now, now)
    filters = SessionFilters(
        q=values["q"] or None,
        skill=values["skill"] or None,
        status=status,
        date_from=date_from,
        date_to=_date(values["date_to"], end=True),
        price_max=_decimal(values["max_price"]),
        free_only=bool(values["free"]),
        mentor=values["mentor"] or None,
    )
    return values, filters


BrowseQuery = tuple[dict[str, str], SessionFilters, int]


def browse_query(request: web.Request) -> BrowseQuery:
    """The browse form's values, the filters and the page number of this request."""
    values, filters = session_filters(request.query)
    page = query_int(request, "page")
    if page > MAX_PAGE:
        raise ValidationFailed("that page number is out of range", code="invalid_page")
    return values, filters, page


async def browse_context(request: web.Request, query: BrowseQuery | None = None) -> dict[str, Any]:
    """Shared by /sessions/ and the learner dashboard's Browse tab."""
    values, filters, page = query or browse_query(request)
    sessions = platform_of(request).sessions

    async def load() -> Page[Session]:
        return await sessions.search(filters, page=page, per_page=PER_PAGE)

    result = await request.app[CATALOGUE].get_or_load(("page:sessions", filters, page), load)
    query_values = {k: v for k, v in values.items() if v}
    return {"filters": values, "result": result, "query": query_values}


@routes.get("/sessions/")
async def browse(request: web.Request) -> web.StreamResponse:
    query = browse_query(request)
    _, filters, page = query
    return await render_public(
        request, "sessions/list.html", (filters, page), lambda: browse_context(request, query)
    )


@routes.get("/sessions/{id}/")
async def details(request: web.Request) -> web.StreamResponse:
    """The session's page, from the same read model as the API's detail (``SessionDetail``),
    plus the reviews and, for its mentor or an admin, the attendee list."""
    platform = platform_of(request)
    session_id = parse_uuid(request.match_info["id"])
    viewer = current_user(request)

    async def public_part() -> tuple[SessionDetail, list[Feedback]]:
        detail = await platform.details.for_viewer(session_id, viewer)
        reviews = await platform.feedback.for_session(detail.session.id, known=True)
        return detail, reviews

    async def context() -> dict[str, Any]:
        if viewer is None:  # what every signed-out visitor sees alike
            detail, reviews = await request.app[CATALOGUE].get_or_load(
                ("page:session", session_id), public_part
            )
        else:
            detail, reviews = await public_part()
        bookings = await platform.bookings.for_session(session_id) if detail.can_manage else []
        return {
            "session": detail.session,
            "booking": detail.booking,
            "rating": detail.rating_average,
            "rating_count": detail.rating_count,
            "can_rate": detail.can_rate,
            "can_manage": detail.can_manage,
            "bookings": bookings,
            "reviews": reviews,
            "startable": {session_id} if detail.can_start else set(),
            "start_window": request.app[SETTINGS].sessions.start_window_minutes,
        }

    return await render_public(request, "sessions/detail.html", ("session", session_id), context)


@routes.post("/sessions/{id}/book/")
async def book(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "learner")
    session_id = parse_uuid(request.match_info["id"])
    back = f"/sessions/{session_id}/"
    try:
        booking, payment = await platform_of(request).bookings.book_with_payment(user, session_id)
    except DomainError as exc:
        if exc.status in (401, 403):
            raise
        raise redirect(back, ("error", exc.message)) from None
    if booking.status == BookingStatus.CONFIRMED:
        flash = ("success", "You're booked! The session is in My Bookings.")
    else:
        how = payment.instructions if payment else "The mentor confirms it once paid."
        flash = ("info", f"Seat held. {how}")
    raise redirect(back, flash)


SessionMove = Callable[[User, uuid.UUID], Awaitable[Session]]


async def _session_action(
    request: web.Request, move: Callable[[SessionService], SessionMove], done: str
) -> web.StreamResponse:
    """Run one move of the session's state machine and go back with ``done`` (or the error)."""
    user = require_user(request, "mentor", "admin")
    session_id = parse_uuid(request.match_info["id"])
    data = await form_data(request)
    back = safe_next(data.get("next"), "/dashboard/?tab=sessions")
    try:
        await move(platform_of(request).sessions)(user, session_id)
    except DomainError as exc:
        if exc.status in (401,):
            raise
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, ("success", done))


@routes.post("/sessions/{id}/start/")
async def start(request: web.Request) -> web.StreamResponse:
    return await _session_action(
        request, lambda sessions: sessions.start, "Session started: the room is open."
    )


@routes.post("/sessions/{id}/end/")
async def end(request: web.Request) -> web.StreamResponse:
    return await _session_action(request, lambda sessions: sessions.end, "Session ended.")


@routes.post("/sessions/{id}/cancel/")
async def cancel(request: web.Request) -> web.StreamResponse:
    return await _session_action(
        request,
        lambda sessions: sessions.cancel,
        "Session cancelled; booked learners were notified.",
    )


@routes.post("/bookings/{id}/cancel/")
async def cancel_booking(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    booking_id = parse_int(request.match_info["id"], "booking")
    data = await form_data(request)
    back = safe_next(data.get("next"), "/dashboard/?tab=bookings")
    try:
        await platform_of(request).bookings.cancel(user, booking_id)
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, ("success", "Booking cancelled."))


@routes.post("/bookings/{id}/mark-paid/")
async def mark_paid(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "mentor", "admin")
    booking_id = parse_int(request.match_info["id"], "booking")
    data = await form_data(request)
    back = safe_next(data.get("next"), "/dashboard/?tab=requests")
    try:
        await platform_of(request).bookings.mark_paid(user, booking_id)
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, ("success", "Payment recorded; the booking is confirmed."))


async def _feedback_context(request: web.Request, user: User) -> dict[str, Any]:
    platform = platform_of(request)
    session_id = parse_uuid(request.match_info["id"])
    session = await platform.sessions.get(session_id)
    booking = await platform.bookings.booking_of(user.id, session_id)
    if booking is None or not booking.is_attendee:  # the API's rule (FeedbackService.submit)
        raise Forbidden("only learners who attended this session can rate it")
    mine = [f for f in await platform.feedback.for_session(session_id) if f.user_id == user.id]
    return {
        "session": session,
        "existing": mine[0] if mine else None,
        "open": session.accepts_feedback,
    }


@routes.view("/sessions/{id}/feedback/")
class FeedbackView(web.View):
    async def get(self) -> web.StreamResponse:
        user = require_user(self.request, "learner")
        ctx = await _feedback_context(self.request, user)
        return await render(
            self.request, "sessions/feedback.html", {**ctx, "values": {}, "errors": {}}
        )

    async def post(self) -> web.StreamResponse:
        request = self.request
        user = require_user(request, "learner")
        ctx = await _feedback_context(request, user)
        data = await form_data(request)
        values = {"rating": data.get("rating", ""), "comment": data.get("comment", "")}
        errors: dict[str, str] = {}
        message = ""
        status = 400
        try:
            rating = int(values["rating"])
        except ValueError:
            errors["rating"] = "Choose a rating from 1 to 5 stars."
        if not errors:
            try:
                await platform_of(request).feedback.submit(
                    user, ctx["session"].id, rating=rating, comment=values["comment"].strip()
                )
            except DomainError as exc:
                if exc.status in (401, 403):
                    raise
                errors = field_errors(exc.fields)
                message = exc.message if not errors else ""
                status = exc.status
            else:
                raise redirect("/dashboard/?tab=bookings", ("success", "Thanks for your feedback!"))
        return await render(
            request,
            "sessions/feedback.html",
            {**ctx, "values": values, "errors": errors, "message": message},
            status=status,
        )
