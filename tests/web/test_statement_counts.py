"""A fixed number of SQL statements per public request (issue 16): the catalogue's pages and
API read the same few statements for 2 sessions as for 12, whoever their mentors are."""

from __future__ import annotations

import re
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
EXPECTED = {"/api/sessions/": 1, "/api/sessions/?skill=Python&page=1": 1, "/sessions/": 1, "/": 2}


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
    # The cache off: what is counted is what a miss costs.
    few = await app_factory(make_settings(), catalogue_cache=False)
    await _catalogue(few.app[PLATFORM], 2)
    other = f"sqlite+aiosqlite:///{tmp_path / 'many.db'}"
    many = await app_factory(make_settings(database={"url": other}), catalogue_cache=False)
    await _catalogue(many.app[PLATFORM], 12)
    small, large = [await _counts(c, [path]) for c in (few, many)]
    assert small == large
    # one statement a listing (its count rides on its rows); the landing: two short lists
    assert small[path] == EXPECTED[path], small


async def test_a_page_past_the_end_counts_apart(app_factory: Any, make_settings: Any) -> None:
    client = await app_factory(make_settings(), catalogue_cache=False)
    await _catalogue(client.app[PLATFORM], 2)
    counts = await _counts(client, ["/api/sessions/?page=5&per_page=1"])
    assert counts == {"/api/sessions/?page=5&per_page=1": 2}  # no row carries the count
    resp = await client.get("/api/sessions/?page=5&per_page=1")
    assert (await resp.json())["total"] == 2


async def test_session_detail_reads_a_fixed_number_of_statements(
    app_factory: Any, make_settings: Any
) -> None:
    client = await app_factory(make_settings(), catalogue_cache=False)
    (sid,) = await _catalogue(client.app[PLATFORM], 1)
    counts = await _counts(client, [f"/api/sessions/{sid}/", f"/sessions/{sid}/"])
    # the session with its mentor, the mentor's rating; the page: and its reviews
    assert counts == {f"/api/sessions/{sid}/": 2, f"/sessions/{sid}/": 3}, counts


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
    # the user, the bookings once (not once more for the figures), the recent activity, both
    # follow counts in one, and the header's notifications with their unread count in one
    # (not once more for the overview's list)
    assert counts == [5] * len(ids), counts


async def test_the_header_reads_notifications_once(sqlite_client: Any) -> None:
    platform = sqlite_client.app[PLATFORM]
    learner = await platform.accounts.register(
        username="header", email="header@example.org", password="s3cret-pass!", role="learner"
    )
    _, token = await platform.accounts.logins.start(learner)
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(8):
        await platform.notifications.notify(learner.id, title=f"Note {n}", message="m")
    await platform.notifications.mark_read(learner.id, None)
    await platform.notifications.notify(learner.id, title="Unread one", message="m")
    await sqlite_client.get("/notifications/", headers=headers)
    with StatementCounter(platform) as statements:
        resp = await sqlite_client.get("/accessibility/", headers=headers)
    html = await resp.text()
    assert statements.count == 2  # the user, then the header's one statement
    assert "Unread one" in html and "Note 7" in html and "Note 1<" not in html
    assert re.search(r"data-notif-badge\s*>1<", html), "one unread"


async def test_booking_reads_once_and_a_full_session_answers_without_writing(
    sqlite_client: Any,
) -> None:
    from control.errors import Conflict

    platform = sqlite_client.app[PLATFORM]
    (sid,) = await _catalogue(platform, 1)  # five seats
    learners = [
        await platform.accounts.register(
            username=f"seat{n}",
            email=f"seat{n}@example.org",
            password="s3cret-pass!",
            role="learner",
        )
        for n in range(6)
    ]
    for learner in learners[:5]:
        await platform.bookings.book(learner, sid)
    with StatementCounter(platform) as statements, pytest.raises(Conflict) as refused:
        await platform.bookings.book(learners[5], sid)
    assert refused.value.code == "session_full"
    assert statements.count == 1  # the session and the learner's booking, read together
    with pytest.raises(Conflict) as again:
        await platform.bookings.book(learners[0], sid)
    assert again.value.code == "already_booked"  # said before "full"
