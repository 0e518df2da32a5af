"""Issue 10 on the real app's sockets: authorisation lasts (revocations and bans arrive over
the event bus and end the room at once), hostile frames get errors and the socket goes on,
and the quotas answer clear codes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from control.events import user_channel
from tests.signaling.support import World, connect, join, recv_until


async def recv_close(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> Any:  # noqa: ASYNC109
    """Messages until the socket closes; the close frame's code."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return msg.data


async def test_a_revoked_login_leaves_the_room_within_a_second(world: World) -> None:
    sid = await world.live_session()
    mentor = await join(world, "mentor", sid)
    learner = await join(world, "learner", sid)
    learner_id = world.users["learner"]["user"]["id"]
    await recv_until(mentor, "user_joined")
    bus = world.platform.bus

    # A revocation of another login session of the same user leaves this socket alone.
    await bus.publish(
        user_channel(learner_id),
        {"type": "sessions_revoked", "user_id": learner_id, "reason": "logout", "sid": "other"},
    )
    await learner.send_json({"type": "ping"})
    await recv_until(learner, "pong")

    # Logout everywhere (sid None): the contract of the accounts issue.
    started = time.monotonic()
    await bus.publish(
        user_channel(learner_id),
        {
            "type": "sessions_revoked",
            "user_id": learner_id,
            "reason": "logout_everywhere",
            "sid": None,
        },
    )
    ended = await recv_until(learner, "session_ended", timeout=5)
    assert ended["reason"] == "logout_everywhere"
    assert await recv_close(learner) == 4000
    left = await recv_until(mentor, "user_left", timeout=5)
    assert left["user_id"] == learner_id and left["reason"] == "left"  # no account details
    assert time.monotonic() - started < 1.0
    await mentor.close()


async def test_deactivation_ends_the_room_socket(world: World) -> None:
    sid = await world.live_session()
    mentor = await join(world, "mentor", sid)
    learner = await join(world, "learner", sid)
    learner_id = world.users["learner"]["user"]["id"]
    admin = await world.platform.accounts.get_user(world.users["admin"]["user"]["id"])
    started = time.monotonic()
    await world.platform.accounts.set_active(admin, learner_id, False)
    ended = await recv_until(learner, "session_ended", timeout=5)
    assert ended["reason"] == "deactivated"
    await recv_close(learner)
    assert (await recv_until(mentor, "user_left", timeout=5))["user_id"] == learner_id
    assert time.monotonic() - started < 1.0
    await mentor.close()


async def test_a_revocation_before_joining_closes_the_socket(world: World) -> None:
    sid = await world.live_session()
    ws = await connect(world, "learner", sid)
    learner_id = world.users["learner"]["user"]["id"]
    await ws.send_json({"type": "ping"})  # not joined: an error, but authenticated
    assert (await recv_until(ws, "error"))["code"] == "not_joined"
    await world.platform.bus.publish(
        user_channel(learner_id),
        {
            "type": "sessions_revoked",
            "user_id": learner_id,
            "reason": "password_changed",
            "sid": None,
        },
    )
    assert (await recv_until(ws, "session_ended"))["reason"] == "password_changed"
    assert await recv_close(ws) == 4401


async def test_a_ban_from_another_node_removes_the_user(world: World) -> None:
    """``BookingService.ban`` publishes on ``session:<id>``: the node hosting the socket
    drops the user although the moderation happened elsewhere."""
    sid = await world.live_session()
    mentor = await join(world, "mentor", sid)
    learner = await join(world, "learner", sid)
    learner_id = world.users["learner"]["user"]["id"]
    started = time.monotonic()
    await world.platform.bookings.ban(sid, learner_id)
    removed = await recv_until(learner, "removed", timeout=5)
    assert removed["reason"] == "banned"
    await recv_close(learner)
    left = await recv_until(mentor, "user_left", timeout=5)
    assert left == {"type": "user_left", "user_id": learner_id, "reason": "removed"}
    assert time.monotonic() - started < 1.0
    again = await connect(world, "learner", sid)
    assert (await recv_until(again, "error"))["code"] == "removed"
    await mentor.close()


