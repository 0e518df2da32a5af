"""Auth API: register, login, logout, current user, CSRF, throttling, verification, reset."""

from __future__ import annotations

import asyncio
import email
import re
import socket
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiosmtpd.controller import Controller

from control.security import ACCESS_AUDIENCE, JWT_ALGORITHM, TokenService
from web.keys import PLATFORM
from web.security import CSRF_COOKIE, SESSION_COOKIE

PASSWORD = "s3cret-pass!"


def mails(tmp_path: Path) -> list[email.message.EmailMessage]:
    """Messages written by the file mail backend (conftest points it at tmp_path/mail)."""
    folder = tmp_path / "mail"
    if not folder.exists():
        return []
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


def token_from(message: email.message.EmailMessage, path: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_\-]+)", body)
    assert match, body
    return match.group(1)


def new_body(**extra: Any) -> dict[str, Any]:
    body = {
        "username": "alice",
        "email": "Alice@Example.org",
        "password": PASSWORD,
        "role": "learner",
    }
    body.update(extra)
    return body


# ---------------------------------------------------------------- register


async def test_register_returns_token_sets_cookie_and_mails_link(client: Any, tmp_path: Path):
    resp = await client.post("/api/auth/register/", json=new_body(first_name="Al"))
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["user"]["username"] == "alice"
    assert data["user"]["email"] == "alice@example.org"  # stored lower-cased
    assert data["user"]["role"] == "learner"
    assert data["user"]["email_verified"] is False
    assert "password" not in str(data["user"]) and "hash" not in str(data["user"])
    assert data["token"]
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    [message] = mails(tmp_path)
    assert message["To"] == "alice@example.org"
    assert token_from(message, "/auth/verify-email/")
    # The token works as a Bearer token straight away.
    me = await client.get("/api/auth/user/", headers={"Authorization": f"Bearer {data['token']}"})
    assert (await me.json())["username"] == "alice"


async def test_register_mentor(client: Any):
    resp = await client.post("/api/auth/register/", json=new_body(role="mentor"))
    assert resp.status == 201
    assert (await resp.json())["user"]["role"] == "mentor"


async def test_register_duplicates_conflict(client: Any):
    assert (await client.post("/api/auth/register/", json=new_body())).status == 201
    resp = await client.post("/api/auth/register/", json=new_body(email="other@example.org"))
    assert resp.status == 409
    err = (await resp.json())["error"]
    assert err["code"] == "username_taken" and "username" in err["fields"]
    # Same address in another case is the same address.
    resp = await client.post(
        "/api/auth/register/", json=new_body(username="alice2", email="ALICE@example.ORG")
    )
    assert resp.status == 409
    err = (await resp.json())["error"]
    assert err["code"] == "email_taken" and "email" in err["fields"]


async def test_concurrent_registrations_one_wins(client: Any):
    bodies = [new_body(email=f"a{i}@example.org") for i in range(4)]
    responses = await asyncio.gather(*(client.post("/api/auth/register/", json=b) for b in bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201, 409, 409, 409]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "x" * 151}, "username"),
        ({"username": "bad name!"}, "username"),
        ({"username": "profile"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"role": "admin"}, "role"),
        ({"role": "wizard"}, "role"),
        ({"first_name": "x" * 101}, "first_name"),
        ({"is_admin": True}, "is_admin"),
        ({"username": 5}, "username"),
    ],
)
async def test_register_validation(sqlite_client: Any, changes: dict[str, Any], field: str):
    resp = await sqlite_client.post("/api/auth/register/", json=new_body(**changes))
    assert resp.status == 400, await resp.text()
    err = (await resp.json())["error"]
    assert err["code"] == "validation_error"
    assert field in err["fields"], err


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b'{"username": "' + b"a" * 300_000 + b'"}', "body_too_large"),
        (
            b'{"username": "' + b"a" * 5000 + b'", "email": "a@b.cd", "password": "x", "role": '
            b'"learner"}',
            "validation_error",
        ),
    ],
)
async def test_register_malformed_bodies_never_500(sqlite_client: Any, data: bytes, code: str):
    resp = await sqlite_client.post(
        "/api/auth/register/", data=data, headers={"Content-Type": "application/json"}
    )
    assert resp.status in (400, 413)
    assert (await resp.json())["error"]["code"] == code


