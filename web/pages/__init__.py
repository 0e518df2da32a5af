"""Server-rendered pages: ``setup(app)`` registers every page route and the templates."""

from __future__ import annotations

from aiohttp import web

from web.keys import TEMPLATES
from web.pages import accessibility, auth, dashboard, home, profiles, room, sessions
from web.pages.render import build_environment


def setup(app: web.Application) -> None:
    app[TEMPLATES] = build_environment(app)
    for module in (home, auth, dashboard, sessions, room, profiles, accessibility):
        app.router.add_routes(module.routes)
