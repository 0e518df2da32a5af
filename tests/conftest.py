"""Shared fixtures: settings in a temp data folder, SQLite and real PostgreSQL databases,
an app client, and a small API driver for registering and logging in users."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from argon2 import PasswordHasher

from config.settings import Settings, load_settings
from control import security
from control.ratelimit import RedisRateLimiter
from tests.support import FAKE_NOW, ApiDriver

POSTGRES_ADMIN_URL = os.environ.get(
    "PEERLEARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DATABASE_KINDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    # Per-request values go through typed keys (web.RequestKey) and their accessors
    # (web.security.current_user, ...): a plain string key anywhere fails the test using it.
    config.addinivalue_line("filterwarnings", "error::aiohttp.web.NotAppKeyWarning")
    _use_cheap_password_hashing()
    if FAKE_NOW:
        import time_machine

        traveller = time_machine.travel(datetime.fromisoformat(FAKE_NOW), tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


#: Argon2id at the production cost takes ~0.5 s per hash on a busy 2-core CI machine and
#: every test user costs two (register, log in): the suite hashes with a cheap profile.
#: Tests about the stored hashes themselves ask for ``production_password_hashing``.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _use_cheap_password_hashing() -> None:
    security._hasher = CHEAP_HASHER
    security._DUMMY_HASH = CHEAP_HASHER.hash(uuid.uuid4().hex)


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test counts its own requests in Redis: the counters outlive a test (and a run of
    the suite) for their window, and every test client comes from the same address."""
    monkeypatch.setattr(RedisRateLimiter, "PREFIX", f"peerlearn:test:{uuid.uuid4().hex}:rl:")


@pytest.fixture
def production_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's own Argon2id parameters for this test."""
    real = PasswordHasher()
    monkeypatch.setattr(security, "_hasher", real)
    monkeypatch.setattr(security, "_DUMMY_HASH", real.hash(uuid.uuid4().hex))


def _pg_url(database: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + database


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a fresh data folder; keyword groups override sections."""

    def make(**sections: dict[str, Any]) -> Settings:
        overrides: dict[str, Any] = {"server": {"data_dir": str(tmp_path / "data")}}
        overrides["email"] = {"backend": "file", "file_dir": str(tmp_path / "mail")}
        for section, values in sections.items():
            overrides.setdefault(section, {}).update(values)
        return load_settings(environ={}, overrides=overrides)

    return make


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    """A brand-new PostgreSQL database for one test (dropped afterwards).

    PostgreSQL is a required part of the suite: if it is not reachable the test fails, never
    skips (scripts/test.sh installs and starts it on a fresh machine).
    """
    name = f"peerlearn_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({exc}); run scripts/test.sh, "
            "which installs and starts it, or set PEERLEARN_TEST_POSTGRES_URL"
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _pg_url(name)
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=DATABASE_KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test once on SQLite and once on the real PostgreSQL.

    Synchronous on purpose: getfixturevalue() of the async PostgreSQL fixture from inside an
    async fixture would re-enter the running event loop.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    pg = request.getfixturevalue("postgres_database")
    yield pg


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database={"url": database_url})


@pytest.fixture
def sqlite_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Any]:
    """The service layer without HTTP: a migrated ``control.platform.Platform`` without
    background loops (tests drive them), on SQLite and on PostgreSQL."""
    from control.platform import Platform

    p = Platform(settings)
    await p.db.migrate()
    await p.start(background=False)
    yield p
    await p.close()


@pytest.fixture
def app_factory(aiohttp_client: Any) -> Callable[..., Awaitable[Any]]:
    async def make(settings: Settings, **kwargs: Any) -> Any:
        from web.app import create_app

        kwargs.setdefault("background", False)
        return await aiohttp_client(create_app(settings, **kwargs))

    return make


@pytest.fixture
async def client(app_factory: Callable[..., Awaitable[Any]], settings: Settings) -> Any:
    """An app client on SQLite and on PostgreSQL (parametrised through ``settings``)."""
    return await app_factory(settings)


@pytest.fixture
async def sqlite_client(
    app_factory: Callable[..., Awaitable[Any]], sqlite_settings: Settings
) -> Any:
    return await app_factory(sqlite_settings)


@pytest.fixture
def api(client: Any) -> ApiDriver:
    return ApiDriver(client)


@pytest.fixture
def sqlite_api(sqlite_client: Any) -> ApiDriver:
    return ApiDriver(sqlite_client)
