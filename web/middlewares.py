"""Middlewares: the request's context (id, room, latency), errors in DESIGN.md's shape, the
Host allow-list, identity, CSRF, security headers; and the access logger that never prints a
credential."""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import queue
import re
import threading
import time
from collections.abc import Awaitable, Callable
from logging.handlers import QueueHandler, QueueListener
from urllib.parse import parse_qsl, quote, urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from control.errors import DomainError, Forbidden, RateLimited
from web import metrics
from web.keys import SETTINGS
from web.logcontext import REQUEST_ID, REQUEST_ID_HEADER, ROOM_ID, request_id_from
from web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    SID_KEY,
    USER_KEY,
    bearer_token,
    client_address,
    csrf_valid,
    current_user,
    host_allowed,
    origin_allowed,
    resolve_identity,
    set_csrf_cookie,
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
        "/api/auth/email/change/confirm/",
    }
)
#: what the browser may use, and only on our own origin: the room needs camera, microphone
#: and screen capture; nothing needs the rest
PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), "
    "usb=(), serial=(), bluetooth=(), interest-cohort=()"
)
HSTS = "max-age=31536000; includeSubDomains"
#: paths whose bodies are public and cacheable whoever asks
CACHEABLE_PREFIXES = ("/static/", "/media/")
#: /healthz and /readyz answer load balancers and container checks, /metrics the scraper:
#: they use the node's own address
HOST_EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: request keys: the request's id (echoed as X-Request-ID, stamped on its log lines)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
ROOM_ID_KEY = web.RequestKey("room_id", str)
#: the routes whose ``session_id`` is a room's id (its WebSocket, for the room's whole life)
ROOM_PREFIX = "/ws/session/"
ROOM_ID_MAX = 64
#: the latency label of a request its client abandoned (nginx's 499)
CLIENT_CLOSED = 499

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
        or (
            "application/json" in request.headers.get("Accept", "")
            and "text/html" not in request.headers.get("Accept", "")
        )
    )


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return web.json_response({"error": body}, status=status)


