"""Two nodes on one database and the real Redis: what one node records reaches the other's
recommender (interactions and catalogue changes) and its users' notifications."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings
from control.events import user_channel
from control.platform import Platform
from web.recommendations import RecommenderGateway, weights_from_settings

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def nodes(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Platform, Platform]]:
    settings = make_settings(redis={"url": REDIS_URL})
    a, b = Platform(settings), Platform(settings)
    await a.db.migrate()
    await a.start(background=False)
    await b.start(background=False)
    yield a, b
    await a.close()
    await b.close()


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"timed out waiting for {what}")


async def test_interactions_and_catalogue_reach_the_other_nodes_recommender(
    nodes: tuple[Platform, Platform], make_settings: Callable[..., Settings]
) -> None:
    a, b = nodes
    weights = weights_from_settings(make_settings().recommender)
    on_a, on_b = RecommenderGateway(a, weights), RecommenderGateway(b, weights)
    seen: dict[str, list[Any]] = {"a": [], "b": [], "b_sessions": []}
    on_a.engine.record = lambda i: seen["a"].append(i)  # type: ignore[method-assign]
    on_b.engine.record = lambda i: seen["b"].append(i)  # type: ignore[method-assign]
    on_b.engine.add_session = (  # type: ignore[method-assign]
        lambda s, mentor=None: seen["b_sessions"].append(s.id)
    )
    await on_a.start(background=False)
    await on_b.start(background=False)
    try:
        await asyncio.sleep(0.2)  # both buses subscribed
        mentor = await a.accounts.register(
            username="ada", email="ada@example.org", password="s3cret-pass!", role="mentor"
        )
        learner = await a.accounts.register(
            username="bob", email="bob@example.org", password="s3cret-pass!", role="learner"
        )
        session = await a.sessions.create(
            mentor,
            title="Go for pythonistas",
            description="",
            schedule=datetime.now(UTC) + timedelta(days=1),
            duration=60,
            max_participants=3,
            skills_required=["Go"],
            price=Decimal(0),
        )
        await _until(lambda: str(session.id) in seen["b_sessions"], "session_created on b")
        await a.interactions.record(learner.id, session.id, "view")
        await _until(lambda: len(seen["b"]) == 1, "the interaction on b")
        assert seen["b"][0].user_id == learner.id and seen["b"][0].kind == "view"
        assert len(seen["a"]) == 1  # applied once on a: its own bus echo is skipped
        await asyncio.sleep(0.2)
        assert len(seen["a"]) == 1 and len(seen["b"]) == 1
    finally:
        await on_a.stop()
        await on_b.stop()


async def test_a_notification_made_on_one_node_reaches_a_socket_on_the_other(
    nodes: tuple[Platform, Platform],
) -> None:
    a, b = nodes
    user = await a.accounts.register(
        username="cyril", email="cyril@example.org", password="s3cret-pass!", role="learner"
    )
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_message(message: dict[str, Any]) -> None:
        await got.put(message)

    unsubscribe = b.bus.subscribe(user_channel(user.id), on_message)
    try:
        await asyncio.sleep(0.2)
        await a.notifications.notify(user.id, title="Hello from node a", message="hi")
        message = await asyncio.wait_for(got.get(), 10)
        assert "Hello from node a" in str(message)
    finally:
        unsubscribe()
