"""A fixed number of SQL statements per public request (issue 16): the catalogue's pages and
API read the same few statements for 2 sessions as for 12, whoever their mentors are."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import StatementCounter
from web.keys import PLATFORM


async def _catalogue(platform: Any, sessions: int) -> list[uuid.UUID]:
    """``sessions`` scheduled sessions, one mentor each (so a query per mentor would show)."""
    ids = []
    for n in range(sessions):
        mentor = await platform.accounts.register(
            username=f"mentor{n}_{uuid.uuid4().hex[:4]}",
            email=f"m{n}_{uuid.uuid4().hex[:4]}@example.org",
            password="s3cret-pass!",
            role="mentor",
        )
        session = await platform.sessions.create(
            mentor,
            title=f"Session number {n}",
            description="About things",
            schedule=datetime.now(UTC) + timedelta(days=1, hours=n),
            duration=60,
            max_participants=5,
            skills_required=["Python"],
            price=0,
        )
        ids.append(session.id)
    return ids


PATHS = ("/api/sessions/", "/api/sessions/?skill=Python&page=1", "/sessions/", "/")


async def _counts(client: Any, paths: list[str]) -> dict[str, int]:
    platform = client.app[PLATFORM]
    counts = {}
    for path in paths:
        await client.get(path)  # warm: first-use work (compiled statements) is not per request
        with StatementCounter(platform) as statements:
            resp = await client.get(path)
        assert resp.status == 200, (path, await resp.text())
        counts[path] = statements.count
    return counts


@pytest.mark.parametrize("path", PATHS)
async def test_public_pages_read_a_fixed_number_of_statements(
    app_factory: Any, make_settings: Any, tmp_path: Path, path: str
) -> None:
    few = await app_factory(make_settings())
    await _catalogue(few.app[PLATFORM], 2)
    other = f"sqlite+aiosqlite:///{tmp_path / 'many.db'}"
    many = await app_factory(make_settings(database={"url": other}))
    await _catalogue(many.app[PLATFORM], 12)
    small, large = [await _counts(c, [path]) for c in (few, many)]
    assert small == large
    assert small[path] <= 3, small  # a count and a page (the landing: two short lists)


async def test_session_detail_reads_a_fixed_number_of_statements(sqlite_client: Any) -> None:
    (sid,) = await _catalogue(sqlite_client.app[PLATFORM], 1)
    counts = await _counts(sqlite_client, [f"/api/sessions/{sid}/", f"/sessions/{sid}/"])
    assert all(n <= 4 for n in counts.values()), counts


async def test_the_learner_dashboard_reads_a_fixed_number_of_statements(
    sqlite_client: Any,
) -> None:
    platform = sqlite_client.app[PLATFORM]
    ids = await _catalogue(platform, 3)
    learner = await platform.accounts.register(
        username="counted", email="counted@example.org", password="s3cret-pass!", role="learner"
    )
    _, token = await platform.accounts.logins.start(learner)
    headers = {"Authorization": f"Bearer {token}"}
    counts = []
    for sid in ids:
        await platform.bookings.book(learner, sid)
        await sqlite_client.get("/dashboard/", headers=headers)
        with StatementCounter(platform) as statements:
            resp = await sqlite_client.get("/dashboard/", headers=headers)
        assert resp.status == 200
        counts.append(statements.count)
    # the user, bookings once (not once more for the figures), follows, activity, and the
    # header's notifications once (not once more for the overview's list)
    assert counts == [counts[0]] * len(ids) and counts[0] <= 8, counts
