"""The mentor's dashboard tabs (overview, sessions, create, requests, analytics, earnings)
and the create-session form, with the schedule-field helpers every page form uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from control.errors import ValidationFailed
from control.models import Role, SessionStatus, User
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
from web.keys import SETTINGS
from web.pages import charts
from web.pages.common import (
    field_errors,
    form_data,
    platform_of,
    redirect,
    require_user,
    split_list,
)
from web.pages.dashboard.tabs import Card, Ctx, RoleTabs, day_label, parse_time

tabs = RoleTabs(Role.MENTOR)
routes = web.RouteTableDef()

#: "My Sessions" lists live ones first, then what is coming, then the closed ones.
SESSION_ORDER: dict[str, int] = {
    SessionStatus.ACTIVE: 0,
    SessionStatus.SCHEDULED: 1,
    SessionStatus.COMPLETED: 2,
    SessionStatus.CANCELLED: 3,
}


@tabs.tab("overview", "Overview")
async def mentor_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.mentor_overview(user)
    by_status = stats["sessions_by_status"]
    followers, _ = await platform.follows.counts(user.id)
    cards = [
        Card("Total earnings", stats["earnings_total"], "money"),
        Card(
            "Upcoming sessions",
            by_status[SessionStatus.SCHEDULED] + by_status[SessionStatus.ACTIVE],
        ),
        Card("Completed sessions", by_status[SessionStatus.COMPLETED]),
        Card("Average rating", stats["rating_average"], "rating", stats["rating_count"]),
        Card("Followers", followers),
        Card("Payments to confirm", stats["pending_payments"]),
    ]
    sessions = await platform.sessions.for_mentor(user.id)
    upcoming = sorted((s for s in sessions if s.is_open), key=lambda s: s.schedule)[:5]
    activity = (await platform.notifications.page_for(user.id, page=1, per_page=8)).items
    return {"cards": cards, "upcoming": upcoming, "activity": activity}


@tabs.tab("sessions", "My Sessions")
async def mentor_sessions(request: web.Request, user: User) -> Ctx:
    service = platform_of(request).sessions
    sessions = await service.for_mentor(user.id)
    sessions.sort(key=lambda s: (SESSION_ORDER.get(s.status, 9), s.schedule))
    startable = {
        s.id for s in sessions if s.status == SessionStatus.SCHEDULED and service.can_start(s)
    }
    window = request.app[SETTINGS].sessions.start_window_minutes
    return {"sessions": sessions, "startable": startable, "start_window": window}


def create_defaults(request: web.Request, user: User) -> dict[str, str]:
    """A blank form: tomorrow at the next full hour *in the mentor's zone*."""
    settings = request.app[SETTINGS]
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return {
        "duration": "60",
        "max_participants": str(settings.sessions.max_participants),
        "price": "0",
        "schedule": local_input_value(start, user.timezone),
        "timezone": user.timezone,
    }


def schedule_form_context(user: User, detect: bool) -> Ctx:
    """What a form with a date/time and a zone field needs (``partials/macros.html``
    ``zone_field``). ``detect``: the browser may fill in its own zone (app.js), on a first
    showing to a user still on the default zone."""
    return {"zones": timezone_choices(), "detect_zone": detect and user.timezone == DEFAULT_ZONE}


def create_form_context(request: web.Request, user: User, *, first: bool) -> Ctx:
    """The create form's fixed parts; ``first``: a blank form, not one sent back."""
    return {
        "max_seats": request.app[SETTINGS].sessions.max_participants,
        **schedule_form_context(user, detect=first),
    }


@tabs.tab("create", "Create Session")
async def mentor_create(request: web.Request, user: User) -> Ctx:
    return {
        "values": create_defaults(request, user),
        "errors": {},
        **create_form_context(request, user, first=True),
    }


@tabs.tab("requests", "Requests")
async def mentor_requests(request: web.Request, user: User) -> Ctx:
    pending = await platform_of(request).bookings.pending_for_mentor(user.id)
    return {"pending": pending}


