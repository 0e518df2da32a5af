"""The signaling WebSocket ``/ws/session/{id}/`` of the real app: who may join, Origin,
hostile frames answered with an error while the socket and the room go on, attendance,
the end of a session, removal, the room's cap, and the chat history afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.signaling.support import World, connect, join, recv_until


@pytest.mark.parametrize("who", ["mentor", "learner", "admin"])
async def test_who_may_join(world: World, who: str) -> None:
    sid = await world.live_session()
    ws = await connect(world, who, sid)
    await ws.send_json({"type": "join_session"})
    joined = await recv_until(ws, "joined")
    assert joined["user_id"] == world.users[who]["user"]["id"]
    assert joined["role"] == ("learner" if who == "learner" else who)
    await ws.close()


@pytest.mark.parametrize(
    ("who", "code"), [("outsider", "forbidden"), ("other_mentor", "forbidden")]
)
async def test_who_may_not_join(world: World, who: str, code: str) -> None:
    sid = await world.live_session()
    ws = await connect(world, who, sid)
    error = await recv_until(ws, "error")
    assert error["code"] == code
    closed = await ws.receive()
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4403


async def test_anonymous_and_foreign_origin_are_refused(world: World) -> None:
    sid = await world.live_session()
    ws = await connect(world, None, sid)
    assert (await recv_until(ws, "error"))["code"] == "not_authenticated"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(world, "learner", sid, origin="https://evil.example")
    assert refused.value.status == 403


async def test_only_while_the_session_is_live(world: World) -> None:
    scheduled = await world.session(start=False)
    ws = await connect(world, "mentor", scheduled)
    assert (await recv_until(ws, "error"))["code"] == "session_not_active"


async def test_hostile_frames_get_errors_and_the_socket_goes_on(world: World) -> None:
    sid = await world.live_session()
    ws = await connect(world, "learner", sid)
    await ws.send_json({"type": "chat", "text": "before joining"})
    assert (await recv_until(ws, "error"))["code"] == "not_joined"
    await ws.send_json({"type": "join_session"})
    await recv_until(ws, "joined")
    hostile: list[tuple[Any, str]] = [
        ("not json at all", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ({"type": "warp_drive"}, "unknown_type"),
        ({"type": "offer", "pc": "publish", "sdp": "v=0\r\nthis is not sdp"}, "invalid_sdp"),
        ({"type": "offer", "pc": "subscribe", "sdp": "v=0"}, "wrong_pc"),
        ({"type": "answer", "pc": "subscribe", "sdp": "v=0"}, "wrong_state"),
        ({"type": "chat", "text": "x" * 2001}, "chat_too_long"),
        ({"type": "chat", "text": 42}, "bad_request"),
        ({"type": "chat", "text": "nul \x00 inside"}, "bad_request"),
        ({"type": "mute", "kind": "telepathy", "muted": True}, "bad_request"),
        ({"type": "moderate", "action": "remove", "target": 1}, "forbidden"),
        (
            {"type": "chat", "text": "hi", "session_id": "00000000-0000-0000-0000-000000000000"},
            "wrong_room",
        ),
        ({"type": "chat", "text": "y" * (300 * 1024)}, "message_too_large"),
    ]
    for frame, code in hostile:
        if isinstance(frame, str):
            await ws.send_str(frame)
        else:
            await ws.send_json(frame)
        error = await recv_until(ws, "error")
        assert error["code"] == code, (frame if isinstance(frame, str) else frame["type"], error)
    await ws.send_bytes(b"\x00\x01")
    assert (await recv_until(ws, "error"))["code"] == "bad_request"
    # Still in the room: a ping is answered and chat still works.
    await ws.send_json({"type": "ping"})
    await recv_until(ws, "pong")
    await ws.send_json({"type": "chat", "text": "still here"})
    assert (await recv_until(ws, "chat"))["message"]["text"] == "still here"


async def test_attendance_is_recorded_even_when_a_client_vanishes(world: World) -> None:
    sid = await world.live_session()
    learner_id = world.users["learner"]["user"]["id"]
    bookings = world.platform.bookings

    async def booking_when(condition: Any) -> Any:
        for _ in range(100):
            booking = await bookings.booking_of(learner_id, sid)
            if condition(booking):
                return booking
            await asyncio.sleep(0.05)
        raise AssertionError(f"booking never reached the expected state: {vars(booking)}")

    ws = await join(world, "learner", sid)
    joined = await booking_when(lambda b: b.joined_at is not None)
    assert joined.left_at is None
    # No "leave": the transport just goes away.
    ws._response.connection.transport.abort()  # type: ignore[union-attr]
    left = await booking_when(lambda b: b.left_at is not None)
    assert left.joined_at == joined.joined_at


async def test_ending_the_session_closes_every_socket(world: World) -> None:
    sid = await world.live_session()
    sockets = []
    for who in ("mentor", "learner"):
        ws = await join(world, who, sid)
        sockets.append(ws)
    status, _ = await world.api.call("POST", f"/api/sessions/{sid}/end/", world.users["mentor"])
    assert status == 200
    for ws in sockets:
        assert await recv_until(ws, "session_ended") == {"type": "session_ended"}
        closed = await ws.receive()
        assert closed.type == aiohttp.WSMsgType.CLOSE
    ws = await connect(world, "learner", sid)
    assert (await recv_until(ws, "error"))["code"] == "session_not_active"


async def test_a_removed_learner_cannot_come_back(world: World) -> None:
    sid = await world.live_session()
    mentor = await join(world, "mentor", sid)
    learner = await join(world, "learner", sid)
    target = world.users["learner"]["user"]["id"]
    await mentor.send_json({"type": "moderate", "action": "remove", "target": target})
    assert (await recv_until(learner, "removed"))["by"] == world.users["mentor"]["user"]["id"]
    assert (await recv_until(mentor, "user_left"))["reason"] == "removed"
    again = await connect(world, "learner", sid)
    error = await recv_until(again, "error")
    assert error["code"] == "removed"


async def test_the_room_cap_refuses_the_next_person(world_factory: Any) -> None:
    world = await world_factory(sfu={"max_room_size": 2})
    sid = await world.live_session()
    inside = [await join(world, who, sid) for who in ("mentor", "learner")]
    admin = await connect(world, "admin", sid)
    await admin.send_json({"type": "join_session"})
    error = await recv_until(admin, "error")
    assert error["code"] == "room_full" and "2" in error["message"]
    assert not any(ws.closed for ws in inside)


async def test_chat_is_kept_and_readable_after_the_session(world: World) -> None:
    sid = await world.live_session()
    ws = await join(world, "learner", sid)
    await ws.send_json({"type": "chat", "text": "<script>alert(1)</script> kept as text"})
    await recv_until(ws, "chat")
    await ws.close()
    status, _ = await world.api.call("POST", f"/api/sessions/{sid}/end/", world.users["mentor"])
    assert status == 200
    history = f"/api/sessions/{sid}/chat/"
    for who in ("mentor", "learner", "admin"):
        status, body = await world.api.call("GET", history, world.users[who])
        assert status == 200, body
        assert [m["text"] for m in body] == ["<script>alert(1)</script> kept as text"]
    status, body = await world.api.call("GET", history, world.users["outsider"])
    assert status == 403 and body["error"]["code"] == "forbidden"
    # A rejoin during a live session replays the history.
    sid2 = await world.live_session()
    ws = await connect(world, "learner", sid2)
    await ws.send_json({"type": "join_session"})
    assert (await recv_until(ws, "chat_history"))["messages"] == []


async def test_room_stats_for_admins_and_the_mentor_and_in_the_log(
    world_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world = await world_factory(sfu={"stats_log_interval_s": 0.5})
    sid = await world.live_session()
    sockets = []
    for who in ("mentor", "learner"):
        ws = await join(world, who, sid)
        sockets.append(ws)
    ids = {str(world.users[w]["user"]["id"]) for w in ("mentor", "learner")}
    status, body = await world.api.call("GET", "/api/admin/rooms/", world.users["admin"])
    assert status == 200, body
    assert set(body["rooms"][sid]["participants"]) == ids
    status, body = await world.api.call(
        "GET", f"/api/sessions/{sid}/room/stats/", world.users["mentor"]
    )
    assert status == 200 and set(body["participants"]) == ids
    for who, path in (
        ("learner", "/api/admin/rooms/"),
        ("learner", f"/api/sessions/{sid}/room/stats/"),
        ("other_mentor", f"/api/sessions/{sid}/room/stats/"),
    ):
        status, body = await world.api.call("GET", path, world.users[who])
        assert status == 403, (who, path, body)
    with caplog.at_level("INFO", logger="peerlearn_sfu.room"):
        for _ in range(40):
            if any(f"room {sid} stats" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.1)
    assert any(f"room {sid} stats" in r.getMessage() for r in caplog.records)