async def _page_error(request: web.Request, status: int, message: str) -> web.Response:
    from web.pages.render import render_error  # pages are optional for the API-only tests

    return await render_error(request, status, message)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: the request id (the caller's sane ``X-Request-ID`` or a new one) and the
    room id set for every log line the request causes, and its latency by route pattern."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    id_token = REQUEST_ID.set(request_id)
    room_token = None
    room = request.match_info.get("session_id")
    if room and request.path.startswith(ROOM_PREFIX) and len(room) <= ROOM_ID_MAX:
        request[ROOM_ID_KEY] = room
        room_token = ROOM_ID.set(room)
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client went away mid-request: not a server error
        raise
    finally:
        if not isinstance(response, web.WebSocketResponse):  # a socket's life is no latency
            metrics.observe_request(request, status, time.perf_counter() - started)
        if room_token is not None:
            ROOM_ID.reset(room_token)
        REQUEST_ID.reset(id_token)


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer (pages, errors, redirects, sockets) echoes it."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


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
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a Host that is not ours (Django's ALLOWED_HOSTS): nothing built from a forged
    Host (links, redirects, cache keys) can then reach anyone."""
    if request.path not in HOST_EXEMPT_PATHS and not host_allowed(request):
        log.warning(
            "refused a request for Host %.100r from %s", request.host, client_address(request)
        )
        return error_response(400, "bad_host", "this server does not serve that host name")
    return await handler(request)


@web.middleware
async def identity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    identity = await resolve_identity(request)
    request[USER_KEY] = identity.user if identity else None
    request[SID_KEY] = identity.sid if identity else None
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
                field = (await request.post()).get(CSRF_FIELD)  # a file is no token
                submitted = field if isinstance(field, str) else None
            elif submitted is None and ctype == "multipart/form-data":
                submitted = await leading_field(request, CSRF_FIELD)
            if not csrf_valid(request, submitted):
                raise CsrfFailed(
                    "missing or invalid CSRF token (the X-CSRF-Token header, or the first field "
                    "of the form); reload the page and try again"
                )
    return await handler(request)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects raised by pages get the headers too
        _secure(request, exc)
        raise
    _secure(request, response)
    return _conditional(request, response)


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:
        return
    set_csrf_cookie(response, request)
    headers = response.headers
    headers["Server"] = "PeerLearn"  # not aiohttp's "Python/3.x aiohttp/3.x" (ASVS 14.3.3)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if request.app[SETTINGS].server.cookie_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    personal = current_user(request) is not None or request.path.startswith("/api/auth/")
    if personal and not request.path.startswith(CACHEABLE_PREFIXES):
        # Someone's own data, or a credential: never kept by a browser or a shared cache.
        headers["Cache-Control"] = "no-store"
        headers.setdefault("Pragma", "no-cache")
    elif request.path.startswith("/static/") and "v" in request.query:
        # append_version names the file by its content hash: that URL never changes meaning.
        headers["Cache-Control"] = STATIC_IMMUTABLE
    elif (body := _public_catalogue(request, response)) is not None:
        # The same bytes for every signed-out caller: kept, and revalidated by ETag each time
        # (seats left change with any booking); a cookie or a token makes another answer.
        headers["ETag"] = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        headers["Cache-Control"] = PUBLIC_REVALIDATE
        headers["Vary"] = "Cookie, Authorization"


STATIC_IMMUTABLE = "public, max-age=31536000, immutable"
PUBLIC_REVALIDATE = "public, no-cache"
#: the public catalogue's JSON: the listing and a session's detail
PUBLIC_API = re.compile(r"^/api/sessions/(?:[0-9a-fA-F-]{32,36}/)?$")


def _public_catalogue(request: web.Request, response: web.StreamResponse) -> bytes | None:
    """The body of a signed-out caller's catalogue answer (None: not one)."""
    if (
        request.method not in ("GET", "HEAD")
        or response.status != 200
        or PUBLIC_API.match(request.path) is None
        or not isinstance(response, web.Response)
        or response.cookies
        or "Set-Cookie" in response.headers
    ):
        return None
    body = response.body
    return body if isinstance(body, bytes) else None


def _conditional(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """``304 Not Modified`` when the caller already holds this ETag."""
    etag = response.headers.get("ETag")
    if etag is None or response.status != 200:
        return response
    wanted = request.headers.get("If-None-Match", "")
    if etag not in (tag.strip() for tag in wanted.split(",")):
        return response
    kept = ("ETag", "Cache-Control", "Vary", "Server", "X-Content-Type-Options")
    return web.Response(status=304, headers={k: response.headers[k] for k in kept})


# --------------------------------------------------------------------------- access log

#: query parameters whose values are credentials or one-time secrets
SECRET_PARAMS = re.compile(
    r"(token|ticket|password|passwd|secret|key|code|sid|session|csrf|auth|signature)", re.I
)
REDACTED = "[redacted]"


def redact_url(url: str) -> str:
    """``url`` with every credential-like query value replaced (path and names kept)."""
    if "?" not in url:
        return url
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not pairs and parts.query:
        return f"{url.split('?', 1)[0]}?{REDACTED}"
    query = "&".join(
        f"{quote(k, safe='')}={REDACTED if SECRET_PARAMS.search(k) else quote(v, safe='')}"
        for k, v in pairs
    )
    base = url.split("?", 1)[0]
    return f"{base}?{query}"


class _Forward(logging.Handler):
    """The writer thread's end: hands each record to the logger it was meant for."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        record.name = self.target.name
        self.target.handle(record)


class _Writer:
    """One thread per logger that writes its access-log lines: a full pipe or a slow disk
    stalls that thread, never the event loop."""

    def __init__(self, target: logging.Logger) -> None:
        self.queue: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=100_000)
        self.front = logging.Logger(f"{target.name}.queued")  # outside the logger tree
        self.front.addHandler(QueueHandler(self.queue))
        self.listener = QueueListener(self.queue, _Forward(target))
        self.listener.start()
        atexit.register(self.listener.stop)  # the last lines are written, not dropped


_writers: dict[str, _Writer] = {}
_writers_lock = threading.Lock()


def _writer_for(target: logging.Logger) -> _Writer:
    with _writers_lock:
        if target.name not in _writers:
            _writers[target.name] = _Writer(target)
        return _writers[target.name]


def wait_for_access_log() -> None:
    """Block until every queued access-log line is written (tests, shutdown)."""
    for writer in list(_writers.values()):
        writer.queue.join()


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log line, with credentials taken out of the request line and the
    Referer; headers that carry them (Authorization, Cookie) are never printed. The line is
    made on the loop and written by a thread (``_Writer``)."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._out = _writer_for(logger).front

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        try:
            remote = request.remote or "-"
            version = f"{request.version.major}.{request.version.minor}"
            line = f"{request.method} {redact_url(request.path_qs)} HTTP/{version}"
            referer = redact_url(request.headers.get("Referer", "-"))
            agent = request.headers.get("User-Agent", "-")
            # Written by another thread: the context variables are not there, the request is.
            ids = {"request_id": request.get(REQUEST_ID_KEY), "room_id": request.get(ROOM_ID_KEY)}
            self._out.info(
                '%s "%s" %s %s %.3fs "%s" "%s"',
                remote,
                line,
                response.status,
                response.body_length,
                time,
                referer,
                agent,
                extra=ids,
            )
        except Exception:
            self.logger.exception("access log failed")
