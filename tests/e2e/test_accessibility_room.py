"""The live room by keyboard and screen reader: axe-core (WCAG 2.0/2.1 A and AA, no rule
off) in each of the room's states, driven with the keyboard only (Tab, Enter and the
Alt shortcuts shown on the controls), reading the tiles' accessible names and what the
polite live region (``[data-announcer]``, room/announcer.js) announced."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import BrowserPage, LiveServer, TestUser, axe_violations
from tests.e2e.room_helpers import live_session, wait_decoding

pytestmark = pytest.mark.browser

ANNOUNCED = "[data-announcer] p"
# The distinct transition durations of the room page's elements.
MOTION_JS = """() => [...new Set([...document.querySelectorAll('.room *')]
  .flatMap((n) => getComputedStyle(n).transitionDuration.split(', ')))]"""


# When each "… is speaking" line reaches the live region (whoever caused it).
WATCH_SPEAKER_JS = """() => {
  window.speakerAnnouncedAt = [];
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) {
      const text = node.textContent || '';
      if (text.includes('is speaking')) window.speakerAnnouncedAt.push(Date.now());
    }
  }).observe(document.querySelector('[data-announcer]'), {childList: true, subtree: true});
}"""


def tab_to(bp: BrowserPage, name: str, *, role: str = "button", presses: int = 60) -> None:
    """Press Tab until the control ``name`` has focus (fails if it never gets it)."""
    target = bp.page.get_by_role(role, name=name, exact=True)
    for _ in range(presses):
        if target.evaluate("(node) => node === document.activeElement"):
            return
        bp.page.keyboard.press("Tab")
    raise AssertionError(f"{bp.name}: Tab never reached the {role} {name!r}")


def said(bp: BrowserPage, text: str) -> Any:
    """The live region's announcements (the last few are kept) that contain ``text``."""
    return bp.page.locator(ANNOUNCED, has_text=text)


def tile_of(bp: BrowserPage, user: TestUser) -> Any:
    return bp.page.locator(f'figure.tile[data-user-id="{user.id}"]')


def focused_name(bp: BrowserPage) -> str:
    return str(
        bp.page.evaluate(
            "() => { const n = document.activeElement;"
            " return (n.getAttribute('aria-label') || n.textContent || '').trim(); }"
        )
    )


def no_violations(*pages: BrowserPage, state: str) -> None:
    found = [line for bp in pages for line in axe_violations(bp, f"{bp.name} / {state}")]
    assert not found, f"{len(found)} axe violations:\n" + "\n".join(found)


def join_by_keyboard(bp: BrowserPage) -> None:
    expect(bp.page.get_by_role("button", name="Join now")).to_be_enabled(timeout=10_000)
    tab_to(bp, "Join now")
    bp.page.keyboard.press("Enter")
    expect(bp.page.locator("[data-status]")).to_have_text("Connected", timeout=15_000)
    # Focus moved on from the vanished Join button to the call's first control.
    assert focused_name(bp).startswith("Mute"), focused_name(bp)


