"""Jinja2 environment and the two rendering entry points used by every page handler.

``render`` adds the per-request globals (current user, CSRF token, unread count, flash
message) to the template context; ``render_error`` is what the error middleware calls for
HTML requests, so it must never fail itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from aiohttp import web
from markupsafe import Markup

from control.timezones import DEFAULT_ZONE, DISPLAY_FORMAT, format_local
from web.cache import CATALOGUE
from web.keys import PLATFORM, SETTINGS, TEMPLATES
from web.security import csrf_token, current_user

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
FLASH_COOKIE = "peerlearn_flash"
FLASH_KINDS = ("success", "info", "warning", "error")
FLASH_CONSUMED = web.RequestKey("flash_consumed", bool)  # the flash was shown: drop its cookie


def viewer_zone(context: Mapping[str, Any]) -> str:
    """The zone times are shown in: the signed-in user's (``users.timezone``), else UTC."""
    user = context.get("user")
    return str(getattr(user, "timezone", None) or DEFAULT_ZONE)


@jinja2.pass_context
def _fmt_dt(context: Mapping[str, Any], value: datetime | None, fmt: str = DISPLAY_FORMAT) -> str:
    """Text of an instant in the viewer's zone; the zone's abbreviation follows a time of day."""
    with_time = "%H" in fmt or "%I" in fmt
    return format_local(value, viewer_zone(context), fmt, label=with_time)


@jinja2.pass_context
def _time_tag(context: Mapping[str, Any], value: datetime | None) -> Markup:
    """A <time> element in the viewer's zone. For anonymous visitors (no zone known) the text
    is UTC and static/js/app.js rewrites it into the browser's local time."""
    if value is None:
        return Markup("")
    iso = value.astimezone(UTC).isoformat()
    text = _fmt_dt(context, value)
    if context.get("user") is None:
        return Markup('<time datetime="{}" data-local-time>{}</time>').format(iso, text)
    return Markup('<time datetime="{}" data-zone="{}">{}</time>').format(
        iso, viewer_zone(context), text
    )


def _amount(value: Decimal | float | int | None, currency: str = "USD") -> str:
    """A sum of money, zero included (``$0.00``): for earnings and totals."""
    amount = Decimal(str(value or 0))
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    text = f"{amount:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def _money(value: Decimal | float | int | None, currency: str = "USD") -> str:
    """A price: ``Free`` when it is zero."""
    if value is None:
        return ""
    return "Free" if Decimal(str(value)) == 0 else _amount(value, currency)


