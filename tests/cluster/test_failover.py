"""A room survives its owner: killed (SIGKILL), it reopens on the other node once the
claim expires; stopped (SIGTERM), the owner hands it over first. Everyone comes back and
receives everyone's media again; the chat history is in the database, so it survives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.cluster.support import NODE_TTL_S, Api, Node, Participant, rejoin
from tests.cluster.test_two_nodes import chat_texts, owner_of, receives_video
from tests.sfu.media import Clip

#: The room must be back (both decoding each other) this soon after its owner died: the
#: claim's TTL, a relay read, and the page's 1 s retry, with room to spare on a busy CI.
RECOVERY_BOUND_S = NODE_TTL_S + 20.0


async def _room_on_two_nodes(
    nodes: Callable[..., Awaitable[Node]], http: aiohttp.ClientSession, clip: Clip
) -> tuple[Node, Node, str, dict[str, Any], dict[str, Any], list[Participant]]:
    """Mentor's socket on a, learner's on b, both publishing and receiving; returns the
    owner first."""
    a = await nodes("a")
    b = await nodes("b")
    api = Api(http, a.url)
    mentor, learner = await api.user("mentor"), await api.user("learner")
    sid = await api.live_session(mentor, [learner])
    m = Participant(a.url, sid, mentor["token"], mentor["id"], clip)
    ell = Participant(b.url, sid, learner["token"], learner["id"], clip)
    await m.join()
    await ell.join()
    await m.publish()
    await ell.publish()
    await asyncio.gather(receives_video(m, learner["id"]), receives_video(ell, mentor["id"]))
    await ell.send({"type": "chat", "text": "before the owner went away"})
    await m.wait_for(lambda: "before the owner went away" in chat_texts(m))
    owner = await owner_of(sid)
    first, second = (a, b) if owner == a.node_id else (b, a)
    return first, second, sid, mentor, learner, [m, ell]


async def _back_together(
    survivor: Node, sid: str, users: list[dict[str, Any]], clip: Clip
) -> list[Participant]:
    """Both users rejoin through the surviving node and decode each other again."""
    clients = await asyncio.gather(*(rejoin(survivor.url, sid, u, clip) for u in users))
    for client in clients:
        await client.publish()
    first, second = clients
    await asyncio.gather(
        receives_video(first, users[1]["id"]), receives_video(second, users[0]["id"])
    )
    return list(clients)


async def test_the_room_reopens_elsewhere_when_its_owner_is_killed(
    nodes: Callable[..., Awaitable[Node]], clip: Clip
) -> None:
    async with aiohttp.ClientSession() as http:
        owner, survivor, sid, mentor, learner, clients = await _room_on_two_nodes(nodes, http, clip)
        edge_client = next(c for c in clients if survivor.url in c._url.replace("ws", "http", 1))
        killed_at = time.monotonic()
        owner.kill()
        # The socket on the surviving node is told to reconnect (1012), not left hanging.
        assert await edge_client.wait_closed(NODE_TTL_S + 10) == 1012
        told_after = time.monotonic() - killed_at
        for client in clients:
            await client.close()
        again = await _back_together(survivor, sid, [mentor, learner], clip)
        recovered_after = time.monotonic() - killed_at
        try:
            assert await owner_of(sid) == survivor.node_id
            history = again[0].of_type("chat_history")[0]["messages"]
            assert [m["text"] for m in history] == ["before the owner went away"]
        finally:
            for client in again:
                await client.close()
    print(
        f"\nowner SIGKILL: edge told after {told_after:.1f} s, back after {recovered_after:.1f} s"
    )
    assert recovered_after < RECOVERY_BOUND_S


async def test_sigterm_drains_the_owner_and_nobody_is_left_behind(
    nodes: Callable[..., Awaitable[Node]], clip: Clip
) -> None:
    async with aiohttp.ClientSession() as http:
        owner, survivor, sid, mentor, learner, clients = await _room_on_two_nodes(nodes, http, clip)
        stopped_at = time.monotonic()
        owner.terminate()
        codes = await asyncio.gather(*(c.wait_closed(15) for c in clients))
        assert codes == [1012, 1012], codes  # both told to reconnect, wherever their socket was
        for client in clients:
            await client.close()
        again = await _back_together(survivor, sid, [mentor, learner], clip)
        moved_after = time.monotonic() - stopped_at
        try:
            assert await owner_of(sid) == survivor.node_id
            assert owner.proc.wait(timeout=30) == 0  # exits by itself within the grace
        finally:
            for client in again:
                await client.close()
    print(f"\nowner SIGTERM: room moved and everyone back after {moved_after:.1f} s")
    assert "drained" in owner.log()
