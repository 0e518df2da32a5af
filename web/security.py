"""Request identity (server-side sessions), the session cookie, CSRF, the client's address
behind trusted proxies, the Host allow-list and Origin checks, WebSocket authentication."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from config.settings import Settings
from control.models import User
from web.keys import PLATFORM, SETTINGS

if TYPE_CHECKING:
    from control.platform import Platform

SESSION_COOKIE = "peerlearn_session"
CSRF_COOKIE = "peerlearn_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: the single-use WebSocket ticket (``POST /api/auth/ws-ticket/``) travels in this parameter
TICKET_PARAM = "ticket"
#: WebSocket close code when the login behind a socket ends (logout, revocation, deactivation)
CLOSE_SIGNED_OUT = 4401
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Per-request storage: who is signed in and through which login session (set by the
# identity middleware, None when nobody is), this request's CSRF token, and a new one to
# set as a cookie. Read them through the accessors below.
USER_KEY: web.RequestKey[User | None] = web.RequestKey("user")
SID_KEY: web.RequestKey[str | None] = web.RequestKey("sid")
CSRF_TOKEN_KEY = web.RequestKey("csrf_token", str)
NEW_CSRF_COOKIE_KEY = web.RequestKey("csrf_set", str)


@dataclass(frozen=True)
class Identity:
    """A signed-in user and the server-side session (``sid``) the credential names."""

    user: User
    sid: str


def current_user(request: web.Request) -> User | None:
    """The signed-in user of this request, or None (anonymous, or before identity ran)."""
    return request.get(USER_KEY)


def current_session_id(request: web.Request) -> str | None:
    """The login session of this request's credential (None when anonymous)."""
    return request.get(SID_KEY)


def new_csrf_cookie(request: web.Request) -> str | None:
    """The CSRF token this request created, which the response must set as a cookie."""
    return request.get(NEW_CSRF_COOKIE_KEY)


# --------------------------------------------------------------------------- addresses


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(text: str | None, networks: tuple[Network, ...]) -> bool:
    address = _parse_ip(text or "")
    return address is not None and any(address in net for net in networks)


def _forwarded_hops(request: web.Request) -> list[str]:
    values = request.headers.getall("X-Forwarded-For", [])
    return [hop.strip() for value in values for hop in value.split(",") if hop.strip()]


def client_address(request: web.Request) -> str:
    """The caller's address: the peer, or, when the peer is a trusted proxy, the rightmost
    ``X-Forwarded-For`` hop that is not one (entries left of it are the client's to forge)."""
    remote = request.remote or "unknown"
    networks = request.app[SETTINGS].server.proxy_networks
    if not networks or not _trusted(remote, networks):
        return remote
    hops = _forwarded_hops(request)
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            return hop[:64]  # a malformed hop a trusted proxy passed on: it is the client's
        if not any(address in net for net in networks):
            return str(address)
    return str(_parse_ip(hops[0]) or remote) if hops else remote


def request_scheme(request: web.Request) -> str:
    """``X-Forwarded-Proto`` from a trusted proxy, else the connection's own scheme."""
    networks = request.app[SETTINGS].server.proxy_networks
    if networks and _trusted(request.remote, networks):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            return proto
    return request.scheme


def public_base_url(request: web.Request) -> str:
    """Where absolute links point (mails, ``.ics``, redirects): ``[server] public_url``.

    Production requires it; only development without one falls back to this request's own
    origin, so a forged Host can never reach a mail in production.
    """
    settings = request.app[SETTINGS]
    if settings.server.public_url:
        return settings.server.public_url
    return f"{request_scheme(request)}://{request.host}"


def allowed_hosts(settings: Settings) -> tuple[str, ...] | None:
    """Host names served, or None for "any" (development without public_url or a list)."""
    server = settings.server
    return _allowed_hosts(server.allowed_hosts, server.public_url, settings.is_production)


@lru_cache(maxsize=16)  # asked on every request; the settings do not change
def _allowed_hosts(
    listed: tuple[str, ...], public_url: str | None, production: bool
) -> tuple[str, ...] | None:
    hosts = list(listed)
    if public_url:
        hosts.append((urlsplit(public_url).hostname or "").lower())
    if not production and not listed:
        return None
    return tuple(h for h in hosts if h)


