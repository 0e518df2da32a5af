"""The live room in real headless Chromium: each browser publishes its (fake) camera and
microphone to the SFU and decodes everyone else's forwarded video; chat, hands,
moderation, listeners without devices, reconnection and the end screen."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from control.platform import Platform
from tests.e2e.harness import BrowserPage, LiveServer, TestUser
from tests.e2e.room_helpers import (
    DENY_MEDIA_JS,
    PLAYING_TILES_JS,
    enter_room,
    live_session,
    send_chat,
    wait_decoding,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def trio(
    live_server: LiveServer, make_user: Callable[..., TestUser]
) -> tuple[TestUser, TestUser, TestUser]:
    return (
        make_user("mentor", first_name="Grace", last_name="Hopper"),
        make_user("learner", first_name="Ada", last_name="Byron"),
        make_user("learner", first_name="Alan", last_name="Kay"),
    )


def test_three_browsers_decode_each_other_and_chat(
    live_server: LiveServer, new_page: Callable[..., BrowserPage], trio: tuple[TestUser, ...]
) -> None:
    mentor, ada, alan = trio
    sid = live_session(live_server, mentor, [ada, alan])
    people = (("mentor", mentor), ("ada", ada), ("alan", alan))
    pages = [new_page(name, user=u) for name, u in people]
    for bp in pages:
        enter_room(bp, sid)
    for bp in pages:
        decoding = wait_decoding(bp, others=2)
        assert len([s for s in decoding if s["decoded"] > 0]) == 2, decoding
        # The decoded streams are shown in the tiles of the right people.
        bp.page.wait_for_function(f"() => ({PLAYING_TILES_JS})().length === 2", timeout=10_000)
    mentor_page, ada_page, alan_page = pages
    expect(mentor_page.page.locator("figure.tile[data-user-id]")).to_have_count(3)
    mentor_name = ada_page.page.locator(f'figure.tile[data-user-id="{mentor.id}"] .tile-name')
    expect(mentor_name).to_contain_text("Grace Hopper · mentor")

    # Chat reaches everyone, as text (never HTML), and stays in the history on rejoin.
    send_chat(ada_page, "Hello <b>everyone</b>")
    for bp in pages:
        expect(bp.page.locator(".chat-text").last).to_have_text("Hello <b>everyone</b>")
        assert bp.page.locator(".chat-list b").count() == 0

    # A raised hand shows in everyone's queue; the mentor lowers all hands.
    hand_badges = "figure.tile .badge-hand:visible"
    for bp in pages:
        expect(bp.page.locator(hand_badges)).to_have_count(0)
    alan_page.page.get_by_role("button", name="Raise hand").click()
    for bp in pages:
        name = "Alan Kay (you)" if bp is alan_page else "Alan Kay"
        expect(bp.page.locator("[data-hands-list] li")).to_have_text([name])
        expect(bp.page.locator(hand_badges)).to_have_count(1)
        alan_tile = bp.page.locator(f'figure.tile[data-user-id="{alan.id}"]')
        expect(alan_tile.locator(".badge-hand")).to_be_visible()
    mentor_page.page.get_by_role("button", name="Lower all hands").click()
    for bp in pages:
        expect(bp.page.locator("[data-hands-list] li")).to_have_count(0)
        expect(bp.page.locator(hand_badges)).to_have_count(0)

    # Muting is shown to the others.
    ada_page.page.get_by_role("button", name="Mute").click()
    ada_tile = mentor_page.page.locator(f'figure.tile[data-user-id="{ada.id}"]')
    expect(ada_tile.locator(".badge-mic")).to_be_visible()
    for bp in pages:
        bp.shot("in-room")

    # The mentor ends the session: every page shows the end screen; learners may rate.
    mentor_page.page.on("dialog", lambda dialog: dialog.accept())
    mentor_page.page.get_by_role("button", name="End session").click()
    for bp in pages:
        expect(bp.page.locator("[data-ended]")).to_be_visible(timeout=10_000)
        expect(bp.page.locator("[data-ended-title]")).to_have_text("The session has ended")
    expect(ada_page.page.get_by_role("link", name="Rate this session")).to_have_attribute(
        "href", f"/sessions/{sid}/feedback/"
    )
    assert mentor_page.page.get_by_role("link", name="Rate this session").count() == 0
    ada_page.shot("ended")


def test_listener_without_devices_still_joins_and_chats(
    live_server: LiveServer, new_page: Callable[..., BrowserPage], trio: tuple[TestUser, ...]
) -> None:
    mentor, ada, _ = trio
    sid = live_session(live_server, mentor, [ada])
    teacher = new_page("mentor", user=mentor)
    listener = new_page("listener", user=ada, phone=True)
    listener.page.add_init_script(DENY_MEDIA_JS)
    listener.goto(f"/sessions/{sid}/room")
    expect(listener.page.locator("[data-device-note]")).to_contain_text("join as a listener")
    listener.shot("lobby-denied")
    listener.page.get_by_role("button", name="Join now").click()
    expect(listener.page.locator("[data-status]")).to_have_text("Connected", timeout=15_000)
    expect(listener.page.get_by_role("button", name="Unmute")).to_be_disabled()
    enter_room(teacher, sid)

    # The listener sees the mentor's video; the mentor sees the listener's avatar, muted.
    wait_decoding(listener, others=1)
    listener_tile = teacher.page.locator(f'figure.tile[data-user-id="{ada.id}"]')
    expect(listener_tile).to_have_class(re.compile(r"\bvideo-off\b"))
    expect(listener_tile.locator(".badge-mic")).to_be_visible()
    send_chat(listener, "I can only type today")
    expect(teacher.page.locator(".chat-text").last).to_have_text("I can only type today")
    # At phone width the room still fits: no sideways scrolling.
    assert listener.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    listener.page.evaluate("window.scrollTo(0, 0)")
    listener.shot("phone")


def test_mentor_removes_a_learner_who_cannot_come_back(
    live_server: LiveServer, new_page: Callable[..., BrowserPage], trio: tuple[TestUser, ...]
) -> None:
    mentor, ada, alan = trio
    sid = live_session(live_server, mentor, [ada, alan])
    teacher, learner = new_page("mentor", user=mentor), new_page("ada", user=ada)
    enter_room(teacher, sid)
    enter_room(learner, sid)
    tile = teacher.page.locator(f'figure.tile[data-user-id="{ada.id}"]')
    expect(tile).to_be_visible()
    teacher.page.on("dialog", lambda dialog: dialog.accept())
    tile.hover()
    tile.get_by_role("button", name="Remove").click()
    expect(learner.page.locator("[data-ended-title]")).to_have_text("You were removed")
    expect(tile).to_have_count(0)
    # Coming back is refused with the reason.
    response = learner.goto(f"/sessions/{sid}/room")
    assert response is not None and response.status == 403
    expect(learner.page.locator("main")).to_contain_text("removed you")


def test_reconnects_after_the_connection_drops(
    live_server: LiveServer, new_page: Callable[..., BrowserPage], trio: tuple[TestUser, ...]
) -> None:
    mentor, ada, _ = trio
    sid = live_session(live_server, mentor, [ada])
    teacher, learner = new_page("mentor", user=mentor), new_page("ada", user=ada)
    enter_room(teacher, sid)
    enter_room(learner, sid)
    wait_decoding(learner, others=1)

    # The server loses the learner's signaling socket (a network drop as the server sees it).
    async def drop(platform: Platform) -> None:
        from web.rooms import ROOMS

        room = live_server.app[ROOMS].sfu.get_room(sid)
        participant = room.participants[ada.id]
        await room.leave(participant, reason="disconnected")

    live_server.call(drop)
    expect(learner.page.locator("[data-status]")).to_contain_text("reconnecting", ignore_case=True)
    expect(learner.page.locator("[data-status]")).to_have_text("Connected", timeout=20_000)
    assert any(s["decoded"] > 0 for s in wait_decoding(learner, others=1))
    expect(teacher.page.locator(f'figure.tile[data-user-id="{ada.id}"]')).to_have_count(1)


def test_room_page_access(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
    trio: tuple[TestUser, ...],
) -> None:
    mentor, ada, alan = trio
    sid = live_session(live_server, mentor, [ada], start=False)
    # Alan has no seat: refused, with the reason.
    stranger = new_page("stranger", user=alan, allow_http_errors=True)
    response = stranger.goto(f"/sessions/{sid}/room")
    assert response is not None and response.status == 403
    expect(stranger.page.locator("main")).to_contain_text("confirmed booking")
    # Anonymous visitors are sent to log in first.
    anonymous = new_page("anonymous")
    anonymous.goto(f"/sessions/{sid}/room")
    assert "/auth/login/" in anonymous.page.url
    # Before the start, Ada waits; the page opens by itself when the mentor starts.
    learner = new_page("ada", user=ada)
    learner.goto(f"/sessions/{sid}/room")
    expect(learner.page.get_by_role("button", name="Join now")).to_be_disabled()
    learner.shot("waiting")
    teacher = new_page("mentor", user=mentor)
    teacher.goto(f"/sessions/{sid}/room")
    teacher.page.get_by_role("button", name="Start the session now").click()
    expect(teacher.page.get_by_role("button", name="Join now")).to_be_enabled()
    expect(learner.page.get_by_role("button", name="Join now")).to_be_enabled(timeout=15_000)


def test_screen_share_reaches_the_others_and_goes_away(
    live_server: LiveServer, new_page: Callable[..., BrowserPage], trio: tuple[TestUser, ...]
) -> None:
    mentor, ada, _ = trio
    sid = live_session(live_server, mentor, [ada])
    teacher, learner = new_page("mentor", user=mentor), new_page("ada", user=ada)
    enter_room(teacher, sid)
    enter_room(learner, sid)
    wait_decoding(learner, others=1)
    teacher.page.get_by_role("button", name="Share screen").click()
    expect(teacher.page.get_by_role("button", name="Stop sharing")).to_have_attribute(
        "aria-pressed", "true"
    )
    # Camera and screen of the mentor are both decoded; the screen has its own tile.
    wait_decoding(learner, others=2)
    screen_tile = learner.page.locator(f'figure.tile-screen[data-screen-of="{mentor.id}"]')
    expect(screen_tile).to_contain_text("Grace Hopper's screen")
    learner.page.wait_for_function(
        "() => { const v = document.querySelector('figure.tile-screen video');"
        " return v && v.videoWidth > 0; }",
        timeout=10_000,
    )
    learner.shot("screen-share")
    teacher.page.get_by_role("button", name="Stop sharing").click()
    expect(screen_tile).to_have_count(0)
