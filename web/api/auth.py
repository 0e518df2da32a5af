"""REST endpoints: registration, login/logout (server-side sessions), devices, WebSocket
tickets, current user, e-mail verification and change, password reset and change."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from control.errors import NotFound, RateLimited
from control.models import Role, User
from control.security import TICKET_TTL
from control.services.mail import MailFailed
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import Message, UserOut
from web.keys import PLATFORM, SETTINGS
from web.security import (
    clear_session_cookie,
    client_address,
    current_session_id,
    public_base_url,
    rotate_csrf,
    set_session_cookie,
    start_session,
)

log = logging.getLogger(__name__)
api = ApiRegistry()
TAGS = ["auth"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(_In):
    # Lengths here are coarse caps against abuse; the service gives the precise field errors.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "username": "ada_lovelace",
                    "email": "ada@example.org",
                    "password": "correct-horse-battery",
                    "role": "learner",
                }
            ]
        },
    )

    username: str = Field(min_length=1, max_length=300)
    email: str = Field(min_length=1, max_length=300)
    password: str = Field(min_length=1, max_length=1000)
    role: Literal[Role.LEARNER, Role.MENTOR]  # admins are made by the CLI, not registered
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)


class LoginIn(_In):
    """``username`` accepts a username or an e-mail address; ``email`` is an alias."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "ada@example.org", "password": "correct-horse-battery"}]
        },
    )

    username: str | None = Field(default=None, min_length=1, max_length=300)
    email: str | None = Field(default=None, min_length=1, max_length=300)
    password: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_login(self) -> LoginIn:
        if not (self.username or self.email):
            raise ValueError("give a username or an e-mail address")
        return self


class TokenOut(BaseModel):
    token: str
    user: UserOut


class TokenIn(_In):
    token: str = Field(min_length=1, max_length=200)


class ResetRequestIn(_In):
    email: str = Field(min_length=1, max_length=300)


class ResetConfirmIn(_In):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class PasswordChangeIn(_In):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


class EmailChangeIn(_In):
    password: str = Field(min_length=1, max_length=1000)
    email: str = Field(min_length=1, max_length=300)


class DeviceOut(BaseModel):
    """One signed-in device (a login session)."""

    id: str
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    current: bool


class TicketOut(BaseModel):
    ticket: str
    expires_in: int


#: what links in mails point to (public_url; the request's origin in development only)
base_url = public_base_url
#: the caller's address behind ``[server] trusted_proxies``
client_ip = client_address


async def rate_limit_ip(request: web.Request, action: str, limit: int) -> None:
    """At most ``limit`` of ``action`` an hour from the caller's address."""
    ip = client_address(request)
    retry = await request.app[PLATFORM].limiter.hit(f"{action}:ip:{ip}", limit, 3600)
    if retry:
        raise RateLimited("too many requests from your address; try again later", retry_after=retry)


async def _session_response(request: web.Request, user: User, status: int) -> web.Response:
    """Start a server-side session: the token in the body and the HttpOnly cookie, and a
    new CSRF token (one planted before the login is worthless after it)."""
    token = await start_session(request, user)
    response = web.json_response(
        TokenOut(token=token, user=UserOut.of(user)).model_dump(mode="json"), status=status
    )
    set_session_cookie(response, request.app[SETTINGS], token)
    rotate_csrf(request)
    return response


@api.route(
    "POST",
    "/api/auth/register/",
    body=RegisterIn,
    response=TokenOut,
    status=201,
    tags=TAGS,
    errors=[409, 429],
)
async def register(request: web.Request, call: ApiCall[RegisterIn, None]) -> web.Response:
    """Create a learner or mentor account and sign it in (a verification mail is sent)."""
    platform = request.app[PLATFORM]
    body = call.body
    await rate_limit_ip(request, "register", platform.settings.auth.register_max_per_ip_per_hour)
    user = await platform.accounts.register(
        username=body.username,
        email=body.email,
        password=body.password,
        role=body.role,
        first_name=body.first_name,
        last_name=body.last_name,
    )
    try:
        await platform.accounts.send_verification(user, base_url(request))
    except MailFailed:
        pass  # logged; the account exists and the user can ask for another mail
    return await _session_response(request, user, 201)


