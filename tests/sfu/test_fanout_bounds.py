"""Issue 10, point 4: bounded outbound queues and coalesced state messages.

The attacks: 500 raise-hand toggles gave the mentor 500 ``hands`` messages, 300 mute
toggles 300 ``participant_state`` broadcasts, and broadcasts awaited every socket inline,
so one participant that stopped reading held up the sender.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from peerlearn_sfu import RoomHooks, SfuConfig, SfuServer
from peerlearn_sfu.hooks import ParticipantIdentity
from tests.sfu.client import Client


@pytest.fixture
async def bounded() -> AsyncIterator[SfuServer]:
    sfu = SfuServer(
        SfuConfig(
            interfaces=("127.0.0.1",),
            outbox_max_stall_s=0.5,
            outbox_max_bytes=64 * 1024,
            state_update_interval_ms=250,
            chat_rate_count=1000,
        )
    )
    yield sfu
    await sfu.close()


class Stuck:
    """A client whose socket stops taking data after ``joined``: every write blocks."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.never = asyncio.Event()

    async def send(self, message: dict) -> None:
        self.messages.append(message)
        if len(self.messages) > 2:  # joined and chat_history went through
            await self.never.wait()


async def test_a_client_that_stops_reading_is_dropped_and_never_stalls_anyone(bounded):
    room = bounded.open_room("r", RoomHooks())
    alice = await Client(room, 1).join()
    stuck = Stuck()
    await room.join(ParticipantIdentity(2, "stuck", "learner"), stuck.send)
    started = time.monotonic()
    slowest = 0.0
    for i in range(40):
        t0 = time.monotonic()
        await alice.send({"type": "raise_hand", "raised": i % 2 == 0})
        await alice.send({"type": "chat", "text": f"message {i}"})
        slowest = max(slowest, time.monotonic() - t0)
        await asyncio.sleep(0.02)
    # Alice's messages were never held up by the stuck socket (it blocks for 0.5 s).
    assert slowest < 0.3, slowest
    left = await alice.wait_message("user_left", user_id=2, timeout=5)
    assert left["reason"] == "too_slow"
    assert 2 not in room.participants
    assert time.monotonic() - started < 5
    # The room goes on.
    await alice.send({"type": "ping"})
    await alice.wait_message("pong")


async def test_a_backlog_over_the_byte_bound_drops_the_client(bounded):
    room = bounded.open_room("r", RoomHooks())
    alice = await Client(room, 1).join()
    stuck = Stuck()
    stuck_p = await room.join(ParticipantIdentity(2, "stuck", "learner"), stuck.send)
    stuck_p.outbox.max_stall_s = 60  # only the byte bound can catch it now
    for i in range(60):
        await alice.send({"type": "chat", "text": f"{i} " + "x" * 1900})
        if 2 not in room.participants:
            break
    left = await alice.wait_message("user_left", user_id=2, timeout=5)
    assert left["reason"] == "too_slow"
    assert stuck_p.outbox.dropped and "bytes waiting" in stuck_p.outbox.dropped
    assert stuck_p.outbox.queued_bytes == 0  # nothing kept for it


async def test_state_bursts_are_coalesced(bounded):
    room = bounded.open_room("r", RoomHooks())
    mentor = await Client(room, 1, role="mentor").join()
    bob = await Client(room, 2).join()
    started = time.monotonic()
    for i in range(500):
        await bob.send({"type": "raise_hand", "raised": i % 2 == 0})
    for i in range(300):
        await bob.send({"type": "mute", "kind": "audio", "muted": i % 2 == 0})
    elapsed = time.monotonic() - started
    # The last state wins: hand lowered (499 is odd), audio unmuted (299 is odd).
    await mentor.wait_for(
        lambda: mentor.of_type("hands") and mentor.of_type("hands")[-1]["queue"] == []
    )
    await mentor.wait_for(
        lambda: (
            mentor.of_type("participant_state")
            and mentor.of_type("participant_state")[-1]["state"]["audio_muted"] is False
        )
    )
    await asyncio.sleep(0.4)  # any trailing update has gone out by now
    budget = elapsed / 0.25 + 2  # one per interval, plus the leading and trailing ones
    hands = mentor.of_type("hands")
    states = mentor.of_type("participant_state")
    assert len(hands) <= budget, (len(hands), elapsed)
    assert len(states) <= budget, (len(states), elapsed)
    assert room.moderation.hands == [] and room.participants[2].state.audio_muted is False
    # A second person's hand is not held back by Bob's burst.
    carol = await Client(room, 3).join()
    n = len(mentor.of_type("hands"))
    await carol.send({"type": "raise_hand", "raised": True})
    assert mentor.of_type("hands")[n:][-1]["queue"] == [3]
