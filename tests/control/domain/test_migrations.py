"""Migrations: empty → head matches the models, downgrade to base, and the start-up gate."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from config.settings import Settings
from control.db import Database, DatabaseNotMigrated
from control.models import Base


def _diff(sync_conn: Any) -> list[Any]:
    context = MigrationContext.configure(
        sync_conn, opts={"compare_type": True, "target_metadata": Base.metadata}
    )
    return compare_metadata(context, Base.metadata)


def _tables(sync_conn: Any) -> set[str]:
    return set(inspect(sync_conn).get_table_names()) - {"alembic_version"}


async def test_migrate_matches_models_and_downgrades(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await db.current_revision() is None
        assert not await db.is_migrated()
        await db.migrate()
        assert await db.current_revision() == db.head_revision()
        assert await db.is_migrated()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert await conn.run_sync(_tables) == set(Base.metadata.tables)
        await db.migrate()  # idempotent at head
        await db.downgrade("base")
        assert await db.current_revision() is None
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        await db.migrate()  # and back up again
        assert await db.is_migrated()
    finally:
        await db.dispose()


async def test_production_refuses_unmigrated_database(
    make_settings: Any, database_url: str, aiohttp_client: Any
) -> None:
    from web.app import create_app

    settings: Settings = make_settings(
        database={"url": database_url},
        server={"mode": "production", "secret_key": "x" * 40},
    )
    with pytest.raises(DatabaseNotMigrated, match="peerlearn migrate"):
        await aiohttp_client(create_app(settings, background=False))
    db = Database(database_url)
    try:
        with pytest.raises(DatabaseNotMigrated, match="peerlearn migrate"):
            await db.require_migrated()
        assert await db.current_revision() is None  # nothing was created behind our back
    finally:
        await db.dispose()


async def test_development_mode_migrates_on_start(
    make_settings: Any, database_url: str, aiohttp_client: Any
) -> None:
    from web.app import create_app

    settings: Settings = make_settings(database={"url": database_url})
    client = await aiohttp_client(create_app(settings, background=False))
    resp = await client.get("/api/sessions/")
    assert resp.status == 200
    db = Database(database_url)
    try:
        assert await db.is_migrated()
    finally:
        await db.dispose()
