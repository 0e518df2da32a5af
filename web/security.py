"""Request identity, the session cookie, CSRF and Origin checks."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from config.settings import Settings
from control.models import User
from web.keys import PLATFORM

SESSION_COOKIE = "peerlearn_session"
CSRF_COOKIE = "peerlearn_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Per-request storage: who is signed in (set by the identity middleware, None when nobody
# is), this request's CSRF token, and a new one to set as a cookie. Read them through the
# accessors below.
USER_KEY: web.RequestKey[User | None] = web.RequestKey("user")
CSRF_TOKEN_KEY = web.RequestKey("csrf_token", str)
NEW_CSRF_COOKIE_KEY = web.RequestKey("csrf_set", str)


def current_user(request: web.Request) -> User | None:
    """The signed-in user of this request, or None (anonymous, or before identity ran)."""
    return request.get(USER_KEY)


def new_csrf_cookie(request: web.Request) -> str | None:
    """The CSRF token this request created, which the response must set as a cookie."""
    return request.get(NEW_CSRF_COOKIE_KEY)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def user_from_token(request: web.Request, token: str | None) -> User | None:
    if not token:
        return None
    platform = request.app[PLATFORM]
    claims = platform.tokens.verify(token)
    if claims is None:
        return None
    user = await platform.accounts.get_user(claims.user_id)
    return user if user is not None and user.is_active else None


async def resolve_user(request: web.Request) -> User | None:
    """The user behind the Bearer token, else behind the session cookie."""
    token = bearer_token(request)
    if token:
        return await user_from_token(request, token)
    return await user_from_token(request, request.cookies.get(SESSION_COOKIE))


def set_session_cookie(response: web.StreamResponse, settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.auth.token_ttl_minutes * 60,
        httponly=True,
        samesite="Lax",
        secure=settings.server.cookie_secure,
        path="/",
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: web.Request) -> str:
    """The double-submit token for this browser (created on first use)."""
    token = request.get(CSRF_TOKEN_KEY) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) < 20:
        token = secrets.token_urlsafe(32)
        request[NEW_CSRF_COOKIE_KEY] = token
    request[CSRF_TOKEN_KEY] = token
    return token


def csrf_valid(request: web.Request, submitted: str | None) -> bool:
    expected = request.cookies.get(CSRF_COOKIE)
    return bool(expected and submitted and hmac.compare_digest(expected, submitted))


def allowed_origins(request: web.Request, settings: Settings) -> set[str]:
    trusted = settings.server.trust_proxy_headers
    scheme = request.headers.get("X-Forwarded-Proto") if trusted else None
    own = f"{scheme or request.scheme}://{request.host}"
    origins = {own, *settings.server.allowed_origins}
    if settings.server.public_url:
        parts = urlsplit(settings.server.public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def origin_allowed(request: web.Request, settings: Settings) -> bool:
    """Browsers always send Origin on WebSocket upgrades and cross-site posts."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.rstrip("/") in allowed_origins(request, settings)
