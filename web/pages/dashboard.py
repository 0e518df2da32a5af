"""``/dashboard/``: one server-rendered view per tab, chosen by role and ``?tab=``.

Figures the stats service does not give directly (earnings per session, attendance per
session, platform counts for charts) come from the small read-only queries at the bottom.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from control.errors import DomainError, Forbidden, NotFound, ValidationFailed
from control.models import Booking, Session, User
from web.keys import SETTINGS, SFU
from web.pages import charts
from web.pages.common import (
    build,
    field_errors,
    form_data,
    parse_int,
    platform_of,
    query_int,
    redirect,
    require_user,
    split_list,
)
from web.pages.recommend import recommended_sessions
from web.pages.render import render
from web.pages.sessions import browse_context

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

TABS: dict[str, list[tuple[str, str]]] = {
    "learner": [
        ("overview", "Overview"),
        ("browse", "Browse Sessions"),
        ("bookings", "My Bookings"),
        ("recommendations", "Recommendations"),
        ("following", "Following"),
    ],
    "mentor": [
        ("overview", "Overview"),
        ("sessions", "My Sessions"),
        ("create", "Create Session"),
        ("requests", "Requests"),
        ("analytics", "Analytics"),
        ("earnings", "Earnings"),
    ],
    "admin": [
        ("overview", "Overview"),
        ("users", "User Management"),
        ("sessions", "Session Management"),
        ("analytics", "Analytics"),
        ("control", "Admin Control"),
    ],
}

Ctx = dict[str, Any]
TabHandler = Callable[[web.Request, User], Awaitable[Ctx]]


async def _stats(request: web.Request, name: str, *args: Any) -> dict[str, Any]:
    stats_service = getattr(platform_of(request), "stats", None)
    try:
        return dict(await getattr(stats_service, name)(*args))
    except Exception:  # figures are a nicety: the tab still renders without them
        log.exception("stats.%s failed", name)
        return {}


# ---------------------------------------------------------------------------- learner


async def learner_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    bookings = await platform.bookings.for_learner(user.id)
    active = [b for b in bookings if b.status != "cancelled"]
    upcoming = [b for b in active if b.session.status in ("scheduled", "active")]
    done = [b for b in active if b.session.status == "completed"]
    _, following = await platform.follows.counts(user.id)
    cards = [
        ("Upcoming sessions", len(upcoming)),
        ("Sessions attended", len(done)),
        ("Mentors followed", following),
        ("Hours learned", round(sum(b.session.duration for b in done) / 60, 1)),
    ]
    stats = await _stats(request, "learner_overview", user)
    recent = []
    for item in stats.get("recent_activity", [])[:8]:
        at = item.get("at")
        recent.append({**item, "at": datetime.fromisoformat(at) if at else None})
    activity = (await platform.notifications.list(user.id, page=1, per_page=6)).items
    return {"cards": cards, "upcoming": upcoming[:5], "activity": activity, "recent": recent}


async def learner_browse(request: web.Request, user: User) -> Ctx:
    return await browse_context(request)


async def learner_bookings(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    bookings = await platform.bookings.for_learner(user.id)
    upcoming, past = [], []
    for b in bookings:
        if b.status != "cancelled" and b.session.status in ("scheduled", "active"):
            upcoming.append(b)
        else:
            past.append(b)
    rated = set()
    for b in past:
        if b.session.status == "completed" and await platform.feedback.has_rated(
            user.id, b.session_id
        ):
            rated.add(b.id)
    upcoming.sort(key=lambda b: b.session.schedule)
    past.sort(key=lambda b: b.session.schedule, reverse=True)
    return {"upcoming": upcoming, "past": past, "rated": rated}


async def learner_recommendations(request: web.Request, user: User) -> Ctx:
    return {"picks": await recommended_sessions(request, user, 9)}


async def learner_following(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    mentors = await platform.follows.following(user.id)
    rows = []
    for mentor in mentors:
        sessions = [s for s in await platform.sessions.for_mentor(mentor.id)
                    if s.status in ("scheduled", "active")]
        rows.append((mentor, sessions[:3]))
    return {"rows": rows}


# ---------------------------------------------------------------------------- mentor


async def mentor_bookings(request: web.Request, mentor_id: int) -> list[Booking]:
    """Every booking of the mentor's sessions (one query; booking.session is joined)."""
    async with platform_of(request).db.session() as db:
        rows = await db.scalars(
            select(Booking).join(Session, Booking.session_id == Session.id)
            .where(Session.mentor_id == mentor_id)
        )
        return list(rows.unique().all())


