"""Async engine, sessions and the migration gate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Result, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class DatabaseNotMigrated(Exception):
    """The schema is missing or behind the code's migrations."""


def rows_changed(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched: the conditional updates' "did I win" check.

    ``AsyncSession.execute`` is typed as returning ``Result``; for a DML statement it is a
    ``CursorResult``, which carries ``rowcount``.
    """
    return cast("CursorResult[Any]", result).rowcount


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """Owns the engine; ``session()`` yields a unit of work."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, connect_args={"timeout": 30}
            )
            event.listen(self.engine.sync_engine, "connect", _on_sqlite_connect)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer; serialising writers in-process avoids SQLITE_BUSY retries.
        self.write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed on success, rolled back on error."""
        if self.write_lock is None:
            async with self.sessionmaker() as session, session.begin():
                yield session
            return
        async with self.write_lock, self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

    # ------------------------------------------------------------------ migrations

    def alembic_config(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )

    async def is_migrated(self) -> bool:
        return await self.current_revision() == self.head_revision()

    async def migrate(self, revision: str = "head") -> None:
        log.info("migrating the database to %s", revision)
        cfg = self.alembic_config()

        def run(sync_conn: Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        async with self.engine.begin() as conn:
            await conn.run_sync(run)

    async def downgrade(self, revision: str = "base") -> None:
        cfg = self.alembic_config()

        def run(sync_conn: Connection) -> None:
            cfg.attributes["connection"] = sync_conn
            command.downgrade(cfg, revision)

        async with self.engine.begin() as conn:
            await conn.run_sync(run)

    async def prepare(self, *, production: bool) -> None:
        """The start-up policy: production refuses an outdated schema, development migrates."""
        if await self.is_migrated():
            return
        if production:
            await self.require_migrated()
        log.info("development mode: the schema is not up to date, migrating")
        await self.migrate()

    async def ping(self) -> None:
        """Raise if the database does not answer (health checks)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def require_migrated(self) -> None:
        current, head = await self.current_revision(), self.head_revision()
        if current != head:
            raise DatabaseNotMigrated(
                f"database is at revision {current or 'none (empty)'}, code expects {head}: "
                "run `peerlearn migrate` first"
            )