# ---------------------------------------------------------------- login / logout / me


async def test_login_by_username_and_case_insensitive_email(client: Any):
    await client.post("/api/auth/register/", json=new_body())
    for login in (
        {"username": "alice"},
        {"username": "ALICE@example.org"},
        {"email": "alice@EXAMPLE.org"},
    ):
        resp = await client.post("/api/auth/login/", json={**login, "password": PASSWORD})
        assert resp.status == 200, (login, await resp.text())
        data = await resp.json()
        assert data["user"]["username"] == "alice" and data["token"]
        assert data["user"]["last_login"] is not None
        assert resp.cookies[SESSION_COOKIE]["httponly"]
        assert any(c.key == CSRF_COOKIE for c in client.session.cookie_jar)


async def test_login_failures(client: Any):
    await client.post("/api/auth/register/", json=new_body())
    resp = await client.post(
        "/api/auth/login/", json={"username": "alice", "password": "nope-nope"}
    )
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_credentials"
    resp = await client.post("/api/auth/login/", json={"username": "nobody", "password": PASSWORD})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_credentials"
    resp = await client.post("/api/auth/login/", json={"password": PASSWORD})
    assert resp.status == 400
    resp = await client.post("/api/auth/login/", json={"username": "alice"})
    assert resp.status == 400 and "password" in (await resp.json())["error"]["fields"]


async def test_current_user_requires_auth(client: Any):
    resp = await client.get("/api/auth/user/")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_authenticated"
    resp = await client.get("/api/auth/user/", headers={"Authorization": "Bearer garbage"})
    assert resp.status == 401


