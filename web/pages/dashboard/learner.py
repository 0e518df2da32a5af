"""The learner's dashboard tabs: overview, browse, bookings, recommendations, following."""

from __future__ import annotations

from aiohttp import web

from control.models import Booking, Role, User, utcnow
from web.pages.common import platform_of
from web.pages.dashboard.tabs import Card, Ctx, RoleTabs, parse_time
from web.pages.recommend import recommended_sessions
from web.pages.render import latest_notifications
from web.pages.sessions import browse_context

tabs = RoleTabs(Role.LEARNER)


def split_bookings(bookings: list[Booking]) -> tuple[list[Booking], list[Booking]]:
    """(upcoming, past) by ``Booking.is_upcoming`` (the rule the API and the stats use):
    upcoming soonest first, past latest first."""
    now = utcnow()
    upcoming: list[Booking] = []
    past: list[Booking] = []
    for b in bookings:
        (upcoming if b.is_upcoming(now) else past).append(b)
    upcoming.sort(key=lambda b: b.session.schedule)
    past.sort(key=lambda b: b.session.schedule, reverse=True)
    return upcoming, past


@tabs.tab("overview", "Overview")
async def learner_overview(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    bookings = await platform.bookings.for_learner(user.id)
    stats = await platform.stats.learner_overview(user, bookings=bookings)
    upcoming, _ = split_bookings(bookings)
    _, following = await platform.follows.counts(user.id)
    cards = [
        Card("Upcoming sessions", stats["bookings_upcoming"]),
        Card("Sessions attended", stats["bookings_completed"]),
        Card("Mentors followed", following),
        Card("Hours learned", stats["hours_learned"], "hours"),
    ]
    recent = [{**item, "at": parse_time(item.get("at"))} for item in stats["recent_activity"][:8]]
    activity = await latest_notifications(request, user)  # the header's, read once
    return {"cards": cards, "upcoming": upcoming[:5], "activity": activity, "recent": recent}


@tabs.tab("browse", "Browse Sessions")
async def learner_browse(request: web.Request, user: User) -> Ctx:
    return await browse_context(request)


@tabs.tab("bookings", "My Bookings")
async def learner_bookings(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    upcoming, past = split_bookings(await platform.bookings.for_learner(user.id))
    # The API's rule: from the start of the session (the UI features "Rate" once it ended).
    rateable = {b.id for b in [*upcoming, *past] if b.may_rate}
    rated = {
        b.id
        for b in [*upcoming, *past]
        if b.id in rateable and await platform.feedback.has_rated(user.id, b.session_id)
    }
    return {"upcoming": upcoming, "past": past, "rateable": rateable, "rated": rated}


@tabs.tab("recommendations", "Recommendations")
async def learner_recommendations(request: web.Request, user: User) -> Ctx:
    return {"picks": await recommended_sessions(request, user, 9)}


@tabs.tab("following", "Following")
async def learner_following(request: web.Request, user: User) -> Ctx:
    platform = platform_of(request)
    rows = []
    for mentor in await platform.follows.following(user.id):
        sessions = [s for s in await platform.sessions.for_mentor(mentor.id) if s.is_open]
        sessions.sort(key=lambda s: s.schedule)
        rows.append((mentor, sessions[:3]))
    return {"rows": rows}