@api.route(
    "POST", "/api/auth/login/", body=LoginIn, response=TokenOut, tags=TAGS, errors=[401, 403, 429]
)
async def login(request: web.Request, call: ApiCall[LoginIn, None]) -> web.Response:
    """Username or e-mail + password → a JWT in the body and the HttpOnly session cookie."""
    platform = request.app[PLATFORM]
    body = call.body
    user = await platform.accounts.authenticate(
        body.username or body.email or "", body.password, ip=client_ip(request)
    )
    return await _session_response(request, user, 200)


@api.route("POST", "/api/auth/logout/", response=Message, tags=TAGS)
async def logout(request: web.Request, call: ApiCall[None, None]) -> web.Response:
    """End this session on the server: its cookie and its Bearer token stop working at once."""
    sid = current_session_id(request)
    if call.user is not None and sid:
        await request.app[PLATFORM].accounts.logins.revoke(call.user.id, sid, "logout")
    response = web.json_response(Message(message="logged out").model_dump())
    clear_session_cookie(response)
    rotate_csrf(request)
    return response


@api.route("POST", "/api/auth/logout-everywhere/", response=Message, auth="user", tags=TAGS)
async def logout_everywhere(request: web.Request, call: ApiCall[None, None]) -> web.Response:
    """End every session of the signed-in user, on every device (this one included)."""
    count = await request.app[PLATFORM].accounts.logins.revoke_all(call.me.id, "logout_everywhere")
    response = web.json_response(Message(message=f"{count} session(s) ended").model_dump())
    clear_session_cookie(response)
    rotate_csrf(request)
    return response


@api.route("GET", "/api/auth/sessions/", response=list[DeviceOut], auth="user", tags=TAGS)
async def devices(request: web.Request, call: ApiCall[None, None]) -> list[DeviceOut]:
    """The signed-in user's devices: live login sessions, most recently seen first."""
    current = current_session_id(request)
    rows = await request.app[PLATFORM].accounts.logins.for_user(call.me.id)
    return [
        DeviceOut(
            id=row.id,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            ip=row.ip,
            user_agent=row.user_agent,
            current=row.id == current,
        )
        for row in rows
    ]


@api.route(
    "DELETE",
    "/api/auth/sessions/{sid}/",
    response=Message,
    auth="user",
    tags=TAGS,
    errors=[404],
)
async def end_device(request: web.Request, call: ApiCall[None, None]) -> Message:
    """Sign one of your devices out."""
    sid = request.match_info["sid"][:64]
    if not await request.app[PLATFORM].accounts.logins.revoke(call.me.id, sid, "logout"):
        raise NotFound("no such live session of yours")
    return Message(message="that device is signed out")


@api.route("POST", "/api/auth/ws-ticket/", response=TicketOut, auth="user", tags=TAGS)
async def ws_ticket(request: web.Request, call: ApiCall[None, None]) -> TicketOut:
    """A single-use ticket, valid 30 s, to open a WebSocket as ``?ticket=`` (for clients that
    can set neither a cookie nor an ``Authorization`` header on the upgrade)."""
    sid = current_session_id(request)
    assert sid is not None  # auth="user" means a live session named the caller
    ticket = request.app[PLATFORM].accounts.logins.issue_ticket(call.me.id, sid)
    return TicketOut(ticket=ticket, expires_in=int(TICKET_TTL.total_seconds()))


@api.route(
    "POST",
    "/api/auth/password/change/",
    body=PasswordChangeIn,
    response=TokenOut,
    auth="user",
    tags=TAGS,
    errors=[429],
)
async def password_change(
    request: web.Request, call: ApiCall[PasswordChangeIn, None]
) -> web.Response:
    """Change the password (the current one is required). Every session ends; this device
    gets a new one in the answer (token and cookie)."""
    user = await request.app[PLATFORM].accounts.change_password(
        call.me, call.body.current_password, call.body.new_password, ip=client_ip(request)
    )
    return await _session_response(request, user, 200)