def host_allowed(request: web.Request) -> bool:
    hosts = allowed_hosts(request.app[SETTINGS])
    if hosts is None:
        return True
    try:
        name = (urlsplit(f"//{request.host}").hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    return any(
        name == host or (host.startswith(".") and (name.endswith(host) or name == host[1:]))
        for host in hosts
    )


def allowed_origins(request: web.Request, settings: Settings) -> set[str]:
    """Origins trusted for WebSockets and form posts: public_url's plus ``allowed_origins``;
    the request's own Host only stands in for public_url in development without one."""
    origins = set(settings.server.allowed_origins)
    if settings.server.public_url:
        parts = urlsplit(settings.server.public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    elif not settings.is_production:
        origins.add(f"{request_scheme(request)}://{request.host}")
    return origins


def origin_allowed(request: web.Request, settings: Settings) -> bool:
    """Browsers always send Origin on WebSocket upgrades and cross-site posts."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.rstrip("/") in allowed_origins(request, settings)


# --------------------------------------------------------------------------- identity


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def identity_from_token(app: web.Application, token: str | None) -> Identity | None:
    """Whom a signed access token names, if its login session is live and the user active.

    The signature is checked first (no I/O), then the session in the in-memory cache, then
    the user row.
    """
    if not token or len(token) > 4096:
        return None
    platform = app[PLATFORM]
    claims = platform.tokens.verify(token)
    if claims is None or claims.sid is None:
        return None
    if not await platform.accounts.logins.is_live(claims.sid, claims.user_id):
        return None
    return await _active_identity(platform, claims.user_id, claims.sid)


async def user_from_token(request: web.Request, token: str | None) -> User | None:
    identity = await identity_from_token(request.app, token)
    return identity.user if identity else None


async def resolve_identity(request: web.Request) -> Identity | None:
    """The Bearer token's identity, else the session cookie's (never a URL parameter)."""
    token = bearer_token(request)
    if token:
        return await identity_from_token(request.app, token)
    return await identity_from_token(request.app, request.cookies.get(SESSION_COOKIE))


async def resolve_user(request: web.Request) -> User | None:
    identity = await resolve_identity(request)
    return identity.user if identity else None


async def authenticate_socket(request: web.Request) -> Identity | None:
    """A WebSocket's identity: the ``Authorization`` header (non-browser clients), a
    single-use ``?ticket=`` (30 s, from ``POST /api/auth/ws-ticket/``), or the cookie.

    A ``?token=`` parameter is never read: URLs end up in logs and histories.
    """
    platform = request.app[PLATFORM]
    ticket = request.query.get(TICKET_PARAM)
    if bearer_token(request):
        return await resolve_identity(request)
    if ticket:
        redeemed = await platform.accounts.logins.redeem_ticket(ticket)
        if redeemed is None:
            return None
        return await _active_identity(platform, *redeemed)
    return await resolve_identity(request)


async def _active_identity(platform: Platform, user_id: int, sid: str) -> Identity | None:
    """The identity of a live session's user, if the account is still active."""
    user = await platform.accounts.get_user(user_id)
    return Identity(user, sid) if user is not None and user.is_active else None


async def start_session(request: web.Request, user: User) -> str:
    """A new server-side session for ``user`` signing in through this request; the token."""
    _, token = await request.app[PLATFORM].accounts.logins.start(
        user,
        ip=client_address(request),
        user_agent=request.headers.get("User-Agent", ""),
    )
    return token


# --------------------------------------------------------------------------- cookies and CSRF


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


def rotate_csrf(request: web.Request) -> str:
    """A fresh CSRF token at a change of identity (login, logout): one planted before the
    login is worthless after it."""
    token = secrets.token_urlsafe(32)
    request[NEW_CSRF_COOKIE_KEY] = token
    request[CSRF_TOKEN_KEY] = token
    return token


def set_csrf_cookie(response: web.StreamResponse, request: web.Request) -> None:
    """Put the CSRF token this request created on ``response`` (pages' redirects too)."""
    token = new_csrf_cookie(request)
    if token and not response.prepared:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            samesite="Lax",
            secure=request.app[SETTINGS].server.cookie_secure,
            path="/",
        )


def csrf_valid(request: web.Request, submitted: str | None) -> bool:
    expected = request.cookies.get(CSRF_COOKIE)
    return bool(expected and submitted and hmac.compare_digest(expected, submitted))
