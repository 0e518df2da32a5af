"""Safe defaults under attack: the Host allow-list, links from public_url, Origins, headers,
verified-before-it-counts, ratings by attendees only, the browse page's overflows, and an
access log that never prints a credential."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.api.auth_helpers import PASSWORD, PUBLIC, production
from tests.api.sessions_helpers import create_session, iso_in, platform_of
from tests.support import ApiDriver
from web.app import create_app
from web.middlewares import RedactingAccessLogger, redact_url, wait_for_access_log


@pytest.fixture
async def prod_client(app_factory: Any, make_settings: Any) -> Any:
    settings = production(make_settings)
    from control.db import Database

    db = Database(settings.database_url)
    await db.migrate()  # production refuses an unmigrated database
    await db.dispose()
    return await app_factory(settings)


async def test_production_refuses_a_foreign_host_and_mails_links_from_public_url(
    prod_client: Any, tmp_path: Path
) -> None:
    resp = await prod_client.get("/api/sessions/")  # the test client's own Host: 127.0.0.1:port
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_host"
    ours = {"Host": "learn.example.org"}
    assert (await prod_client.get("/api/sessions/", headers=ours)).status == 200
    assert (await prod_client.get("/healthz")).status == 200  # load balancers use the node
    resp = await prod_client.post(
        "/api/auth/password-reset/",
        json={"email": "x@example.org"},
        headers={"Host": "evil.example"},
    )
    assert resp.status == 400  # the poisoned Host never reaches a mail


async def test_mail_links_ignore_the_host_header(
    app_factory: Any, make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(server={"public_url": PUBLIC, "allowed_hosts": ["127.0.0.1"]})
    api = ApiDriver(await app_factory(settings))
    user = await api.register("learner")
    await api.client.post(
        "/api/auth/password-reset/",
        json={"email": user["user"]["email"]},
        headers={"Host": "127.0.0.1"},
    )
    bodies = [p.read_text() for p in (tmp_path / "mail").glob("*.eml")]
    assert bodies and all(PUBLIC in b for b in bodies if "token=" in b)
    assert not any("127.0.0.1" in b for b in bodies)
    resp = await api.client.get("/", headers={"Host": "evil.example"})
    assert resp.status == 400  # an allow-list applies in development too once given


async def test_websocket_origin_is_checked_against_public_url_not_the_host(
    app_factory: Any, make_settings: Any
) -> None:
    settings = make_settings(server={"public_url": PUBLIC})
    api = ApiDriver(await app_factory(settings))
    user = await api.register("learner")
    own = str(api.client.make_url("/")).rstrip("/")
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        # The Origin matches the Host the attacker chose, which is not public_url.
        await api.client.ws_connect(
            "/ws/notifications/", headers={**user["headers"], "Origin": own}
        )
    assert exc.value.status == 403
    async with api.client.ws_connect(
        "/ws/notifications/", headers={**user["headers"], "Origin": PUBLIC}
    ) as ws:
        assert (await ws.receive_json())["type"] == "unread"


async def test_security_headers(app_factory: Any, make_settings: Any) -> None:
    api = ApiDriver(await app_factory(make_settings(server={"cookie_secure": True})))
    user = await api.register("learner")
    resp = await api.client.get("/api/auth/user/", headers=user["headers"])
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    policy = resp.headers["Permissions-Policy"]
    assert "camera=(self)" in policy and "microphone=(self)" in policy
    assert "display-capture=(self)" in policy and "geolocation=()" in policy
    api.client.session.cookie_jar.clear()
    public = await api.client.get("/api/sessions/")
    assert "no-store" not in public.headers.get("Cache-Control", "")
    login = await api.client.post(
        "/api/auth/login/", json={"username": user["user"]["username"], "password": PASSWORD}
    )
    assert login.headers["Cache-Control"] == "no-store"  # a token in the body
    plain = ApiDriver(await app_factory(make_settings()))
    resp = await plain.client.get("/")
    assert "Strict-Transport-Security" not in resp.headers  # not over plain HTTP


@pytest.mark.parametrize(
    "query",
    ["date_to=9999-12-31", "page=99999999999999999999", "date_from=9999-12-31&date_to=9999-12-31"],
)
async def test_browse_page_overflows_are_400(sqlite_client: Any, query: str) -> None:
    resp = await sqlite_client.get(f"/sessions/?{query}")
    assert resp.status == 400


async def test_unverified_accounts_browse_but_neither_book_nor_rate(
    app_factory: Any, make_settings: Any
) -> None:
    api = ApiDriver(await app_factory(make_settings(auth={"require_verified_email": True})))
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    session = await create_session(api, mentor, schedule=iso_in(10))
    assert (await api.call("GET", "/api/sessions/", learner))[0] == 200
    status, body = await api.call("POST", f"/api/sessions/{session['id']}/book/", learner)
    assert status == 403 and body["error"]["code"] == "email_unverified"
    platform = platform_of(api)
    await platform.accounts.verify_email(
        await platform.accounts._issue_token(
            learner["user"]["id"], "verify_email", timedelta(minutes=5)
        )
    )
    status, _ = await api.call("POST", f"/api/sessions/{session['id']}/book/", learner)
    assert status == 201


async def test_verification_is_on_by_default_in_production_only(make_settings: Any) -> None:
    assert production(make_settings).require_verified_email is True
    assert make_settings().require_verified_email is False


async def test_ratings_count_only_attendees_who_joined_the_room(sqlite_api: ApiDriver) -> None:
    api = sqlite_api
    mentor = await api.register("mentor")
    came, never = await api.register("learner"), await api.register("learner")
    session = await create_session(api, mentor, schedule=iso_in(10))
    for who in (came, never):
        assert (await api.call("POST", f"/api/sessions/{session['id']}/book/", who))[0] == 201
    assert (await api.call("POST", f"/api/sessions/{session['id']}/start/", mentor))[0] == 200
    platform = platform_of(api)
    await platform.bookings.record_join(session["id"], came["user"]["id"])
    for who, rating in ((came, 5), (never, 1)):
        status, _ = await api.call(
            "POST", f"/api/sessions/{session['id']}/feedback/", who, json={"rating": rating}
        )
        assert status == 201
    mentor_id = mentor["user"]["id"]
    assert await platform.feedback.mentor_rating(mentor_id) == (5.0, 1)
    assert (await platform.feedback.distribution(mentor_id))[1] == 0
    assert [f.rating for f in await platform.feedback.for_mentor(mentor_id)] == [5]


def test_redact_url_hides_credential_values() -> None:
    assert redact_url("/ws/notifications/?token=abc.def&x=1") == (
        "/ws/notifications/?token=[redacted]&x=1"
    )
    assert "secret" not in redact_url("/auth/password-reset/confirm/?token=secret")
    assert redact_url("/sessions/?page=2") == "/sessions/?page=2"
    assert "t1" not in redact_url("/x?ticket=t1&csrf_token=t1&sid=t1")


async def test_the_access_log_never_prints_a_credential(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A real server with the access logger ``peerlearn serve`` uses; its whole log grepped."""
    app = create_app(make_settings(), background=False)
    server = TestServer(app)
    await server.start_server(access_log_class=RedactingAccessLogger)
    client = TestClient(server)
    await client.start_server()
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    try:
        api = ApiDriver(client)
        user = await api.register("learner")
        token = user["token"]
        _, body = await api.call("POST", "/api/auth/ws-ticket/", user)
        ticket = body["ticket"]
        await client.get(f"/api/auth/user/?token={token}")
        await client.get("/api/auth/user/", headers=user["headers"])
        await client.get(
            f"/auth/password-reset/confirm/?token={token}",
            headers={"Referer": f"http://x/?token={token}"},
        )
        async with client.ws_connect(f"/ws/notifications/?ticket={ticket}") as ws:
            await ws.receive_json()
        await client.post(
            "/api/auth/login/", json={"username": user["user"]["username"], "password": PASSWORD}
        )
    finally:
        await client.close()
    wait_for_access_log()  # written by a thread, off the event loop
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/auth/user/" in log and "[redacted]" in log  # the log is there
    for secret in (token, ticket, PASSWORD, token.split(".")[2]):
        assert secret not in log