def _initials(name: str) -> str:
    parts = [p for p in (name or "?").replace("_", " ").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def build_environment(app: web.Application) -> jinja2.Environment:
    """The environment stored at ``app[TEMPLATES]``: autoescape on for every template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
        # Development re-reads an edited template; production compiles each once and never
        # asks the file system again (a stat per template and include per request).
        auto_reload=not app[SETTINGS].is_production,
    )

    urls: dict[tuple[str, int], str] = {}

    def static(path: str) -> str:
        # append_version=True on the static route gives cache-busting ?v= hashes. aiohttp
        # hashes the whole file on every url_for: kept by the file's mtime, it costs a stat.
        try:
            key = (path, (STATIC_DIR / path).stat().st_mtime_ns)
        except (OSError, ValueError):
            key = (path, 0)
        url = urls.get(key)
        if url is None:
            try:
                url = str(app.router["static"].url_for(filename=path))
            except (KeyError, ValueError):
                url = "/static/" + path
            urls[key] = url
        return url

    env.globals.update(static=static, now=lambda: datetime.now(UTC))
    env.filters.update(
        dt=_fmt_dt,
        time=_time_tag,
        money=_money,
        amount=_amount,
        initials=_initials,
        urlquote=lambda v: quote(str(v), safe=""),
    )
    return env


def pop_flash(request: web.Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition(":")
    request[FLASH_CONSUMED] = True
    return (kind if kind in FLASH_KINDS else "info", text[:300])


def set_flash(response: web.StreamResponse, kind: str, text: str) -> None:
    """A one-shot message shown on the next page (after a POST-redirect-GET)."""
    response.set_cookie(FLASH_COOKIE, quote(f"{kind}:{text[:300]}"), path="/", samesite="Lax")


LATEST_SHOWN = 6  # notifications in the header's menu (and the learner's overview)
LATEST_NOTIFICATIONS = web.RequestKey("latest_notifications", tuple[list[Any], int])


async def _header_notifications(request: web.Request, user: Any) -> tuple[list[Any], int]:
    """The user's newest notifications and unread count, read once a request, in one
    statement (the header, and a page that lists them too)."""
    header = request.get(LATEST_NOTIFICATIONS)
    if header is None:
        notifications = request.app[PLATFORM].notifications
        header = await notifications.latest_and_unread(user.id, LATEST_SHOWN)
        request[LATEST_NOTIFICATIONS] = header
    return header


async def latest_notifications(request: web.Request, user: Any) -> list[Any]:
    """The user's newest notifications (``LATEST_SHOWN``), the header's own."""
    return (await _header_notifications(request, user))[0]


async def _unread(request: web.Request, user: Any) -> tuple[int, list[Any]]:
    if user is None:
        return 0, []
    try:
        latest, unread = await _header_notifications(request, user)
        return unread, latest
    except Exception:  # the header must render even if notifications are broken
        log.exception("could not load notifications for the header")
        return 0, []


async def page_context(request: web.Request, context: dict[str, Any]) -> dict[str, Any]:
    user = current_user(request)
    unread, latest = await _unread(request, user)
    settings = request.app.get(SETTINGS)
    base = {
        "request": request,
        "user": user,
        "csrf_token": csrf_token(request),
        "unread_count": unread,
        "latest_notifications": latest,
        "flash": pop_flash(request),
        "currency": settings.payments.currency if settings else "USD",
        "path": request.path,
    }
    base.update(context)
    return base


def _finish(request: web.Request, response: web.Response) -> web.Response:
    if request.get(FLASH_CONSUMED):
        response.del_cookie(FLASH_COOKIE, path="/")
    # Pages show per-user data: keep them out of shared caches.
    response.headers["Cache-Control"] = "no-store"
    return response


async def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """Render ``template`` with the per-request globals into an HTML response."""
    env: jinja2.Environment = request.app[TEMPLATES]
    html = env.get_template(template).render(await page_context(request, context))
    return _finish(request, web.Response(text=html, status=status, content_type="text/html"))


#: Stands for the visitor's CSRF token in a shared rendering (``render_public``): as long and
#: of the same alphabet as a real token, drawn per process, so no page text can hold it.
CSRF_SLOT = secrets.token_urlsafe(32)
_CSRF_SLOT_BYTES = CSRF_SLOT.encode()


def shares_rendering(request: web.Request) -> bool:
    """Whether this request's page may come from the shared rendering: signed out (nothing
    personal on the page) and no flash message to show (a one-shot, per-browser text)."""
    return current_user(request) is None and not request.cookies.get(FLASH_COOKIE)


async def render_public(
    request: web.Request,
    template: str,
    key: Hashable,
    context: Callable[[], Awaitable[dict[str, Any]]],
) -> web.Response:
    """A public catalogue page (``key``: what its data depends on).

    Signed-out visitors get the bytes rendered once for all of them, kept in the catalogue
    cache (``web.cache``) with its invalidation; only their own CSRF token is put in per
    request (``CSRF_SLOT``). Signed-in viewers, a flash message, or the cache turned off:
    rendered for this request alone, as ``render`` does.
    """
    cache = request.app[CATALOGUE]
    if not cache.enabled or not shares_rendering(request):
        return await render(request, template, await context())

    async def load() -> bytes:
        env: jinja2.Environment = request.app[TEMPLATES]
        values = await page_context(request, await context())
        values["csrf_token"] = CSRF_SLOT
        return env.get_template(template).render(values).encode()

    shared = await cache.get_or_load(("html", template, request.path_qs, key), load)
    body = shared.replace(_CSRF_SLOT_BYTES, csrf_token(request).encode())
    response = web.Response(body=body, content_type="text/html", charset="utf-8")
    return _finish(request, response)


async def render_error(request: web.Request, status: int, message: str) -> web.Response:
    """The HTML error page; falls back to plain text if templates are not set up."""
    titles = {
        400: "Bad request",
        401: "Please log in",
        403: "Not allowed",
        404: "Page not found",
        405: "Method not allowed",
        409: "Conflict",
        429: "Too many attempts",
        500: "Server error",
    }
    title = titles.get(status, "Error")
    env = request.app.get(TEMPLATES)
    if env is not None:
        try:
            ctx = await page_context(
                request, {"status": status, "title": title, "message": message}
            )
            html = env.get_template("error.html").render(ctx)
            response = web.Response(text=html, status=status, content_type="text/html")
            return _finish(request, response)
        except Exception:
            log.exception("error page failed to render")
    return web.Response(text=f"{status} {title}: {message}", status=status)
