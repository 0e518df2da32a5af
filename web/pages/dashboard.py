"""``/dashboard/``: one server-rendered view per tab, chosen by role and ``?tab=``.

Figures come from ``platform.stats`` (read-only aggregate queries shared with
``GET /api/stats/overview/``); charts are drawn on the server as inline SVG.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from control.errors import DomainError, Forbidden, NotFound, ValidationFailed
from control.models import Booking, Session, User
from control.services.feedback import may_rate
from control.services.sessions import SessionFilters
from control.timezones import (
    DEFAULT_ZONE,
    LocalTime,
    check_zone,
    format_local,
    local_input_value,
    parse_local_input,
    to_local,
    zone_label,
)
from control.timezones import choices as timezone_choices
from web.keys import SETTINGS, SFU
from web.pages import charts
from web.pages.common import (
    field_errors,
    form_data,
    parse_int,
    platform_of,
    query_int,
    redirect,
    require_user,
    safe_next,
    split_list,
)
from web.pages.recommend import recommended_sessions
from web.pages.render import render
from web.pages.sessions import STATUSES, browse_context

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


@dataclass(frozen=True)
class Card:
    """One figure of a dashboard's stat grid; ``kind`` picks how the template shows it."""

    label: str
    value: Any
    kind: str = "number"  # number | money | rating | hours
    count: int | None = None  # ratings behind an average


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# ---------------------------------------------------------------------------- learner


def split_bookings(bookings: list[Booking]) -> tuple[list[Booking], list[Booking]]:
    """(upcoming, past): a booking is upcoming while kept and its session not over."""
    upcoming, past = [], []
    for b in bookings:
        if b.status != "cancelled" and b.session.status in ("scheduled", "active"):
            upcoming.append(b)
        else:
            past.append(b)
    upcoming.sort(key=lambda b: b.session.schedule)
    past.sort(key=lambda b: b.session.schedule, reverse=True)
    return upcoming, past


async def learner_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.learner_overview(user)
    upcoming, _ = split_bookings(await platform.bookings.for_learner(user.id))
    _, following = await platform.follows.counts(user.id)
    cards = [
        Card("Upcoming sessions", stats["bookings_upcoming"]),
        Card("Sessions attended", stats["bookings_completed"]),
        Card("Mentors followed", following),
        Card("Hours learned", stats["hours_learned"], "hours"),
    ]
    recent = [{**item, "at": _parse_time(item.get("at"))}
              for item in stats["recent_activity"][:8]]
    activity = (await platform.notifications.page_for(user.id, page=1, per_page=6)).items
    return {"cards": cards, "upcoming": upcoming[:5], "activity": activity, "recent": recent}


async def learner_browse(request: web.Request, user: User) -> Ctx:
    return await browse_context(request)


