"""Middlewares: errors in DESIGN.md's shape, identity, CSRF and security headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from control.errors import DomainError, Forbidden, RateLimited
from web.keys import SETTINGS
from web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    USER_KEY,
    bearer_token,
    csrf_valid,
    new_csrf_cookie,
    origin_allowed,
    resolve_user,
)
from web.uploads import leading_field

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CsrfFailed(Forbidden):
    code = "csrf_failed"


# Anonymous entry points act on nobody's session, so a session cookie the browser still holds
# (e.g. right after registering) must not block them; the Origin check still applies.
CSRF_TOKEN_EXEMPT_PATHS = frozenset(
    {
        "/api/auth/register/",
        "/api/auth/login/",
        "/api/auth/verify-email/",
        "/api/auth/password-reset/",
        "/api/auth/password-reset/confirm/",
    }
)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith("/api/")
        or request.path.startswith("/ws/")
        or ("application/json" in request.headers.get("Accept", "")
        and "text/html" not in request.headers.get("Accept", ""))
    )


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return web.json_response({"error": body}, status=status)


async def _page_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    from web.pages.render import render_error  # pages are optional for the API-only tests

    return await render_error(request, status, message)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        if wants_json(request):
            response = error_response(exc.status, exc.code, exc.message, exc.fields)
        else:
            response = await _page_error(request, exc.status, exc.message)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or (not wants_json(request) and exc.status not in (404, 403, 405)):
            raise
        message = exc.reason if exc.status != 404 else "no such resource"
        if wants_json(request):
            return error_response(exc.status, HTTP_CODES.get(exc.status, "error"), message)
        return await _page_error(request, exc.status, message)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json(request):
            return error_response(500, "internal_error", "something went wrong on our side")
        return await _page_error(request, 500, "Something went wrong on our side.")


@web.middleware
async def identity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[USER_KEY] = await resolve_user(request)
    return await handler(request)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Double-submit CSRF for cookie-authenticated and form requests; Origin must be ours.

    The token comes in the ``X-CSRF-Token`` header, else in the form's ``csrf_token`` field:
    the parsed body of a urlencoded form, the first part of a multipart one (read alone, so
    an upload is not buffered here; see ``web.uploads``). Bearer-token requests are exempt:
    browsers never attach that header by themselves.
    """
    if request.method not in SAFE_METHODS and not bearer_token(request):
        settings = request.app[SETTINGS]
        if not origin_allowed(request, settings):
            raise CsrfFailed("cross-origin request refused")
        ctype = request.content_type
        is_form = ctype in ("application/x-www-form-urlencoded", "multipart/form-data")
        exempt = request.path in CSRF_TOKEN_EXEMPT_PATHS and ctype == "application/json"
        if not exempt and (is_form or SESSION_COOKIE in request.cookies):
            submitted = request.headers.get(CSRF_HEADER)
            if submitted is None and ctype == "application/x-www-form-urlencoded":
                submitted = (await request.post()).get(CSRF_FIELD)  # type: ignore[assignment]
            elif submitted is None and ctype == "multipart/form-data":
                submitted = await leading_field(request, CSRF_FIELD)
            if not csrf_valid(request, submitted if isinstance(submitted, str) else None):
                raise CsrfFailed(
                    "missing or invalid CSRF token (the X-CSRF-Token header, or the first field "
                    "of the form); reload the page and try again"
                )
    response = await handler(request)
    return response


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    new_csrf = new_csrf_cookie(request)
    if new_csrf and not response.prepared:
        settings = request.app[SETTINGS]
        response.set_cookie(
            CSRF_COOKIE, new_csrf, samesite="Lax", secure=settings.server.cookie_secure, path="/"
        )
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response
