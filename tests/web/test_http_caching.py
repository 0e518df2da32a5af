"""HTTP caching (issue 16): ETag and ``Cache-Control`` on the signed-out catalogue API,
``Vary`` on what makes another answer, immutable versioned static files; signed-in answers
stay ``no-store``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import ApiDriver


async def _session(api: ApiDriver) -> tuple[dict[str, Any], str]:
    mentor = await api.register("mentor")
    api.client.session.cookie_jar.clear()
    body = {
        "title": "Etag session",
        "description": "d",
        "schedule": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "duration": 60,
        "max_participants": 3,
        "skills_required": ["Python"],
    }
    status, created = await api.call("POST", "/api/sessions/create/", mentor, json=body)
    assert status == 201
    return mentor, created["id"]


async def test_the_public_catalogue_revalidates_by_etag(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    _mentor, sid = await _session(api)
    for path in ("/api/sessions/", f"/api/sessions/{sid}/"):
        first = await api.client.get(path)
        assert first.status == 200
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "public, no-cache"
        assert first.headers["Vary"] == "Cookie, Authorization"
        again = await api.client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and again.headers["ETag"] == etag
        assert await again.read() == b""
        other = await api.client.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status == 200
    # a booking changes the seats left: the old ETag no longer matches
    etag = (await api.client.get(f"/api/sessions/{sid}/")).headers["ETag"]
    learner = await api.register("learner")
    api.client.session.cookie_jar.clear()
    await api.call("POST", f"/api/sessions/{sid}/book/", learner)
    changed = await api.client.get(f"/api/sessions/{sid}/", headers={"If-None-Match": etag})
    assert changed.status == 200 and (await changed.json())["seats_left"] == 2


async def test_signed_in_answers_stay_no_store(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor, sid = await _session(api)
    for path in ("/api/sessions/", f"/api/sessions/{sid}/"):
        resp = await api.client.get(path, headers=mentor["headers"])
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        assert "ETag" not in resp.headers
    page = await api.client.get("/sessions/")  # pages carry a CSRF token: never shared
    assert page.headers["Cache-Control"] == "no-store"


async def test_versioned_static_files_are_immutable(sqlite_client: Any) -> None:
    html = await (await sqlite_client.get("/")).text()
    start = html.index("/static/")
    url = html[start : html.index('"', start)]
    assert "?v=" in url
    resp = await sqlite_client.get(url)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    plain = await sqlite_client.get(url.split("?", 1)[0])
    assert "immutable" not in plain.headers.get("Cache-Control", "")
