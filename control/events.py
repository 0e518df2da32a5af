"""The event bus: in-memory for one process, Redis pub/sub when nodes share work.

Channels are plain strings (``user:42`` for a user's live notifications, ``session:<uuid>``
for a session's lifecycle, ``catalog`` for changes to what can be booked).  Messages are
JSON-serialisable dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]

#: Catalogue changes every node follows (its recommender): ``{"type": ..., "session_id": ...}``
#: with type ``session_created``, ``session_started``, ``session_ended``,
#: ``session_cancelled``, or ``booking_cancelled`` (plus ``user_id``: the seat is free again).
CATALOG_CHANNEL = "catalog"


class EventBus(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]: ...


class _Handlers:
    def __init__(self) -> None:
        self._by_channel: dict[str, list[Handler]] = defaultdict(list)

    def add(self, channel: str, handler: Handler) -> Callable[[], None]:
        self._by_channel[channel].append(handler)

        def unsubscribe() -> None:
            handlers = self._by_channel.get(channel, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._by_channel.pop(channel, None)

        return unsubscribe

    def channels(self) -> list[str]:
        return list(self._by_channel)

    async def dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for handler in list(self._by_channel.get(channel, ())):
            try:
                await handler(message)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("event handler failed on %s", channel)


class InMemoryEventBus:
    """Delivers in the publishing process only (the embedded default)."""

    def __init__(self) -> None:
        self._handlers = _Handlers()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._handlers.dispatch(channel, message)

    def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        return self._handlers.add(channel, handler)


class RedisEventBus:
    """Redis pub/sub: every node receives what any node publishes."""

    PREFIX = "peerlearn:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._handlers = _Handlers()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._redis.ping()
        await self._pubsub.psubscribe(self.PREFIX + "*")
        self._task = asyncio.create_task(self._listen(), name="redis-event-bus")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()
        await self._redis.aclose()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self.PREFIX + channel, json.dumps(message, default=str))

    def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        return self._handlers.add(channel, handler)

    async def _listen(self) -> None:
        while True:
            try:
                item = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis event bus read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if not item:
                continue
            channel = item["channel"].decode().removeprefix(self.PREFIX)
            try:
                message = json.loads(item["data"])
            except (ValueError, TypeError):
                log.warning("dropping malformed event on %s", channel)
                continue
            await self._handlers.dispatch(channel, message)


def create_event_bus(redis_url: str | None) -> EventBus:
    return RedisEventBus(redis_url) if redis_url else InMemoryEventBus()
