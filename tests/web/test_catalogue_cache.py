"""The public catalogue cache (``web.cache``, issue 16): served without a query until a
catalogue event, and never stale beyond one (seats left above all); nothing personal."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from tests.support import ApiDriver, StatementCounter
from web.cache import CATALOGUE, CatalogueCache
from web.keys import PLATFORM
from web.pages.render import CSRF_SLOT
from web.security import CSRF_COOKIE


def _new_session(**extra: Any) -> dict[str, Any]:
    return {
        "title": "Cached catalogue",
        "description": "d",
        "schedule": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "duration": 60,
        "max_participants": 3,
        "skills_required": ["Python"],
        **extra,
    }


async def _register(api: ApiDriver, role: str) -> dict[str, Any]:
    """A user calling with its token; the client itself stays signed out (no cookie)."""
    who = await api.register(role)
    api.client.session.cookie_jar.clear()
    return who


async def _seats(api: ApiDriver, sid: str) -> tuple[int, int]:
    """Seats left in the listing and in the anonymous detail."""
    status, page = await api.call("GET", "/api/sessions/")
    assert status == 200
    (listed,) = [s for s in page["items"] if s["id"] == sid]
    status, detail = await api.call("GET", f"/api/sessions/{sid}/")
    assert status == 200
    return listed["seats_left"], detail["seats_left"]


async def test_listing_is_served_from_the_cache_until_an_event(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor = await _register(api, "mentor")
    platform = api.client.app[PLATFORM]
    await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    await api.call("GET", "/api/sessions/")
    with StatementCounter(platform) as statements:
        status, page = await api.call("GET", "/api/sessions/")
    assert status == 200 and page["total"] == 1
    assert statements.count == 0
    # publishing a session is a catalogue event: the next listing shows it
    await api.call("POST", "/api/sessions/create/", mentor, json=_new_session(title="Another"))
    status, page = await api.call("GET", "/api/sessions/")
    assert page["total"] == 2


async def test_seats_left_follow_booking_and_cancellation(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor, learner = await _register(api, "mentor"), await _register(api, "learner")
    _, created = await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    sid = created["id"]
    assert await _seats(api, sid) == (3, 3)
    status, booking = await api.call("POST", f"/api/sessions/{sid}/book/", learner)
    assert status == 201
    assert await _seats(api, sid) == (2, 2)
    status, _ = await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", learner)
    assert status == 200
    assert await _seats(api, sid) == (3, 3)


async def test_a_booking_through_the_page_refreshes_the_session_page(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor, learner = await _register(api, "mentor"), await _register(api, "learner")
    _, created = await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    sid = created["id"]
    anonymous = (await api.client.get(f"/sessions/{sid}/")).status
    assert anonymous == 200
    platform = api.client.app[PLATFORM]
    user = await platform.accounts.get_user(learner["user"]["id"])
    cache = api.client.app[CATALOGUE]
    before = cache.generation
    # the booking service announces the seat taken, whoever books: any node's cache empties
    await platform.bookings.book(user, sid)
    assert cache.generation == before + 1
    assert await _seats(api, sid) == (2, 2)


async def test_cancelling_a_session_drops_it_from_the_listing(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor = await _register(api, "mentor")
    _, created = await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    _, page = await api.call("GET", "/api/sessions/")
    assert page["total"] == 1
    status, _ = await api.call("POST", f"/api/sessions/{created['id']}/cancel/", mentor)
    assert status == 200
    _, page = await api.call("GET", "/api/sessions/")
    assert page["total"] == 0
    status, _ = await api.call("GET", f"/api/sessions/{created['id']}/")
    assert status == 200  # the detail was re-read: cancelled now
    _, detail = await api.call("GET", f"/api/sessions/{created['id']}/")
    assert detail["status"] == "cancelled"


async def test_signed_in_detail_is_never_from_the_cache(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor, learner = await _register(api, "mentor"), await _register(api, "learner")
    _, created = await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    sid = created["id"]
    await api.call("GET", f"/api/sessions/{sid}/")  # the anonymous view is cached
    await api.call("POST", f"/api/sessions/{sid}/book/", learner)
    _, mine = await api.call("GET", f"/api/sessions/{sid}/", learner)
    assert mine["my_booking"] is not None and mine["meeting_room_id"]
    _, anonymous = await api.call("GET", f"/api/sessions/{sid}/")
    assert anonymous["my_booking"] is None and anonymous["meeting_room_id"] is None
    _, theirs = await api.call("GET", f"/api/sessions/{sid}/", mentor)
    assert theirs["is_mentor"] and theirs["my_booking"] is None


async def test_the_landing_page_shows_a_new_session(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor = await _register(api, "mentor")
    assert "Fresh on the landing" not in await (await api.client.get("/")).text()
    await api.call(
        "POST", "/api/sessions/create/", mentor, json=_new_session(title="Fresh on the landing")
    )
    assert "Fresh on the landing" in await (await api.client.get("/")).text()


async def test_cache_off_reads_the_database_every_time(
    app_factory: Any, sqlite_settings: Any
) -> None:
    client = await app_factory(sqlite_settings, catalogue_cache=False)
    await client.get("/api/sessions/")
    with StatementCounter(client.app[PLATFORM]) as statements:
        assert (await client.get("/api/sessions/")).status == 200
    assert statements.count > 0


async def test_the_setting_turns_it_off(app_factory: Any, make_settings: Any) -> None:
    client = await app_factory(make_settings(server={"catalogue_cache": False}))
    assert not client.app[CATALOGUE].enabled
    default = await app_factory(make_settings())
    assert default.app[CATALOGUE].enabled and default.app[CATALOGUE].ttl == 10.0


async def test_a_load_overtaken_by_an_event_is_not_kept() -> None:
    cache = CatalogueCache()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "before the event"

    task = asyncio.create_task(cache.get_or_load("k", slow))
    await started.wait()
    await cache.on_catalog_change({"type": "booking_created"})
    release.set()
    assert await task == "before the event"  # this request began before the event
    assert cache.get("k") is None  # but nobody after it gets that answer


async def test_concurrent_misses_load_once_and_expire() -> None:
    now = [0.0]
    cache = CatalogueCache(ttl=5, clock=lambda: now[0])
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return calls

    assert await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(10))) == [1] * 10
    now[0] = 6.0
    assert await cache.get_or_load("k", load) == 2


async def test_a_failed_load_is_not_kept() -> None:
    cache = CatalogueCache()

    async def broken() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await cache.get_or_load("k", broken)
    assert cache.get("k") is None


# --------------------------------------------------------------------------- rendered pages


def _csrf_in(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found is not None
    return found.group(1)


async def _anonymous_page(client: Any, path: str) -> tuple[str, str]:
    """A first visit by a new browser: (the page, the CSRF cookie it was given)."""
    client.session.cookie_jar.clear()
    resp = await client.get(path)
    assert resp.status == 200
    return await resp.text(), resp.cookies[CSRF_COOKIE].value


@pytest.mark.parametrize("path", ["/", "/sessions/", "/sessions/?skill=Python", "session"])
async def test_anonymous_pages_are_rendered_once_each_with_its_own_csrf_token(
    sqlite_api: ApiDriver, path: str
) -> None:
    api = sqlite_api
    mentor = await _register(api, "mentor")
    _, created = await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    path = f"/sessions/{created['id']}/" if path == "session" else path
    first, first_cookie = await _anonymous_page(api.client, path)
    with StatementCounter(api.client.app[PLATFORM]) as statements:
        second, second_cookie = await _anonymous_page(api.client, path)
    assert statements.count == 0  # the shared rendering
    assert first_cookie != second_cookie
    assert _csrf_in(first) == first_cookie and _csrf_in(second) == second_cookie
    assert CSRF_SLOT not in first + second
    assert first.replace(first_cookie, "T") == second.replace(second_cookie, "T")


async def test_signed_in_pages_are_never_shared(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor = await _register(api, "mentor")
    _, created = await api.call("POST", "/api/sessions/create/", mentor, json=_new_session())
    sid = created["id"]
    learner = await api.register("learner", username="personal_pages_learner")
    # signed in through the cookie, as a browser is: the page is that learner's
    for path in ("/", "/sessions/", f"/sessions/{sid}/"):
        resp = await api.client.get(path)
        assert "personal_pages_learner" in await resp.text(), path
        assert resp.headers["Cache-Control"] == "no-store"
    await api.call("POST", f"/api/sessions/{sid}/book/", learner)
    booked = await (await api.client.get(f"/sessions/{sid}/")).text()
    for path in ("/", "/sessions/", f"/sessions/{sid}/"):
        html, _ = await _anonymous_page(api.client, path)
        assert "personal_pages_learner" not in html, path
        assert "Log in" in html
    # and an anonymous rendering never reaches the signed-in learner either
    await api.client.post(
        "/api/auth/login/", json={"username": "personal_pages_learner", "password": "s3cret-pass!"}
    )
    again = await (await api.client.get(f"/sessions/{sid}/")).text()
    assert "personal_pages_learner" in again and _csrf_in(again) != CSRF_SLOT
    assert _strip_tokens(again) == _strip_tokens(booked)


def _strip_tokens(html: str) -> str:
    return html.replace(_csrf_in(html), "T")


async def test_a_flash_message_is_shown_to_its_browser_alone(sqlite_api: ApiDriver) -> None:
    client = sqlite_api.client
    await _anonymous_page(client, "/sessions/")  # the shared rendering exists
    client.session.cookie_jar.update_cookies({"peerlearn_flash": "info:Only for this browser"})
    shown = await (await client.get("/sessions/")).text()
    assert "Only for this browser" in shown
    html, _ = await _anonymous_page(client, "/sessions/")
    assert "Only for this browser" not in html


async def test_cache_off_renders_every_anonymous_page(
    app_factory: Any, sqlite_settings: Any
) -> None:
    client = await app_factory(sqlite_settings, catalogue_cache=False)
    await _anonymous_page(client, "/sessions/")
    with StatementCounter(client.app[PLATFORM]) as statements:
        html, cookie = await _anonymous_page(client, "/sessions/")
    assert statements.count > 0 and _csrf_in(html) == cookie


def test_the_listing_clock_moves_in_steps() -> None:
    """The browse page's "from now on" is one cache key for a whole step, not one a second."""
    from web.pages.sessions import LISTING_CLOCK_SECONDS, session_filters

    with time_machine.travel(datetime(2030, 1, 1, 12, 0, 3, 500, tzinfo=UTC), tick=False):
        _, early = session_filters({})
    with time_machine.travel(datetime(2030, 1, 1, 12, 0, 9, 999_000, tzinfo=UTC), tick=False):
        _, late = session_filters({})
    with time_machine.travel(datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC), tick=False):
        _, next_step = session_filters({})
    assert early == late and early.date_from == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert next_step.date_from == early.date_from + timedelta(seconds=LISTING_CLOCK_SECONDS)
