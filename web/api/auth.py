"""REST endpoints: registration, login/logout, current user, e-mail verification, reset."""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from control.errors import RateLimited
from control.services.mail import MailFailed
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import Message, UserOut
from web.keys import PLATFORM, SETTINGS
from web.security import clear_session_cookie, csrf_token, set_session_cookie

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
    role: Literal["learner", "mentor"]
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


def base_url(request: web.Request) -> str:
    """Where links in e-mails point: the configured public URL, else this request's origin."""
    settings = request.app[SETTINGS]
    if settings.server.public_url:
        return settings.server.public_url
    scheme = request.scheme
    if settings.server.trust_proxy_headers:
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
    return f"{scheme}://{request.host}"


def client_ip(request: web.Request) -> str:
    """The caller's address (the proxy's ``X-Forwarded-For`` only when trusted)."""
    if request.app[SETTINGS].server.trust_proxy_headers:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote or "unknown"


def _session_response(request: web.Request, token: str, out: UserOut, status: int) -> web.Response:
    response = web.json_response(
        TokenOut(token=token, user=out).model_dump(mode="json"), status=status
    )
    set_session_cookie(response, request.app[SETTINGS], token)
    csrf_token(request)  # make sure the page scripts get a CSRF cookie alongside the session
    return response


@api.route(
    "POST",
    "/api/auth/register/",
    body=RegisterIn,
    response=TokenOut,
    status=201,
    tags=TAGS,
    errors=[409],
)
async def register(request: web.Request, call: ApiCall[RegisterIn, None]) -> web.Response:
    """Create a learner or mentor account and sign it in (a verification mail is sent)."""
    platform = request.app[PLATFORM]
    body = call.body
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
    token = platform.tokens.issue(user.id, user.role)
    return _session_response(request, token, UserOut.of(user), 201)


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
    token = platform.tokens.issue(user.id, user.role)
    return _session_response(request, token, UserOut.of(user), 200)


@api.route("POST", "/api/auth/logout/", response=Message, tags=TAGS)
async def logout(request: web.Request, call: ApiCall[None, None]) -> web.Response:
    """End the cookie session (a Bearer token simply stops being sent by its holder)."""
    response = web.json_response(Message(message="logged out").model_dump())
    clear_session_cookie(response)
    return response


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
    await platform.accounts.send_verification(call.me, base_url(request))
    return Message(message=f"a verification link was sent to {call.me.email}")


@api.route("POST", "/api/auth/verify-email/", body=TokenIn, response=UserOut, tags=TAGS)
async def verify_email(request: web.Request, call: ApiCall[TokenIn, None]) -> UserOut:
    """Confirm the e-mail address with the token from the mail (works once)."""
    user = await request.app[PLATFORM].accounts.verify_email(call.body.token)
    return UserOut.of(user)


@api.route("POST", "/api/auth/password-reset/", body=ResetRequestIn, response=Message, tags=TAGS)
async def password_reset(request: web.Request, call: ApiCall[ResetRequestIn, None]) -> Message:
    """Mail a reset link; the answer is the same whether or not the address is known."""
    await request.app[PLATFORM].accounts.request_password_reset(call.body.email, base_url(request))
    return Message(message="if an account uses this address, a reset link is on its way")


@api.route(
    "POST", "/api/auth/password-reset/confirm/", body=ResetConfirmIn, response=Message, tags=TAGS
)
async def password_reset_confirm(
    request: web.Request, call: ApiCall[ResetConfirmIn, None]
) -> Message:
    """Set a new password with the token from the reset mail (works once)."""
    await request.app[PLATFORM].accounts.reset_password(call.body.token, call.body.password)
    return Message(message="password changed; you can log in now")
