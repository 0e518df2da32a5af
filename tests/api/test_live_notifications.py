"""Every notification event of the issue reaches the user's open page live over
/ws/notifications/, driven by real API calls and the real background reminder loop."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.api.sessions_helpers import create_session, iso_in
from tests.support import ApiDriver

WAIT_S = 10.0


async def next_event(ws: aiohttp.ClientWebSocketResponse, event: str) -> dict[str, Any]:
    """The next pushed notification of this event (skipping unread counts and others)."""
    while True:
        message = await asyncio.wait_for(ws.receive_json(), WAIT_S)
        if message["type"] == "notification" and message["notification"]["event"] == event:
            return message["notification"]


async def test_every_event_is_pushed_live(app_factory: Any, make_settings: Any) -> None:
    # The reminder loop runs for real: every 0.2 s it looks for sessions starting within 15 min.
    settings = make_settings(sessions={"reminder_check_seconds": 0.2, "reminder_minutes": 15})
    api = ApiDriver(await app_factory(settings, background=True))
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    socket = "/ws/notifications/"  # each authenticated by its Authorization header
    async with (
        api.client.ws_connect(socket, headers=mentor["headers"]) as mentor_ws,
        api.client.ws_connect(socket, headers=learner["headers"]) as learner_ws,
    ):
        status, _ = await api.call(
            "POST", "/api/users/follow/", learner, json={"mentor_id": mentor["user"]["id"]}
        )
        assert status == 200
        assert (await next_event(mentor_ws, "new_follower"))["title"] == "New follower"

        # A followed mentor's new session (an hour away: no reminder yet).
        later = await create_session(api, mentor, schedule=iso_in(60), title="Later on")
        pushed = await next_event(learner_ws, "session_created")
        assert pushed["link"] == f"/sessions/{later['id']}/" and "Later on" in pushed["message"]

        # Booking confirmed (learner) and the new booking (mentor); then cancelled.
        status, booking = await api.call("POST", f"/api/sessions/{later['id']}/book/", learner)
        assert status == 201
        assert (await next_event(learner_ws, "booking_confirmed"))["type"] == "success"
        assert "booked" in (await next_event(mentor_ws, "booking_confirmed"))["message"]
        status, _ = await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", learner)
        assert status == 200
        assert (await next_event(learner_ws, "booking_cancelled"))["title"] == "Booking cancelled"
        assert (await next_event(mentor_ws, "booking_cancelled"))["title"] == "Booking cancelled"

        # "Starting soon" from the background loop, to the booked learner and the mentor.
        soon = await create_session(api, mentor, schedule=iso_in(10), title="Soon now")
        status, _ = await api.call("POST", f"/api/sessions/{soon['id']}/book/", learner)
        assert status == 201
        reminder = await next_event(learner_ws, "session_reminder")
        assert reminder["title"] == "Starting soon" and "Soon now" in reminder["message"]
        assert (await next_event(mentor_ws, "session_reminder"))["link"] == reminder["link"]

        # Session started, with the link to the room.
        status, _ = await api.call("POST", f"/api/sessions/{soon['id']}/start/", mentor)
        assert status == 200
        started = await next_event(learner_ws, "session_started")
        assert started["link"] == f"/sessions/{soon['id']}/room"

        # Feedback received (the mentor).
        status, _ = await api.call(
            "POST", f"/api/sessions/{soon['id']}/feedback/", learner, json={"rating": 5}
        )
        assert status == 201
        assert "5/5" in (await next_event(mentor_ws, "feedback_received"))["message"]

    # And the same events are listed, with an unread count, over REST.
    status, page = await api.call("GET", "/api/notifications/", learner)
    assert status == 200
    events = {n["event"] for n in page["items"]}
    assert events >= {
        "session_created",
        "booking_confirmed",
        "booking_cancelled",
        "session_reminder",
        "session_started",
    }
    assert page["unread"] == page["total"] == len(page["items"])
