"""What people do on the seeded platform: browse with filters and pages, pay-later bookings
confirmed by the mentor, cancelling, profile pictures, following mentors, and the admin's
user and session management."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import BrowserPage
from tests.e2e.room_helpers import enter_room, wait_decoding
from tests.e2e.seed import EXTRA_TOPICS, as_user

pytestmark = pytest.mark.browser


def tiny_png(path: Path, rgb: tuple[int, int, int] = (79, 70, 229), size: int = 8) -> Path:
    """A valid PNG of one colour (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )
    return path


def accept_dialogs(bp: BrowserPage) -> list[str]:
    """Accept data-confirm prompts; returns the list of their messages, as they come."""
    seen: list[str] = []

    def accept(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.accept()

    bp.page.on("dialog", accept)
    return seen


def test_browse_filters_and_pages(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    bp = new_page("anon")
    page = bp.page
    joan = world["users"]["joan"].username
    bp.goto("/sessions/")
    expect(page.get_by_label("Mentor")).to_be_hidden()  # folded under "More filters"
    page.get_by_text("More filters").click()
    page.get_by_label("Mentor").fill(joan)
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(rf".*mentor={joan}.*"))
    expect(page.locator(".results-count")).to_have_text(f"{len(EXTRA_TOPICS)} sessions found")
    expect(page.locator(".session-card")).to_have_count(12)
    expect(page.locator(".pagination")).to_contain_text("Page 1 of 2")
    bp.shot("page-1")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator(".pagination")).to_contain_text("Page 2 of 2")
    expect(page.locator(".session-card")).to_have_count(len(EXTRA_TOPICS) - 12)
    expect(page.get_by_label("Mentor")).to_have_value(joan)  # filters survive paging
    page.get_by_role("link", name="← Previous").click()
    expect(page.locator(".pagination")).to_contain_text("Page 1 of 2")

    page.get_by_label("Free only").check()
    page.get_by_role("button", name="Apply filters").click()
    prices = page.locator(".session-card .price").all_inner_texts()
    assert prices and set(prices) == {"Free"}
    page.get_by_label("Free only").uncheck()
    page.get_by_label("Max price").fill("5")
    page.get_by_label("Skill").fill("Testing")
    page.get_by_role("button", name="Apply filters").click()
    cards = page.locator(".session-card")
    expect(cards.first).to_be_visible()
    for card in cards.all():
        expect(card.locator(".tags")).to_contain_text("Testing")
        assert card.locator(".price").inner_text() in ("Free", "$5.00")
    bp.shot("filtered")

    page.get_by_role("link", name="Reset").click()
    expect(page.get_by_label("Max price")).to_be_hidden()
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Apply filters").click()
    live_id = world["sessions"]["live"]
    live = page.locator(".session-card", has=page.locator(f'a[href="/sessions/{live_id}/"]'))
    expect(live.locator(".badge-active")).to_be_visible()
    page.get_by_label("Search").fill("no session is called this")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".empty")).to_contain_text("No sessions match")


