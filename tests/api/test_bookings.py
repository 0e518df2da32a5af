"""Bookings API: who may book, conflicts, cancellation and re-booking, lists, notifications."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from tests.api.sessions_helpers import (
    admin_of,
    anon,
    create_session,
    iso_in,
    notifications_of,
    platform_of,
)


async def test_book_free_session_confirms_at_once(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor)
    recorded: list[dict] = []
    platform_of(api).interactions.listeners.append(recorded.append)
    status, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert status == 201, b
    assert b["status"] == "confirmed" and b["payment_status"] == "not_required"
    assert b["session"]["id"] == s["id"] and b["payment"] is None
    assert [r["kind"] for r in recorded] == ["booking"]
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/", learner)
    assert detail["seats_left"] == 4 and detail["my_booking"]["id"] == b["id"]
    assert detail["meeting_room_id"]
    assert [n.event for n in await notifications_of(api, learner)] == ["booking_confirmed"]
    assert [n.event for n in await notifications_of(api, mentor)] == ["booking_confirmed"]
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert status == 409 and data["error"]["code"] == "already_booked"


async def test_who_may_book(api: Any) -> None:
    mentor = await api.register("mentor")
    other_mentor = await api.register("mentor")
    admin = await admin_of(api)
    s = await create_session(api, mentor)
    for who in (mentor, other_mentor, admin):
        status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", who)
        assert status == 403, data
    assert (await anon(api, "POST", f"/api/sessions/{s['id']}/book/"))[0] == 401


async def test_full_session_and_rebooking_after_cancel(api: Any) -> None:
    mentor = await api.register("mentor")
    a, b = await api.register("learner"), await api.register("learner")
    s = await create_session(api, mentor, max_participants=1)
    status, booking = await api.call("POST", f"/api/sessions/{s['id']}/book/", a)
    assert status == 201
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", b)
    assert status == 409 and data["error"]["code"] == "session_full"
    # Only the learner (or an admin) cancels; the seat comes back.
    assert (await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", b))[0] == 403
    assert (await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", mentor))[0] == 403
    status, data = await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", a)
    assert status == 200 and data["status"] == "cancelled"
    status, data = await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", a)
    assert status == 409 and data["error"]["code"] == "invalid_state"
    assert any(n.event == "booking_cancelled" for n in await notifications_of(api, mentor))
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/", a)
    assert detail["current_participants"] == 0
    status, again = await api.call("POST", f"/api/sessions/{s['id']}/book/", a)
    assert status == 201 and again["id"] == booking["id"] and again["status"] == "confirmed"
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/", a)
    assert detail["current_participants"] == 1


async def test_admin_cancels_a_booking(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    admin = await admin_of(api)
    s = await create_session(api, mentor)
    _, booking = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    status, data = await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", admin)
    assert status == 200 and data["status"] == "cancelled"


@pytest.mark.parametrize("action", ["cancel", "mark-paid"])
@pytest.mark.parametrize("bad", ["999999", "abc", "0", "-1", str(2**64), "1e3"])
async def test_unknown_or_malformed_booking_ids_are_404(
    sqlite_api: Any, bad: str, action: str
) -> None:
    learner = await sqlite_api.register("learner")
    status, data = await sqlite_api.call("POST", f"/api/bookings/{bad}/{action}/", learner)
    assert status == 404, (bad, action, data)


async def test_my_bookings_and_attendee_list(api: Any) -> None:
    mentor = await api.register("mentor")
    other = await api.register("mentor")
    learner = await api.register("learner")
    s1 = await create_session(api, mentor, title="Soon")
    s2 = await create_session(api, mentor, title="Done")
    for s in (s1, s2):
        await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    await platform_of(api).bookings.record_join(s1["id"], learner["user"]["id"])
    await platform_of(api).bookings.record_leave(s1["id"], learner["user"]["id"])
    from sessions_helpers import set_session

    await set_session(api, s2["id"], status="completed")
    status, mine = await api.call("GET", "/api/bookings/", learner)
    assert status == 200
    assert [b["session"]["title"] for b in mine["upcoming"]] == ["Soon"]
    assert [b["session"]["title"] for b in mine["past"]] == ["Done"]
    status, attendees = await api.call("GET", f"/api/sessions/{s1['id']}/bookings/", mentor)
    assert status == 200
    [row] = attendees
    assert row["learner"]["id"] == learner["user"]["id"]
    assert row["joined_at"] and row["left_at"] and row["payment_status"] == "not_required"
    assert (await api.call("GET", f"/api/sessions/{s1['id']}/bookings/", other))[0] == 403
    assert (await api.call("GET", f"/api/sessions/{s1['id']}/bookings/", learner))[0] == 403
    admin = await admin_of(api)
    assert (await api.call("GET", f"/api/sessions/{s1['id']}/bookings/", admin))[0] == 200


async def test_room_role_and_room_access(api: Any) -> None:
    """room_role: who one is in the room, open or not; room_access adds "is it open"."""
    import pytest

    from control.errors import Conflict, Forbidden

    mentor = await api.register("mentor")
    learner = await api.register("learner")
    stranger = await api.register("learner")
    admin = await admin_of(api)
    s = await create_session(api, mentor, schedule=iso_in(5))
    await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    platform = platform_of(api)
    users = {
        k: await platform.accounts.get_user(v["user"]["id"])
        for k, v in (("m", mentor), ("l", learner), ("s", stranger), ("a", admin))
    }
    bookings = platform.bookings
    roles = {"m": "mentor", "l": "learner", "a": "admin"}
    for who, role in roles.items():  # before the start: a role, but the room is closed
        assert await bookings.room_role(users[who], s["id"]) == role
        with pytest.raises(Conflict) as closed:
            await bookings.room_access(users[who], s["id"])
        assert closed.value.code == "session_not_active"
    for ask in (bookings.room_role, bookings.room_access):
        with pytest.raises(Forbidden) as err:
            await ask(users["s"], s["id"])
        assert err.value.code == "forbidden"
    await api.call("POST", f"/api/sessions/{s['id']}/start/", mentor)
    for who, role in roles.items():
        assert await bookings.room_access(users[who], s["id"]) == role
    await bookings.ban(s["id"], learner["user"]["id"])
    await bookings.ban(s["id"], learner["user"]["id"])  # idempotent
    assert await bookings.is_banned(s["id"], learner["user"]["id"])
    for ask in (bookings.room_role, bookings.room_access):
        with pytest.raises(Forbidden) as err:
            await ask(users["l"], s["id"])
        assert err.value.code == "removed"  # what the signaling socket reports
    await api.call("POST", f"/api/sessions/{s['id']}/end/", mentor)
    assert await bookings.room_role(users["m"], s["id"]) == "mentor"  # the end screen


async def test_chat_history_follows_the_room_rule(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    removed = await api.register("learner")
    stranger = await api.register("learner")
    s = await create_session(api, mentor, schedule=iso_in(5))
    for who in (learner, removed):
        await api.call("POST", f"/api/sessions/{s['id']}/book/", who)
    await platform_of(api).bookings.ban(s["id"], removed["user"]["id"])
    path = f"/api/sessions/{s['id']}/chat/"
    for who in (mentor, learner, await admin_of(api)):  # readable before the start too
        status, body = await api.call("GET", path, who)
        assert status == 200 and body == [], body
    status, body = await api.call("GET", path, removed)
    assert status == 403 and body["error"]["code"] == "removed"
    status, body = await api.call("GET", path, stranger)
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.call("GET", f"/api/sessions/{uuid4()}/chat/", mentor)
    assert status == 404