@api.route(
    "POST",
    "/api/auth/email/change/",
    body=EmailChangeIn,
    response=Message,
    auth="user",
    tags=TAGS,
    errors=[409, 429, 503],
)
async def email_change(request: web.Request, call: ApiCall[EmailChangeIn, None]) -> Message:
    """Ask to move the account to another address (the password is required): a link goes
    to the new address, and nothing changes until it is opened."""
    platform = request.app[PLATFORM]
    await rate_limit_ip(request, "mail", platform.settings.auth.mail_max_per_ip_per_hour)
    email = await platform.accounts.request_email_change(
        call.me, call.body.password, call.body.email, base_url(request), ip=client_ip(request)
    )
    return Message(message=f"a confirmation link was sent to {email}")


@api.route(
    "POST",
    "/api/auth/email/change/confirm/",
    body=TokenIn,
    response=UserOut,
    tags=TAGS,
    errors=[409],
)
async def email_change_confirm(request: web.Request, call: ApiCall[TokenIn, None]) -> UserOut:
    """Apply the address change with the token from the mail (works once)."""
    user = await request.app[PLATFORM].accounts.confirm_email_change(call.body.token)
    return UserOut.of(user)


@api.route("GET", "/api/auth/user/", response=UserOut, auth="user", tags=TAGS)
async def current_user(request: web.Request, call: ApiCall[None, None]) -> UserOut:
    """The signed-in user."""
    return UserOut.of(call.me)


@api.route(
    "POST",
    "/api/auth/verify-email/request/",
    response=Message,
    auth="user",
    tags=TAGS,
    errors=[409, 429, 503],
)
async def request_verification(request: web.Request, call: ApiCall[None, None]) -> Message:
    """Send (again) the e-mail verification link to the signed-in user."""
    platform = request.app[PLATFORM]
    retry = await platform.limiter.hit(f"verify-mail:{call.me.id}", 5, 3600)
    if retry:
        raise RateLimited("too many verification mails; try again later", retry_after=retry)
    await rate_limit_ip(request, "mail", platform.settings.auth.mail_max_per_ip_per_hour)
    await platform.accounts.send_verification(call.me, base_url(request))
    return Message(message=f"a verification link was sent to {call.me.email}")


@api.route("POST", "/api/auth/verify-email/", body=TokenIn, response=UserOut, tags=TAGS)
async def verify_email(request: web.Request, call: ApiCall[TokenIn, None]) -> UserOut:
    """Confirm the e-mail address with the token from the mail (works once)."""
    user = await request.app[PLATFORM].accounts.verify_email(call.body.token)
    return UserOut.of(user)


@api.route(
    "POST",
    "/api/auth/password-reset/",
    body=ResetRequestIn,
    response=Message,
    tags=TAGS,
    errors=[429],
)
async def password_reset(request: web.Request, call: ApiCall[ResetRequestIn, None]) -> Message:
    """Mail a reset link; the answer is the same whether or not the address is known."""
    platform = request.app[PLATFORM]
    await rate_limit_ip(request, "mail", platform.settings.auth.mail_max_per_ip_per_hour)
    await platform.accounts.request_password_reset(call.body.email, base_url(request))
    return Message(message="if an account uses this address, a reset link is on its way")


@api.route(
    "POST", "/api/auth/password-reset/confirm/", body=ResetConfirmIn, response=Message, tags=TAGS
)
async def password_reset_confirm(
    request: web.Request, call: ApiCall[ResetConfirmIn, None]
) -> Message:
    """Set a new password with the token from the reset mail (works once); every session
    of the account ends."""
    await request.app[PLATFORM].accounts.reset_password(call.body.token, call.body.password)
    return Message(message="password changed; you can log in now")
