"""Journeys walked as new users would: register, create, browse, book, start, end, rate;
forms with bad input; the notification badge updating live."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from control.platform import Platform
from e2e.conftest import PASSWORD, BrowserPage, LiveServer, TestUser, room_steps

pytestmark = pytest.mark.browser


def register_via_form(bp: BrowserPage, role: str, first: str, last: str) -> TestUser:
    username = f"{first.lower()}_{uuid.uuid4().hex[:6]}"
    page = bp.page
    bp.goto(f"/auth/register/?role={role}")
    assert page.locator(f'input[name="role"][value="{role}"]').is_checked()
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.org")
    page.locator("#f-password").fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/dashboard/")
    assert "Welcome to PeerLearn" in page.locator("[data-flash]").inner_text()
    return TestUser(0, username, f"{username}@example.org", PASSWORD, role)


def user_id(live_server: LiveServer, username: str) -> int:
    async def find(platform: Platform) -> int:
        user = await platform.accounts.get_by_username(username)
        assert user is not None
        return user.id

    return live_server.call(find)


def test_mentor_and_learner_journey(
    live_server: LiveServer, new_page: Callable[..., BrowserPage]
) -> None:
    # A mentor signs up and creates a session starting in ten minutes.
    mentor = new_page("mentor")
    mentor.page.on("dialog", lambda dialog: dialog.accept())  # data-confirm prompts
    register_via_form(mentor, "mentor", "Grace", "Hopper")
    mentor.shot("1-registered")
    mentor.page.get_by_role("link", name="Create Session").click()
    title = f"Compilers from scratch {uuid.uuid4().hex[:4]}"
    start = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    form = mentor.page.locator("form[data-tz-form]")
    form.get_by_label("Title").fill(title)
    form.get_by_label("Description").fill("Lexers, parsers and code generation.")
    form.get_by_label("Date and time").fill(start)
    form.get_by_label("Duration (minutes)").fill("45")
    form.get_by_label("Learner seats").fill("5")
    form.get_by_label("Skills").fill("Compilers, Rust")
    mentor.shot("2-create-form")
    form.get_by_role("button", name="Create session").click()
    mentor.page.wait_for_url("**/dashboard/?tab=sessions")
    row = mentor.page.locator("tr", has_text=title)
    assert row.count() == 1
    session_id = row.get_attribute("data-session-id")
    assert session_id
    mentor.shot("3-my-sessions")

    # A learner signs up, adds interests, finds the session by browsing and books it.
    learner = new_page("learner")
    learner.page.on("dialog", lambda dialog: dialog.accept())
    learner_user = register_via_form(learner, "learner", "Linus", "Learner")
    learner.goto("/profile/")
    learner.page.get_by_label("Interests").fill("Compilers, Rust")
    learner.page.get_by_role("button", name="Save profile").click()
    assert "Profile saved." in learner.page.locator("[data-flash]").inner_text()
    learner.goto("/sessions/")
    learner.page.get_by_label("Search").fill(title.split()[-1])
    learner.page.get_by_role("button", name="Apply filters").click()
    learner.page.wait_for_url(re.compile(r".*q=.*"))
    learner.shot("4-browse-filtered")
    learner.page.get_by_role("link", name=title).click()
    learner.page.wait_for_url(f"**/sessions/{session_id}/")
    learner.page.get_by_role("button", name="Book a seat").click()
    assert "You're booked" in learner.page.locator("[data-flash]").inner_text()
    assert learner.page.get_by_role("link", name="Add to calendar (.ics)").is_visible()
    learner.shot("5-booked")
    learner.goto("/recommendations/")
    assert learner.page.locator(".session-card", has_text=title).count() >= 1
    learner.shot("6-recommendations")

    # The mentor starts it from My Sessions.
    mentor.goto("/dashboard/?tab=sessions")
    mentor.page.locator("tr", has_text=title).get_by_role("button", name="Start").click()
    assert "Session started" in mentor.page.locator("[data-flash]").inner_text()
    assert mentor.page.locator("tr", has_text=title).get_by_role("link", name="Open room")
    mentor.shot("7-started")
    learner.goto(f"/sessions/{session_id}/")
    join = learner.page.get_by_role("link", name="Join the live room")
    assert join.get_attribute("href") == f"/sessions/{session_id}/room"
    learner.shot("8-live")

    # The room (SFU engineer's hook; by default it records the learner's attendance).
    learner_user.id = user_id(live_server, learner_user.username)
    room_steps(live_server, mentor, learner, session_id, learner_user)

    # The mentor ends the session.
    mentor.goto("/dashboard/?tab=sessions")
    mentor.page.locator("tr", has_text=title).get_by_role("button", name="End").click()
    assert "Session ended" in mentor.page.locator("[data-flash]").inner_text()
    assert mentor.page.locator("tr", has_text=title).locator(".badge-completed").count() == 1

    # The learner rates it on the feedback page.
    learner.goto("/dashboard/?tab=bookings")
    learner.page.locator("tr", has_text=title).get_by_role("link", name="Rate").click()
    learner.page.wait_for_url(f"**/sessions/{session_id}/feedback/")
    learner.page.locator('label[for="rating-5"]').click()
    learner.page.get_by_label("Comment (optional)").fill("Loved the parser part!")
    learner.shot("9-feedback")
    learner.page.get_by_role("button", name="Submit feedback").click()
    learner.page.wait_for_url("**/dashboard/?tab=bookings")
    assert "Thanks for your feedback" in learner.page.locator("[data-flash]").inner_text()
    assert learner.page.locator("tr", has_text=title).get_by_text("Rated ✓").is_visible()

    mentor.goto(f"/sessions/{session_id}/")
    assert mentor.page.get_by_text("Loved the parser part!").is_visible()
    mentor.shot("10-reviewed")


def test_forms_show_field_errors(
    make_user: Callable[..., TestUser], new_page: Callable[..., BrowserPage]
) -> None:
    bp = new_page("anon")
    bp.goto("/auth/register/")
    bp.page.get_by_label("First name").fill("Kept")
    bp.page.get_by_label("Username").fill("x y")
    bp.page.get_by_label("E-mail").fill("not-an-email")
    bp.page.locator("#f-password").fill("short")
    bp.page.get_by_label("Repeat password").fill("different")
    bp.page.get_by_role("button", name="Create account").click()
    error = bp.page.locator("#err-password_confirm")
    assert error.is_visible() and "differ" in error.inner_text()
    assert bp.page.get_by_label("First name").input_value() == "Kept"
    assert bp.page.get_by_label("Repeat password").get_attribute("aria-invalid") == "true"
    bp.shot("register-errors")

    bp.page.locator("#f-password").fill("short")
    bp.page.get_by_label("Repeat password").fill("short")
    bp.page.get_by_role("button", name="Create account").click()
    assert bp.page.locator(".field-error").count() >= 2  # username/e-mail/password
    assert bp.page.get_by_label("E-mail").input_value() == "not-an-email"

    bp.goto("/auth/login/")
    bp.page.get_by_label("Username or e-mail").fill("nobody-here")
    bp.page.get_by_label("Password").fill("wrong-password")
    bp.page.get_by_role("button", name="Log in").click()
    assert "wrong" in bp.page.get_by_role("alert").inner_text().lower()
    assert bp.page.get_by_label("Username or e-mail").input_value() == "nobody-here"
    bp.shot("login-error")

    mentor = new_page("mentor", user=make_user("mentor"))
    mentor.goto("/dashboard/?tab=create")
    form = mentor.page.locator("form[data-tz-form]")
    form.get_by_label("Title").fill("ok")
    form.get_by_label("Date and time").fill("2001-01-01T10:00")
    form.get_by_label("Learner seats").fill("99")
    form.get_by_role("button", name="Create session").click()
    for name in ("title", "schedule", "max_participants", "skills_required"):
        assert mentor.page.locator(f"#err-{name}").is_visible(), name
    assert mentor.page.get_by_label("Title").input_value() == "ok"
    mentor.shot("create-session-errors")

    mentor.goto("/profile/")
    mentor.page.get_by_label("Hourly rate (USD)").fill("-5")
    mentor.page.get_by_role("button", name="Save profile").click()
    assert mentor.page.locator("#err-hourly_rate").is_visible()


def test_notification_badge_updates_live(
    live_server: LiveServer, make_user: Callable[..., TestUser],
    new_page: Callable[..., BrowserPage],
) -> None:
    mentor_user = make_user("mentor", skills=["Go"])

    async def create(platform: Platform) -> str:
        mentor = await platform.accounts.get_user(mentor_user.id)
        session = await platform.sessions.create(
            mentor, title="Go concurrency", description="Channels",
            schedule=datetime.now(UTC) + timedelta(days=1), duration=60,
            max_participants=3, skills_required=["Go"], price=0)
        return str(session.id)

    session_id = live_server.call(create)
    mentor = new_page("mentor", user=mentor_user)
    mentor.goto("/dashboard/")
    mentor.page.wait_for_selector('[data-notifications][data-live="connected"]')
    badge = mentor.page.locator("[data-notif-badge]")
    assert badge.is_hidden()

    learner = new_page("learner", user=make_user("learner"))
    learner.goto(f"/sessions/{session_id}/")
    learner.page.get_by_role("button", name="Book a seat").click()

    # No reload on the mentor's side: the WebSocket brings the new count and item.
    mentor.page.wait_for_function(
        "document.querySelector('[data-notif-badge]').textContent.trim() === '1'")
    assert badge.is_visible()
    mentor.page.locator("[data-notif-toggle]").click()
    item = mentor.page.locator("[data-notif-list] .notif-item").first
    assert "New booking" in item.inner_text()
    mentor.shot("live-badge", full_page=False)

    mentor.page.get_by_role("button", name="Mark all read").click()
    mentor.page.wait_for_function(
        "document.querySelector('[data-notif-badge]').hidden === true")

    async def unread(platform: Platform) -> int:
        return await platform.notifications.unread_count(mentor_user.id)

    assert live_server.call(unread) == 0
