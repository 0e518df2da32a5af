"""Admission, permissions, moderation, departures, hostile signaling."""

from __future__ import annotations

import asyncio

import psutil
import pytest

from peerlearn_sfu import Banned, RoomFull, RoomHooks, SfuConfig, SfuServer, protocol
from peerlearn_sfu.hooks import ParticipantIdentity
from tests.sfu.client import TEST_CONFIG


class Attendance(RoomHooks):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int]] = []

    async def on_joined(self, user_id: int) -> None:
        self.events.append(("joined", user_id))

    async def on_left(self, user_id: int) -> None:
        self.events.append(("left", user_id))

    async def on_removed(self, user_id: int) -> None:
        self.events.append(("removed", user_id))


async def _noop(message: dict) -> None:
    pass


async def test_room_full_is_a_clear_error():
    server = SfuServer(SfuConfig(max_room_size=2, interfaces=("127.0.0.1",)))
    room = server.open_room("r", RoomHooks())
    assert server.open_room("r", RoomHooks()) is room  # idempotent
    await room.join(ParticipantIdentity(1, "a", "mentor"), _noop)
    await room.join(ParticipantIdentity(2, "b", "learner"), _noop)
    with pytest.raises(RoomFull) as exc:
        await room.join(ParticipantIdentity(3, "c", "learner"), _noop)
    assert exc.value.code == "room_full"
    assert exc.value.to_message()["code"] == "room_full"
    await server.close()


async def test_joined_payload_and_presence(make_client):
    hooks = Attendance()
    alice = await make_client(1, hooks=hooks, role="mentor").join()
    bob = await make_client(2, hooks=hooks).join()
    joined = bob.of_type("joined")[0]
    assert joined["user_id"] == 2
    assert [p["user_id"] for p in joined["participants"]] == [1]
    assert joined["ice_servers"] == []
    assert (await alice.wait_message("user_joined"))["user_id"] == 2
    assert bob.of_type("chat_history")
    assert hooks.events == [("joined", 1), ("joined", 2)]


async def test_non_mentor_cannot_moderate(make_client):
    alice = await make_client(1, role="mentor").join()
    bob = await make_client(2).join()
    await bob.send({"type": "moderate", "action": "remove", "target": 1})
    await bob.wait_message("error", code="forbidden")
    assert 1 in alice.room.participants and not alice.of_type("error")


async def test_mentor_mutes_removes_and_clears_hands(make_client):
    hooks = Attendance()
    mentor = await make_client(1, hooks=hooks, role="mentor").join()
    bob = await make_client(2, hooks=hooks).join()
    carol = await make_client(3, hooks=hooks).join()

    await bob.send({"type": "raise_hand", "raised": True})
    await carol.send({"type": "raise_hand", "raised": True})
    assert mentor.of_type("hands")[-1]["queue"] == [2, 3]
    await mentor.send({"type": "moderate", "action": "clear_hands"})
    assert mentor.of_type("hands")[-1]["queue"] == []

    await mentor.send({"type": "moderate", "action": "mute", "target": 2})
    await bob.wait_message("muted_by_moderator")
    state = await carol.wait_message("participant_state", user_id=2)
    assert state["state"]["audio_muted"] is True

    await mentor.send({"type": "moderate", "action": "remove", "target": 2})
    await bob.wait_message("removed")
    await carol.wait_message("user_left", user_id=2, reason="removed")
    assert bob.participant.closed.is_set()
    assert ("removed", 2) in hooks.events and ("left", 2) in hooks.events
    with pytest.raises(Banned) as exc:
        await mentor.room.join(ParticipantIdentity(2, "b", "learner"), _noop)
    assert exc.value.code == "removed"


async def test_abrupt_departure_is_detected(make_client):
    hooks = Attendance()
    alice = await make_client(1, hooks=hooks).join()
    bob = await make_client(2, hooks=hooks).join()
    await alice.publish()
    await bob.publish()
    await alice.wait_for(lambda: alice.frames_from(2, "camera"), timeout=10)
    # Bob's process dies: his peer connections close, no "leave", no WebSocket close.
    await bob.publish_pc.close()
    await bob.subscribe_pc.close()
    message = await alice.wait_message("user_left", user_id=2, timeout=10)
    assert message["reason"] == "disconnected"
    await alice.wait_for(lambda: ("left", 2) in hooks.events)


