"""``/accessibility/``: the accessibility statement (what conforms, known gaps, reporting)."""

from __future__ import annotations

from aiohttp import web

from web.pages.render import render

routes = web.RouteTableDef()


@routes.get("/accessibility/")
async def statement(request: web.Request) -> web.StreamResponse:
    """Public: anyone choosing PeerLearn (or a school buying it) can read it signed out."""
    return await render(request, "accessibility.html", {})
