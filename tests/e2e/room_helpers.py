"""Room steps shared by the browser tests: a live session, entering the room, waiting
until the browser decodes the others' forwarded video, chatting, and the journeys' room."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from control.platform import Platform
from tests.e2e.harness import BrowserPage, LiveServer, TestUser

# Inbound video per browser, from the subscribe connection's own statistics.
INBOUND_VIDEO_JS = """async () => {
  const room = window.peerlearnRoom;
  if (!room || !room.subscribe) return [];
  const report = await room.subscribe.pc.getStats();
  const out = [];
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.push({mid: s.mid, decoded: s.framesDecoded || 0});
    }
  });
  return out;
}"""

# Remote tiles whose <video> is showing decoded frames.
PLAYING_TILES_JS = """() => [...document.querySelectorAll('[data-grid] figure.tile[data-user-id]')]
  .filter((t) => Number(t.dataset.userId) !== window.peerlearnRoom.me.id)
  .filter((t) => {
    const v = t.querySelector('video');
    return v.videoWidth > 0 && v.readyState >= 2;
  })
  .map((t) => Number(t.dataset.userId))"""

# What the room client knows, for failure messages.
ROOM_STATE_JS = """() => {
  const room = window.peerlearnRoom;
  if (!room) return 'no room client';
  return {
    phase: room.phase, status: document.querySelector('[data-status]').textContent,
    participants: [...room.participants.keys()],
    publish: room.publish && room.publish.pc.connectionState,
    subscribe: room.subscribe && [
      room.subscribe.pc.connectionState, room.subscribe.pc.signalingState,
      room.subscribe.pc.getTransceivers().map((t) => [t.mid, t.currentDirection]),
    ],
  };
}"""

DENY_MEDIA_JS = """navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""


def live_session(
    live_server: LiveServer, mentor: TestUser, learners: list[TestUser], *, start: bool = True
) -> str:
    """A session of ``mentor`` with a confirmed seat for each learner, started if asked."""

    async def make(platform: Platform) -> str:
        owner = await platform.accounts.get_user(mentor.id)
        session = await platform.sessions.create(
            owner,
            title="Live room test",
            description="Cameras on.",
            schedule=datetime.now(UTC) + timedelta(minutes=10),
            duration=60,
            max_participants=max(1, len(learners)),
            skills_required=["WebRTC"],
            price=0,
        )
        for learner in learners:
            await platform.bookings.book(await platform.accounts.get_user(learner.id), session.id)
        if start:
            await platform.sessions.start(owner, session.id)
        return str(session.id)

    return live_server.call(make)


def enter_room(bp: BrowserPage, session_id: str) -> None:
    bp.goto(f"/sessions/{session_id}/room")
    join_from_lobby(bp)


def join_from_lobby(bp: BrowserPage) -> None:
    """Click "Join now" once the lobby has checked the devices; wait until connected."""
    join = bp.page.get_by_role("button", name="Join now")
    expect(join).to_be_enabled(timeout=10_000)
    join.click()
    expect(bp.page.locator("[data-status]")).to_have_text("Connected", timeout=15_000)


def wait_decoding(bp: BrowserPage, others: int, timeout_s: float = 20) -> list[dict[str, Any]]:
    """Until ``others`` inbound video streams have decoded frames; returns those stats."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = bp.page.evaluate(INBOUND_VIDEO_JS)
        if len([s for s in stats if s["decoded"] > 0]) >= others:
            return stats
        if time.monotonic() > deadline:
            state = bp.page.evaluate(ROOM_STATE_JS)
            raise AssertionError(
                f"{bp.name}: {others} decoded video streams expected, got {stats}; room: {state}"
            )
        bp.page.wait_for_timeout(250)


def send_chat(bp: BrowserPage, text: str) -> None:
    box = bp.page.get_by_label("Message to everyone")
    box.fill(text)
    box.press("Enter")


def room_steps(
    live_server: LiveServer,
    mentor_page: BrowserPage,
    learner_page: BrowserPage,
    session_id: str,
    learner: TestUser,
) -> None:
    """The journey's room: both follow "Join room" from the session page, see each other's
    video (decoded in the browser) and chat. They stay in the room for the mentor's end."""
    for bp in (mentor_page, learner_page):
        bp.page.get_by_role("link", name="Join room").click()
        bp.page.wait_for_url(f"**/sessions/{session_id}/room")
        join_from_lobby(bp)
    for bp in (mentor_page, learner_page):
        wait_decoding(bp, others=1)
    send_chat(learner_page, "Hi! Can we start with the lexer?")
    expect(mentor_page.page.locator(".chat-text").last).to_have_text(
        "Hi! Can we start with the lexer?"
    )
    for bp in (mentor_page, learner_page):
        bp.shot("room")
