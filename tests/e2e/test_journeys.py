"""The main journey walked as new users would: a mentor registers and creates a session; a
learner registers, finds it in recommendations and by browsing, books it and downloads its
calendar entry; the mentor starts; both enter the room; the mentor ends; the learner rates.
Plus the notification badge updating live."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from control.platform import Platform
from tests.e2e.harness import PASSWORD, BrowserPage, LiveServer, TestUser
from tests.e2e.room_helpers import room_steps
from web.keys import RECOMMENDER

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
    expect(page.locator("[data-flash]")).to_contain_text("Welcome to PeerLearn")
    expect(page.locator(".eyebrow").first).to_have_text(f"{role} dashboard", ignore_case=True)
    return TestUser(0, username, f"{username}@example.org", PASSWORD, role)


def user_id(live_server: LiveServer, username: str) -> int:
    async def find(platform: Platform) -> int:
        user = await platform.accounts.get_by_username(username)
        assert user is not None
        return user.id

    return live_server.call(find)


def check_calendar_file(
    bp: BrowserPage, session_id: str, title: str, start: datetime, minutes: int
) -> None:
    """The .ics link answers a valid iCalendar event for the booked session (RFC 5545)."""
    link = bp.page.get_by_role("link", name="Add to calendar (.ics)")
    href = link.get_attribute("href")
    assert href == f"/api/sessions/{session_id}/calendar.ics"
    response = bp.page.request.get(bp.base_url + href)  # the browser context's cookies
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert "attachment" in response.headers["content-disposition"]
    raw = response.body().decode()
    assert raw.startswith("BEGIN:VCALENDAR\r\n") and raw.endswith("END:VCALENDAR\r\n")
    assert "\n" not in raw.replace("\r\n", ""), "every line ends with CRLF"
    lines = raw.replace("\r\n ", "").split("\r\n")  # unfold continuation lines
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    assert fields["VERSION"] == "2.0" and "PRODID" in fields
    assert fields["UID"].startswith(f"{session_id}@")
    fmt = "%Y%m%dT%H%M%SZ"
    assert fields["DTSTART"] == start.strftime(fmt)
    assert fields["DTEND"] == (start + timedelta(minutes=minutes)).strftime(fmt)
    assert re.fullmatch(r"\d{8}T\d{6}Z", fields["DTSTAMP"])
    assert fields["SUMMARY"] == title.replace(",", "\\,").replace(";", "\\;")
    assert fields["URL"].endswith(f"/sessions/{session_id}/")


def test_mentor_and_learner_journey(
    live_server: LiveServer, new_page: Callable[..., BrowserPage]
) -> None:
    # The recommender has fitted on the platform as it is (tests run no background fits).
    version = live_server.refit_recommender()

    # A mentor signs up and creates a session starting in ten minutes.
    mentor = new_page("mentor")
    mentor.page.on("dialog", lambda dialog: dialog.accept())  # data-confirm prompts
    register_via_form(mentor, "mentor", "Grace", "Hopper")
    mentor.shot("01-registered")
    mentor.page.get_by_role("link", name="Create Session").click()
    title = f"Compilers, from scratch; part {uuid.uuid4().hex[:4]}"
    start = (datetime.now(UTC) + timedelta(minutes=10)).replace(second=0, microsecond=0)
    form = mentor.page.locator("form[data-tz-form]")
    form.get_by_label("Title").fill(title)
    form.get_by_label("Description").fill("Lexers, parsers and code generation.")
    form.get_by_label("Date and time").fill(start.strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label("Duration (minutes)").fill("45")
    form.get_by_label("Learner seats").fill("5")
    form.get_by_label("Skills").fill("Compilers, Rust")
    mentor.shot("02-create-form")
    form.get_by_role("button", name="Create session").click()
    mentor.page.wait_for_url("**/dashboard/?tab=sessions")
    expect(mentor.page.locator("[data-flash]")).to_contain_text("created")
    row = mentor.page.locator("tr", has_text=title)
    expect(row).to_have_count(1)
    session_id = row.get_attribute("data-session-id")
    assert session_id
    mentor.shot("03-my-sessions")

    # A learner signs up and says what they want to learn.
    learner = new_page("learner")
    learner.page.on("dialog", lambda dialog: dialog.accept())
    learner_user = register_via_form(learner, "learner", "Linus", "Learner")
    learner.shot("04-registered")
    learner.goto("/profile/")
    learner.page.get_by_label("Interests").fill("Compilers, Rust")
    learner.page.get_by_role("button", name="Save profile").click()
    expect(learner.page.locator("[data-flash]")).to_contain_text("Profile saved.")

    # ... finds it by browsing with a filter and opens it ...
    learner.goto("/sessions/")
    learner.page.get_by_label("Skill").fill("Compilers")
    learner.page.get_by_role("button", name="Apply filters").click()
    learner.page.wait_for_url(re.compile(r".*skill=Compilers.*"))
    learner.shot("05-browse-filtered")
    learner.page.get_by_role("link", name=title).click()
    learner.page.wait_for_url(f"**/sessions/{session_id}/")
    learner.shot("06-details")

    # ... finds it in their recommendations too, with the reason it is suggested: the model
    # took the new session (and its new mentor) in when it was published, without a refit ...
    card = learner.page.locator(
        ".session-card", has=learner.page.locator(f'a[href="/sessions/{session_id}/"]')
    ).first
    learner.page.get_by_role("link", name="For you").click()
    learner.page.wait_for_url("**/recommendations/")
    expect(card).to_be_visible()
    assert card.locator(".reason").inner_text().strip()
    assert session_id in live_server.recommended_to(learner_user.username)
    assert live_server.app[RECOMMENDER].model_version == version
    learner.shot("07-recommendations")

    # ... and books it.
    card.get_by_role("link", name=title).click()
    learner.page.wait_for_url(f"**/sessions/{session_id}/")
    learner.page.get_by_role("button", name="Book a seat").click()
    expect(learner.page.locator("[data-flash]")).to_contain_text("You're booked")
    learner.shot("08-booked")
    check_calendar_file(learner, session_id, title, start, 45)
    learner.page.get_by_role("link", name="Dashboard").click()
    learner.page.get_by_role("link", name="My Bookings").click()
    expect(learner.page.locator("tr", has_text=title)).to_contain_text("Confirmed")

    # The mentor starts it from My Sessions; both see the way into the room.
    mentor.goto("/dashboard/?tab=sessions")
    mentor.page.locator("tr", has_text=title).get_by_role("button", name="Start").click()
    expect(mentor.page.locator("[data-flash]")).to_contain_text("Session started")
    room = f"/sessions/{session_id}/room"
    mentor_row = mentor.page.locator("tr", has_text=title)
    expect(mentor_row.get_by_role("link", name="Join room")).to_have_attribute("href", room)
    mentor.shot("09-started")
    mentor.goto(f"/sessions/{session_id}/")
    expect(mentor.page.get_by_role("link", name="Join room")).to_have_attribute("href", room)
    learner.goto("/dashboard/?tab=bookings")
    expect(
        learner.page.locator("tr", has_text=title).get_by_role("link", name="Join room")
    ).to_have_attribute("href", room)
    learner.goto(f"/sessions/{session_id}/")
    expect(learner.page.get_by_role("link", name="Join room")).to_have_attribute("href", room)
    learner.shot("10-live")

    # Both enter the room from the session page (room_steps belongs to the room's tests).
    learner_user.id = user_id(live_server, learner_user.username)
    room_steps(live_server, mentor, learner, session_id, learner_user)

    # The mentor ends the session.
    mentor.goto("/dashboard/?tab=sessions")
    mentor.page.locator("tr", has_text=title).get_by_role("button", name="End").click()
    expect(mentor.page.locator("[data-flash]")).to_contain_text("Session ended")
    expect(mentor.page.locator("tr", has_text=title).locator(".badge-completed")).to_have_count(1)

    # The learner, still in the room, is shown the end and rates: first without choosing
    # stars, then properly.
    learner.page.get_by_role("link", name="Rate this session").click()
    learner.page.wait_for_url(f"**/sessions/{session_id}/feedback/")
    learner.page.get_by_label("Comment (optional)").fill("Loved the parser part!")
    learner.page.get_by_role("button", name="Submit feedback").click()
    expect(learner.page.locator("#err-rating")).to_be_visible()
    expect(learner.page.get_by_label("Comment (optional)")).to_have_value("Loved the parser part!")
    learner.shot("11-feedback-error")
    learner.page.get_by_label("5 stars").focus()  # the stars are radios: keyboard-usable
    learner.page.keyboard.press("Space")
    expect(learner.page.get_by_label("5 stars")).to_be_checked()
    learner.shot("12-feedback")
    learner.page.get_by_role("button", name="Submit feedback").click()
    learner.page.wait_for_url("**/dashboard/?tab=bookings")
    expect(learner.page.locator("[data-flash]")).to_contain_text("Thanks for your feedback")
    expect(learner.page.locator("tr", has_text=title).get_by_text("Rated ✓")).to_be_visible()
    learner.shot("13-rated")

    # The mentor sees the review on the session and in Analytics.
    mentor.goto(f"/sessions/{session_id}/")
    expect(mentor.page.get_by_text("Loved the parser part!")).to_be_visible()
    mentor.shot("14-reviewed")
    mentor.goto("/dashboard/?tab=analytics")
    expect(mentor.page.locator(".stat", has_text="Average rating")).to_contain_text("5.0")
    mentor.shot("15-analytics")


def test_notification_badge_updates_live(
    live_server: LiveServer,
    make_user: Callable[..., TestUser],
    new_page: Callable[..., BrowserPage],
) -> None:
    mentor_user = make_user("mentor", skills=["Go"])

    async def create(platform: Platform) -> str:
        mentor = await platform.accounts.get_user(mentor_user.id)
        session = await platform.sessions.create(
            mentor,
            title="Go concurrency",
            description="Channels",
            schedule=datetime.now(UTC) + timedelta(days=1),
            duration=60,
            max_participants=3,
            skills_required=["Go"],
            price=0,
        )
        return str(session.id)

    session_id = live_server.call(create)
    mentor = new_page("mentor", user=mentor_user)
    mentor.goto("/dashboard/")
    mentor.page.wait_for_selector('[data-notifications][data-live="connected"]')
    badge = mentor.page.locator("[data-notif-badge]")
    expect(badge).to_be_hidden()

    learner = new_page("learner", user=make_user("learner"))
    learner.goto(f"/sessions/{session_id}/")
    learner.page.get_by_role("button", name="Book a seat").click()

    # No reload on the mentor's side: the WebSocket brings the new count and item.
    expect(badge).to_have_text("1")
    expect(badge).to_be_visible()
    mentor.page.locator("[data-notif-toggle]").click()
    item = mentor.page.locator("[data-notif-list] .notif-item").first
    expect(item).to_contain_text("New booking")
    mentor.shot("live-badge", full_page=False)

    # Keyboard: Escape closes the dropdown and gives focus back to the bell.
    mentor.page.keyboard.press("Escape")
    expect(mentor.page.locator("[data-notif-panel]")).to_be_hidden()
    expect(mentor.page.locator("[data-notif-toggle]")).to_be_focused()
    mentor.page.locator("[data-notif-toggle]").click()
    with mentor.page.expect_response("**/api/notifications/mark-read/") as marked:
        mentor.page.get_by_role("button", name="Mark all read").click()
    assert marked.value.ok
    expect(badge).to_be_hidden()

    async def unread(platform: Platform) -> int:
        return await platform.notifications.unread_count(mentor_user.id)

    assert live_server.call(unread) == 0