async def learner_bookings(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    upcoming, past = split_bookings(await platform.bookings.for_learner(user.id))
    # The API's rule: from the start of the session (the UI features "Rate" once it ended).
    rateable = {b.id for b in [*upcoming, *past] if may_rate(b.session, b)}
    rated = {b.id for b in [*upcoming, *past]
             if b.id in rateable and await platform.feedback.has_rated(user.id, b.session_id)}
    return {"upcoming": upcoming, "past": past, "rateable": rateable, "rated": rated}


async def learner_recommendations(request: web.Request, user: User) -> Ctx:
    return {"picks": await recommended_sessions(request, user, 9)}


async def learner_following(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    rows = []
    for mentor in await platform.follows.following(user.id):
        sessions = [s for s in await platform.sessions.for_mentor(mentor.id)
                    if s.status in ("scheduled", "active")]
        sessions.sort(key=lambda s: s.schedule)
        rows.append((mentor, sessions[:3]))
    return {"rows": rows}


# ---------------------------------------------------------------------------- mentor


async def mentor_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.mentor_overview(user)
    by_status = stats["sessions_by_status"]
    followers, _ = await platform.follows.counts(user.id)
    cards = [
        Card("Total earnings", stats["earnings_total"], "money"),
        Card("Upcoming sessions", by_status["scheduled"] + by_status["active"]),
        Card("Completed sessions", by_status["completed"]),
        Card("Average rating", stats["rating_average"], "rating", stats["rating_count"]),
        Card("Followers", followers),
        Card("Payments to confirm", stats["pending_payments"]),
    ]
    sessions = await platform.sessions.for_mentor(user.id)
    upcoming = sorted((s for s in sessions if s.status in ("scheduled", "active")),
                      key=lambda s: s.schedule)[:5]
    activity = (await platform.notifications.page_for(user.id, page=1, per_page=8)).items
    return {"cards": cards, "upcoming": upcoming, "activity": activity}


async def mentor_sessions(request: web.Request, user: User) -> Ctx:
    service = platform_of(request).sessions
    sessions = await service.for_mentor(user.id)
    order = {"active": 0, "scheduled": 1, "completed": 2, "cancelled": 3}
    sessions.sort(key=lambda s: (order.get(s.status, 9), s.schedule))
    startable = {s.id for s in sessions if s.status == "scheduled" and service.can_start(s)}
    window = request.app[SETTINGS].sessions.start_window_minutes
    return {"sessions": sessions, "startable": startable, "start_window": window}


def create_defaults(request: web.Request, user: User) -> dict[str, str]:
    """A blank form: tomorrow at the next full hour *in the mentor's zone*."""
    settings = request.app[SETTINGS]
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return {"duration": "60", "max_participants": str(settings.sessions.max_participants),
            "price": "0", "schedule": local_input_value(start, user.timezone),
            "timezone": user.timezone}


def schedule_form_context(user: User, detect: bool) -> Ctx:
    """What a form with a date/time and a zone field needs (``partials/macros.html``
    ``zone_field``). ``detect``: the browser may fill in its own zone (app.js), on a first
    showing to a user still on the default zone."""
    return {"zones": timezone_choices(), "detect_zone": detect and user.timezone == DEFAULT_ZONE}


async def mentor_create(request: web.Request, user: User) -> Ctx:
    settings = request.app[SETTINGS]
    return {"values": create_defaults(request, user), "errors": {},
            "max_seats": settings.sessions.max_participants,
            **schedule_form_context(user, detect=True)}


async def mentor_requests(request: web.Request, user: User) -> Ctx:
    pending = await platform_of(request).bookings.pending_for_mentor(user.id)
    return {"pending": pending}


def _day(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%d %b")


async def mentor_analytics(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.mentor_overview(user)
    dist = stats["rating_distribution"]
    rating_chart = charts.bar_chart(
        [f"{i}★" for i in range(1, 6)], [dist.get(str(i), 0) for i in range(1, 6)],
        title="Rating distribution", x_label="Rating", y_label="Reviews",
    )
    attendance = sorted(stats["attendance"], key=lambda a: a["schedule"])
    attendance_chart = charts.line_chart(
        [_day(a["schedule"]) for a in attendance], [a["joined"] for a in attendance],
        title="Attendance over time", x_label="Session date", y_label="Learners attended",
    )
    reviews = await platform.feedback.for_mentor(user.id, limit=10)
    cards = [
        Card("Average rating", stats["rating_average"], "rating", stats["rating_count"]),
        Card("Sessions held", len(attendance)),
        Card("Learners attended", sum(a["joined"] for a in attendance)),
        Card("Seats booked", sum(a["booked"] for a in attendance)),
    ]
    return {"rating_chart": rating_chart, "attendance_chart": attendance_chart,
            "cards": cards, "reviews": reviews}


async def mentor_earnings(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.mentor_overview(user)
    per_month = [{**m, "label": datetime.strptime(m["month"], "%Y-%m").strftime("%b %Y")}
                 for m in stats["earnings_per_month"]]
    month_chart = charts.bar_chart(
        [m["label"] for m in per_month],
        [m["amount"] for m in per_month],
        title="Earnings per month", x_label="Month of the session",
        y_label=f"Earnings ({stats['currency']})",
    )
    rows = sorted(stats["earnings_per_session"], key=lambda r: r["schedule"], reverse=True)
    for row in rows:
        row["when"] = _parse_time(row["schedule"])
    return {"rows": rows, "per_month": per_month, "month_chart": month_chart,
            "total": stats["earnings_total"],
            "pending_total": await platform.stats.mentor_pending_amount(user.id)}


# ---------------------------------------------------------------------------- admin


async def admin_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.admin_overview()
    roles, statuses = stats["users_by_role"], stats["sessions_by_status"]
    cards = [
        Card("Learners", roles["learner"]),
        Card("Mentors", roles["mentor"]),
        Card("Sessions scheduled", statuses["scheduled"]),
        Card("Live now", statuses["active"]),
        Card("Sessions completed", statuses["completed"]),
        Card("Bookings kept", stats["bookings_by_status"]["confirmed"]
             + stats["bookings_by_status"]["completed"]),
        Card("Revenue (paid)", stats["revenue"], "money"),
    ]
    live = (await platform.sessions.search(SessionFilters(status="active"),
                                         page=1, per_page=10)).items
    return {"cards": cards, "live": live, "top_mentors": stats["top_mentors"]}


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
    filters = SessionFilters(q=q or None, status=status if status in STATUSES else None,
                             include_cancelled=True)
    result = await platform_of(request).sessions.search(
        filters, page=query_int(request, "page"), per_page=20)
    values = {"q": q, "status": status}
    return {"result": result, "filters": values, "query": {k: v for k, v in values.items() if v}}


async def admin_analytics(request: web.Request, user: User) -> Ctx:
    stats = platform_of(request).stats
    overview = await stats.admin_overview()
    weekly = await stats.weekly_activity(8)
    labels = [_day(w) for w in weekly["weeks"]]
    roles = ("learner", "mentor", "admin")
    return {
        "signups_chart": charts.line_chart(labels, weekly["signups"],
                                           title="New accounts per week",
                                           x_label="Week starting", y_label="Accounts"),
        "bookings_chart": charts.line_chart(labels, weekly["bookings"],
                                            title="Bookings per week",
                                            x_label="Week starting", y_label="Bookings"),
        "status_chart": charts.bar_chart(
            list(STATUSES), [overview["sessions_by_status"][s] for s in STATUSES],
            title="Sessions by status", x_label="Status", y_label="Sessions"),
        "roles_chart": charts.bar_chart(
            list(roles), [overview["users_by_role"][r] for r in roles],
            title="Accounts by role", x_label="Role", y_label="Accounts"),
    }


@dataclass
class LiveRoom:
    """A live session and what the SFU reports about its room (if anyone joined)."""

    room_id: str
    session: Session | None
    participants: list[dict[str, Any]]

    @property
    def bitrate_in_kbps(self) -> float:
        return round(sum(p["bitrate_in_kbps"] or 0 for p in self.participants), 1)

    @property
    def bitrate_out_kbps(self) -> float:
        return round(sum(p["bitrate_out_kbps"] or 0 for p in self.participants), 1)


PARTICIPANT_FIGURES = ("bitrate_in_kbps", "bitrate_out_kbps", "rtt_ms", "packets_lost",
                       "frames_forwarded", "frames_dropped", "keyframes_requested")


def participant_rows(room: dict[str, Any]) -> list[dict[str, Any]]:
    """The SFU's per-participant stats (``docs/sfu.md``) as flat table rows."""
    rows = []
    for user_id, figures in (room.get("participants") or {}).items():
        row = {key: figures.get(key) for key in PARTICIPANT_FIGURES}
        row["user_id"] = user_id
        row["display_name"] = figures.get("display_name") or f"user {user_id}"
        # Kinds with media actually arriving (a transceiver can be open but idle).
        row["publishing"] = sorted(kind for kind, pub in (figures.get("publish") or {}).items()
                                   if isinstance(pub, dict) and pub.get("frames_in"))
        row["subscriptions"] = len(figures.get("subscribe") or [])
        rows.append(row)
    rows.sort(key=lambda r: str(r["display_name"]).lower())
    return rows


async def live_rooms(request: web.Request) -> list[LiveRoom]:
    """Every active session, plus any SFU room without one, with the room's stats."""
    sfu = request.app.get(SFU)
    rooms: dict[str, Any] = sfu.stats().get("rooms", {}) if sfu is not None else {}
    active = (await platform_of(request).sessions.search(
        SessionFilters(status="active"), page=1, per_page=100)).items
    out = [LiveRoom(str(s.id), s, participant_rows(rooms.get(str(s.id), {}))) for s in active]
    known = {room.room_id for room in out}
    out += [LiveRoom(rid, None, participant_rows(room))
            for rid, room in rooms.items() if rid not in known]
    return out


async def admin_control(request: web.Request, user: User) -> Ctx:
    settings = request.app[SETTINGS]
    rooms: list[LiveRoom] = []
    sfu_error = ""
    try:
        rooms = await live_rooms(request)
    except Exception:  # the settings half of the tab must still render
        log.exception("live room stats failed")
        sfu_error = "The media server's figures could not be read."
    return {"summary": settings.public_summary(), "sfu_ready": request.app.get(SFU) is not None,
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


@dataclass(frozen=True)
class ScheduleInput:
    """A form's date/time and zone fields, read by ``control.timezones`` (the one rule)."""

    zone: str  # the zone the form was filled in; "" if it is unknown
    when: LocalTime | None  # None when a field has an error
    errors: dict[str, str]


def parse_schedule(value: str, zone_name: str) -> ScheduleInput:
    """``datetime-local`` input read in the IANA zone the form names (``timezone`` field).

    Skipped local times are an error on ``schedule``; repeated ones take the first occurrence
    (``LocalTime.ambiguous`` tells). Every page form with a schedule goes through here.
    """
    try:
        zone = check_zone(zone_name)
    except ValidationFailed as exc:
        return ScheduleInput("", None, dict(exc.fields))
    try:
        return ScheduleInput(zone, parse_local_input(value, zone), {})
    except ValidationFailed as exc:
        return ScheduleInput(zone, None, dict(exc.fields))


def schedule_note(when: LocalTime, zone: str) -> str:
    """Words for the flash message: when the session is, and how a repeated hour was read."""
    text = format_local(when.utc, zone)
    if when.ambiguous:
        local = to_local(when.utc, zone)
        text += (f" (the clocks go back that night and {local:%H:%M} happens twice: this is the"
                 f" first, {zone_label(local)})")
    return text


@routes.post("/dashboard/create-session/")
async def create_session(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "mentor")
    data = await form_data(request)
    keys = ("title", "description", "schedule", "timezone", "duration", "max_participants",
            "skills_required", "price")
    values = {k: data.get(k, "").strip() for k in keys}
    # A form without the zone field (an old page, a script) is read in the profile's zone.
    values["timezone"] = values["timezone"] or user.timezone
    read = parse_schedule(values["schedule"], values["timezone"])
    errors: dict[str, str] = dict(read.errors)
    schedule = read.when.utc if read.when is not None else None
    numbers: dict[str, int] = {}
    for key in ("duration", "max_participants"):
        try:
            numbers[key] = int(values[key])
        except ValueError:
            errors[key] = "Enter a whole number."
    # Required fields are also checked here, so a form whose date or numbers do not parse
    # (and so never reaches the service) still shows every problem at once.
    required = {}
    if not values["title"]:
        required["title"] = "Give the session a title."
    if not split_list(values["skills_required"]):
        required["skills_required"] = "List at least one skill."
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
            assert read.when is not None
            # The flash is cut at 300 characters: the title (up to 200) goes last.
            note = f"Session created for {schedule_note(read.when, read.zone)}."
            if read.zone != user.timezone:
                # The zone the mentor works in becomes theirs: pages and notifications use it.
                await platform_of(request).accounts.update_profile(user, timezone=read.zone)
                note += f" Times are now shown in {read.zone} (see your profile)."
            raise redirect("/dashboard/?tab=sessions", ("success", f"{note} “{session.title}”"))
    errors = {**required, **errors}
    settings = request.app[SETTINGS]
    return await render_tab(request, user, "create", {
        "values": values, "errors": errors, "message": message,
        "max_seats": settings.sessions.max_participants,
        **schedule_form_context(user, detect=False),
    }, status=400)


@routes.post("/dashboard/users/{id}/active/")
async def set_active(request: web.Request) -> web.StreamResponse:
    user = require_user(request, "admin")
    target = parse_int(request.match_info["id"], "user")
    data = await form_data(request)
    active = data.get("active") == "1"
    back = safe_next(data.get("next"), "/dashboard/?tab=users")  # keeps the admin's search
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
    back = safe_next(data.get("next"), "/dashboard/?tab=users")  # keeps the admin's search
    try:
        changed = await platform_of(request).accounts.set_role(user, target, data.get("role", ""))
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, ("success", f"{changed.username} is now a {changed.role}."))
