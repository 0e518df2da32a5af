"""Every dashboard tab of every role with seeded data, at desktop and phone widths, plus the
other pages: each screenshot saved, no console errors, nothing fetched from another origin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.conftest import BrowserPage, LiveServer, TestUser
from e2e.seed import PASSWORD, seed_world

pytestmark = pytest.mark.browser

TABS = {
    "lin": ["overview", "browse", "bookings", "recommendations", "following"],
    "ada": ["overview", "sessions", "create", "requests", "analytics", "earnings"],
    "admin": ["overview", "users", "sessions", "analytics", "control"],
}


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> dict[str, Any]:
    return live_server.call(seed_world)


def as_user(world: dict[str, Any], name: str) -> TestUser:
    u = world["users"][name]
    return TestUser(u.id, u.username, u.email, PASSWORD, u.role, world["tokens"][name])


@pytest.mark.parametrize("who", ["lin", "ada", "admin"])
def test_every_dashboard_tab(world: dict[str, Any], new_page: Callable[..., BrowserPage],
                             who: str) -> None:
    user = as_user(world, who)
    for phone in (False, True):
        bp = new_page("phone" if phone else "desktop", user=user, phone=phone)
        for tab in TABS[who]:
            response = bp.goto(f"/dashboard/?tab={tab}")
            assert response.status == 200, (who, tab)
            current = bp.page.locator('nav.tabs a[aria-current="page"]')
            assert current.get_attribute("href") == f"/dashboard/?tab={tab}"
            assert bp.page.locator("h1").first.is_visible()
            bp.shot(f"{user.role}-{tab}")
            # Nothing may overflow the phone's width (tables scroll inside their wrapper).
            width = bp.page.evaluate("document.documentElement.scrollWidth")
            assert width <= (360 if phone else 1280) + 1, (who, tab, width)


def test_tabs_are_keyboard_usable(world: dict[str, Any],
                                  new_page: Callable[..., BrowserPage]) -> None:
    bp = new_page(user=as_user(world, "ada"))
    bp.goto("/dashboard/")
    bp.page.locator('nav.tabs a[href="/dashboard/?tab=analytics"]').focus()
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_url("**tab=analytics")
    assert bp.page.locator("svg.chart").count() == 2
    assert bp.page.locator("svg.chart title").first.text_content() == "Rating distribution"


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_other_pages(world: dict[str, Any], new_page: Callable[..., BrowserPage],
                     phone: bool) -> None:
    sessions = world["sessions"]
    ada = world["users"]["ada"].username
    anon = new_page("anon", phone=phone)
    for step, path in [("landing", "/"), ("login", "/auth/login/"),
                       ("register", "/auth/register/"), ("reset", "/auth/password-reset/"),
                       ("browse", "/sessions/"), ("portfolio", f"/profile/{ada}/")]:
        assert anon.goto(path).status == 200, path
        anon.shot(step)
    learner = new_page("learner", user=as_user(world, "lin"), phone=phone)
    for step, path in [("session-detail", f"/sessions/{sessions['free']}/"),
                       ("session-live", f"/sessions/{sessions['live']}/"),
                       ("feedback", f"/sessions/{sessions['done']}/feedback/"),
                       ("recommendations", "/recommendations/"), ("profile", "/profile/"),
                       ("followers", f"/profile/{ada}/followers/"),
                       ("notifications", "/notifications/")]:
        assert learner.goto(path).status == 200, path
        width = learner.page.evaluate("document.documentElement.scrollWidth")
        assert width <= (360 if phone else 1280) + 1, (path, width)
        learner.shot(step)
    learner.page.locator("[data-notif-toggle]").click()
    assert learner.page.locator("[data-notif-panel]").is_visible()
    learner.shot("notification-dropdown", full_page=False)
    for bp in (anon, learner):
        assert bp.foreign_requests() == []
        assert bp.real_console_errors() == []
