"""Observability (issue 13): /readyz, Prometheus /metrics read by prometheus_client's own
parser, the SFU's figures as counters that only grow, request and room ids on log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings
from control.events import CATALOG_CHANNEL, RedisEventBus
from control.platform import Platform
from web import metrics
from web.keys import SFU
from web.logcontext import ContextFilter, JsonFormatter, request_id_from
from web.middlewares import (
    REQUEST_ID_KEY,
    RedactingAccessLogger,
    request_context_middleware,
    wait_for_access_log,
)

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
Factory = Callable[..., Awaitable[Any]]


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(family: Any, name: str | None = None, **labels: str) -> list[Any]:
    return [
        s
        for s in family.samples
        if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


# --------------------------------------------------------------------------- /readyz


async def test_readyz_answers_ok_with_every_part_up(
    app_factory: Factory, make_settings: Callable[..., Settings]
) -> None:
    client = await app_factory(make_settings(redis={"url": REDIS_URL}))
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "sfu": "ok"},
    }


async def test_readyz_fails_when_redis_is_down(
    app_factory: Factory, make_settings: Callable[..., Settings]
) -> None:
    # The node's Redis is a dead port (the platform itself runs on the in-memory bus here,
    # which start-up would otherwise refuse): /readyz says so and names it.
    dead = make_settings(redis={"url": f"redis://127.0.0.1:{_dead_port()}/0"})
    platform = Platform(make_settings())
    client = await app_factory(dead, platform=platform)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable" and body["failed"] == ["redis"]
    assert body["checks"] == {"database": "ok", "redis": "unreachable", "sfu": "ok"}
    assert (await client.get("/healthz")).status == 200  # alive all the same


# --------------------------------------------------------------------------- /metrics


async def test_metrics_parse_with_routes_not_paths(sqlite_client: Any) -> None:
    some_id = uuid.uuid4()
    assert (await sqlite_client.get("/api/sessions/")).status == 200
    assert (await sqlite_client.get(f"/api/sessions/{some_id}/")).status == 404
    assert (await sqlite_client.get(f"/api/no-such-{some_id}/")).status == 404
    resp = await sqlite_client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert str(some_id) not in text  # the raw path never becomes a label
    families = _families(text)
    http = families["peerlearn_http_request_duration_seconds"]
    assert http.type == "histogram"
    count = "peerlearn_http_request_duration_seconds_count"
    assert _samples(http, count, route="/api/sessions/{id}/", status="404", method="GET")
    assert _samples(http, count, route="/api/sessions/", status="200", method="GET")
    assert _samples(http, count, route="unmatched", status="404")
    for name in (
        "peerlearn_room_total",
        "peerlearn_participant_total",
        "peerlearn_track_published_total",
    ):
        assert families[name].type == "gauge", name
    assert _samples(families["peerlearn_room_total"])[0].value == 0
    for name in (
        "peerlearn_packet",
        "peerlearn_packet_bytes",
        "peerlearn_pli",
        "peerlearn_keyframe_request",
        "peerlearn_booking",
        "peerlearn_bus_delay_seconds",
    ):
        assert name in families, name


async def test_metrics_want_the_token_or_a_loopback_peer(
    app_factory: Factory, make_settings: Callable[..., Settings]
) -> None:
    open_client = await app_factory(make_settings())
    proxied = await open_client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert proxied.status == 403  # a proxy on this machine relayed an outsider
    token = "m" * 32
    guarded = await app_factory(make_settings(metrics={"token": token}))
    assert (await guarded.get("/metrics")).status == 403  # loopback is not enough then
    wrong = await guarded.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
    assert wrong.status == 403
    good = await guarded.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert good.status == 200 and "peerlearn_room_total" in await good.text()
    off = await app_factory(make_settings(metrics={"enabled": False}))
    assert (await off.get("/metrics")).status == 404


def _stats(frames: int, out_bytes: int, users: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """``SfuServer.stats()`` as docs/sfu.md describes it: one room, users publishing."""
    participants = {}
    for user in users:
        participants[user] = {
            "publish": {
                "camera": {
                    "frames_in": frames,
                    "packets_in": frames,
                    "nacks_sent": 4,
                    "bytes_in": frames * 1000,
                    "keyframes_requested": 2,
                    "keyframes_sent": 1,
                    "packets_lost": 3,
                }
            },
            "subscribe": [
                {
                    "user_id": other,
                    "kind": "camera",
                    "frames_forwarded": frames,
                    "packets_out": frames,
                    "frames_dropped": 0,
                    "bytes_out": out_bytes,
                    "keyframe_requests_from_subscriber": 1,
                }
                for other in users
                if other != user
            ],
        }
    return {"rooms": {"room-a": {"participants": participants}}, "udp": {}}


def test_sfu_counters_only_grow_when_participants_leave_and_rejoin() -> None:
    app = web.Application()
    sfu: Any = type("FakeSfu", (), {})()
    app[SFU] = sfu
    collector = metrics.SfuCollector(app)

    def read(stats: dict[str, Any]) -> dict[str, Any]:
        sfu.stats = lambda: stats
        return {m.name: m for m in collector.collect()}

    first = read(_stats(frames=100, out_bytes=5000))
    assert _samples(first["peerlearn_room_total"])[0].value == 1
    assert _samples(first["peerlearn_participant_total"])[0].value == 2
    packets = first["peerlearn_packet"]
    assert _samples(packets, direction="incoming", kind="camera")[0].value == 200
    assert _samples(packets, direction="outgoing", kind="camera")[0].value == 200
    assert _samples(first["peerlearn_pli"], direction="incoming")[0].value == 2
    assert _samples(first["peerlearn_pli"], direction="outgoing")[0].value == 2
    assert _samples(first["peerlearn_nack"], direction="outgoing")[0].value == 8
    # User 2 leaves: its counters vanish from the stats, not from the totals.
    alone = read(_stats(frames=150, out_bytes=0, users=(1,)))
    assert _samples(alone["peerlearn_participant_total"])[0].value == 1
    assert _samples(alone["peerlearn_packet"], direction="incoming")[0].value == 250
    # It rejoins with fresh counters (10 frames): they count, nothing goes backwards.
    again = _stats(frames=160, out_bytes=6000)
    again["rooms"]["room-a"]["participants"][2]["publish"]["camera"]["packets_in"] = 10
    back = read(again)
    assert _samples(back["peerlearn_packet"], direction="incoming")[0].value == 250 + 10 + 10
    text = _samples(back["peerlearn_packet_bytes"], direction="outgoing")[0].value
    assert text >= 10000


async def test_bookings_and_bus_delay_are_measured() -> None:
    before = metrics.BOOKINGS.labels("created")._value.get()
    metrics.on_bus_publish(CATALOG_CHANNEL, {"type": "booking_created", "session_id": "s"})
    metrics.on_bus_publish("user:1", {"type": "booking_created"})  # not a catalogue event
    assert metrics.BOOKINGS.labels("created")._value.get() == before + 1

    a, b = RedisEventBus(REDIS_URL), RedisEventBus(REDIS_URL)
    delays: list[tuple[str, float]] = []
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await a.start()
    await b.start()
    b.on_delay = lambda channel, seconds: delays.append((channel, seconds))
    channel = f"user:{uuid.uuid4().hex}"

    async def on_message(message: dict[str, Any]) -> None:
        await got.put(message)

    b.subscribe(channel, on_message)
    try:
        await asyncio.sleep(0.1)
        await a.publish(channel, {"type": "x"})
        assert await asyncio.wait_for(got.get(), 10) == {"type": "x"}  # the stamp is removed
        mine = [d for c, d in delays if c == channel]
        assert len(mine) == 1 and 0 <= mine[0] < 5
        assert metrics.channel_kind(channel) == "user"
    finally:
        await a.close()
        await b.close()


# --------------------------------------------------------------------------- logs


async def test_request_id_is_echoed_and_on_every_line(
    aiohttp_client: Any, sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from web.app import create_app

    async def logs_a_line(request: web.Request) -> web.Response:
        logging.getLogger("control.anything").warning("a line of the request")
        return web.json_response({})

    app = create_app(sqlite_settings, background=False)
    app.router.add_get("/test-log/", logs_a_line)
    sqlite_client = await aiohttp_client(app)
    caplog.handler.addFilter(ContextFilter())
    mine = "req-" + uuid.uuid4().hex
    with caplog.at_level(logging.WARNING, logger="control.anything"):
        resp = await sqlite_client.get("/test-log/", headers={"X-Request-ID": mine})
    assert resp.status == 200 and resp.headers["X-Request-ID"] == mine
    (line,) = [r for r in caplog.records if r.getMessage() == "a line of the request"]
    assert line.request_id == mine and line.room_id == "-"  # type: ignore[attr-defined]
    # Every answer has one, errors and pages included.
    missing = await sqlite_client.get("/api/no-such-thing/")
    assert missing.status == 404 and len(missing.headers["X-Request-ID"]) == 32
    # An id that is not sane (too long, spaces, control characters) is replaced.
    resp = await sqlite_client.get("/healthz", headers={"X-Request-ID": "bad id <script>" * 8})
    echoed = resp.headers["X-Request-ID"]
    assert echoed != "bad id" and len(echoed) == 32
    assert request_id_from(None) != request_id_from(None)


async def test_room_id_on_the_lines_of_a_room_socket(caplog: pytest.LogCaptureFixture) -> None:
    room = str(uuid.uuid4())
    log = logging.getLogger("tests.room")

    async def socket_handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def later() -> None:  # a task the room starts inherits the ids
            log.warning("from a task of the room")

        await asyncio.create_task(later())
        log.warning("in the room")
        await ws.close()
        return ws

    app = web.Application(middlewares=[request_context_middleware])
    app.router.add_get("/ws/session/{session_id}/", socket_handler)
    caplog.handler.addFilter(ContextFilter())
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.WARNING, logger="tests.room"):
            ws = await client.ws_connect(
                f"/ws/session/{room}/", headers={"X-Request-ID": "room-req-1234"}
            )
            await ws.receive()
            await ws.close()
    lines = [r for r in caplog.records if r.name == "tests.room"]
    assert len(lines) == 2
    for record in lines:
        assert record.room_id == room  # type: ignore[attr-defined]
        assert record.request_id == "room-req-1234"  # type: ignore[attr-defined]


def test_json_lines_and_the_access_log_carry_the_ids(caplog: pytest.LogCaptureFixture) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you" and line["request_id"] == "-"
    assert line["room_id"] == "-" and line["level"] == "INFO"

    logger = logging.getLogger("aiohttp.access")
    access = RedactingAccessLogger(logger, "")
    request = make_mocked_request("GET", "/api/auth/user/?token=tok-secret-1")
    request[REQUEST_ID_KEY] = "acc-req-12345"
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    access.log(request, web.Response(text="ok"), 0.001)
    wait_for_access_log()
    (logged,) = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert logged.request_id == "acc-req-12345"  # type: ignore[attr-defined]
    assert "tok-secret-1" not in logged.getMessage()


def test_the_metrics_token_is_masked_for_admins(make_settings: Callable[..., Settings]) -> None:
    token = "t" * 40
    summary = make_settings(metrics={"token": token}).public_summary()
    assert summary["metrics"]["token"] == "********" and token not in str(summary)


async def test_readyz_says_full_when_the_sfu_takes_nobody_more(
    app_factory: Factory, make_settings: Callable[..., Settings]
) -> None:
    from web.health import add_readiness_check

    client = await app_factory(make_settings(sfu={"max_participants_per_server": 1}))
    sfu = client.app[SFU]
    room: Any = type("FakeRoom", (), {"closed": False, "participants": {1: object()}})()
    sfu.rooms["r"] = room
    try:
        body = await (await client.get("/readyz")).json()
        assert body["failed"] == ["sfu"] and body["checks"]["sfu"] == "full"
    finally:
        del sfu.rooms["r"]

    async def draining(app: web.Application) -> str | None:
        return "draining"

    add_readiness_check(client.app, "drain", draining)  # what a draining node would add
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["checks"]["drain"] == "draining"
