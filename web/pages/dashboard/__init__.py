"""``/dashboard/``: one server-rendered view per tab, chosen by role and ``?tab=``.

Each role's tabs are declared once, on their handlers, in ``learner``, ``mentor`` and
``admin`` (``tabs.RoleTabs``): the nav and the dispatch below read those lists. Figures come
from ``platform.stats`` (read-only aggregate queries shared with ``GET /api/stats/overview/``);
charts are drawn on the server as inline SVG.
"""

from __future__ import annotations

from aiohttp import web

from control.errors import Forbidden, NotFound
from control.models import Role
from web.pages.common import require_user
from web.pages.dashboard import admin, learner, mentor
from web.pages.dashboard.learner import split_bookings
from web.pages.dashboard.mentor import ScheduleInput, parse_schedule, schedule_note
from web.pages.dashboard.tabs import Card, RoleTabs, Tab

__all__ = [
    "DASHBOARDS",
    "Card",
    "RoleTabs",
    "ScheduleInput",
    "Tab",
    "dashboard",
    "parse_schedule",
    "routes",
    "schedule_note",
    "split_bookings",
]

#: Every role's tabs, by role.
DASHBOARDS: dict[Role, RoleTabs] = {
    tabs.role: tabs for tabs in (learner.tabs, mentor.tabs, admin.tabs)
}

_view = web.RouteTableDef()


@_view.get("/dashboard/")
async def dashboard(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    slug = request.query.get("tab", "overview")
    tabs = DASHBOARDS[Role(user.role)]
    if slug not in tabs:
        if any(slug in other for other in DASHBOARDS.values()):
            raise Forbidden("that dashboard tab belongs to another role")
        raise NotFound("no such dashboard tab")
    return await tabs.render(request, user, slug)


#: The tab view, then the forms the mentor's and the admin's tabs post to.
routes: list[web.AbstractRouteDef] = [*_view, *mentor.routes, *admin.routes]
