"""Notifications: the service, the REST API and the live WebSocket push."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from control.errors import ValidationFailed
from tests.api.sessions_helpers import platform_of


async def test_notify_list_count_and_mark_read(api: Any):
    user = await api.register("learner")
    other = await api.register("learner")
    uid = user["user"]["id"]
    service = platform_of(api).notifications
    first = await service.notify(
        uid,
        title="Booked",
        message="You are in.",
        type="success",
        event="booking_confirmed",
        link="/sessions/x/",
    )
    await service.notify_many([uid, uid, other["user"]["id"]], title="Soon", message="Starts")
    status, body = await api.call("GET", "/api/notifications/", user)
    assert status == 200
    assert body["total"] == 2 and body["unread"] == 2
    assert body["items"][0]["title"] == "Soon"  # newest first
    assert body["items"][1] | {"created_at": None} == {
        "id": first.id,
        "title": "Booked",
        "message": "You are in.",
        "type": "success",
        "event": "booking_confirmed",
        "link": "/sessions/x/",
        "is_read": False,
        "created_at": None,
    }
    status, body = await api.call("GET", "/api/notifications/unread-count/", user)
    assert body == {"count": 2}
    # Someone else's id is silently ignored.
    theirs = (await api.call("GET", "/api/notifications/", other))[1]["items"][0]["id"]
    status, body = await api.call(
        "POST", "/api/notifications/mark-read/", user, json={"ids": [first.id, theirs]}
    )
    assert status == 200 and body == {"updated": 1, "unread": 1}
    assert (await api.call("GET", "/api/notifications/unread-count/", other))[1]["count"] == 1
    status, body = await api.call("GET", "/api/notifications/?unread_only=true", user)
    assert [n["title"] for n in body["items"]] == ["Soon"]
    status, body = await api.call("POST", "/api/notifications/mark-read/", user, json={"all": True})
    assert body == {"updated": 1, "unread": 0}
    status, body = await api.call("GET", "/api/notifications/?per_page=1&page=2", user)
    assert body["total"] == 2 and len(body["items"]) == 1 and body["pages"] == 2


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"ids": [1], "all": True},
        {"all": False},
        {"ids": ["x"]},
        {"ids": [0]},
        {"ids": list(range(1, 1002))},
        {"ids": [2**70]},
        {"all": True, "x": 1},
    ],
)
async def test_mark_read_refuses_bad_bodies(api: Any, bad: dict[str, Any]):
    user = await api.register("learner")
    status, _ = await api.call("POST", "/api/notifications/mark-read/", user, json=bad)
    assert status == 400, bad


@pytest.mark.parametrize("bad", ["page=0", "per_page=101", "unread_only=maybe"])
async def test_listing_refuses_bad_queries(api: Any, bad: str):
    user = await api.register("learner")
    status, _ = await api.call("GET", f"/api/notifications/?{bad}", user)
    assert status == 400, bad


async def test_notification_auth(api: Any):
    user = await api.register("learner")
    api.client.session.cookie_jar.clear()  # anonymous
    for method, path in (
        ("GET", "/api/notifications/"),
        ("GET", "/api/notifications/unread-count/"),
        ("POST", "/api/notifications/mark-read/"),
    ):
        status, _ = await api.call(method, path, json={"all": True})
        assert status == 401
    with pytest.raises(ValidationFailed):
        await platform_of(api).notifications.notify(
            user["user"]["id"], title="t", message="m", type="shouting"
        )


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive_json(), 5)
        if message["type"] == kind:
            return message


async def test_websocket_push_with_authorization_header(api: Any):
    user = await api.register("learner")
    uid = user["user"]["id"]
    api.client.session.cookie_jar.clear()  # the header alone authenticates
    service = platform_of(api).notifications
    await service.notify(uid, title="Before", message="m")
    async with api.client.ws_connect("/ws/notifications/", headers=user["headers"]) as ws:
        assert await _next(ws, "unread") == {"type": "unread", "count": 1}
        await service.notify(
            uid,
            title="Started",
            message="Join now",
            event="session_started",
            link="/sessions/abc/room",
        )
        pushed = await _next(ws, "notification")
        assert pushed["notification"]["title"] == "Started"
        assert pushed["notification"]["link"] == "/sessions/abc/room"
        assert await _next(ws, "unread") == {"type": "unread", "count": 2}
        await api.call("POST", "/api/notifications/mark-read/", user, json={"all": True})
        assert await _next(ws, "unread") == {"type": "unread", "count": 0}
        await ws.send_json({"type": "ping"})
        assert await _next(ws, "pong") == {"type": "pong"}
    # Closing unsubscribed the socket from the bus; what stays on the user's channel is the
    # login-session cache's one handler (it follows revocations), not the socket's.
    await asyncio.sleep(0.05)
    bus = platform_of(api).bus
    if hasattr(bus, "_handlers"):
        handlers = bus._handlers._by_channel.get(f"user:{uid}", [])
        assert len(handlers) <= 1
        assert all(getattr(h, "__name__", "") == "_on_user_event" for h in handlers)


async def test_websocket_with_cookie_and_refusals(api: Any):
    user = await api.register("learner")  # leaves the session cookie in the client's jar
    async with api.client.ws_connect("/ws/notifications/") as ws:
        assert (await _next(ws, "unread"))["count"] == 0
    api.client.session.cookie_jar.clear()
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await api.client.ws_connect("/ws/notifications/")
    assert exc.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await api.client.ws_connect("/ws/notifications/", headers={"Authorization": "Bearer x"})
    assert exc.value.status == 401
    # A real token in the URL is not a credential here (URLs end up in logs).
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await api.client.ws_connect(f"/ws/notifications/?token={user['token']}")
    assert exc.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await api.client.ws_connect(
            "/ws/notifications/", headers={**user["headers"], "Origin": "https://evil.example"}
        )
    assert exc.value.status == 403
    own = f"http://{api.client.server.host}:{api.client.server.port}"
    async with api.client.ws_connect(
        "/ws/notifications/", headers={**user["headers"], "Origin": own}
    ) as ws:
        assert (await _next(ws, "unread"))["count"] == 0


async def test_websocket_with_a_single_use_ticket(api: Any):
    user = await api.register("learner")
    api.client.session.cookie_jar.clear()
    status, body = await api.call("POST", "/api/auth/ws-ticket/", user)
    assert status == 200 and body["expires_in"] == 30
    async with api.client.ws_connect(f"/ws/notifications/?ticket={body['ticket']}") as ws:
        assert (await _next(ws, "unread"))["count"] == 0
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:  # used once already
        await api.client.ws_connect(f"/ws/notifications/?ticket={body['ticket']}")
    assert exc.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:  # an access token is no ticket
        await api.client.ws_connect(f"/ws/notifications/?ticket={user['token']}")
    assert exc.value.status == 401


async def test_websocket_closed_when_account_deactivated(api: Any):
    user = await api.register("learner")
    platform = platform_of(api)
    admin = await platform.accounts.create_admin("chief", "chief@example.org", "s3cret-pass!")
    async with api.client.ws_connect("/ws/notifications/", headers=user["headers"]) as ws:
        await _next(ws, "unread")
        await platform.accounts.set_active(admin, user["user"]["id"], False)
        message = await asyncio.wait_for(ws.receive(), 5)
        # The close frame carries the code (the client's close_code may read 1006 once its
        # side of the closing handshake races the server's).
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4401


async def test_websocket_closed_on_logout_of_its_session_only(api: Any):
    user = await api.register("learner")
    status, other = await api.call(
        "POST",
        "/api/auth/login/",
        json={"username": user["user"]["username"], "password": user["password"]},
    )
    assert status == 200
    other_headers = {"Authorization": f"Bearer {other['token']}"}
    api.client.session.cookie_jar.clear()
    async with (
        api.client.ws_connect("/ws/notifications/", headers=user["headers"]) as ws,
        api.client.ws_connect("/ws/notifications/", headers=other_headers) as other_ws,
    ):
        await _next(ws, "unread")
        await _next(other_ws, "unread")
        status, _ = await api.call("POST", "/api/auth/logout/", headers=user["headers"])
        assert status == 200
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await other_ws.send_json({"type": "ping"})
        assert await _next(other_ws, "pong") == {"type": "pong"}
