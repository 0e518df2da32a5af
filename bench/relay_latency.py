"""What relaying signaling to a room's owner over Redis adds per message (issue 13).

    python bench/relay_latency.py [--pings 500] [--postgres URL] [--redis URL]

Starts two real nodes (``peerlearn serve`` with ``[cluster] enabled``) on a fresh
PostgreSQL database and the given Redis, opens one live session and joins two
participants: one whose socket is on the room's owner (*direct*), one whose socket is on
the other node (*relayed*: its messages go up a Redis Stream to the owner, the replies come
down another). Each then sends ``ping`` and waits for ``pong``, one at a time, interleaved
so both see the same machine load. A ping crosses the relay twice (up and down), so the
added latency per message is half the difference of the round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import redis.asyncio as redis  # noqa: E402

from control.cluster import PREFIX  # noqa: E402
from tests.cluster.support import Api, Node, start_node, stop  # noqa: E402


async def _joined(http: aiohttp.ClientSession, node: Node, sid: str, token: str) -> Any:
    ws = await http.ws_connect(
        node.url.replace("http", "ws", 1) + f"/ws/session/{sid}/",
        headers={"Origin": node.url, "Authorization": f"Bearer {token}"},
    )
    await ws.send_json({"type": "join_session"})
    while (message := json.loads((await ws.receive()).data))["type"] != "joined":
        if message["type"] == "error":
            raise SystemExit(f"join refused: {message}")
    return ws


async def _ping(ws: Any) -> float:
    started = time.perf_counter()
    await ws.send_json({"type": "ping"})
    while json.loads((await ws.receive()).data)["type"] != "pong":
        pass  # user_joined and the like
    return (time.perf_counter() - started) * 1000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(pings: int, postgres: str, redis_url: str) -> None:
    name = f"peerlearn_relay_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database = (
        postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    )
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    nodes: list[Node] = []
    try:
        nodes.append(await start_node(tmp, "a", database, PEERLEARN_REDIS__URL=redis_url))
        nodes.append(await start_node(tmp, "b", database, PEERLEARN_REDIS__URL=redis_url))
        async with aiohttp.ClientSession() as http:
            api = Api(http, nodes[0].url)
            mentor, learner = await api.user("mentor"), await api.user("learner")
            sid = await api.live_session(mentor, [learner])
            first = await _joined(http, nodes[0], sid, mentor["token"])
            client = redis.from_url(redis_url)
            owner = (await client.get(PREFIX + f"room:{sid}")).decode()
            await client.aclose()
            owner_node = next(n for n in nodes if n.node_id == owner)
            edge_node = next(n for n in nodes if n is not owner_node)
            edge_is_first = owner_node is not nodes[0]
            second_node = owner_node if edge_is_first else edge_node
            second = await _joined(http, second_node, sid, learner["token"])
            direct, relayed = (second, first) if edge_is_first else (first, second)
            for _ in range(20):  # warm-up: connections, JIT-free but caches
                await _ping(direct)
                await _ping(relayed)
            times: dict[str, list[float]] = {"direct": [], "relayed": []}
            for _ in range(pings):
                times["direct"].append(await _ping(direct))
                times["relayed"].append(await _ping(relayed))
            await direct.close()
            await relayed.close()
    finally:
        for node in nodes:
            stop(node)
        admin = await asyncpg.connect(postgres)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    print(f"\nSignaling round trip (ping -> pong), {pings} each, ms")
    print(f"{'path':<10} {'p50':>7} {'p95':>7} {'mean':>7}")
    for path, values in times.items():
        print(
            f"{path:<10} {_pct(values, 0.5):7.2f} {_pct(values, 0.95):7.2f} "
            f"{statistics.fmean(values):7.2f}"
        )
    added50 = (_pct(times["relayed"], 0.5) - _pct(times["direct"], 0.5)) / 2
    added95 = (_pct(times["relayed"], 0.95) - _pct(times["direct"], 0.95)) / 2
    print(f"added by the relay per message (one way): p50 {added50:.2f} ms, p95 {added95:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(run(args.pings, args.postgres, args.redis))


if __name__ == "__main__":
    main()
