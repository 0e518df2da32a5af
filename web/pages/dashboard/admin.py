"""The admin's dashboard tabs (overview, users, sessions, analytics, control) and the forms
that change an account (activate, role)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web
from markupsafe import Markup

from control.errors import DomainError
from control.models import BookingStatus, Role, Session, SessionStatus, User, session_status
from control.services.sessions import SessionFilters
from web.keys import SETTINGS, SFU
from web.pages import charts
from web.pages.common import (
    form_data,
    parse_int,
    platform_of,
    query_int,
    redirect,
    require_user,
    safe_next,
)
from web.pages.dashboard.tabs import Card, Ctx, RoleTabs, day_label, filter_query

log = logging.getLogger(__name__)
tabs = RoleTabs(Role.ADMIN)
routes = web.RouteTableDef()

#: The order the users filter and the roles chart list them in.
ROLES = (Role.LEARNER, Role.MENTOR, Role.ADMIN)


@tabs.tab("overview", "Overview")
async def admin_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    stats = await platform.stats.admin_overview()
    roles, statuses = stats["users_by_role"], stats["sessions_by_status"]
    bookings = stats["bookings_by_status"]
    cards = [
        Card("Learners", roles[Role.LEARNER]),
        Card("Mentors", roles[Role.MENTOR]),
        Card("Sessions scheduled", statuses[SessionStatus.SCHEDULED]),
        Card("Live now", statuses[SessionStatus.ACTIVE]),
        Card("Sessions completed", statuses[SessionStatus.COMPLETED]),
        Card(
            "Bookings kept", bookings[BookingStatus.CONFIRMED] + bookings[BookingStatus.COMPLETED]
        ),
        Card("Revenue (paid)", stats["revenue"], "money"),
    ]
    live = (
        await platform.sessions.search(
            SessionFilters(status=SessionStatus.ACTIVE), page=1, per_page=10
        )
    ).items
    return {"cards": cards, "live": live, "top_mentors": stats["top_mentors"]}


@tabs.tab("users", "User Management")
async def admin_users(request: web.Request, user: User) -> Ctx:
    q = request.query.get("q", "").strip()
    role = request.query.get("role", "")
    active_raw = request.query.get("active", "")
    active = {"1": True, "0": False}.get(active_raw)
    result = await platform_of(request).accounts.list_users(
        q=q or None,
        role=role if role in ROLES else None,
        active=active,
        page=query_int(request, "page"),
        per_page=20,
    )
    filters = {"q": q, "role": role, "active": active_raw}
    return {"result": result, "filters": filters, "query": filter_query(filters)}


@tabs.tab("sessions", "Session Management")
async def admin_sessions(request: web.Request, user: User) -> Ctx:
    q = request.query.get("q", "").strip()
    status = request.query.get("status", "")
    filters = SessionFilters(q=q or None, status=session_status(status), include_cancelled=True)
    result = await platform_of(request).sessions.search(
        filters, page=query_int(request, "page"), per_page=20
    )
    values = {"q": q, "status": status}
    return {"result": result, "filters": values, "query": filter_query(values)}


@tabs.tab("analytics", "Analytics")
async def admin_analytics(request: web.Request, user: User) -> Ctx:
    stats = platform_of(request).stats
    overview = await stats.admin_overview()
    weekly = await stats.weekly_activity(8)
    weeks = [day_label(w) for w in weekly["weeks"]]

    def per_week(series: str, title: str, y_label: str) -> Markup:
        return charts.line_chart(
            weeks, weekly[series], title=title, x_label="Week starting", y_label=y_label
        )

    def counts(
        figure: str, keys: tuple[str, ...], title: str, x_label: str, y_label: str
    ) -> Markup:
        values = [overview[figure][k] for k in keys]
        return charts.bar_chart(list(keys), values, title=title, x_label=x_label, y_label=y_label)

    return {
        "signups_chart": per_week("signups", "New accounts per week", "Accounts"),
        "bookings_chart": per_week("bookings", "Bookings per week", "Bookings"),
        "status_chart": counts(
            "sessions_by_status", tuple(SessionStatus), "Sessions by status", "Status", "Sessions"
        ),
        "roles_chart": counts("users_by_role", ROLES, "Accounts by role", "Role", "Accounts"),
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


PARTICIPANT_FIGURES = (
    "bitrate_in_kbps",
    "bitrate_out_kbps",
    "rtt_ms",
    "packets_lost",
    "frames_forwarded",
    "frames_dropped",
    "keyframes_requested",
)


def participant_rows(room: dict[str, Any]) -> list[dict[str, Any]]:
    """The SFU's per-participant stats (``docs/sfu.md``) as flat table rows."""
    rows = []
    for user_id, figures in (room.get("participants") or {}).items():
        row = {key: figures.get(key) for key in PARTICIPANT_FIGURES}
        row["user_id"] = user_id
        row["display_name"] = figures.get("display_name") or f"user {user_id}"
        # Kinds with media actually arriving (a transceiver can be open but idle).
        row["publishing"] = sorted(
            kind
            for kind, pub in (figures.get("publish") or {}).items()
            if isinstance(pub, dict) and pub.get("frames_in")
        )
        row["subscriptions"] = len(figures.get("subscribe") or [])
        rows.append(row)
    rows.sort(key=lambda r: str(r["display_name"]).lower())
    return rows


