"""One participant's outbound signaling queue: bounded, in order, one writer.

Broadcasts used to await every participant's WebSocket inline, so one participant that
stopped reading held up whoever triggered the broadcast (and behind it the room). Now
everything for a participant goes through its :class:`Outbox`: one writer writes in
order; a backlog over ``max_bytes`` or a write stuck for ``max_stall_s`` drops the
participant (``on_overflow``) instead of growing or waiting without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from .protocol import Message

logger = logging.getLogger(__name__)

#: Writes one signaling message to the client (the web layer's WebSocket ``send_json``).
Send = Callable[[Message], Awaitable[None]]


def encoded_size(message: Message) -> int:
    """What a message costs on the wire (computed once per broadcast, not per target)."""
    return len(json.dumps(message, separators=(",", ":"), default=str))


class Outbox:
    """Ordered, bounded delivery to one client through its ``send`` coroutine."""

    def __init__(
        self,
        send: Send,
        *,
        max_bytes: int,
        max_stall_s: float,
        on_overflow: Callable[[str], None],
    ) -> None:
        self._send = send
        self.max_bytes = max_bytes
        self.max_stall_s = max_stall_s
        self._on_overflow = on_overflow
        self._queue: deque[tuple[Message, int, asyncio.Future[None]]] = deque()
        self.queued_bytes = 0
        self._writing = False
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped: str | None = None  # why, once the client was dropped
        self.closed = False
        self.written = 0

    @property
    def busy(self) -> bool:
        """A write is under way or queued: a caller should not wait for this client."""
        return self._writing or bool(self._queue)

    def post(self, message: Message, size: int | None = None) -> asyncio.Future[None] | None:
        """Queue ``message`` and return at once.

        Returns a future resolved once it is written — only when this outbox was idle, so
        a broadcaster may wait briefly for healthy clients (prompt, ordered delivery) while
        never waiting for one that is already behind.
        """
        if self.closed or self.dropped is not None:
            return None
        idle = not self.busy
        done = self._enqueue(message, encoded_size(message) if size is None else size)
        if done is not None and not self._writing:
            self._writing = True
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="outbox-writer"
            )
        return done if idle else None

    async def send(self, message: Message) -> None:
        """Queue ``message`` and wait until it is written (or the client is dropped).

        For replies to the client's own messages: the caller is that client's handler, so
        the wait delays only the client itself, and at most ``max_stall_s``.
        """
        if self.closed or self.dropped is not None:
            return
        done = self._enqueue(message, encoded_size(message))
        if done is None:
            return
        if not self._writing:
            await self._drain()  # nobody writing: write inline, no task hop
        else:
            await done

    def _enqueue(self, message: Message, size: int) -> asyncio.Future[None] | None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((message, size, done))
        self.queued_bytes += size
        self._idle.clear()
        # One message larger than the bound still goes (a long chat history, an 11-person
        # SDP); a backlog beyond it means the client is not reading.
        if self.queued_bytes > self.max_bytes and len(self._queue) > 1:
            self.drop(f"more than {self.max_bytes} bytes waiting")
            return None
        return done

    async def _drain(self) -> None:
        self._writing = True
        try:
            while self._queue and self.dropped is None and not self.closed:
                message, size, done = self._queue.popleft()
                self.queued_bytes -= size
                try:
                    await asyncio.wait_for(self._send(message), self.max_stall_s)
                    self.written += 1
                except TimeoutError:
                    self.drop(f"a write took more than {self.max_stall_s:g} s")
                except Exception as exc:  # the transport is the web layer's business
                    logger.debug("outbox send failed: %r", exc)
                finally:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writing = False
            self._writer = None
            if self._queue and self.dropped is None and not self.closed:
                # The inline writer was cancelled mid-queue: hand over to a task.
                self._writing = True
                self._writer = asyncio.get_running_loop().create_task(self._drain())
            elif not self._queue:
                self._idle.set()

    def drop(self, why: str) -> None:
        """Give up on this client (idempotent): the queue is discarded, ``on_overflow`` called."""
        if self.dropped is not None:
            return
        self.dropped = why
        self._discard()
        logger.warning("dropping a client that is not reading: %s", why)
        self._on_overflow(why)

    def _discard(self) -> None:
        for _, _, done in self._queue:
            if not done.done():
                done.set_result(None)
        self._queue.clear()
        self.queued_bytes = 0
        self._idle.set()

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait, at most ``timeout``, for what is queued (a last ``removed`` or
        ``session_ended``) to be written."""
        if self.dropped is None and not self.closed and self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Accept nothing more; cancel the writer."""
        self.closed = True
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        self._discard()