@tabs.tab("analytics", "Analytics")
async def mentor_analytics(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.mentor_overview(user)
    dist = stats["rating_distribution"]
    rating_chart = charts.bar_chart(
        [f"{i}★" for i in range(1, 6)],
        [dist.get(str(i), 0) for i in range(1, 6)],
        title="Rating distribution",
        x_label="Rating",
        y_label="Reviews",
    )
    attendance = sorted(stats["attendance"], key=lambda a: a["schedule"])
    attendance_chart = charts.line_chart(
        [day_label(a["schedule"]) for a in attendance],
        [a["joined"] for a in attendance],
        title="Attendance over time",
        x_label="Session date",
        y_label="Learners attended",
    )
    reviews = await platform.feedback.for_mentor(user.id, limit=10)
    cards = [
        Card("Average rating", stats["rating_average"], "rating", stats["rating_count"]),
        Card("Sessions held", len(attendance)),
        Card("Learners attended", sum(a["joined"] for a in attendance)),
        Card("Seats booked", sum(a["booked"] for a in attendance)),
    ]
    return {
        "rating_chart": rating_chart,
        "attendance_chart": attendance_chart,
        "cards": cards,
        "reviews": reviews,
    }


@tabs.tab("earnings", "Earnings")
async def mentor_earnings(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.mentor_overview(user)
    per_month = [
        {**m, "label": datetime.strptime(m["month"], "%Y-%m").strftime("%b %Y")}
        for m in stats["earnings_per_month"]
    ]
    month_chart = charts.bar_chart(
        [m["label"] for m in per_month],
        [m["amount"] for m in per_month],
        title="Earnings per month",
        x_label="Month of the session",
        y_label=f"Earnings ({stats['currency']})",
    )
    rows = sorted(stats["earnings_per_session"], key=lambda r: r["schedule"], reverse=True)
    for row in rows:
        row["when"] = parse_time(row["schedule"])
    return {
        "rows": rows,
        "per_month": per_month,
        "month_chart": month_chart,
        "total": stats["earnings_total"],
        "pending_total": await platform.stats.mentor_pending_amount(user.id),
    }


# ---------------------------------------------------------------------------- the create form


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
        text += (
            f" (the clocks go back that night and {local:%H:%M} happens twice: this is the"
            f" first, {zone_label(local)})"
        )
    return text


CREATE_FIELDS = (
    "title",
    "description",
    "schedule",
    "timezone",
    "duration",
    "max_participants",
    "skills_required",
    "price",
)


@routes.post("/dashboard/create-session/")
async def create_session(request: web.Request) -> web.StreamResponse:
    user = require_user(request, Role.MENTOR)
    data = await form_data(request)
    values = {k: data.get(k, "").strip() for k in CREATE_FIELDS}
    # A form without the zone field (an old page, a script) is read in the profile's zone.
    values["timezone"] = values["timezone"] or user.timezone
    read = parse_schedule(values["schedule"], values["timezone"])
    errors: dict[str, str] = dict(read.errors)
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
    if not errors and read.when is not None:
        try:
            session = await platform_of(request).sessions.create(
                user,
                title=values["title"],
                description=values["description"],
                schedule=read.when.utc,
                duration=numbers["duration"],
                max_participants=numbers["max_participants"],
                skills_required=split_list(values["skills_required"]),
                price=values["price"] or "0",
            )
        except ValidationFailed as exc:
            errors = field_errors(exc.fields)
            message = exc.message if not errors else ""
        else:
            # The flash is cut at 300 characters: the title (up to 200) goes last.
            note = f"Session created for {schedule_note(read.when, read.zone)}."
            if read.zone != user.timezone:
                # The zone the mentor works in becomes theirs: pages and notifications use it.
                await platform_of(request).accounts.update_profile(user, timezone=read.zone)
                note += f" Times are now shown in {read.zone} (see your profile)."
            raise redirect("/dashboard/?tab=sessions", ("success", f"{note} “{session.title}”"))
    sent_back = {
        "values": values,
        "errors": {**required, **errors},
        "message": message,
        **create_form_context(request, user, first=False),
    }
    return await tabs.render(request, user, "create", sent_back, status=400)