def _earned(b: Booking) -> Decimal:
    return Decimal(b.amount or 0) if b.payment_status == "paid" else Decimal(0)


def earnings_by(bookings: list[Booking]) -> tuple[dict[Any, Decimal], dict[str, Decimal]]:
    per_session: dict[Any, Decimal] = defaultdict(Decimal)
    per_month: dict[str, Decimal] = defaultdict(Decimal)
    for b in bookings:
        amount = _earned(b)
        per_session[b.session_id] += amount
        if amount:
            per_month[b.session.schedule.strftime("%Y-%m")] += amount
    return per_session, dict(sorted(per_month.items()))


async def mentor_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    sessions = await platform.sessions.for_mentor(user.id)
    bookings = await mentor_bookings(request, user.id)
    avg, count = await platform.feedback.mentor_rating(user.id)
    followers, _ = await platform.follows.counts(user.id)
    by_status = Counter(s.status for s in sessions)
    total = sum((_earned(b) for b in bookings), Decimal(0))
    cards = [
        ("Total earnings", ("money", total)),
        ("Upcoming sessions", by_status["scheduled"] + by_status["active"]),
        ("Completed sessions", by_status["completed"]),
        ("Average rating", f"{avg:.1f} ★ ({count})" if avg else "No ratings yet"),
        ("Followers", followers),
        ("Learners taught", len({b.learner_id for b in bookings if b.status == "completed"})),
    ]
    stats = await _stats(request, "mentor_overview", user)
    if "pending_payments" in stats:
        cards.append(("Payments to confirm", stats["pending_payments"]))
    upcoming = [s for s in sessions if s.status in ("scheduled", "active")][:5]
    activity = (await platform.notifications.list(user.id, page=1, per_page=8)).items
    return {"cards": cards, "upcoming": upcoming, "activity": activity}


