"""Server-side login sessions: revocation on REST and sockets, devices, the cheap check, two
nodes over Redis, password and e-mail change."""

from __future__ import annotations

import asyncio
import email
import os
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import time_machine

from tests.api.auth_helpers import NEW_PASSWORD, link_token, login, me_status
from tests.support import ApiDriver
from web.keys import PLATFORM
from web.security import CSRF_COOKIE, SESSION_COOKIE

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_logout_revokes_the_bearer_token_and_the_cookie_at_once(api: ApiDriver) -> None:
    user = await api.register("learner")
    other = await login(api, user)  # a second device
    token = user["token"]
    assert await me_status(api, user["headers"]) == 200
    status, _ = await api.call("POST", "/api/auth/logout/", headers=user["headers"])
    assert status == 200
    assert await me_status(api, user["headers"]) == 401
    api.client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    assert (await api.client.get("/api/auth/user/")).status == 401  # the cookie alike
    assert await me_status(api, other["headers"]) == 200  # the other device stays


async def test_logout_everywhere_devices_list_and_ending_one(api: ApiDriver) -> None:
    user = await api.register("learner")
    second, third = await login(api, user), await login(api, user)
    api.client.session.cookie_jar.clear()
    status, devices = await api.call(
        "GET", "/api/auth/sessions/", headers={**second["headers"], "User-Agent": "Phone/1"}
    )
    assert status == 200 and len(devices) == 4  # registering signed in too
    assert [d["current"] for d in devices].count(True) == 1
    assert all(d["ip"] == "127.0.0.1" for d in devices)
    third_sid = jwt.decode(third["token"], options={"verify_signature": False})["sid"]
    assert third_sid in {d["id"] for d in devices}
    status, _ = await api.call(
        "DELETE", f"/api/auth/sessions/{third_sid}/", headers=second["headers"]
    )
    assert status == 200
    status, _ = await api.call(
        "DELETE", f"/api/auth/sessions/{third_sid}/", headers=second["headers"]
    )
    assert status == 404
    assert await me_status(api, third["headers"]) == 401
    assert await me_status(api, user["headers"]) == 200
    # Nobody ends another user's session by its id.
    stranger = await api.register("learner")
    user_sid = jwt.decode(user["token"], options={"verify_signature": False})["sid"]
    status, _ = await api.call("DELETE", f"/api/auth/sessions/{user_sid}/", stranger)
    assert status == 404
    status, _ = await api.call("POST", "/api/auth/logout-everywhere/", headers=second["headers"])
    assert status == 200
    for headers in (user["headers"], second["headers"], third["headers"]):
        assert await me_status(api, headers) == 401
    assert await me_status(api, stranger["headers"]) == 200


async def test_a_sessions_check_is_cached_and_last_seen_is_written_once_a_minute(
    sqlite_api: ApiDriver,
) -> None:
    api = sqlite_api
    user = await api.register("learner")
    logins = api.client.app[PLATFORM].accounts.logins
    clock = [1000.0]
    logins.clock = lambda: clock[0]
    logins._live.clear()
    before = logins.lookups
    for _ in range(50):
        assert await me_status(api, user["headers"]) == 200
    assert logins.lookups - before == 1  # one row read, then the cache
    sid = jwt.decode(user["token"], options={"verify_signature": False})["sid"]
    _, devices = await api.call("GET", "/api/auth/sessions/", user)
    seen = next(d["last_seen_at"] for d in devices if d["id"] == sid)
    clock[0] += 61  # a minute later the cache is re-read and last-seen written once
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=True):
        assert await me_status(api, user["headers"]) == 200
    _, devices = await api.call("GET", "/api/auth/sessions/", user)
    assert next(d["last_seen_at"] for d in devices if d["id"] == sid) > seen


async def test_password_reset_and_deactivation_end_every_session(
    api: ApiDriver, tmp_path: Path
) -> None:
    user = await api.register("learner")
    second = await login(api, user)
    status, _ = await api.call(
        "POST", "/api/auth/password-reset/", json={"email": user["user"]["email"]}
    )
    assert status == 200
    token = link_token(tmp_path, user["user"]["email"], "/auth/password-reset/confirm/")
    status, _ = await api.call(
        "POST",
        "/api/auth/password-reset/confirm/",
        json={"token": token, "password": NEW_PASSWORD},
    )
    assert status == 200
    assert await me_status(api, user["headers"]) == 401
    assert await me_status(api, second["headers"]) == 401
    fresh = await login(api, user, NEW_PASSWORD)
    assert await me_status(api, fresh["headers"]) == 200
    platform = api.client.app[PLATFORM]
    admin = await platform.accounts.create_admin("warden", "warden@example.org", NEW_PASSWORD)
    await platform.accounts.set_active(admin, user["user"]["id"], False)
    assert await me_status(api, fresh["headers"]) == 401
    assert await platform.accounts.logins.for_user(user["user"]["id"]) == []


