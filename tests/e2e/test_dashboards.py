"""Every dashboard tab of every role with seeded data, at desktop and phone widths, plus the
other pages: each screenshot saved, no console errors, nothing fetched from another origin."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import BrowserPage
from tests.e2e.seed import as_user

pytestmark = pytest.mark.browser

TABS = {
    "lin": ["overview", "browse", "bookings", "recommendations", "following"],
    "ada": ["overview", "sessions", "create", "requests", "analytics", "earnings"],
    "admin": ["overview", "users", "sessions", "analytics", "control"],
}
TAB_CASES = [(who, tab) for who, tabs in TABS.items() for tab in tabs]
EYEBROW = {"lin": "Learner dashboard", "ada": "Mentor dashboard", "admin": "Admin dashboard"}
#: the pages outside the dashboard, by who opens them ("anon": nobody signed in); paths are
#: formatted with the seeded world's session ids and ``ada`` (her username)
OTHER_PAGES = {
    "anon": {
        "landing": "/",
        "login": "/auth/login/",
        "register": "/auth/register/",
        "reset": "/auth/password-reset/",
        "browse": "/sessions/",
        "portfolio": "/profile/{ada}/",
        "session-anon": "/sessions/{free}/",
    },
    "lin": {
        "session-detail": "/sessions/{free}/",
        "session-pending": "/sessions/{paid}/",
        "session-live": "/sessions/{live}/",
        "feedback": "/sessions/{done}/feedback/",
        "recommendations": "/recommendations/",
        "profile": "/profile/",
        "followers": "/profile/{ada}/followers/",
        "notifications": "/notifications/",
    },
}
PAGE_CASES = [
    (who, step, path) for who, pages in OTHER_PAGES.items() for step, path in pages.items()
]
VIEWPORTS = pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])


def fits_width(bp: BrowserPage, phone: bool) -> None:
    """Nothing may overflow the viewport (tables and charts scroll inside their wrapper)."""
    width = bp.page.evaluate("document.documentElement.scrollWidth")
    assert width <= (360 if phone else 1280) + 1, (bp.page.url, width)


UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden')
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map((el) => el.name || el.id || el.outerHTML.slice(0, 60))"""


def inputs_labelled(bp: BrowserPage) -> None:
    """Every form control on the page has a label (or an aria-label)."""
    assert bp.page.evaluate(UNLABELLED_JS) == [], bp.page.url


def all_tabs_visible(bp: BrowserPage) -> None:
    """Every tab link is on screen (wrapping on a phone, never hidden off to the side)."""
    viewport = bp.page.viewport_size
    assert viewport is not None
    for box in [t.bounding_box() for t in bp.page.locator("nav.tabs a").all()]:
        assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= viewport["width"]


@VIEWPORTS
@pytest.mark.parametrize(("who", "tab"), TAB_CASES, ids=[f"{w}-{t}" for w, t in TAB_CASES])
def test_every_dashboard_tab(
    world: dict[str, Any], new_page: Callable[..., BrowserPage], who: str, tab: str, phone: bool
) -> None:
    user = as_user(world, who)
    bp = new_page("phone" if phone else "desktop", user=user, phone=phone)
    response = bp.goto(f"/dashboard/?tab={tab}")
    assert response.status == 200, (who, tab)
    current = bp.page.locator('nav.tabs a[aria-current="page"]')
    assert current.get_attribute("href") == f"/dashboard/?tab={tab}"
    assert bp.page.locator(".eyebrow").first.inner_text().lower() == EYEBROW[who].lower()
    assert bp.page.locator("h1").first.is_visible()
    bp.shot(f"{user.role}-{tab}")
    fits_width(bp, phone)
    all_tabs_visible(bp)
    inputs_labelled(bp)


