"""``/readyz``: may this node take traffic? Its database, its Redis (when configured) and its
SFU each answer, within ``CHECK_TIMEOUT_S``; 503 with a JSON body naming what failed.

``/healthz`` (``web.app``) stays the liveness check. Other parts of the app add their own
readiness condition with ``add_readiness_check`` (a draining node, say, answers
``"draining"``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from web.keys import PLATFORM, SETTINGS, SFU

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
#: a check answers None when ready, else a short reason (``"full"``); raising is "unreachable"
Check = Callable[[web.Application], Awaitable[str | None]]
READINESS = web.AppKey("readiness_checks", dict[str, Check])
READY_REDIS = web.AppKey("readiness_redis", object)


def add_readiness_check(app: web.Application, name: str, check: Check) -> None:
    """``check(app)`` must answer None for ``/readyz`` to answer 200; a reason, an error or
    no answer within ``CHECK_TIMEOUT_S`` is reported under ``name``."""
    app[READINESS][name] = check


async def _database(app: web.Application) -> str | None:
    await app[PLATFORM].db.ping()
    return None


async def _redis(app: web.Application) -> str | None:
    client: Any = app[READY_REDIS]
    return None if await client.ping() else "no answer"


async def _sfu(app: web.Application) -> str | None:
    """The media plane runs (from the rooms' start-up context on) and takes participants: a
    node at ``[sfu] max_participants_per_server`` refuses every new one (``server_full``)."""
    sfu = app.get(SFU)
    if sfu is None:
        return "not started"
    present = sum(len(room.participants) for room in sfu.rooms.values() if not room.closed)
    return "full" if present >= sfu.config.max_participants_per_server else None


async def _run(app: web.Application, check: Check) -> str:
    try:
        problem = await asyncio.wait_for(check(app), CHECK_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
        return "unreachable"
    return problem or "ok"


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS]
    results = await asyncio.gather(*(_run(request.app, c) for c in checks.values()))
    answers = dict(zip(checks, results, strict=True))
    failed = [name for name, answer in answers.items() if answer != "ok"]
    body: dict[str, Any] = {"status": "unavailable" if failed else "ok", "checks": answers}
    if failed:
        body["failed"] = failed
    return web.json_response(body, status=503 if failed else 200)


def setup(app: web.Application) -> None:
    """``/readyz`` with the database, Redis (if ``[redis] url``) and SFU checks."""
    checks: dict[str, Check] = {"database": _database}
    app[READINESS] = checks
    url = app[SETTINGS].redis.url
    if url:
        checks["redis"] = _redis

        async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
            import redis.asyncio as redis

            # Its own client: the check asks whether Redis answers now, not whether the bus's
            # long-lived subscription still stands.
            client = redis.from_url(
                url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
            )
            app[READY_REDIS] = client
            yield
            await client.aclose()

        app.cleanup_ctx.append(redis_ctx)
    checks["sfu"] = _sfu
    app.router.add_get("/readyz", readyz)