async def live_rooms(request: web.Request) -> list[LiveRoom]:
    """Every active session, plus any SFU room without one, with the room's stats."""
    sfu = request.app.get(SFU)
    rooms: dict[str, Any] = sfu.stats().get("rooms", {}) if sfu is not None else {}
    active = (
        await platform_of(request).sessions.search(
            SessionFilters(status=SessionStatus.ACTIVE), page=1, per_page=100
        )
    ).items
    out = [LiveRoom(str(s.id), s, participant_rows(rooms.get(str(s.id), {}))) for s in active]
    known = {room.room_id for room in out}
    out += [
        LiveRoom(rid, None, participant_rows(room))
        for rid, room in rooms.items()
        if rid not in known
    ]
    return out


@tabs.tab("control", "Admin Control")
async def admin_control(request: web.Request, user: User) -> Ctx:
    settings = request.app[SETTINGS]
    rooms: list[LiveRoom] = []
    sfu_error = ""
    try:
        rooms = await live_rooms(request)
    except Exception:  # the settings half of the tab must still render
        log.exception("live room stats failed")
        sfu_error = "The media server's figures could not be read."
    return {
        "summary": settings.public_summary(),
        "sfu_ready": request.app.get(SFU) is not None,
        "rooms": rooms,
        "sfu_error": sfu_error,
    }


# ---------------------------------------------------------------------------- account forms

#: An admin's change to one account: (admin, target id, the form) → the flash's words.
AccountChange = Callable[[User, int, dict[str, str]], Awaitable[str]]


async def change_account(request: web.Request, change: AccountChange) -> NoReturn:
    """Run an admin's form on ``/dashboard/users/{id}/…``, then go back to the list the
    admin came from (its search kept) with the outcome as a flash."""
    admin = require_user(request, Role.ADMIN)
    target = parse_int(request.match_info["id"], "user")
    data = await form_data(request)
    back = safe_next(data.get("next"), "/dashboard/?tab=users")
    try:
        done = await change(admin, target, data)
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, ("success", done))


@routes.post("/dashboard/users/{id}/active/")
async def set_active(request: web.Request) -> web.StreamResponse:
    async def change(admin: User, target: int, data: dict[str, str]) -> str:
        active = data.get("active") == "1"
        changed = await platform_of(request).accounts.set_active(admin, target, active)
        return f"{changed.username} {'reactivated' if active else 'deactivated'}."

    await change_account(request, change)


@routes.post("/dashboard/users/{id}/role/")
async def set_role(request: web.Request) -> web.StreamResponse:
    async def change(admin: User, target: int, data: dict[str, str]) -> str:
        changed = await platform_of(request).accounts.set_role(admin, target, data.get("role", ""))
        return f"{changed.username} is now a {changed.role}."

    await change_account(request, change)
