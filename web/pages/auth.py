"""Authentication pages: register, login, logout, password reset, e-mail verification, and
the account's security page (password and e-mail change, devices, log out everywhere)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from control.errors import Conflict, DomainError, NotAuthenticated, RateLimited, ValidationFailed
from control.models import Role, User
from web.keys import SETTINGS
from web.pages.common import (
    field_errors,
    form_data,
    platform_of,
    redirect,
    require_user,
    safe_next,
)
from web.pages.render import render, set_flash
from web.security import (
    clear_session_cookie,
    client_address,
    current_session_id,
    current_user,
    public_base_url,
    rotate_csrf,
    set_session_cookie,
    start_session,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

ROLES = (Role.LEARNER, Role.MENTOR)  # who may sign up (admins are created from the command line)


#: where links in mails point (``[server] public_url``; see ``web.security``)
base_url = public_base_url
client_ip = client_address


async def ip_limited(request: web.Request, action: str, limit: int) -> str | None:
    """A message when the caller's address did ``action`` ``limit`` times this hour."""
    retry = await platform_of(request).limiter.hit(
        f"{action}:ip:{client_address(request)}", limit, 3600
    )
    return "Too many requests from your address; try again later." if retry else None


async def signed_in(request: web.Request, user: User, location: str) -> web.HTTPFound:
    """Redirect that carries a new server-side session's cookie and a fresh CSRF token
    (every role lands on /dashboard/)."""
    token = await start_session(request, user)
    response = redirect(location)
    set_session_cookie(response, request.app[SETTINGS], token)
    rotate_csrf(request)  # the headers middleware sets it on this redirect
    return response


@routes.view("/auth/login/")
class LoginView(web.View):
    async def get(self) -> web.StreamResponse:
        if current_user(self.request) is not None:
            raise redirect(safe_next(self.request.query.get("next")))
        return await render(
            self.request,
            "auth/login.html",
            {"values": {}, "errors": {}, "next": safe_next(self.request.query.get("next"), "")},
        )

    async def post(self) -> web.StreamResponse:
        request = self.request
        data = await form_data(request)
        login = data.get("login", "").strip()
        password = data.get("password", "")
        nxt = safe_next(data.get("next"), "")
        errors: dict[str, str] = {}
        if not login:
            errors["login"] = "Enter your username or e-mail."
        if not password:
            errors["password"] = "Enter your password."
        message = ""
        status = 400
        if not errors:
            try:
                user = await platform_of(request).accounts.authenticate(
                    login, password, ip=client_ip(request)
                )
            except RateLimited as exc:
                message = exc.message or "Too many attempts; try again later."
                status = 429
            except (NotAuthenticated, ValidationFailed, DomainError) as exc:
                message = exc.message or "Wrong username/e-mail or password."
                status = 401 if isinstance(exc, NotAuthenticated) else exc.status
            else:
                raise await signed_in(request, user, nxt or "/dashboard/")
        response = await render(
            request,
            "auth/login.html",
            {"values": {"login": login}, "errors": errors, "message": message, "next": nxt},
            status=status,
        )
        return response


@routes.view("/auth/register/")
class RegisterView(web.View):
    async def get(self) -> web.StreamResponse:
        role = self.request.query.get("role", Role.LEARNER)
        values = {"role": role if role in ROLES else Role.LEARNER}
        return await render(self.request, "auth/register.html", {"values": values, "errors": {}})

    async def post(self) -> web.StreamResponse:
        request = self.request
        data = await form_data(request)
        values = {
            k: data.get(k, "").strip()
            for k in ("username", "email", "first_name", "last_name", "role")
        }
        password, confirm = data.get("password", ""), data.get("password_confirm", "")
        errors: dict[str, str] = {}
        if values["role"] not in ROLES:
            errors["role"] = "Choose learner or mentor."
        if password != confirm:
            errors["password_confirm"] = "The two passwords differ."
        for key in ("username", "email"):
            if not values[key]:
                errors[key] = "This field is required."
        if not password:
            errors["password"] = "Choose a password."
        message = ""
        limits = request.app[SETTINGS].auth
        if not errors and (
            limited := await ip_limited(request, "register", limits.register_max_per_ip_per_hour)
        ):
            return await render(
                request,
                "auth/register.html",
                {"values": values, "errors": {}, "message": limited},
                status=429,
            )
        if not errors:
            platform = platform_of(request)
            try:
                user = await platform.accounts.register(
                    username=values["username"],
                    email=values["email"],
                    password=password,
                    role=values["role"],
                    first_name=values["first_name"],
                    last_name=values["last_name"],
                )
            except (ValidationFailed, Conflict) as exc:
                errors = field_errors(exc.fields)
                message = exc.message if not errors else ""
            else:
                try:
                    await platform.accounts.send_verification(user, base_url(request))
                except Exception:  # mail trouble must not lose the new account
                    log.exception("could not send the verification e-mail")
                response = await signed_in(request, user, "/dashboard/")
                set_flash(
                    response,
                    "success",
                    f"Welcome to PeerLearn, {user.display_name}! Check your e-mail to "
                    "verify your address.",
                )
                raise response
        return await render(
            request,
            "auth/register.html",
            {"values": values, "errors": errors, "message": message},
            status=400,
        )


