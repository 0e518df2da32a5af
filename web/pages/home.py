"""Landing page, the recommendations page and the notifications list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.models import Session, SessionStatus
from control.services.sessions import SessionFilters
from web.cache import CATALOGUE
from web.pages.common import platform_of, query_int, redirect, require_user
from web.pages.recommend import recommended_mentors, recommended_sessions, trending_sessions
from web.pages.render import render, render_public

routes = web.RouteTableDef()


@routes.get("/")
async def landing(request: web.Request) -> web.StreamResponse:
    sessions = platform_of(request).sessions

    async def blocks() -> tuple[list[Session], list[Session]]:
        # The same for every visitor: kept in the catalogue cache.
        upcoming = await sessions.upcoming(6)
        live = await sessions.search(SessionFilters(status=SessionStatus.ACTIVE), per_page=3)
        return upcoming, live.items

    async def context() -> dict[str, Any]:
        upcoming, live = await request.app[CATALOGUE].get_or_load(("page:landing",), blocks)
        return {"upcoming": upcoming, "live": live}

    return await render_public(request, "landing.html", ("landing",), context)


@routes.get("/recommendations/")
async def recommendations(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    return await render(
        request,
        "recommendations.html",
        {
            "sessions": await recommended_sessions(request, user, 9),
            "mentors": await recommended_mentors(request, user, 6),
            "trending": await trending_sessions(request, user, 6),
        },
    )


@routes.get("/notifications/")
async def notifications(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    result = await platform_of(request).notifications.page_for(
        user.id, page=query_int(request, "page"), per_page=20
    )
    return await render(request, "notifications.html", {"result": result})


@routes.post("/notifications/mark-read/")
async def mark_all_read(request: web.Request) -> web.StreamResponse:
    """No-JS fallback of the header's "mark all read" button."""
    user = require_user(request)
    await platform_of(request).notifications.mark_read(user.id, None)
    raise redirect("/notifications/", ("success", "All notifications marked as read."))