def test_a_room_session_by_keyboard_with_announcements_and_no_axe_violations(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    mentor = make_user("mentor", first_name="Grace", last_name="Hopper")
    learner = make_user("learner", first_name="Ada", last_name="Byron")
    sid = live_session(live_server, mentor, [learner])
    teacher, ada = new_page("mentor", user=mentor), new_page("ada", user=learner)

    # Lobby, with the camera preview.
    teacher.goto(f"/sessions/{sid}/room")
    ada.goto(f"/sessions/{sid}/room")
    expect(ada.page.get_by_role("button", name="Join now")).to_be_enabled(timeout=10_000)
    no_violations(teacher, ada, state="lobby")
    # Reduced motion asked for: nothing in the room moves (tile outlines, buttons).
    ada.page.emulate_media(reduced_motion="reduce")
    assert ada.page.evaluate(MOTION_JS) == ["0s"], ada.page.evaluate(MOTION_JS)

    # Both join by keyboard; the mentor hears Ada arrive.
    join_by_keyboard(teacher)
    join_by_keyboard(ada)
    wait_decoding(teacher, others=1)
    wait_decoding(ada, others=1)
    expect(said(teacher, "Ada Byron joined")).to_have_count(1)
    expect(tile_of(teacher, learner)).to_have_attribute("aria-label", "Ada Byron")
    no_violations(teacher, ada, state="in room with another")

    # Alt+M mutes; the mentor's tile of Ada says so in its name.
    ada.page.keyboard.press("Alt+KeyM")
    expect(ada.page.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "false")
    expect(tile_of(teacher, learner)).to_have_attribute("aria-label", "Ada Byron: muted")

    # The active speaker is announced once they have held the floor, and then at most every
    # 8 s however often the floor changes (the server's own speaker messages included; Ada
    # is muted, so the server's only candidate is the mentor too): over 10 s of the floor
    # changing every 1.7 s, two announcements at most, 8 s apart.
    ada.page.evaluate(WATCH_SPEAKER_JS)
    for _ in range(6):
        ada.page.evaluate(f"() => window.peerlearnRoom.on_active_speaker({{user_id: {mentor.id}}})")
        ada.page.wait_for_timeout(1700)
        ada.page.evaluate("() => window.peerlearnRoom.on_active_speaker({user_id: null})")
    expect(said(ada, "Grace Hopper is speaking").first).to_be_attached()
    times = ada.page.evaluate("() => window.speakerAnnouncedAt")
    assert len(times) <= 2 and all(b - a >= 7900 for a, b in itertools.pairwise(times)), times

    # Alt+H raises the hand: the mentor hears it, and the tile's name carries it.
    ada.page.keyboard.press("Alt+KeyH")
    expect(teacher.page.locator("[data-hands-list] li")).to_have_text(["Ada Byron"])
    expect(said(teacher, "Ada Byron raised their hand")).to_have_count(1)
    expect(tile_of(teacher, learner)).to_have_attribute(
        "aria-label", "Ada Byron: muted, hand raised"
    )
    no_violations(teacher, ada, state="hands raised")

    # Alt+C goes to the chat; Enter sends; the mentor hears the message.
    ada.page.keyboard.press("Alt+KeyC")
    assert ada.page.evaluate("() => document.activeElement.id") == "chat-input"
    ada.page.keyboard.type("Could you repeat the last step?")
    ada.page.keyboard.press("Enter")
    expect(teacher.page.locator(".chat-text").last).to_have_text("Could you repeat the last step?")
    expect(said(teacher, "Ada Byron in chat: Could you repeat the last step?")).to_have_count(1)
    # Ada's own message is shown, not read back to her.
    expect(ada.page.locator(".chat-text").last).to_have_text("Could you repeat the last step?")
    expect(said(ada, "in chat")).to_have_count(0)
    no_violations(teacher, ada, state="chat")

    # The mentor shares the screen (by keyboard): its tile is named after whose it is.
    tab_to(teacher, "Share screen")
    teacher.page.keyboard.press("Enter")
    screen = ada.page.locator(f'figure.tile-screen[data-screen-of="{mentor.id}"]')
    expect(screen).to_have_attribute("aria-label", "Grace Hopper's shared screen")
    no_violations(teacher, ada, state="screen share")

    # Ada leaves and comes back, by keyboard; the mentor hears both.
    tab_to(ada, "Leave")
    ada.page.keyboard.press("Enter")
    expect(said(teacher, "Ada Byron left")).to_have_count(1)
    expect(ada.page.locator("[data-ended-title]")).to_be_focused()
    ada.page.keyboard.press("Tab")
    expect(ada.page.get_by_role("link", name="Rejoin")).to_be_focused()
    ada.page.keyboard.press("Enter")
    join_by_keyboard(ada)
    expect(said(teacher, "Ada Byron joined")).to_have_count(2)

    # The mentor ends the session by keyboard: focus lands on the end screen's heading.
    teacher.page.on("dialog", lambda dialog: dialog.accept())
    tab_to(teacher, "End session")
    teacher.page.keyboard.press("Enter")
    for bp in (teacher, ada):
        expect(bp.page.locator("[data-ended]")).to_be_visible(timeout=10_000)
        expect(bp.page.locator("[data-ended-title]")).to_be_focused()
    # Ada goes on to rate, by keyboard: the link is the next stop after the heading.
    ada.page.keyboard.press("Tab")
    expect(ada.page.get_by_role("link", name="Rate this session")).to_be_focused()
    no_violations(teacher, ada, state="ended")


def test_signing_in_and_booking_a_seat_by_keyboard(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    """A learner who uses only the keyboard signs in from the session's "Log in to book" link
    and books a seat; the result is announced (a status region) and axe finds nothing."""
    mentor = make_user("mentor", first_name="Grace", last_name="Hopper")
    learner = make_user("learner", first_name="Ada", last_name="Byron")
    sid = live_session(live_server, mentor, [], start=False)
    bp = new_page("ada")

    bp.goto(f"/sessions/{sid}/")
    # The skip link comes first, then the page's own controls.
    bp.page.keyboard.press("Tab")
    assert focused_name(bp) == "Skip to content", focused_name(bp)
    tab_to(bp, "Log in to book", role="link")
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_url("**/auth/login/**")

    tab_to(bp, "Username or e-mail", role="textbox")
    bp.page.keyboard.type(learner.username)
    bp.page.keyboard.press("Tab")
    bp.page.keyboard.type(learner.password)
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_url(f"**/sessions/{sid}/")

    tab_to(bp, "Book a seat")
    bp.page.keyboard.press("Enter")
    flash = bp.page.locator("[data-flash]")
    expect(flash).to_contain_text("You're booked")
    assert flash.get_attribute("role") == "status"
    no_violations(bp, state="booked")
