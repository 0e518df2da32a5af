"""``control.cluster`` on the real Redis, in-process: the registry, claims, placement by
load, expiry, and the relay's order and back-pressure. (The processes are in the other
files of this folder.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from control.cluster import Cluster, ClusterOptions, RelayChannel
from tests.cluster.support import REDIS_URL

FAST = ClusterOptions(heartbeat_s=0.1, node_ttl_s=0.5, relay_block_ms=100)


class Load:
    def __init__(self) -> None:
        self.rooms = 0
        self.participants = 0

    def __call__(self) -> tuple[int, int]:
        return self.rooms, self.participants


async def _nothing(_channel: RelayChannel, _hello: dict[str, Any]) -> None:
    return None


@pytest.fixture
async def make_node(clean_redis: None) -> AsyncIterator[Callable[..., Any]]:
    started: list[Cluster] = []

    async def make(
        name: str, options: ClusterOptions = FAST, on_open: Any = _nothing
    ) -> tuple[Cluster, Load]:
        load = Load()
        node = Cluster(REDIS_URL, node_id=name, media=f"{name}:40000", options=options, load=load)
        await node.start(on_open)
        started.append(node)
        return node, load

    yield make
    for node in started:
        with contextlib.suppress(Exception):
            await node.close()


async def test_a_new_room_goes_to_the_least_loaded_live_node(make_node: Any) -> None:
    a, load_a = await make_node("a")
    b, _load_b = await make_node("b")
    load_a.rooms, load_a.participants = 3, 12
    await asyncio.sleep(0.3)  # a heartbeat publishes the load
    assert {n.node_id: n.rooms for n in await a.nodes()} == {"a": 3, "b": 0}
    assert await a.place("room-1") == "b"  # placed from a, on b
    assert await b.place("room-1") == "b"  # and everyone agrees
    assert await a.owner("room-1") == "b"


async def test_racing_placements_settle_on_one_owner(make_node: Any) -> None:
    nodes = [(await make_node(f"n{i}"))[0] for i in range(4)]
    owners = await asyncio.gather(*(n.place("contested") for n in nodes for _ in range(5)))
    assert len(set(owners)) == 1


async def test_a_dead_nodes_claims_expire_and_the_room_is_placed_again(make_node: Any) -> None:
    a, _ = await make_node("a")
    b, _ = await make_node("b")
    a.adopt("room-x")
    assert await b.place("room-x") in ("a", "b")
    owner = await b.owner("room-x")
    survivor = b if owner == "a" else a
    dead = a if owner == "a" else b
    # The owner stops beating (as if killed): no close(), no release.
    assert dead._beat is not None and dead._inbox is not None
    dead._beat.cancel()
    dead._inbox.cancel()
    for _ in range(50):
        if not await survivor.alive(dead.node_id):
            break
        await asyncio.sleep(0.1)
    assert not await survivor.alive(dead.node_id)
    assert await survivor.place("room-x") == survivor.node_id
    assert [n.node_id for n in await survivor.nodes()] == [survivor.node_id]


async def test_a_draining_node_gets_no_new_rooms(make_node: Any) -> None:
    a, _ = await make_node("a")
    b, load_b = await make_node("b")
    load_b.rooms = 50  # busier, but a drains
    await a.drain()
    assert await b.place("room-d") == "b"


async def test_the_relay_keeps_order_and_makes_a_fast_writer_wait(make_node: Any) -> None:
    opened: asyncio.Queue[tuple[RelayChannel, dict[str, Any]]] = asyncio.Queue()
    done = asyncio.Event()

    async def serve(channel: RelayChannel, hello: dict[str, Any]) -> None:
        await opened.put((channel, hello))
        await done.wait()

    options = ClusterOptions(heartbeat_s=0.1, node_ttl_s=0.5, relay_block_ms=100, relay_backlog=8)
    await make_node("owner", options, serve)
    edge, _ = await make_node("edge", options)
    up = await edge.connect("owner", {"room_id": "r", "user_id": 7})
    owner_side, hello = await asyncio.wait_for(opened.get(), 10)
    assert hello == {"room_id": "r", "user_id": 7}

    # Nobody reads yet: the writer gets 8 entries ahead, then waits.
    writer = asyncio.create_task(_send_all(up, 40))
    await asyncio.sleep(0.5)
    assert not writer.done()
    got: list[int] = []
    while len(got) < 40:
        for message, _control, _sent in await owner_side.receive():
            assert message is not None
            got.append(message["n"])
    await asyncio.wait_for(writer, 10)
    assert got == list(range(40))  # in order, none lost

    await owner_side.send({"type": "pong"})
    [(message, _c, _t)] = await up.receive()
    assert message == {"type": "pong"}
    await up.close("left")
    [(none, control, _t)] = await owner_side.receive()
    assert none is None and control == {"c": "close", "reason": "left"}
    done.set()


async def _send_all(channel: RelayChannel, count: int) -> None:
    for n in range(count):
        await channel.send({"type": "chat", "n": n})


async def test_a_burst_of_new_rooms_spreads_over_idle_nodes(make_node: Any) -> None:
    # No heartbeat in between (a long one): the CPU and room counts every placement sees
    # are the same stale ones, yet the rooms do not all herd onto one node.
    slow = ClusterOptions(heartbeat_s=30, node_ttl_s=60, relay_block_ms=100)
    a, _ = await make_node("a", slow)
    await make_node("b", slow)
    owners = [await a.place(f"burst-{i}") for i in range(6)]
    assert sorted(owners) == ["a", "a", "a", "b", "b", "b"], owners


async def test_rooms_placed_at_the_same_moment_from_two_nodes_spread(make_node: Any) -> None:
    # Both nodes place at once (each read the other's "placed" count as 0 before): the
    # choice and the claim are one script, so they still land on different nodes.
    slow = ClusterOptions(heartbeat_s=30, node_ttl_s=60, relay_block_ms=100)
    a, _ = await make_node("a", slow)
    b, _ = await make_node("b", slow)
    owners = await asyncio.gather(*(n.place(f"same-time-{i}") for i, n in enumerate((a, b) * 2)))
    assert sorted(owners) == ["a", "a", "b", "b"], owners
