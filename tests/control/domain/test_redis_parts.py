"""The production parts over a real Redis: the cross-node event bus and login counters."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
import redis.asyncio as redis

from control.events import InMemoryEventBus, RedisEventBus
from control.ratelimit import MemoryRateLimiter, RedisRateLimiter

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def redis_url() -> str:
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # a required part of the suite: fail, never skip
        pytest.fail(f"Redis not reachable at {REDIS_URL} ({exc}); run scripts/test.sh")
    finally:
        await client.aclose()
    return REDIS_URL


async def test_redis_bus_delivers_between_two_nodes(redis_url: str) -> None:
    node_a, node_b = RedisEventBus(redis_url), RedisEventBus(redis_url)
    await node_a.start()
    await node_b.start()
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    channel = f"user:{uuid.uuid4().hex}"

    async def on_message(message: dict[str, Any]) -> None:
        await received.put(message)

    unsubscribe = node_b.subscribe(channel, on_message)
    try:
        await asyncio.sleep(0.1)
        await node_a.publish(channel, {"type": "notification", "n": 1})
        assert await asyncio.wait_for(received.get(), 5) == {"type": "notification", "n": 1}
        unsubscribe()
        await node_a.publish(channel, {"type": "notification", "n": 2})
        await asyncio.sleep(0.3)
        assert received.empty()
    finally:
        await node_a.close()
        await node_b.close()


async def test_in_memory_bus_isolates_failing_handlers() -> None:
    bus = InMemoryEventBus()
    seen: list[int] = []

    async def broken(_message: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    async def healthy(message: dict[str, Any]) -> None:
        seen.append(message["n"])

    bus.subscribe("c", broken)
    bus.subscribe("c", healthy)
    await bus.publish("c", {"n": 7})
    assert seen == [7]


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_rate_limiter_blocks_after_limit_and_resets(kind: str, redis_url: str) -> None:
    limiter = MemoryRateLimiter() if kind == "memory" else RedisRateLimiter(redis_url)
    key = f"login:{uuid.uuid4().hex}"
    try:
        assert [await limiter.hit(key, 3, 60) for _ in range(3)] == [None, None, None]
        retry = await limiter.hit(key, 3, 60)
        assert retry is not None and 1 <= retry <= 61
        assert await limiter.blocked_for(key, 3) is not None
        await limiter.reset(key)
        assert await limiter.blocked_for(key, 3) is None
        assert await limiter.hit(key, 3, 60) is None
    finally:
        await limiter.close()
