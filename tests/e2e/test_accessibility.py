"""WCAG 2.1 AA on every HTML page: axe-core (``harness.axe_violations``) on each page route
the app's router serves, for every role that can open it, at desktop and phone width.

``VISITS`` names, per route, the URLs each role opens; ``test_every_page_route_is_checked``
fails when the router has an HTML route that ``VISITS`` does not cover, so a new page gets
its check with it. One page per role and width is reused for all of that role's URLs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from control.models import Role
from tests.e2e.harness import BrowserPage, LiveServer, axe_violations, heading_problems
from tests.e2e.seed import as_user
from web.pages.dashboard import DASHBOARDS
from web.security import SESSION_COOKIE

pytestmark = pytest.mark.browser

ANON, LEARNER, MENTOR, ADMIN = "anonymous", "learner", "mentor", "admin"
#: The seeded account each role is seen as (``seed.py``): Lin books, Ada teaches.
ACCOUNTS = {LEARNER: "lin", MENTOR: "ada", ADMIN: "admin"}
#: Routes that are not HTML pages (JSON, WebSockets, files).
NOT_PAGES = ("/api/", "/ws/", "/healthz", "/readyz", "/metrics", "/static", "/media")


@dataclass(frozen=True)
class Visit:
    """``url`` (``{free}``-style fields from ``urls(world)``) of ``route``, seen as ``role``."""

    route: str
    role: str
    url: str


def _visits() -> list[Visit]:
    everyone = (ANON, LEARNER, MENTOR, ADMIN)
    signed_in = (LEARNER, MENTOR, ADMIN)
    out: list[Visit] = []

    def add(route: str, roles: tuple[str, ...], *urls: str) -> None:
        out.extend(Visit(route, role, url) for role in roles for url in urls or (route,))

    add("/", everyone)
    add("/accessibility/", everyone)
    add("/sessions/", everyone, "/sessions/", "/sessions/?status=active&page=2")
    add("/sessions/{id}/", everyone, "/sessions/{free}/", "/sessions/{done}/", "/sessions/{paid}/")
    add("/sessions/{id}/", (ANON,), "/sessions/{missing}/")  # the 404 page
    add("/profile/{username}/", everyone, "/profile/{ada}/", "/profile/{lin}/")
    add("/profile/{username}/followers/", everyone, "/profile/{ada}/followers/")
    add("/profile/{username}/following/", everyone, "/profile/{lin}/following/")
    add("/auth/login/", (ANON,), "/auth/login/", "/auth/login/?next=/dashboard/")
    add("/auth/register/", (ANON,), "/auth/register/", "/auth/register/?role=mentor")
    add("/auth/password-reset/", (ANON,))
    add("/auth/password-reset/confirm/", (ANON,), "/auth/password-reset/confirm/?token=bad")
    add("/auth/verify-email/", (ANON,), "/auth/verify-email/?token=bad")
    add("/auth/email-change/confirm/", (LEARNER,), "/auth/email-change/confirm/?token=bad")
    add("/recommendations/", signed_in)
    add("/notifications/", signed_in)
    add("/profile/", signed_in)
    add("/profile/security/", signed_in)
    for role in signed_in:
        add("/dashboard/", (role,), *(f"/dashboard/?tab={t.slug}" for t in DASHBOARDS[Role(role)]))
    add("/sessions/{id}/feedback/", (LEARNER,), "/sessions/{done}/feedback/")
    # The room: Lin's lobby of a live session, Ada's waiting room of her scheduled one and
    # the end screen of her finished one (the in-room states are in test_accessibility_room).
    add("/sessions/{session_id}/room", (LEARNER,), "/sessions/{live}/room")
    add("/sessions/{session_id}/room", (MENTOR,), "/sessions/{free}/room", "/sessions/{done}/room")
    add("/sessions/{session_id}/room/", (LEARNER,), "/sessions/{live}/room/")
    return out


VISITS = _visits()


def _page_routes(live_server: LiveServer) -> set[str]:
    """Every path the router answers GET on with a page handler (not API, WS or files)."""
    out = set()
    for route in live_server.app.router.routes():
        if route.method not in ("GET", "*"):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = str(info.get("path") or info.get("formatter") or info.get("prefix") or "")
        if path and not path.startswith(NOT_PAGES):
            out.add(path)
    return out


def _fields(world: dict[str, Any]) -> dict[str, str]:
    s, u = world["sessions"], world["users"]
    return {
        "free": str(s["free"]),
        "done": str(s["done"]),
        "paid": str(s["paid"]),
        "live": str(s["live"]),
        "missing": str(uuid.uuid4()),
        "ada": u["ada"].username,
        "lin": u["lin"].username,
    }


def test_every_page_route_is_checked(live_server: LiveServer) -> None:
    unchecked = _page_routes(live_server) - {v.route for v in VISITS}
    assert not unchecked, f"HTML routes with no accessibility check in VISITS: {unchecked}"
    stale = {v.route for v in VISITS} - _page_routes(live_server)
    assert not stale, f"VISITS names routes the app no longer serves: {stale}"


@pytest.mark.parametrize("phone", [False, True], ids=["1280px", "360px"])
@pytest.mark.parametrize("role", [ANON, LEARNER, MENTOR, ADMIN])
def test_no_axe_violations(
    world: dict[str, Any], new_page: Callable[..., BrowserPage], role: str, phone: bool
) -> None:
    user = as_user(world, ACCOUNTS[role]) if role in ACCOUNTS else None
    bp = new_page(role, user=user, phone=phone, allow_http_errors=True)
    fields = _fields(world)
    found: list[str] = []
    for visit in (v for v in VISITS if v.role == role):
        url = visit.url.format(**fields)
        bp.goto(url)
        bp.page.wait_for_load_state("networkidle")
        found += axe_violations(bp, url) + heading_problems(bp, url)
    assert not found, f"{len(found)} axe violations and heading problems:\n" + "\n".join(found)


@pytest.mark.parametrize("role", [ANON, LEARNER, MENTOR])
def test_pages_reflow_at_200_percent_zoom(
    world: dict[str, Any], browser: Any, live_server: LiveServer, role: str
) -> None:
    """200 % zoom of a 1280 px window: 640 CSS px at 2x device scale. Nothing may need a
    sideways scroll of the page (WCAG 1.4.4 / 1.4.10); wide tables scroll in their own box."""
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 640, "height": 800},
        device_scale_factor=2,
        timezone_id="UTC",
        locale="en-GB",
    )
    try:
        if role in ACCOUNTS:
            user = as_user(world, ACCOUNTS[role])
            context.add_cookies(
                [{"name": SESSION_COOKIE, "value": user.token, "url": live_server.url}]
            )
        page = context.new_page()
        fields = _fields(world)
        wide = []
        for visit in (v for v in VISITS if v.role == role):
            url = visit.url.format(**fields)
            page.goto(live_server.url + url)
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                wide.append(f"{url}: {overflow} px wider than the window")
        assert not wide, "pages that scroll sideways at 200 % zoom:\n" + "\n".join(wide)
    finally:
        context.close()