def test_learner_tabs_show_the_seeded_data(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    bp = new_page(user=as_user(world, "lin"))
    page = bp.page
    bp.goto("/dashboard/")
    cards = page.locator(".stat")
    assert cards.filter(has_text="Sessions attended").locator(".stat-value").inner_text() == "3"
    bp.goto("/dashboard/?tab=bookings")
    live = page.locator("tr", has_text="Number theory live")
    assert live.get_by_role("link", name="Join room").get_attribute("href") == (
        f"/sessions/{world['sessions']['live']}/room"
    )
    pending = page.locator("tr", has_text="Python code review clinic")
    assert "$25.00 due" in pending.inner_text()
    assert pending.get_by_role("button", name="Cancel").is_visible()
    rated = page.locator("tr", has_text="Graphs for beginners")
    assert rated.get_by_text("Rated ✓").is_visible()
    bp.goto("/dashboard/?tab=following")
    ada = page.locator(".card", has_text="Ada Lovelace")
    assert ada.get_by_role("link", name="Algorithms workshop").is_visible()
    bp.goto("/dashboard/?tab=recommendations")
    cards = page.locator(".session-card")
    assert cards.count() >= 3
    for card in cards.all():
        assert card.locator(".reason").inner_text().strip()
    # Already booked sessions are not suggested again.
    for booked in ("free", "paid", "live"):
        href = f"/sessions/{world['sessions'][booked]}/"
        assert page.locator(f'.session-card a[href="{href}"]').count() == 0, booked


def test_mentor_tabs_show_the_seeded_data(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    bp = new_page(user=as_user(world, "ada"))
    page = bp.page
    bp.goto("/dashboard/")
    earnings = page.locator(".stat", has_text="Total earnings").locator(".stat-value")
    assert earnings.inner_text() == "$65.00"  # two paid seats of "Sorting" + one of the clinic
    assert "4.0" in page.locator(".stat", has_text="Average rating").inner_text()
    bp.goto("/dashboard/?tab=requests")
    assert (
        page.locator("tr", has_text="Lin Chen").get_by_role("button", name="Mark paid").is_visible()
    )
    bp.goto("/dashboard/?tab=analytics")
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    rating = charts.nth(0)
    assert rating.locator("title").first.text_content() == "Rating distribution"
    assert rating.locator("rect.chart-bar").count() == 5
    assert {"Rating", "Reviews"} <= set(rating.locator("text.chart-axis-label").all_text_contents())
    attendance = charts.nth(1)
    assert attendance.locator("circle.chart-point").count() == 4  # four past sessions
    assert attendance.locator("polyline.chart-line").count() == 1
    bp.goto("/dashboard/?tab=earnings")
    per_month = page.locator(".card", has=page.get_by_role("heading", name="Per month"))
    # Sessions count in the month they take place (UTC): "Sorting" three weeks ago and the
    # clinic in two days fall in one month or two depending on today's date.
    expected: dict[str, int] = defaultdict(int)
    for when, amount in world["earned"]:
        expected[f"{when:%b %Y}"] += amount
    assert sum(expected.values()) == 65
    for label, amount in expected.items():
        assert f"${amount:.2f}" in per_month.locator("tr", has_text=label).inner_text(), label
    assert page.locator("svg.chart rect.chart-bar").count() >= 1


def test_admin_tabs_show_the_seeded_data(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    bp = new_page(user=as_user(world, "admin"))
    page = bp.page
    bp.goto("/dashboard/?tab=analytics")
    titles = page.locator("svg.chart > title").all_text_contents()
    assert titles == [
        "New accounts per week",
        "Bookings per week",
        "Sessions by status",
        "Accounts by role",
    ]
    bp.goto("/dashboard/?tab=control")
    room = page.locator(f'[data-room="{world["sessions"]["live"]}"]')
    assert "Number theory live" in room.inner_text()
    assert room.locator("[data-connected]").inner_text() == "0"

    def section(name: str) -> Any:  # by its heading: key names mention other sections
        heading = page.locator("h4", has_text=re.compile(f"^{name}$"))
        return page.locator(".settings-section", has=heading)

    assert "max_participants" in section("sessions").inner_text()
    assert "********" in section("server").inner_text()


def test_tabs_are_keyboard_usable(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    bp = new_page(user=as_user(world, "ada"))
    bp.goto("/dashboard/")
    bp.page.locator('nav.tabs a[href="/dashboard/?tab=analytics"]').focus()
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_url("**tab=analytics")
    assert bp.page.locator("svg.chart").count() == 2
    assert bp.page.locator("svg.chart title").first.text_content() == "Rating distribution"


@VIEWPORTS
@pytest.mark.parametrize(
    ("who", "step", "path"), PAGE_CASES, ids=[f"{who}-{step}" for who, step, _ in PAGE_CASES]
)
def test_other_page_fits_and_is_labelled(
    world: dict[str, Any],
    new_page: Callable[..., BrowserPage],
    who: str,
    step: str,
    path: str,
    phone: bool,
) -> None:
    user = None if who == "anon" else as_user(world, who)
    bp = new_page(who, user=user, phone=phone)
    url = path.format(ada=world["users"]["ada"].username, **world["sessions"])
    assert bp.goto(url).status == 200, url
    fits_width(bp, phone)
    inputs_labelled(bp)
    bp.shot(step)


@VIEWPORTS
def test_landing_navigation_and_notifications(
    world: dict[str, Any], new_page: Callable[..., BrowserPage], phone: bool
) -> None:
    sessions = world["sessions"]
    anon = new_page("anon", phone=phone)
    anon.goto("/")
    live = anon.page.locator("section", has=anon.page.get_by_role("heading", name="Live now"))
    live_href = f"/sessions/{sessions['live']}/"
    expect(live.locator(f'.session-card a[href="{live_href}"]')).to_be_visible()
    expect(anon.page.get_by_role("link", name="Become a mentor")).to_have_attribute(
        "href", "/auth/register/?role=mentor"
    )
    learner = new_page("learner", user=as_user(world, "lin"), phone=phone)
    learner.goto("/notifications/")  # a page with the notification bell and a list to match
    nav = learner.page.get_by_role("navigation", name="Main")
    if phone:  # the main navigation folds behind a button
        expect(nav.get_by_role("link", name="For you")).to_be_hidden()
        menu = learner.page.get_by_role("button", name="Menu")
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="For you")).to_be_visible()
    learner.page.wait_for_selector('[data-notifications][data-live="connected"]')
    learner.page.locator("[data-notif-toggle]").click()
    panel = learner.page.locator("[data-notif-panel]")
    expect(panel).to_be_visible()
    box, viewport = panel.bounding_box(), learner.page.viewport_size
    assert box and viewport and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    expect(panel.locator(".notif-item").first).to_be_visible()
    learner.shot("notification-dropdown", full_page=False)
    # The live notification socket counts as a request, and stays on our origin.
    assert any(url.startswith("ws://") and "/ws/notifications/" in url for url in learner.requests)
    for bp in (anon, learner):
        assert bp.foreign_requests() == []
        assert bp.real_console_errors() == []