async def test_revocation_publishes_one_event_on_the_users_channel(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    user = await api.register("learner")
    uid = user["user"]["id"]
    seen: list[dict[str, Any]] = []

    async def on_event(message: dict[str, Any]) -> None:
        seen.append(message)

    api.client.app[PLATFORM].bus.subscribe(f"user:{uid}", on_event)
    second = await login(api, user)
    await api.call("POST", "/api/auth/logout/", headers=user["headers"])
    await api.call("POST", "/api/auth/logout-everywhere/", headers=second["headers"])
    revoked = [m for m in seen if m["type"] == "sessions_revoked"]
    assert [m["reason"] for m in revoked] == ["logout", "logout_everywhere"]
    assert revoked[0]["user_id"] == uid and revoked[0]["sid"]
    assert revoked[1]["sid"] is None


async def test_password_change_needs_the_current_one_and_starts_afresh(
    api: ApiDriver, tmp_path: Path
) -> None:
    user = await api.register("learner")
    second = await login(api, user)
    path = "/api/auth/password/change/"
    status, body = await api.call(
        "POST",
        path,
        user,
        json={"current_password": "nope-nope-nope", "new_password": NEW_PASSWORD},
    )
    assert status == 400 and "current_password" in body["error"]["fields"]
    status, body = await api.call(
        "POST", path, user, json={"current_password": user["password"], "new_password": "password"}
    )
    assert status == 400 and "new_password" in body["error"]["fields"]
    status, body = await api.call(
        "POST",
        path,
        user,
        json={"current_password": user["password"], "new_password": NEW_PASSWORD},
    )
    assert status == 200, body
    assert await me_status(api, user["headers"]) == 401
    assert await me_status(api, second["headers"]) == 401
    assert await me_status(api, {"Authorization": f"Bearer {body['token']}"}) == 200
    subjects = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"]
        for p in (tmp_path / "mail").glob("*.eml")
    ]
    assert "Your PeerLearn password was changed" in subjects


async def test_email_change_is_applied_only_from_the_new_address(
    api: ApiDriver, tmp_path: Path
) -> None:
    user = await api.register("learner")
    taken = await api.register("learner")
    path = "/api/auth/email/change/"
    status, body = await api.call(
        "POST", path, user, json={"password": user["password"], "email": taken["user"]["email"]}
    )
    assert status == 409
    status, body = await api.call(
        "POST", path, user, json={"password": "wrong-wrong-wrong", "email": "new@example.org"}
    )
    assert status == 400
    status, body = await api.call(
        "POST", path, user, json={"password": user["password"], "email": "New@Example.org"}
    )
    assert status == 200, body
    status, me = await api.call("GET", "/api/auth/user/", user)
    assert me["email"] == user["user"]["email"]  # nothing changes before the link is opened
    token = link_token(tmp_path, "new@example.org", "/auth/email-change/confirm/")
    status, changed = await api.call(
        "POST", "/api/auth/email/change/confirm/", json={"token": token}
    )
    assert status == 200 and changed["email"] == "new@example.org" and changed["email_verified"]
    status, _ = await api.call("POST", "/api/auth/email/change/confirm/", json={"token": token})
    assert status == 400  # once


async def test_login_rotates_the_csrf_token(sqlite_client: Any) -> None:
    client = sqlite_client
    await client.get("/auth/login/")
    planted = next(c.value for c in client.session.cookie_jar if c.key == CSRF_COOKIE)
    body = {
        "username": "rotator",
        "email": "rotator@example.org",
        "password": "s3cret-pass!",
        "role": "learner",
    }
    resp = await client.post("/api/auth/register/", json=body)
    assert resp.status == 201
    assert resp.cookies[CSRF_COOKIE].value not in ("", planted)
    resp = await client.post(
        "/api/auth/login/", json={"username": "rotator", "password": "s3cret-pass!"}
    )
    rotated = resp.cookies[CSRF_COOKIE].value
    assert rotated and rotated != planted
    # The planted value no longer passes the double-submit check.
    resp = await client.post("/api/auth/logout/", headers={"X-CSRF-Token": planted})
    assert resp.status == 403


@pytest.fixture
async def two_nodes(
    app_factory: Any,
    make_settings: Any,
    postgres_database: str,
) -> tuple[ApiDriver, ApiDriver]:
    """Two app processes' worth of platform on one PostgreSQL and one Redis."""
    settings = make_settings(
        database={"url": postgres_database},
        redis={"url": REDIS_URL},
        auth={"login_max_attempts_per_ip": 100000},
    )
    node_a = await app_factory(settings)
    node_b = await app_factory(settings)
    return ApiDriver(node_a), ApiDriver(node_b)


async def test_logout_on_one_node_is_refused_at_once_on_the_other(
    two_nodes: tuple[ApiDriver, ApiDriver],
) -> None:
    a, b = two_nodes
    user = await a.register("learner")
    assert await me_status(b, user["headers"]) == 200  # node B has it cached now
    async with b.client.ws_connect("/ws/notifications/", headers=user["headers"]) as ws:
        assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "unread"
        status, _ = await a.call("POST", "/api/auth/logout/", headers=user["headers"])
        assert status == 200
        message = await asyncio.wait_for(ws.receive(), 10)  # over Redis, to node B's socket
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    # The cache entry went with the same event: refused at once, not after the cache TTL.
    assert await me_status(b, user["headers"]) == 401