@routes.post("/auth/logout/")
async def logout(request: web.Request) -> web.StreamResponse:
    """End this browser's session on the server (its cookie is dead even if kept)."""
    user, sid = current_user(request), current_session_id(request)
    if user is not None and sid:
        await platform_of(request).accounts.logins.revoke(user.id, sid, "logout")
    response = redirect("/", ("info", "You are logged out."))
    clear_session_cookie(response)
    rotate_csrf(request)
    raise response


@routes.view("/auth/password-reset/")
class PasswordResetView(web.View):
    async def get(self) -> web.StreamResponse:
        return await render(
            self.request, "auth/password_reset.html", {"values": {}, "errors": {}, "sent": False}
        )

    async def post(self) -> web.StreamResponse:
        request = self.request
        data = await form_data(request)
        email = data.get("email", "").strip()
        if "@" not in email:
            return await render(
                request,
                "auth/password_reset.html",
                {
                    "values": {"email": email},
                    "errors": {"email": "Enter your e-mail address."},
                    "sent": False,
                },
                status=400,
            )
        limited = await ip_limited(
            request, "mail", request.app[SETTINGS].auth.mail_max_per_ip_per_hour
        )
        if limited:
            return await render(
                request,
                "auth/password_reset.html",
                {"values": {"email": email}, "errors": {}, "message": limited, "sent": False},
                status=429,
            )
        try:
            await platform_of(request).accounts.request_password_reset(email, base_url(request))
        except RateLimited as exc:
            return await render(
                request,
                "auth/password_reset.html",
                {"values": {"email": email}, "errors": {}, "message": exc.message, "sent": False},
                status=429,
            )
        except ValidationFailed as exc:
            return await render(
                request,
                "auth/password_reset.html",
                {
                    "values": {"email": email},
                    "errors": field_errors(exc.fields) or {"email": exc.message},
                    "sent": False,
                },
                status=400,
            )
        # Same answer whether or not the address exists: no account enumeration.
        return await render(
            request, "auth/password_reset.html", {"values": {}, "errors": {}, "sent": True}
        )


@routes.view("/auth/password-reset/confirm/")
class PasswordResetConfirmView(web.View):
    async def get(self) -> web.StreamResponse:
        token = self.request.query.get("token", "")
        return await render(
            self.request, "auth/password_reset_confirm.html", {"token": token, "errors": {}}
        )

    async def post(self) -> web.StreamResponse:
        request = self.request
        data = await form_data(request)
        token = data.get("token", "")
        password, confirm = data.get("password", ""), data.get("password_confirm", "")
        errors: dict[str, str] = {}
        message = ""
        if password != confirm:
            errors["password_confirm"] = "The two passwords differ."
        if not password:
            errors["password"] = "Choose a new password."
        if not errors:
            try:
                await platform_of(request).accounts.reset_password(token, password)
            except DomainError as exc:
                errors = field_errors(exc.fields)
                if "new_password" in errors:
                    errors["password"] = errors.pop("new_password")
                message = exc.message if not errors or "token" in errors else ""
            else:
                raise redirect("/auth/login/", ("success", "Password changed; log in with it."))
        return await render(
            request,
            "auth/password_reset_confirm.html",
            {"token": token, "errors": errors, "message": message},
            status=400,
        )


