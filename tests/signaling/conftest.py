"""Fixtures for the signaling-socket tests (SQLite; the data layer is tested on both DBs
elsewhere)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from config.settings import Settings
from tests.signaling.support import World, make_world
from tests.support import ApiDriver


@pytest.fixture
def world_factory(
    make_settings: Callable[..., Settings], app_factory: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[World]]:
    """``await world_factory(sfu={...})``: an app with those settings and its users."""

    async def make(**sections: dict[str, Any]) -> World:
        client = await app_factory(make_settings(**sections))
        return await make_world(ApiDriver(client))

    return make


@pytest.fixture
async def world(world_factory: Callable[..., Awaitable[World]]) -> World:
    return await world_factory()