async def mentor_sessions(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    sessions = await platform.sessions.for_mentor(user.id)
    order = {"active": 0, "scheduled": 1, "completed": 2, "cancelled": 3}
    sessions.sort(key=lambda s: (order.get(s.status, 9), s.schedule))
    startable = {s.id for s in sessions if platform.sessions.can_start(s)} if hasattr(
        platform.sessions, "can_start") else {s.id for s in sessions if s.status == "scheduled"}
    return {"sessions": sessions, "startable": startable}


def create_defaults(request: web.Request) -> dict[str, str]:
    settings = request.app[SETTINGS]
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return {"duration": "60", "max_participants": str(settings.sessions.max_participants),
            "price": "0", "schedule": start.strftime("%Y-%m-%dT%H:%M"), "tz_offset": "0"}


async def mentor_create(request: web.Request, user: User) -> Ctx:
    settings = request.app[SETTINGS]
    return {"values": create_defaults(request), "errors": {},
            "max_seats": settings.sessions.max_participants}


async def mentor_requests(request: web.Request, user: User) -> Ctx:
    pending = await platform_of(request).bookings.pending_for_mentor(user.id)
    return {"pending": pending}


async def mentor_analytics(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    dist = await platform.feedback.distribution(user.id)
    rating_chart = charts.bar_chart(
        [f"{i}★" for i in range(1, 6)], [dist.get(i, 0) for i in range(1, 6)],
        title="Rating distribution", x_label="Rating", y_label="Reviews",
    )
    bookings = await mentor_bookings(request, user.id)
    sessions = [s for s in await platform.sessions.for_mentor(user.id)
                if s.status in ("active", "completed")]
    attended: Counter[Any] = Counter(
        b.session_id for b in bookings if b.joined_at is not None or b.status == "completed"
    )
    sessions.sort(key=lambda s: s.schedule)
    attendance_chart = charts.line_chart(
        [s.schedule.strftime("%d %b") for s in sessions], [attended[s.id] for s in sessions],
        title="Attendance over time", x_label="Session date", y_label="Learners attended",
    )
    avg, count = await platform.feedback.mentor_rating(user.id)
    reviews = await platform.feedback.for_mentor(user.id, limit=10)
    return {"rating_chart": rating_chart, "attendance_chart": attendance_chart,
            "rating": avg, "rating_count": count, "reviews": reviews}


async def mentor_earnings(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    bookings = await mentor_bookings(request, user.id)
    per_session, per_month = earnings_by(bookings)
    sessions = await platform.sessions.for_mentor(user.id)
    paid_count = Counter(b.session_id for b in bookings if b.payment_status == "paid")
    rows = [(s, per_session.get(s.id, Decimal(0)), paid_count[s.id]) for s in sessions]
    rows.sort(key=lambda r: r[0].schedule, reverse=True)
    month_chart = charts.bar_chart(
        list(per_month), [float(v) for v in per_month.values()],
        title="Earnings per month", x_label="Month",
        y_label=f"Earnings ({request.app[SETTINGS].payments.currency})",
    )
    total = sum(per_session.values(), Decimal(0))
    pending = sum((Decimal(b.amount or 0) for b in bookings
                   if b.payment_status == "pending" and b.status != "cancelled"), Decimal(0))
    return {"rows": rows, "per_month": per_month, "month_chart": month_chart,
            "total": total, "pending_total": pending}


# ---------------------------------------------------------------------------- admin


async def platform_figures(request: web.Request) -> dict[str, Any]:
    """Counts for the admin overview and charts (read-only aggregate queries)."""
    since = datetime.now(UTC) - timedelta(weeks=8)
    async with platform_of(request).db.session() as db:
        roles = dict((await db.execute(select(User.role, func.count()).group_by(User.role))).all())
        statuses = dict((await db.execute(
            select(Session.status, func.count()).group_by(Session.status))).all())
        bookings = dict((await db.execute(
            select(Booking.status, func.count()).group_by(Booking.status))).all())
        revenue = await db.scalar(
            select(func.coalesce(func.sum(Booking.amount), 0))
            .where(Booking.payment_status == "paid"))
        joined = list((await db.scalars(
            select(User.date_joined).where(User.date_joined >= since))).all())
        booked = list((await db.scalars(
            select(Booking.booking_time).where(Booking.booking_time >= since))).all())
    return {"roles": roles, "statuses": statuses, "bookings": bookings,
            "revenue": Decimal(revenue or 0), "joined": joined, "booked": booked}


def _weekly(times: list[datetime], weeks: int = 8) -> tuple[list[str], list[int]]:
    today = datetime.now(UTC).date()
    start = today - timedelta(days=today.weekday(), weeks=weeks - 1)
    counts = [0] * weeks
    for t in times:
        index = (t.date() - start).days // 7
        if 0 <= index < weeks:
            counts[index] += 1
    return [(start + timedelta(weeks=i)).strftime("%d %b") for i in range(weeks)], counts


async def admin_overview(request: web.Request, user: User) -> Ctx:
    fig = await platform_figures(request)
    roles, statuses = fig["roles"], fig["statuses"]
    cards = [
        ("Learners", roles.get("learner", 0)),
        ("Mentors", roles.get("mentor", 0)),
        ("Sessions scheduled", statuses.get("scheduled", 0)),
        ("Live now", statuses.get("active", 0)),
        ("Sessions completed", statuses.get("completed", 0)),
        ("Bookings", sum(fig["bookings"].values())),
        ("Revenue (paid)", ("money", fig["revenue"])),
    ]
    stats = await _stats(request, "admin_overview")
    live = (await platform_of(request).sessions.list(
        build(_filters_cls(), status="active"), page=1, per_page=10)).items
    return {"cards": cards, "live": live, "top_mentors": stats.get("top_mentors", [])}


def _filters_cls() -> type:
    from control.services.sessions import SessionFilters

    return SessionFilters


async def admin_users(request: web.Request, user: User) -> Ctx:
    q = request.query.get("q", "").strip()
    role = request.query.get("role", "")
    active_raw = request.query.get("active", "")
    active = {"1": True, "0": False}.get(active_raw)
    result = await platform_of(request).accounts.list_users(
        q=q or None, role=role if role in ("learner", "mentor", "admin") else None,
        active=active, page=query_int(request, "page"), per_page=20,
    )
    filters = {"q": q, "role": role, "active": active_raw}
    return {"result": result, "filters": filters,
            "query": {k: v for k, v in filters.items() if v}}


async def admin_sessions(request: web.Request, user: User) -> Ctx:
    q = request.query.get("q", "").strip()
    status = request.query.get("status", "")
    filters = build(_filters_cls(), q=q or None,
                    status=status if status in ("scheduled", "active", "completed",
                                                "cancelled") else None,
                    include_cancelled=True)
    result = await platform_of(request).sessions.list(
        filters, page=query_int(request, "page"), per_page=20)
    values = {"q": q, "status": status}
    return {"result": result, "filters": values, "query": {k: v for k, v in values.items() if v}}


async def admin_analytics(request: web.Request, user: User) -> Ctx:
    fig = await platform_figures(request)
    labels, joined = _weekly(fig["joined"])
    _, booked = _weekly(fig["booked"])
    order = ["scheduled", "active", "completed", "cancelled"]
    return {
        "signups_chart": charts.line_chart(labels, joined, title="New accounts per week",
                                           x_label="Week starting", y_label="Accounts"),
        "bookings_chart": charts.line_chart(labels, booked, title="Bookings per week",
                                            x_label="Week starting", y_label="Bookings"),
        "status_chart": charts.bar_chart(
            order, [fig["statuses"].get(s, 0) for s in order],
            title="Sessions by status", x_label="Status", y_label="Sessions"),
        "roles_chart": charts.bar_chart(
            ["learner", "mentor", "admin"], [fig["roles"].get(r, 0) for r in
                                             ("learner", "mentor", "admin")],
            title="Accounts by role", x_label="Role", y_label="Accounts"),
    }


def _rooms(stats: Any) -> list[tuple[str, list[tuple[str, Any]], list[dict[str, Any]]]]:
    """SFU stats as (room, scalar figures, participant rows) whatever the exact shape."""
    rooms: Any = stats.get("rooms", stats) if isinstance(stats, dict) else stats
    if isinstance(rooms, dict):
        items = list(rooms.items())
    elif isinstance(rooms, list):
        items = [(str(r.get("session_id") or r.get("room") or i), r)
                 for i, r in enumerate(rooms) if isinstance(r, dict)]
    else:
        items = []
    out = []
    for name, room in items:
        if not isinstance(room, dict):
            continue
        participants = room.get("participants", [])
        if isinstance(participants, dict):
            participants = [{"id": k, **v} if isinstance(v, dict) else {"id": k, "value": v}
                            for k, v in participants.items()]
        flat = [p for p in participants if isinstance(p, dict)]
        scalars = [(k, v) for k, v in room.items()
                   if k != "participants" and not isinstance(v, dict | list)]
        out.append((str(name), scalars, flat))
    return out


async def admin_control(request: web.Request, user: User) -> Ctx:
    settings = request.app[SETTINGS]
    sfu = request.app.get(SFU)
    rooms: list[Any] = []
    sfu_error = ""
    if sfu is not None:
        try:
            stats = sfu.stats()
            if hasattr(stats, "__await__"):
                stats = await stats
            rooms = _rooms(stats)
        except Exception:
            log.exception("SFU stats failed")
            sfu_error = "The media server did not answer."
    return {"summary": settings.public_summary(), "sfu_ready": sfu is not None,
            "rooms": rooms, "sfu_error": sfu_error}


HANDLERS: dict[tuple[str, str], TabHandler] = {
    ("learner", "overview"): learner_overview,
    ("learner", "browse"): learner_browse,
    ("learner", "bookings"): learner_bookings,
    ("learner", "recommendations"): learner_recommendations,
    ("learner", "following"): learner_following,
    ("mentor", "overview"): mentor_overview,
    ("mentor", "sessions"): mentor_sessions,
    ("mentor", "create"): mentor_create,
    ("mentor", "requests"): mentor_requests,
    ("mentor", "analytics"): mentor_analytics,
    ("mentor", "earnings"): mentor_earnings,
    ("admin", "overview"): admin_overview,
    ("admin", "users"): admin_users,
    ("admin", "sessions"): admin_sessions,
    ("admin", "analytics"): admin_analytics,
    ("admin", "control"): admin_control,
}


async def render_tab(
    request: web.Request, user: User, tab: str, extra: Ctx | None = None, status: int = 200
) -> web.Response:
    ctx = await HANDLERS[(user.role, tab)](request, user)
    ctx.update(extra or {})
    tabs = TABS[user.role]
    ctx.update(role=user.role, tab=tab, tabs=tabs, tab_title=dict(tabs)[tab])
    return await render(request, f"dashboard/{user.role}_{tab}.html", ctx, status=status)


@routes.get("/dashboard/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    tab = request.query.get("tab", "overview")
    if (user.role, tab) not in HANDLERS:
        if any((role, tab) in HANDLERS for role in TABS):
            raise Forbidden("that dashboard tab belongs to another role")
        raise NotFound("no such dashboard tab")
    return await render_tab(request, user, tab)


# ---------------------------------------------------------------------------- actions


def parse_schedule(value: str, tz_offset: str) -> datetime:
    """``datetime-local`` input plus the browser's offset (minutes, JS convention) → UTC."""
    local = datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M")
    try:
        offset = int(tz_offset or 0)
    except ValueError:
        offset = 0
    offset = max(-14 * 60, min(14 * 60, offset))
    return (local + timedelta(minutes=offset)).replace(tzinfo=UTC)


@routes.post("/dashboard/create-session/")
async def create_session(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "mentor")
    data = await form_data(request)
    keys = ("title", "description", "schedule", "tz_offset", "duration", "max_participants",
            "skills_required", "price")
    values = {k: data.get(k, "").strip() for k in keys}
    errors: dict[str, str] = {}
    schedule = None
    try:
        schedule = parse_schedule(values["schedule"], values["tz_offset"])
    except ValueError:
        errors["schedule"] = "Pick a date and time."
    numbers: dict[str, int] = {}
    for key in ("duration", "max_participants"):
        try:
            numbers[key] = int(values[key])
        except ValueError:
            errors[key] = "Enter a whole number."
    message = ""
    if not errors and schedule is not None:
        try:
            session = await platform_of(request).sessions.create(
                user, title=values["title"], description=values["description"],
                schedule=schedule, duration=numbers["duration"],
                max_participants=numbers["max_participants"],
                skills_required=split_list(values["skills_required"]),
                price=values["price"] or "0",
            )
        except ValidationFailed as exc:
            errors = field_errors(exc.fields)
            message = exc.message if not errors else ""
        else:
            raise redirect("/dashboard/?tab=sessions",
                           ("success", f"Session “{session.title}” created."))
    settings = request.app[SETTINGS]
    return await render_tab(request, user, "create", {
        "values": values, "errors": errors, "message": message,
        "max_seats": settings.sessions.max_participants,
    }, status=400)


@routes.post("/dashboard/users/{id}/active/")
async def set_active(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "admin")
    target = parse_int(request.match_info["id"], "user")
    data = await form_data(request)
    active = data.get("active") == "1"
    back = "/dashboard/?tab=users"
    try:
        changed = await platform_of(request).accounts.set_active(user, target, active)
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    verb = "reactivated" if active else "deactivated"
    raise redirect(back, ("success", f"{changed.username} {verb}."))


@routes.post("/dashboard/users/{id}/role/")
async def set_role(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "admin")
    target = parse_int(request.match_info["id"], "user")
    data = await form_data(request)
    back = "/dashboard/?tab=users"
    try:
        changed = await platform_of(request).accounts.set_role(user, target, data.get("role", ""))
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, ("success", f"{changed.username} is now a {changed.role}."))