async def test_hostile_signaling_gets_errors_and_room_goes_on(make_client):
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    await alice.publish()
    await bob.wait_for(lambda: bob.frames_from(1, "camera"), timeout=10)

    cases = [
        ({"type": "offer", "pc": "publish", "sdp": "v=0\r\nthis is not sdp"}, "invalid_sdp"),
        ({"type": "offer", "pc": "publish", "sdp": "garbage"}, "invalid_sdp"),
        ({"type": "offer", "pc": "subscribe", "sdp": "v=0\r\n"}, "wrong_pc"),
        ({"type": "answer", "pc": "publish", "sdp": "v=0\r\n"}, "wrong_pc"),
        ({"type": "answer", "pc": "subscribe", "sdp": "v=0\r\n"}, "wrong_state"),
        ({"type": "explode"}, "unknown_type"),
        ({"no_type": 1}, "bad_request"),
        (["not", "an", "object"], "bad_request"),
        ({"type": "offer", "pc": "publish"}, "bad_request"),
        ({"type": "mute", "kind": "nose", "muted": True}, "bad_request"),
        ({"type": "raise_hand", "raised": "yes"}, "bad_request"),
        ({"type": "chat", "text": 42}, "bad_request"),
        ({"type": "chat", "text": "x" * 200_000}, "message_too_large"),
        ({"type": "ice_candidate", "pc": "nope", "candidate": {}}, "wrong_pc"),
        (
            {"type": "ice_candidate", "pc": "subscribe", "candidate": {"candidate": "bogus"}},
            "invalid_candidate",
        ),
        ({"type": "moderate", "action": "remove", "target": 1}, "forbidden"),
        ({"type": "join_session"}, "already_joined"),
    ]
    for message, code in cases:
        before = len(bob.of_type("error"))
        await bob.send(message)
        assert bob.of_type("error")[before:][-1]["code"] == code, message
    assert not alice.of_type("error")
    # Alice's media still flows to Bob.
    n = len(bob.frames_from(1, "camera"))
    await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) > n + 5, timeout=5)
    # A valid candidate is accepted silently.
    await alice.send(
        {
            "type": "ice_candidate",
            "pc": "publish",
            "candidate": {
                "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            },
        }
    )
    assert not alice.of_type("error")


async def test_close_room_ends_session_for_everyone(make_client, server):
    hooks = Attendance()
    alice = await make_client(1, hooks=hooks).join()
    bob = await make_client(2, hooks=hooks).join()
    await alice.publish()
    await bob.publish()
    await bob.wait_for(lambda: bob.frames_from(1, "camera"), timeout=10)
    room = server.get_room("room")
    participants = list(room.participants.values())
    assert _sfu_udp_ports(), "the SFU's media sockets should be open while the room is"
    await server.close_room("room")
    assert alice.of_type("session_ended") and bob.of_type("session_ended")
    assert server.get_room("room") is None
    assert {e for e in hooks.events if e[0] == "left"} == {("left", 1), ("left", 2)}
    # Everything the room owned is released: peer connections, tasks, UDP sockets.
    for p in participants:
        assert p.closed.is_set()
        assert p.publish.pc.connectionState == "closed"
        assert p.subscribe.pc.connectionState == "closed"
        assert not p.tasks._tasks
        assert all(slot.track.readyState == "ended" for slot in p.subscribe.slots)
    assert not room.tasks._tasks
    for _ in range(40):  # aioice closes its transports on the next loop iterations
        if not _sfu_udp_ports():
            break
        await asyncio.sleep(0.05)
    assert not _sfu_udp_ports()


def _sfu_udp_ports() -> list[int]:
    """UDP ports of this process inside the SFU's configured range (tests/sfu/conftest.py)."""
    low, high = TEST_CONFIG.udp_port_min, TEST_CONFIG.udp_port_max
    return [
        c.laddr.port
        for c in psutil.Process().net_connections(kind="udp")
        if low <= c.laddr.port <= high
    ]


async def test_an_empty_room_stops_its_ticker_and_restarts_it(make_client, server):
    alice = await make_client(1).join()
    room = server.get_room("room")
    ticker = room.ticker.task
    assert ticker is not None and not ticker.done()
    await alice.send({"type": "leave"})
    await asyncio.sleep(0)
    assert room.ticker.task is None and ticker.cancelled()
    bob = await make_client(2).join()
    assert room.ticker.task is not None and not room.ticker.task.done()
    await bob.send({"type": "ping"})
    await bob.wait_message("pong")


async def test_every_client_message_type_has_its_handler(server):
    room = server.open_room("handlers", RoomHooks())
    assert set(room._handlers) == protocol.CLIENT_TYPES