def test_paid_booking_confirmed_by_the_mentor(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    learner = new_page("kim", user=as_user(world, "kim"))
    confirms = accept_dialogs(learner)
    page = learner.page
    alan = world["users"]["alan"].username
    learner.goto(f"/sessions/?q=Cryptography&mentor={alan}")
    page.get_by_role("link", name="Cryptography for beginners").click()
    page.get_by_role("button", name=re.compile(r"Book a seat · \$10\.00")).click()
    expect(page.locator("[data-flash]")).to_contain_text("Seat held. Pay 10.00 USD")
    expect(page.locator("p.alert-info", has_text="Seat held")).to_contain_text("$10.00")
    learner.shot("held")

    mentor = new_page("alan", user=as_user(world, "alan"))
    mentor.goto("/dashboard/?tab=requests")
    row = mentor.page.locator("tr", has_text="Kim Berg")
    expect(row).to_contain_text("Cryptography for beginners")
    mentor.shot("requests")
    row.get_by_role("button", name="Mark paid").click()
    expect(mentor.page.locator("[data-flash]")).to_contain_text("Payment recorded")
    expect(mentor.page.locator("tr", has_text="Kim Berg")).to_have_count(0)
    mentor.goto("/dashboard/?tab=earnings")
    expect(mentor.page.locator(".stat", has_text="Total received")).to_contain_text("$10.00")

    learner.goto("/dashboard/?tab=bookings")
    booked = page.locator("tr", has_text="Cryptography for beginners")
    expect(booked).to_contain_text("Confirmed")
    expect(booked).to_contain_text("paid")
    booked.get_by_role("button", name="Cancel").click()
    expect(page.locator("[data-flash]")).to_have_text("Booking cancelled.")
    assert confirms == ["Cancel this booking?"]  # asked once, not once per loaded script
    past = page.locator("h3", has_text="Past and cancelled").locator("xpath=following::table[1]")
    expect(past.locator("tr", has_text="Cryptography for beginners")).to_contain_text("Cancelled")


def test_profile_picture_and_following(
    world: dict[str, Any], tmp_path: Path, new_page: Callable[..., BrowserPage]
) -> None:
    sam = as_user(world, "sam")
    ada = world["users"]["ada"]
    bp = new_page("sam", user=sam)
    page = bp.page
    bp.goto("/profile/")
    page.get_by_label("Choose an image").set_input_files(str(tiny_png(tmp_path / "me.png")))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("[data-flash]")).to_have_text("Profile picture updated.")
    header_avatar = page.locator(".avatar-link img.avatar")
    expect(header_avatar).to_have_attribute("src", re.compile(r"^/media/avatars/.+\.png$"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 8", arg=header_avatar.element_handle()
    )
    bp.shot("picture")

    (tmp_path / "fake.png").write_text("not really an image")
    page.get_by_label("Choose an image").set_input_files(str(tmp_path / "fake.png"))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("[data-flash]")).to_contain_text("Image not saved")

    # Ada's public portfolio: bio, skills, rating, reviews, upcoming sessions, follow.
    bp.goto(f"/profile/{ada.username}/")
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    expect(page.locator(".prose")).to_contain_text("first principles")
    expect(page.locator(".tags")).to_contain_text("Algorithms")
    expect(page.locator(".profile-hero .stars")).to_contain_text("4.0")
    expect(page.locator(".review").first).to_be_visible()
    expect(page.locator(".detail-side")).to_contain_text("Algorithms workshop")
    page.get_by_role("button", name="Follow").click()
    expect(page.get_by_role("button", name="Following ✓")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("link", name=re.compile(r"\d+ followers")).click()
    expect(page.locator(".card", has_text="Sam Okafor")).to_be_visible()
    bp.shot("followers")
    bp.goto("/dashboard/?tab=following")
    expect(page.locator(".card", has_text="Ada Lovelace")).to_contain_text("Algorithms workshop")
    bp.goto(f"/profile/{ada.username}/")
    page.get_by_role("button", name="Following ✓").click()
    expect(page.get_by_role("button", name="Follow")).to_have_attribute("aria-pressed", "false")
    bp.goto(f"/profile/{sam.username}/following/")
    expect(page.locator(".card", has_text="Ada Lovelace")).to_have_count(0)


def test_profile_picture_upload_without_javascript(
    world: dict[str, Any], tmp_path: Path, new_page: Callable[..., BrowserPage]
) -> None:
    """The plain form posts the file with its CSRF field; no script is needed."""
    bp = new_page("lin", user=as_user(world, "lin"), javascript=False)
    page = bp.page
    bp.goto("/profile/")
    page.get_by_label("Choose an image").set_input_files(
        str(tiny_png(tmp_path / "plain.png", (16, 185, 129)))
    )
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/profile/")
    expect(page.locator("[data-flash]")).to_have_text("Profile picture updated.")
    expect(page.locator(".avatar-preview img.avatar")).to_have_attribute(
        "src", re.compile(r"^/media/avatars/.+\.png$")
    )
    bp.shot("uploaded-without-javascript")


def test_admin_manages_users_and_sessions(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    admin = new_page("admin", user=as_user(world, "admin"))
    accept_dialogs(admin)
    page = admin.page
    kim = world["users"]["kim"]
    admin.goto("/dashboard/?tab=users")
    page.get_by_label("Search", exact=True).fill(kim.username)
    page.get_by_role("button", name="Search").click()
    row = page.locator(f'tr[data-user-id="{kim.id}"]')
    expect(page.locator("tbody tr")).to_have_count(1)
    row.get_by_role("button", name="Deactivate").click()
    expect(page.locator("[data-flash]")).to_have_text(f"{kim.username} deactivated.")
    expect(page.locator(f'tr[data-user-id="{kim.id}"] .badge')).to_have_text("Deactivated")
    admin.shot("deactivated")

    # A deactivated account is signed out everywhere: its pages send it to the login form.
    kim_page = new_page("kim", user=as_user(world, "kim"))
    kim_page.goto("/dashboard/")
    kim_page.page.wait_for_url("**/auth/login/**")

    page.locator(f'tr[data-user-id="{kim.id}"]').get_by_role("button", name="Reactivate").click()
    expect(page.locator(f'tr[data-user-id="{kim.id}"] .badge')).to_have_text("Active")
    page.get_by_label(f"Role of {kim.username}").select_option("mentor")
    page.locator(f'tr[data-user-id="{kim.id}"]').get_by_role("button", name="Change").click()
    expect(page.locator("[data-flash]")).to_have_text(f"{kim.username} is now a mentor.")
    page.get_by_label(f"Role of {kim.username}").select_option("learner")
    page.locator(f'tr[data-user-id="{kim.id}"]').get_by_role("button", name="Change").click()
    expect(page.locator("[data-flash]")).to_have_text(f"{kim.username} is now a learner.")

    admin.goto("/dashboard/?tab=sessions")
    page.get_by_label("Search", exact=True).fill("Data structures deep dive")
    page.get_by_role("button", name="Search").click()
    deep = page.locator(f'tr[data-session-id="{world["sessions"]["deep"]}"]')
    deep.get_by_role("link", name="Inspect").click()
    page.wait_for_url(re.compile(r".*/sessions/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", name="Bookings (0)")).to_be_visible()
    page.go_back()
    deep.get_by_role("button", name="Cancel").click()
    expect(page.locator("[data-flash]")).to_contain_text("Session cancelled")
    expect(page.get_by_label("Search", exact=True)).to_have_value("Data structures deep dive")
    expect(deep).to_contain_text("Cancelled")
    admin.shot("session-cancelled")


def test_admin_control_shows_live_room_stats(
    world: dict[str, Any], new_page: Callable[..., BrowserPage]
) -> None:
    """With a mentor and a learner in the seeded live room, Admin Control lists both with
    the SFU's figures for them (read from the app's SFU object)."""
    live = str(world["sessions"]["live"])
    people = [new_page(name, user=as_user(world, name)) for name in ("alan", "sam")]
    for bp in people:
        enter_room(bp, live)
    for bp in people:
        wait_decoding(bp, others=1)
    admin = new_page("admin", user=as_user(world, "admin"))
    admin.goto("/dashboard/?tab=control")
    room = admin.page.locator(f'[data-room="{live}"]')
    expect(room.locator("[data-connected]")).to_have_text("2")
    for name in ("Alan Turing", "Sam Okafor"):
        row = room.locator("tbody tr", has_text=name)
        cells = row.locator("td").all_inner_texts()
        assert cells[1] == "audio, camera", cells  # media arriving from both tracks
        assert int(cells[6]) > 0, cells  # frames forwarded to the other participant
    admin.shot("live-room-stats")
