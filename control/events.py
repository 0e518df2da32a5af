"""The event bus: in-memory for one process, Redis pub/sub when nodes share work.

Channels are plain strings, named here only: ``user_channel(id)`` (``user:42``: a user's
live notifications and login-session revocations), ``session_channel(id)``
(``session:<uuid>``: a session's lifecycle and room bans, which its room follows) and
``CATALOG_CHANNEL`` (``catalog``: changes to what can be booked) and
``INTERACTIONS_CHANNEL`` (``interactions``: what the recommenders learn from).  Messages are
JSON-serialisable dicts.

Each bus has a ``node`` id; ``origin(message)`` tells a handler which node published a
message, so a node can skip what it already applied locally. On Redis each message travels
with its publication time, and ``on_delay`` (set by the metrics) hears how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]

#: Catalogue changes every node follows (its recommender): ``{"type": ..., "session_id": ...}``
#: with type ``session_created``, ``session_started``, ``session_ended``,
#: ``session_cancelled``, ``booking_created`` (plus ``user_id``: a seat was taken) or
#: ``booking_cancelled`` (plus ``user_id``: the seat is free again).
CATALOG_CHANNEL = "catalog"

#: Every recorded interaction (``InteractionService.record``), for the recommenders of the
#: other nodes: the interaction's dict plus ``origin`` (the publishing bus's ``node``).
INTERACTIONS_CHANNEL = "interactions"

#: fields the Redis bus adds to a message on the wire and takes off again on receipt
_SENT_AT = "_sent_at"
ORIGIN = "origin"

DelayObserver = Callable[[str, float], None]
PublishObserver = Callable[[str, dict[str, Any]], None]


def new_node_id() -> str:
    """A random id for one process's bus (and so one node)."""
    return uuid.uuid4().hex[:12]


def origin(message: dict[str, Any]) -> str | None:
    """The ``node`` of the bus that published ``message``, when the publisher said."""
    value = message.get(ORIGIN)
    return value if isinstance(value, str) else None


def user_channel(user_id: int) -> str:
    """One user's channel: live notifications, unread counts, ``sessions_revoked``."""
    return f"user:{user_id}"


def session_channel(session_id: uuid.UUID | str) -> str:
    """One session's channel: ``session_started`` / ``_ended`` / ``_cancelled``,
    ``user_banned``; the session's room follows it."""
    return f"session:{session_id}"


class EventBus(Protocol):
    node: str
    on_delay: DelayObserver | None
    on_publish: PublishObserver | None

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


def _observe(observer: PublishObserver | None, channel: str, message: dict[str, Any]) -> None:
    if observer is not None:
        try:
            observer(channel, message)
        except Exception:  # counting must never break a publication
            log.exception("bus publish observer failed")


class InMemoryEventBus:
    """Delivers in the publishing process only (the embedded default)."""

    def __init__(self) -> None:
        self.node = new_node_id()
        self.on_delay: DelayObserver | None = None
        #: called with each message this node publishes (the metrics count bookings here)
        self.on_publish: PublishObserver | None = None
        self._handlers = _Handlers()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        _observe(self.on_publish, channel, message)
        await self._handlers.dispatch(channel, message)

    def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        return self._handlers.add(channel, handler)


class RedisEventBus:
    """Redis pub/sub: every node receives what any node publishes."""

    PREFIX = "peerlearn:"

    def __init__(self, url: str) -> None:
        # Imported here: redis.asyncio costs half a second, which one-node setups never pay.
        import redis.asyncio as redis

        self.node = new_node_id()
        #: called with (channel, seconds from publish to dispatch) for each message received
        self.on_delay: DelayObserver | None = None
        self.on_publish: PublishObserver | None = None
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
        # redis-py annotates PubSub.aclose only from 8.2 on: call it untyped on every version.
        await cast(Any, self._pubsub).aclose()
        await self._redis.aclose()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        wire = {**message, _SENT_AT: time.time()}  # wall clock: the receiver is another host
        await self._redis.publish(self.PREFIX + channel, json.dumps(wire, default=str))
        _observe(self.on_publish, channel, message)

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
            if not isinstance(message, dict):
                log.warning("dropping malformed event on %s", channel)
                continue
            sent_at = message.pop(_SENT_AT, None)
            if self.on_delay is not None and isinstance(sent_at, int | float):
                try:
                    self.on_delay(channel, max(0.0, time.time() - sent_at))
                except Exception:
                    log.exception("bus delay observer failed")
            await self._handlers.dispatch(channel, message)


async def announce(bus: EventBus, event: str, session_id: uuid.UUID | str, **fields: Any) -> None:
    """Publish a catalogue change on ``CATALOG_CHANNEL`` once it is committed; a bus
    failure is only logged (the change itself stands)."""
    try:
        await bus.publish(CATALOG_CHANNEL, {"type": event, "session_id": str(session_id), **fields})
    except Exception:
        log.exception("could not announce %s of session %s", event, session_id)


def create_event_bus(redis_url: str | None) -> EventBus:
    return RedisEventBus(redis_url) if redis_url else InMemoryEventBus()
