"""The room's coalesced state messages (peerlearn_sfu/moderation.py), without media."""

from __future__ import annotations

import asyncio
from typing import Any

from peerlearn_sfu.moderation import StateBroadcaster
from peerlearn_sfu.tasks import TaskSet


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def test_a_burst_is_one_leading_and_one_trailing_update_with_the_latest_state():
    sent, tasks = Recorder(), TaskSet()
    states = StateBroadcaster(0.05, sent, tasks)
    value = {"n": 0}
    for n in range(1, 51):
        value["n"] = n
        await states.coalesced(("hands", 1), "hands", lambda: {"type": "hands", **value})
    assert sent.sent == [{"type": "hands", "n": 1}]
    await asyncio.sleep(0.1)
    assert sent.sent == [{"type": "hands", "n": 1}, {"type": "hands", "n": 50}]
    await tasks.close()


async def test_an_unchanged_state_is_not_sent_again_and_none_is_never_sent():
    sent, tasks = Recorder(), TaskSet()
    states = StateBroadcaster(0, sent, tasks)
    message = {"type": "hands", "queue": [1]}
    await states.now(("hands", 1), "hands", lambda: dict(message))
    await states.now(("hands", 2), "hands", lambda: dict(message))  # same topic, same state
    await states.now(("state", 1), ("state", 1), lambda: None)  # the participant left
    assert sent.sent == [message]
    await tasks.close()


async def test_keys_are_coalesced_apart():
    sent, tasks = Recorder(), TaskSet()
    states = StateBroadcaster(60, sent, tasks)
    await states.coalesced(("hands", 1), "hands", lambda: {"type": "hands", "queue": [1]})
    await states.coalesced(("hands", 2), "hands", lambda: {"type": "hands", "queue": [1, 2]})
    assert [m["queue"] for m in sent.sent] == [[1], [1, 2]]  # nobody waits for user 1's burst
    await tasks.close()
