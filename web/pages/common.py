"""Helpers shared by page handlers: access guards, redirects, form parsing, flash messages."""

from __future__ import annotations

import uuid
from typing import NoReturn
from urllib.parse import quote, urlsplit

from aiohttp import web

from control.errors import Forbidden, NotFound
from control.models import User
from control.platform import Platform
from web.keys import PLATFORM
from web.pages.render import set_flash
from web.security import current_user


def platform_of(request: web.Request) -> Platform:
    return request.app[PLATFORM]


def login_redirect(request: web.Request) -> NoReturn:
    target = request.path_qs if request.method == "GET" else "/dashboard/"
    raise web.HTTPFound("/auth/login/?next=" + quote(target, safe="/"))


def require_user(request: web.Request, *roles: str) -> User:
    """The signed-in user (else a redirect to the login page); 403 if the role is wrong.

    Admins pass every role check only when ``"admin"`` is listed: admin pages and the
    learner/mentor ones are different views, not a hierarchy.
    """
    user: User | None = current_user(request)
    if user is None:
        login_redirect(request)
    if roles and user.role not in roles:
        raise Forbidden(f"this page is for {' or '.join(roles)} accounts")
    return user


def safe_next(value: str | None, default: str = "/dashboard/") -> str:
    """Only same-site relative paths: never redirect off the app (open-redirect guard)."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value:
        return default
    return value


def redirect(location: str, flash: tuple[str, str] | None = None) -> web.HTTPFound:
    """A 302 (to be raised or returned) carrying an optional one-shot flash message."""
    response = web.HTTPFound(location)
    if flash:
        set_flash(response, *flash)
    return response


def parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("no such session") from None


def parse_int(value: str, what: str = "item") -> int:
    try:
        return int(value)
    except ValueError:
        raise NotFound(f"no such {what}") from None


async def form_data(request: web.Request) -> dict[str, str]:
    """The posted form as plain strings (file parts are skipped)."""
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def split_list(text: str) -> list[str]:
    """Comma-separated input into a clean list without duplicates (order kept)."""
    seen: dict[str, None] = {}
    for item in text.split(","):
        item = " ".join(item.split())
        if item and item.lower() not in (k.lower() for k in seen):
            seen[item] = None
    return list(seen)


def query_int(request: web.Request, name: str, default: int = 1, *, lo: int = 1) -> int:
    try:
        return max(lo, int(request.query.get(name, default)))
    except ValueError:
        return default


def field_errors(fields: dict[str, str]) -> dict[str, str]:
    """Map service/validation field names (``body.schedule``) onto form input names."""
    out: dict[str, str] = {}
    for key, message in fields.items():
        name = key.split(".")[-1] if key.startswith(("body.", "query.")) else key
        out.setdefault(name, message)
    return out
