"""Fixtures for the SFU tests: pre-encoded media, a server on loopback, client factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from peerlearn_sfu import RoomHooks, SfuServer
from tests.sfu.client import TEST_CONFIG, Client
from tests.sfu.media import Clip, make_clip


@pytest.fixture(scope="session")
def clip() -> Clip:
    return make_clip(seconds=12)


@pytest.fixture
async def server() -> AsyncIterator[SfuServer]:
    sfu = SfuServer(TEST_CONFIG)
    yield sfu
    await sfu.close()


@pytest.fixture
async def make_client(server: SfuServer, clip: Clip) -> AsyncIterator[Callable[..., Client]]:
    clients: list[Client] = []

    def factory(user_id: int, room_id: str = "room", hooks: RoomHooks | None = None, **kw):
        room = server.open_room(room_id, hooks or RoomHooks())
        client = Client(room, user_id, clip, **kw)
        clients.append(client)
        return client

    yield factory
    await server.close()
    await asyncio.gather(*(c.close() for c in clients))
    # Let aiortc's own shutdown tasks finish inside the test's loop.
    await asyncio.sleep(0.05)