async def test_hostile_frames_that_used_to_escape_the_error_path(world: World) -> None:
    sid = await world.live_session()
    ws = await join(world, "learner", sid)
    deep = "[" * 30000 + "]" * 30000
    frames: list[tuple[str, str]] = [
        (deep, "bad_request"),
        ('{"type": "chat", "x": ' + "{" * 5000 + "}" * 5000 + "}", "bad_request"),
        ('{"type": "chat", "text": "\\ud800x"}', "bad_request"),
        ('{"type": "chat\\udfff", "text": "hi"}', "bad_request"),
        ('{"type": "chat", "text": "bell \\u0007"}', "bad_request"),
        (
            '{"type": "offer", "pc": "publish", "sdp": "v=0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96"}',
            "invalid_sdp",
        ),
    ]
    for frame, code in frames:
        await ws.send_str(frame)
        error = await recv_until(ws, "error")
        assert error["code"] == code, (frame[:40], error)
    await ws.send_json({"type": "chat", "text": "still here 😀"})
    assert (await recv_until(ws, "chat"))["message"]["text"] == "still here 😀"


async def test_the_notification_socket_survives_deep_json(world: World) -> None:
    client = world.api.client
    client.session.cookie_jar.clear()
    headers = {
        "Origin": str(client.make_url("/")).rstrip("/"),
        "Authorization": f"Bearer {world.users['learner']['token']}",
    }
    ws = await client.ws_connect("/ws/notifications/", headers=headers)
    assert (await recv_until(ws, "unread"))["count"] == 0
    await ws.send_str("[" * 30000 + "]" * 30000)
    assert (await recv_until(ws, "error"))["code"] == "bad_request"
    await ws.send_str('{"type": "ping", "x": "\\ud800"}')
    assert (await recv_until(ws, "error"))["code"] == "bad_request"
    await ws.send_str(json.dumps({"type": "ping"}))
    await recv_until(ws, "pong")
    await ws.close()


async def test_live_sessions_per_mentor_are_capped(world_factory: Any) -> None:
    world = await world_factory(sessions={"max_live_per_mentor": 1})
    first = await world.session(start=True)
    second = await world.session(start=False)
    status, data = await world.api.call(
        "POST", f"/api/sessions/{second}/start/", world.users["mentor"]
    )
    assert status == 409 and data["error"]["code"] == "too_many_live_sessions", data
    status, _ = await world.api.call("POST", f"/api/sessions/{first}/end/", world.users["mentor"])
    assert status == 200
    status, data = await world.api.call(
        "POST", f"/api/sessions/{second}/start/", world.users["mentor"]
    )
    assert status == 200, data


async def test_room_and_server_quotas(world_factory: Any) -> None:
    world = await world_factory(sfu={"max_participants_per_server": 2, "max_rooms_per_user": 1})
    room_a = await world.live_session()
    room_b = await world.live_session()
    mentor_a = await join(world, "mentor", room_a)
    # One user, one room at a time (max_rooms_per_user = 1).
    mentor_b = await connect(world, "mentor", room_b)
    await mentor_b.send_json({"type": "join_session"})
    assert (await recv_until(mentor_b, "error"))["code"] == "too_many_rooms"
    await recv_close(mentor_b)
    learner = await join(world, "learner", room_a)
    # The server holds 2 participants: the admin is refused anywhere...
    admin = await connect(world, "admin", room_b)
    await admin.send_json({"type": "join_session"})
    assert (await recv_until(admin, "error"))["code"] == "server_full"
    await recv_close(admin)
    # ...but a second socket of someone already in the room replaces the first.
    again = await join(world, "learner", room_a)
    assert (await recv_until(learner, "session_ended"))["reason"] == "replaced"
    await again.send_json({"type": "ping"})
    await recv_until(again, "pong")
    await again.close()
    await mentor_a.close()
