"""The application factory: ``create_app(settings)`` wires every plane into one aiohttp app."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from config.settings import Settings
from control.db import DatabaseNotMigrated
from control.events import CATALOG_CHANNEL
from control.platform import Platform
from web import health, metrics, recommendations
from web.api import MODULES as API_MODULES
from web.api.registry import ApiRegistry, build_openapi
from web.cache import CATALOGUE, CatalogueCache
from web.keys import BACKGROUND, OPENAPI, PLATFORM, SETTINGS
from web.middlewares import (
    csrf_middleware,
    error_middleware,
    headers_middleware,
    host_middleware,
    identity_middleware,
    request_context_middleware,
    send_request_id,
)

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
API_VERSION = "1.0.0"

# Each module exposes ``api: ApiRegistry``; order only affects the OpenAPI listing.
# Each module exposes ``setup(app)``: routes, and cleanup contexts for what it owns. Not the
# recommender: ``web.keys`` imports its key from ``web.recommendations``, which therefore
# reads no app keys and is handed what it needs in ``create_app``.
FEATURE_MODULES = (
    "web.notifications_ws",
    "web.rooms",
    "web.pages",
)


async def _platform_ctx(app: web.Application) -> AsyncIterator[None]:
    platform = app[PLATFORM]
    try:
        await platform.db.prepare(production=app[SETTINGS].is_production)
    except DatabaseNotMigrated:
        await platform.db.dispose()
        raise
    await platform.start(background=app[BACKGROUND])
    # Subscribed before the first request: every catalogue change on any node empties it.
    unsubscribe = platform.bus.subscribe(CATALOG_CHANNEL, app[CATALOGUE].on_catalog_change)
    yield
    unsubscribe()
    await platform.close()


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


async def healthz(request: web.Request) -> web.Response:
    """Liveness and database reachability, for container health checks and load balancers.

    A cheap ``SELECT 1``: the schema was checked (or migrated) once at start-up.
    """
    try:
        await request.app[PLATFORM].db.ping()
    except Exception:
        log.warning("health check: database unreachable", exc_info=True)
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


def create_app(
    settings: Settings,
    *,
    platform: Platform | None = None,
    background: bool = True,
    catalogue_cache: bool | None = None,
) -> web.Application:
    """Build the app.

    ``background=False`` keeps every self-running loop off (reminders, payment holds, ending
    overdue sessions, the recommender's fits): tests drive them. Feature modules read the
    flag as ``app[BACKGROUND]``. ``catalogue_cache`` turns the public catalogue cache
    (``web.cache``) on or off; by default ``[server] catalogue_cache`` says.
    """
    app = web.Application(
        middlewares=[
            request_context_middleware,
            headers_middleware,
            error_middleware,
            host_middleware,
            identity_middleware,
            csrf_middleware,
        ],
        client_max_size=settings.uploads.max_image_bytes + 64 * 1024,
    )
    platform = platform or Platform(settings)
    app[SETTINGS] = settings
    app[PLATFORM] = platform
    app[BACKGROUND] = background
    if catalogue_cache is None:
        catalogue_cache = settings.server.catalogue_cache
    app[CATALOGUE] = CatalogueCache(
        enabled=catalogue_cache, ttl=settings.server.catalogue_cache_seconds
    )
    app.cleanup_ctx.append(_platform_ctx)
    recommendations.setup(app, platform, settings.recommender, background=background)

    combined = ApiRegistry()
    for name in API_MODULES:
        registry: ApiRegistry = importlib.import_module(name).api
        registry.add_to(app)
        combined.endpoints.extend(registry.endpoints)
    app[OPENAPI] = build_openapi(combined, title="PeerLearn API", version=API_VERSION)
    app.router.add_get("/api/openapi.json", openapi_document)
    app.router.add_get("/healthz", healthz)
    health.setup(app)
    metrics.setup(app)
    app.on_response_prepare.append(send_request_id)

    for name in FEATURE_MODULES:
        importlib.import_module(name).setup(app)

    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    media_dir = settings.server.data_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    app.router.add_static("/media/", media_dir, name="media")
    return app
