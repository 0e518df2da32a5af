"""Authentication pages: register, login, logout, password reset and e-mail verification."""

from __future__ import annotations

import logging

from aiohttp import web

from control.errors import Conflict, DomainError, NotAuthenticated, RateLimited, ValidationFailed
from control.models import User
from web.keys import SETTINGS
from web.pages.common import field_errors, form_data, platform_of, redirect, safe_next
from web.pages.render import render
from web.security import clear_session_cookie, current_user, set_session_cookie

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

ROLES = ("learner", "mentor")


def base_url(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    return settings.server.public_url or f"{request.scheme}://{request.host}"


def client_ip(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    if settings.server.trust_proxy_headers:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote or "unknown"


def signed_in(request: web.Request, user: User, location: str) -> web.HTTPFound:
    """Redirect that carries a fresh session cookie (every role lands on /dashboard/)."""
    platform = platform_of(request)
    token = platform.tokens.issue(user.id, user.role)
    response = redirect(location)
    set_session_cookie(response, request.app[SETTINGS], token)
    return response


@routes.view("/auth/login/")
class LoginView(web.View):
    async def get(self) -> web.StreamResponse:
        if current_user(self.request) is not None:
            raise redirect(safe_next(self.request.query.get("next")))
        return await render(
            self.request, "auth/login.html",
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
                raise signed_in(request, user, nxt or "/dashboard/")
        response = await render(
            request, "auth/login.html",
            {"values": {"login": login}, "errors": errors, "message": message, "next": nxt},
            status=status,
        )
        return response


@routes.view("/auth/register/")
class RegisterView(web.View):
    async def get(self) -> web.StreamResponse:
        role = self.request.query.get("role", "learner")
        values = {"role": role if role in ROLES else "learner"}
        return await render(self.request, "auth/register.html", {"values": values, "errors": {}})

    async def post(self) -> web.StreamResponse:
        request = self.request
        data = await form_data(request)
        values = {k: data.get(k, "").strip() for k in
                  ("username", "email", "first_name", "last_name", "role")}
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
        if not errors:
            platform = platform_of(request)
            try:
                user = await platform.accounts.register(
                    username=values["username"], email=values["email"], password=password,
                    role=values["role"], first_name=values["first_name"],
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
                response = signed_in(request, user, "/dashboard/")
                from web.pages.render import set_flash

                set_flash(response, "success",
                          f"Welcome to PeerLearn, {user.display_name}! Check your e-mail to "
                          "verify your address.")
                raise response
        return await render(
            request, "auth/register.html",
            {"values": values, "errors": errors, "message": message}, status=400,
        )


@routes.post("/auth/logout/")
async def logout(request: web.Request) -> web.StreamResponse:
    response = redirect("/", ("info", "You are logged out."))
    clear_session_cookie(response)
    raise response


@routes.view("/auth/password-reset/")
class PasswordResetView(web.View):
    async def get(self) -> web.StreamResponse:
        return await render(self.request, "auth/password_reset.html",
                            {"values": {}, "errors": {}, "sent": False})

    async def post(self) -> web.StreamResponse:
        request = self.request
        data = await form_data(request)
        email = data.get("email", "").strip()
        if "@" not in email:
            return await render(
                request, "auth/password_reset.html",
                {"values": {"email": email}, "errors": {"email": "Enter your e-mail address."},
                 "sent": False}, status=400,
            )
        try:
            await platform_of(request).accounts.request_password_reset(email, base_url(request))
        except RateLimited as exc:
            return await render(
                request, "auth/password_reset.html",
                {"values": {"email": email}, "errors": {}, "message": exc.message, "sent": False},
                status=429,
            )
        except ValidationFailed as exc:
            return await render(
                request, "auth/password_reset.html",
                {"values": {"email": email}, "errors": field_errors(exc.fields) or
                 {"email": exc.message}, "sent": False}, status=400,
            )
        # Same answer whether or not the address exists: no account enumeration.
        return await render(request, "auth/password_reset.html",
                            {"values": {}, "errors": {}, "sent": True})


@routes.view("/auth/password-reset/confirm/")
class PasswordResetConfirmView(web.View):
    async def get(self) -> web.StreamResponse:
        token = self.request.query.get("token", "")
        return await render(self.request, "auth/password_reset_confirm.html",
                            {"token": token, "errors": {}})

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
        return await render(request, "auth/password_reset_confirm.html",
                            {"token": token, "errors": errors, "message": message}, status=400)


@routes.get("/auth/verify-email/")
async def verify_email(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    try:
        user = await platform_of(request).accounts.verify_email(token)
    except DomainError as exc:
        return await render(request, "auth/verify_email.html",
                            {"ok": False, "message": exc.message}, status=400)
    return await render(request, "auth/verify_email.html", {"ok": True, "verified": user})
