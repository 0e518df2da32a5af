"""``/readyz``: may this node take traffic? Its database, its Redis (when configured) and its
SFU each answer, within ``CHECK_TIMEOUT_S``; 503 with a JSON body naming what failed.

``/healthz`` (``web.app``) stays the liveness check. Other parts of the app add their own
readiness condition with ``add_readiness_check`` (a draining node, say, answers False).
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
Check = Callable[[web.Application], Awaitable[bool]]
READINESS = web.AppKey("readiness_checks", dict[str, Check])
READY_REDIS = web.AppKey("readiness_redis", object)


def add_readiness_check(app: web.Application, name: str, check: Check) -> None:
    """``check(app)`` must be True for ``/readyz`` to answer 200; False or an error is
    reported under ``name``."""
    app[READINESS][name] = check


async def _database(app: web.Application) -> bool:
    await app[PLATFORM].db.ping()
    return True


async def _redis(app: web.Application) -> bool:
    client: Any = app[READY_REDIS]
    return bool(await client.ping())


async def _sfu(app: web.Application) -> bool:
    # The SFU exists once the rooms' start-up context ran, and is gone after their cleanup.
    return app.get(SFU) is not None


async def _run(app: web.Application, check: Check) -> str:
    try:
        ok = await asyncio.wait_for(check(app), CHECK_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
        return "unreachable"
    return "ok" if ok else "not ready"


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
