"""Fixtures for the multi-process cluster tests: a clean Redis database, a node factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as redis

from tests.cluster.support import REDIS_URL, Node, start_node, stop
from tests.sfu.media import Clip, make_clip


@pytest.fixture(scope="module")
def clip() -> Clip:
    return make_clip(seconds=12)


@pytest.fixture
async def clean_redis() -> None:
    """The nodes' registry and claims start empty (the test run owns this database)."""
    client = redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture
async def nodes(
    tmp_path: Path, postgres_database: str, clean_redis: None
) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """``await nodes("a")``: one more node on the shared database (stopped afterwards)."""
    started: list[Node] = []

    async def start(name: str, **extra: str) -> Node:
        node = await start_node(tmp_path, name, postgres_database, **extra)
        started.append(node)
        return node

    yield start
    for node in started:
        stop(node)