async def test_cookie_session_logout_and_csrf(client: Any):
    await client.post("/api/auth/register/", json=new_body())
    client.session.cookie_jar.clear()
    resp = await client.post("/api/auth/login/", json={"username": "alice", "password": PASSWORD})
    assert resp.status == 200
    # The cookie alone authenticates reads.
    assert (await client.get("/api/auth/user/")).status == 200
    # A cookie-authenticated write without the CSRF header is refused ...
    resp = await client.post("/api/auth/logout/")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await client.post("/api/auth/logout/", headers={"X-CSRF-Token": "wrong-token-value-xx"})
    assert resp.status == 403
    # ... and accepted with the CSRF cookie's value.
    csrf = next(c.value for c in client.session.cookie_jar if c.key == CSRF_COOKIE)
    resp = await client.post("/api/auth/logout/", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert resp.cookies[SESSION_COOKIE].value == ""
    assert (await client.get("/api/auth/user/")).status == 401


async def test_cross_origin_cookie_post_refused(client: Any):
    await client.post("/api/auth/register/", json=new_body())
    csrf = next(c.value for c in client.session.cookie_jar if c.key == CSRF_COOKIE)
    resp = await client.post(
        "/api/auth/logout/", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"


async def test_login_rate_limited_per_account(client: Any):
    await client.post("/api/auth/register/", json=new_body())
    for _ in range(5):  # settings.auth.login_max_failures_per_account
        resp = await client.post(
            "/api/auth/login/", json={"username": "alice", "password": "bad-bad-1"}
        )
        assert resp.status == 401
    resp = await client.post("/api/auth/login/", json={"username": "alice", "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"]["code"] == "rate_limited"
    # Blocked by e-mail too: the counter belongs to the account, not the text typed.
    resp = await client.post(
        "/api/auth/login/", json={"username": "alice@example.org", "password": PASSWORD}
    )
    assert resp.status == 429


async def test_login_rate_limited_per_ip(app_factory: Any, make_settings: Any):
    client = await app_factory(make_settings(auth={"login_max_attempts_per_ip": 3}))
    await client.post("/api/auth/register/", json=new_body())
    for _ in range(3):
        resp = await client.post(
            "/api/auth/login/", json={"username": "alice", "password": PASSWORD}
        )
        assert resp.status == 200
    resp = await client.post("/api/auth/login/", json={"username": "alice", "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_successful_login_resets_failure_count(sqlite_client: Any):
    await sqlite_client.post("/api/auth/register/", json=new_body())
    for _ in range(3):
        for _ in range(4):
            await sqlite_client.post(
                "/api/auth/login/", json={"username": "alice", "password": "x"}
            )
        ok = await sqlite_client.post(
            "/api/auth/login/", json={"username": "alice", "password": PASSWORD}
        )
        assert ok.status == 200


async def test_deactivated_user_cannot_login_and_token_dies(client: Any):
    resp = await client.post("/api/auth/register/", json=new_body())
    token = (await resp.json())["token"]
    platform = client.server.app[PLATFORM]
    admin = await platform.accounts.create_admin("root", "root@example.org", PASSWORD)
    user = await platform.accounts.get_by_username("alice")
    await platform.accounts.set_active(admin, user.id, False)
    me = await client.get("/api/auth/user/", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 401
    resp = await client.post("/api/auth/login/", json={"username": "alice", "password": PASSWORD})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "account_inactive"


async def test_tokens_expire_and_must_be_ours(app_factory: Any, make_settings: Any):
    settings = make_settings(auth={"token_ttl_minutes": 30})
    client = await app_factory(settings)
    resp = await client.post("/api/auth/register/", json=new_body())
    data = await resp.json()
    claims = jwt.decode(
        data["token"], settings.secret_key, algorithms=[JWT_ALGORITHM], audience=ACCESS_AUDIENCE
    )
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert claims["sub"] == str(data["user"]["id"]) and claims["role"] == "learner"
    assert resp.cookies[SESSION_COOKIE]["max-age"] == str(30 * 60)
    uid = data["user"]["id"]
    platform = client.server.app[PLATFORM]
    sid = claims["sid"]
    ago = datetime.now(UTC)
    stale = platform.tokens.issue(uid, "learner", sid=sid, now=ago - timedelta(minutes=31))
    fresh = platform.tokens.issue(uid, "learner", sid=sid, now=ago - timedelta(minutes=29))
    forged = TokenService("x" * 40, timedelta(minutes=30)).issue(uid, "learner", sid=sid)
    unsigned = jwt.encode({"sub": str(uid), "exp": claims["exp"]}, "", algorithm="none")
    sessionless = platform.tokens.issue(uid, "learner")  # signed, but names no login session
    ticket = platform.tokens.issue_ticket(uid, sid)  # a WebSocket ticket is no access token
    cases = (
        (fresh, 200),
        (stale, 401),
        (forged, 401),
        (unsigned, 401),
        (sessionless, 401),
        (ticket, 401),
    )
    for token, status in cases:
        client.session.cookie_jar.clear()
        me = await client.get("/api/auth/user/", headers={"Authorization": f"Bearer {token}"})
        assert me.status == status, token
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
        assert (await client.get("/api/auth/user/")).status == status  # the cookie alike


# ---------------------------------------------------------------- e-mail verification


async def test_verify_email_flow(client: Any, tmp_path: Path):
    resp = await client.post("/api/auth/register/", json=new_body())
    headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    first = token_from(mails(tmp_path)[0], "/auth/verify-email/")
    # Ask again: a second link arrives, and both are valid until one is used.
    resp = await client.post("/api/auth/verify-email/request/", headers=headers)
    assert resp.status == 200
    assert len(mails(tmp_path)) == 2
    resp = await client.post("/api/auth/verify-email/", json={"token": first})
    assert resp.status == 200
    assert (await resp.json())["email_verified"] is True
    # Single use.
    resp = await client.post("/api/auth/verify-email/", json={"token": first})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_token"
    # Already verified: nothing more to send.
    resp = await client.post("/api/auth/verify-email/request/", headers=headers)
    assert resp.status == 409
    me = await client.get("/api/auth/user/", headers=headers)
    assert (await me.json())["email_verified"] is True


async def test_verify_email_bad_input(client: Any):
    assert (await client.post("/api/auth/verify-email/request/")).status == 401
    for body in ({"token": "made-up"}, {"token": ""}, {}, {"token": "x" * 201}, {"token": 7}):
        resp = await client.post("/api/auth/verify-email/", json=body)
        assert resp.status == 400, body


async def test_verify_mail_links_use_public_url(
    app_factory: Any, make_settings: Any, tmp_path: Path
):
    client = await app_factory(make_settings(server={"public_url": "https://learn.example.org/"}))
    await client.post("/api/auth/register/", json=new_body())
    body = mails(tmp_path)[0].get_body().get_content()
    assert "https://learn.example.org/auth/verify-email/?token=" in body


# ---------------------------------------------------------------- password reset


async def test_password_reset_flow(client: Any, tmp_path: Path):
    await client.post("/api/auth/register/", json=new_body())
    before = len(mails(tmp_path))
    known = await client.post("/api/auth/password-reset/", json={"email": "ALICE@example.org"})
    unknown = await client.post("/api/auth/password-reset/", json={"email": "ghost@example.org"})
    # Same answer either way: the endpoint does not reveal who has an account.
    assert known.status == unknown.status == 200
    assert await known.json() == await unknown.json()
    new_mails = mails(tmp_path)[before:]
    assert len(new_mails) == 1 and new_mails[0]["To"] == "alice@example.org"
    token = token_from(new_mails[0], "/auth/password-reset/confirm/")

    resp = await client.post(
        "/api/auth/password-reset/confirm/", json={"token": token, "password": "short"}
    )
    assert resp.status == 400 and "password" in (await resp.json())["error"]["fields"]
    resp = await client.post(
        "/api/auth/password-reset/confirm/", json={"token": token, "password": "brand-new-pass"}
    )
    assert resp.status == 200
    resp = await client.post(
        "/api/auth/password-reset/confirm/", json={"token": token, "password": "another-pass-1"}
    )
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_token"
    old = await client.post("/api/auth/login/", json={"username": "alice", "password": PASSWORD})
    assert old.status == 401
    new = await client.post(
        "/api/auth/login/", json={"username": "alice", "password": "brand-new-pass"}
    )
    assert new.status == 200
    assert (await new.json())["user"]["email_verified"] is True


async def test_password_reset_bad_input(sqlite_client: Any):
    resp = await sqlite_client.post("/api/auth/password-reset/", json={"email": "not-an-address"})
    assert resp.status == 200  # malformed addresses get the same neutral answer
    for body in ({}, {"email": 3}, {"email": "a@b.cd", "extra": 1}):
        assert (await sqlite_client.post("/api/auth/password-reset/", json=body)).status == 400
    resp = await sqlite_client.post(
        "/api/auth/password-reset/confirm/", json={"token": "nope", "password": "long-enough-1"}
    )
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Inbox:
    """aiosmtpd handler keeping every received message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
        )
        return "250 OK"


async def test_verification_and_reset_over_real_smtp(app_factory: Any, make_settings: Any):
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = make_settings(
            email={
                "backend": "smtp",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "from_address": "PL <pl@localhost>",
            }
        )
        client = await app_factory(settings)
        await client.post("/api/auth/register/", json=new_body())
        assert len(inbox.messages) == 1  # the verification mail
        verify = token_from(inbox.messages[0], "/auth/verify-email/")
        resp = await client.post("/api/auth/verify-email/", json={"token": verify})
        assert resp.status == 200 and (await resp.json())["email_verified"] is True
        resp = await client.post("/api/auth/password-reset/", json={"email": "alice@example.org"})
        assert resp.status == 200
        assert len(inbox.messages) == 2
        message = inbox.messages[1]
        assert message["To"] == "alice@example.org"
        assert message["From"] == "PL <pl@localhost>"
        assert message["Subject"] == "Reset your PeerLearn password"
        host = f"http://{client.server.host}:{client.server.port}"
        assert f"{host}/auth/password-reset/confirm/?token=" in message.get_content()
        token = token_from(message, "/auth/password-reset/confirm/")
        resp = await client.post(
            "/api/auth/password-reset/confirm/", json={"token": token, "password": "via-smtp-123"}
        )
        assert resp.status == 200
        resp = await client.post(
            "/api/auth/login/", json={"username": "alice", "password": "via-smtp-123"}
        )
        assert resp.status == 200
    finally:
        controller.stop()


async def test_register_survives_smtp_outage(app_factory: Any, make_settings: Any):
    settings = make_settings(
        email={
            "backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": _free_port(),
            "smtp_timeout_s": 2,
        }
    )
    client = await app_factory(settings)
    resp = await client.post("/api/auth/register/", json=new_body())
    assert resp.status == 201  # the account exists; the mail can be requested again
    headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    resp = await client.post("/api/auth/verify-email/request/", headers=headers)
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "mail_failed"
    resp = await client.post("/api/auth/password-reset/", json={"email": "alice@example.org"})
    assert resp.status == 200  # still the neutral answer