async def _mailed_link(
    request: web.Request, confirm: Callable[[str], Awaitable[User]], **shown: bool
) -> web.StreamResponse:
    """The page a mailed link opens: what ``confirm`` made of its token, or why it failed."""
    try:
        user = await confirm(request.query.get("token", ""))
    except DomainError as exc:
        return await render(
            request, "auth/verify_email.html", {"ok": False, "message": exc.message}, status=400
        )
    return await render(request, "auth/verify_email.html", {"ok": True, "verified": user, **shown})


@routes.get("/auth/verify-email/")
async def verify_email(request: web.Request) -> web.StreamResponse:
    return await _mailed_link(request, platform_of(request).accounts.verify_email)


@routes.get("/auth/email-change/confirm/")
async def confirm_email_change(request: web.Request) -> web.StreamResponse:
    """The link mailed to a new address: the account moves to it (works once)."""
    accounts = platform_of(request).accounts
    return await _mailed_link(request, accounts.confirm_email_change, changed=True)


# --------------------------------------------------------------------------- account security


async def _security_page(
    request: web.Request,
    user: User,
    *,
    errors: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> web.StreamResponse:
    devices = await platform_of(request).accounts.logins.for_user(user.id)
    return await render(
        request,
        "profile/security.html",
        {
            "me": user,
            "devices": devices,
            "current_sid": current_session_id(request),
            "errors": errors or {},
            "message": message,
            "values": {},
        },
        status=status,
    )


async def _security_refused(
    request: web.Request, user: User, exc: DomainError, **renamed: str
) -> web.StreamResponse:
    """The security page again with what the service refused, its fields under the form's
    names (``renamed``: service field → form field); a message only when no field is named."""
    errors = field_errors(exc.fields)
    for field, name in renamed.items():
        if field in errors:
            errors[name] = errors.pop(field)
    return await _security_page(
        request, user, errors=errors, status=exc.status, message="" if errors else exc.message
    )


@routes.get("/profile/security/")
async def security_page(request: web.Request) -> web.StreamResponse:
    """Password, e-mail address and "Your devices" (each login session, removable)."""
    return await _security_page(request, require_user(request))


@routes.post("/profile/security/password/")
async def change_password(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    data = await form_data(request)
    current, new = data.get("current_password", ""), data.get("new_password", "")
    if new != data.get("new_password_confirm", ""):
        return await _security_page(
            request, user, status=400, errors={"new_password_confirm": "The two passwords differ."}
        )
    try:
        user = await platform_of(request).accounts.change_password(
            user, current, new, ip=client_address(request)
        )
    except DomainError as exc:
        return await _security_refused(request, user, exc)
    response = await signed_in(request, user, "/profile/security/")
    set_flash(response, "success", "Password changed. Every other device is signed out.")
    raise response


@routes.post("/profile/security/email/")
async def change_email(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    data = await form_data(request)
    limited = await ip_limited(request, "mail", request.app[SETTINGS].auth.mail_max_per_ip_per_hour)
    if limited:
        return await _security_page(request, user, message=limited, status=429)
    try:
        email = await platform_of(request).accounts.request_email_change(
            user,
            data.get("password", ""),
            data.get("email", ""),
            base_url(request),
            ip=client_address(request),
        )
    except DomainError as exc:
        return await _security_refused(request, user, exc, current_password="password")
    raise redirect(
        "/profile/security/",
        ("success", f"We sent a link to {email}: open it to use that address."),
    )


@routes.post("/profile/security/devices/")
async def end_devices(request: web.Request) -> web.StreamResponse:
    """Sign one device out (``sid``), or every device (``all``; this one included)."""
    user = require_user(request)
    data = await form_data(request)
    logins = platform_of(request).accounts.logins
    if data.get("all"):
        await logins.revoke_all(user.id, "logout_everywhere")
        response = redirect("/auth/login/", ("info", "Every device is signed out."))
        clear_session_cookie(response)
        rotate_csrf(request)
        raise response
    sid = data.get("sid", "")[:64]
    if sid == current_session_id(request):
        await logout(request)  # raises its redirect
    await logins.revoke(user.id, sid, "logout")
    raise redirect("/profile/security/", ("info", "That device is signed out."))
