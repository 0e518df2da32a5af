"""Two real nodes: participants whose sockets are on different nodes share one room.

The room is placed on one node (its claim in Redis); the other participant's signaling is
relayed there over Redis Streams. Media goes straight to the owner's UDP port, whichever
node holds the socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import redis.asyncio as redis

from control.cluster import PREFIX, Cluster, ClusterOptions
from tests.cluster.support import NODE_TTL_S, REDIS_URL, Api, Node, Participant
from tests.sfu.client import host_candidates
from tests.sfu.media import Clip

FRAMES = 20  # video frames each must receive from the other: media flows


async def owner_of(sid: str) -> str | None:
    client = redis.from_url(REDIS_URL)
    try:
        value = await client.get(PREFIX + f"room:{sid}")
        return value.decode() if value else None
    finally:
        await client.aclose()


async def registry() -> dict[str, dict[str, object]]:
    client = redis.from_url(REDIS_URL)
    try:
        ids = [m.decode() for m in await client.smembers(PREFIX + "nodes")]
        values = await client.mget([PREFIX + f"node:{i}" for i in ids]) if ids else []
        return {i: json.loads(v) for i, v in zip(ids, values, strict=True) if v}
    finally:
        await client.aclose()


def chat_texts(client: Participant) -> list[str]:
    """Chat a participant received, over its data channel or the socket."""
    messages = [json.loads(d) for d in client.datachannel_messages] + client.of_type("chat")
    return [m["message"]["text"] for m in messages if m.get("type") == "chat"]


async def receives_video(client: Participant, other: int) -> None:
    try:
        await client.wait_for(lambda: len(client.frames_from(other, "camera")) >= FRAMES, 30)
    except AssertionError as exc:
        got = {mid: len(r.frames) for mid, r in client.received.items()}
        raise AssertionError(f"{exc}; frames by mid {got}, tracks {client.track_map}") from None


async def test_sockets_on_two_nodes_share_one_room(
    nodes: Callable[..., Awaitable[Node]], clip: Clip
) -> None:
    a = await nodes("a")
    b = await nodes("b")
    nodes_seen = await registry()
    assert {a.node_id, b.node_id} <= set(nodes_seen), nodes_seen
    async with aiohttp.ClientSession() as http:
        api = Api(http, a.url)
        mentor, learner = await api.user("mentor"), await api.user("learner")
        sid = await api.live_session(mentor, [learner])

        m = Participant(a.url, sid, mentor["token"], mentor["id"], clip)
        ell = Participant(b.url, sid, learner["token"], learner["id"], clip)
        try:
            await m.join()
            await ell.join()
            owner = await owner_of(sid)
            assert owner in (a.node_id, b.node_id)
            owner_node = a if owner == a.node_id else b
            # Both are in the same room: each sees the other.
            assert any(
                p["user_id"] == mentor["id"] for p in ell.of_type("joined")[0]["participants"]
            )
            await m.wait_message("user_joined")

            await m.publish()
            await ell.publish()
            await asyncio.gather(
                receives_video(m, learner["id"]), receives_video(ell, mentor["id"])
            )
            # Both publish answers carry the owner's media port, whichever node has the socket.
            for client in (m, ell):
                answer = client.of_type("answer")[0]["sdp"]
                assert ("127.0.0.1", owner_node.udp_port) in host_candidates(answer), answer[:400]

            # Chat, hands and state cross nodes both ways.
            await ell.send({"type": "chat", "text": "hello from node b"})
            await m.wait_for(lambda: "hello from node b" in chat_texts(m))
            await m.send({"type": "chat", "text": "hello from node a"})
            await ell.wait_for(lambda: "hello from node a" in chat_texts(ell))
            await ell.send({"type": "raise_hand", "raised": True})
            await m.wait_message("hands", queue=[learner["id"]])
            await m.send({"type": "moderate", "action": "clear_hands"})
            await ell.wait_message("hands", queue=[])
            await ell.send({"type": "ping"})
            await ell.wait_message("pong")

            # The mentor ends the session through the *other* node's API: both hear it.
            other = b if owner_node is a else a
            status, data = await api.call(
                "POST", f"/api/sessions/{sid}/end/", mentor["token"], base=other.url
            )
            assert status == 200, data
            await m.wait_message("session_ended")
            await ell.wait_message("session_ended")
        finally:
            await m.close()
            await ell.close()
    load = await registry()
    assert all(entry["media"] for entry in load.values()), load


async def test_a_moderator_on_one_node_removes_a_learner_on_the_other(
    nodes: Callable[..., Awaitable[Node]], clip: Clip
) -> None:
    a = await nodes("a")
    b = await nodes("b")
    async with aiohttp.ClientSession() as http:
        api = Api(http, a.url)
        mentor, learner = await api.user("mentor"), await api.user("learner")
        sid = await api.live_session(mentor, [learner])
        m = Participant(a.url, sid, mentor["token"], mentor["id"], clip)
        ell = Participant(b.url, sid, learner["token"], learner["id"], clip)
        try:
            await m.join()
            await ell.join()
            await m.send({"type": "moderate", "action": "remove", "target": learner["id"]})
            await ell.wait_message("removed", by=mentor["id"])
            await m.wait_message("user_left", user_id=learner["id"])
            # Refused on either node from now on.
            again = Participant(a.url, sid, learner["token"], learner["id"], clip)
            try:
                await again.knock()
                await again.wait_message("error", code="removed")
            finally:
                await again.close()
        finally:
            await m.close()
            await ell.close()


async def test_a_logout_on_one_node_ends_a_relayed_socket_with_its_reason(
    nodes: Callable[..., Awaitable[Node]], clip: Clip
) -> None:
    a = await nodes("a")
    b = await nodes("b")
    async with aiohttp.ClientSession() as http:
        api = Api(http, a.url)
        mentor, learner = await api.user("mentor"), await api.user("learner")
        sid = await api.live_session(mentor, [learner])
        m = Participant(a.url, sid, mentor["token"], mentor["id"], clip)
        ell = Participant(b.url, sid, learner["token"], learner["id"], clip)
        try:
            await m.join()
            await ell.join()
            owner = await owner_of(sid)
            # Whoever's socket is not on the owner is relayed: log them out, through the
            # node that is not the owner either.
            relayed, user, stays = (ell, learner, m) if owner == a.node_id else (m, mentor, ell)
            other = b if owner == a.node_id else a
            status, _ = await api.call(
                "POST", "/api/auth/logout-everywhere/", user["token"], base=other.url
            )
            assert status in (200, 204)
            ended = await relayed.wait_message("session_ended")
            assert ended["reason"] == "logout_everywhere"
            assert await relayed.wait_closed() == 4000  # as on one node (tests/signaling)
            await stays.wait_message("user_left", user_id=user["id"])
        finally:
            await m.close()
            await ell.close()


async def _serve_nothing(_channel: Any, _hello: dict[str, Any]) -> None:
    return None


async def test_a_relay_that_goes_silent_is_dropped_by_the_owner(
    nodes: Callable[..., Awaitable[Node]], clip: Clip
) -> None:
    """An edge that stays alive but stops relaying a socket (its farewell lost): no
    keepalive for 3 node TTLs and the owner drops that participant."""
    a = await nodes("a")
    async with aiohttp.ClientSession() as http:
        api = Api(http, a.url)
        mentor, learner = await api.user("mentor"), await api.user("learner")
        sid = await api.live_session(mentor, [learner])
        m = Participant(a.url, sid, mentor["token"], mentor["id"], clip)
        edge = Cluster(
            REDIS_URL,
            node_id="silent-edge",
            media="127.0.0.1:9",
            options=ClusterOptions(heartbeat_s=0.5, node_ttl_s=NODE_TTL_S),
            load=lambda: (0, 0),
        )
        try:
            await m.join()
            await edge.start(_serve_nothing)  # alive in the registry all along
            owner = await edge.owner(sid)
            assert owner == a.node_id
            hello = {
                "room_id": sid,
                "user_id": learner["id"],
                "display_name": learner["name"],
                "role": "learner",
            }
            await edge.connect(owner, hello)  # ... and then nothing, not even a keepalive
            await m.wait_message("user_joined", 20)
            joined_at = time.monotonic()
            left = await m.wait_message("user_left", 60)
            assert left["user_id"] == learner["id"]
            assert time.monotonic() - joined_at >= 2 * NODE_TTL_S  # not before its time
        finally:
            await m.close()
            await edge.close()
