"""Accounts (``platform.accounts``): registration and sign-in here, the rest in parts.

``AccountService`` is the one entry point the web layer uses; it is composed of

- ``users`` (``control.services.users.UserDirectory``): lookups and the paged lists;
- ``profiles`` (``control.services.profiles.ProfileService``): profile fields and avatar;
- ``credentials`` (``control.services.credentials.CredentialService``): mailed links
  (e-mail verification, password reset, e-mail change) and the password change;
- ``admin`` (``control.services.user_admin.UserAdminService``): activation and roles;
- ``logins`` (``control.services.logins.LoginService``): the login sessions themselves;

and forwards their public methods, so callers need not know the split.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from control.db import Database
from control.errors import (
    Conflict,
    Forbidden,
    NotAuthenticated,
    RateLimited,
    ValidationFailed,
)
from control.limits import NAME_MAX, USERNAME_MAX, USERNAME_MIN
from control.models import Role, User
from control.ratelimit import RateLimiter
from control.security import hash_password, needs_rehash, verify_password
from control.services.common import Page
from control.services.credentials import CredentialService, email_taken, valid_email
from control.services.logins import LoginService
from control.services.mail import Mailer
from control.services.passwords import PasswordPolicy
from control.services.profiles import ProfileService
from control.services.user_admin import UserAdminService
from control.services.users import UserDirectory

__all__ = ["AccountService", "login_source"]

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
SELF_SERVICE_ROLES = (Role.LEARNER, Role.MENTOR)
# Path segments under /api/users/ that a username would shadow.
RESERVED_USERNAMES = frozenset({"profile", "mentors", "follow", "followers", "following"})


def login_source(ip: str) -> str:
    """The "source" a login limit counts: the address, or its /64 for IPv6 (one host's)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _failure_key(user: User | None, login: str, source: str) -> str:
    account = str(user.id) if user else "?" + login.strip().lower()[:300]
    return f"login:fail:{account}:{source}"


class AccountService:
    def __init__(
        self,
        db: Database,
        limiter: RateLimiter,
        mailer: Mailer,
        settings: Settings,
        *,
        logins: LoginService,
    ) -> None:
        self.db = db
        self.limiter = limiter
        self.settings = settings
        #: server-side login sessions (``control.services.logins``)
        self.logins = logins
        self.passwords = PasswordPolicy(settings.auth)
        self.users = UserDirectory(db)
        self.profiles = ProfileService(
            db,
            self.users,
            media_dir=settings.server.data_dir / "media",
            max_image_bytes=settings.uploads.max_image_bytes,
        )
        self.credentials = CredentialService(
            db,
            self.users,
            limiter=limiter,
            mailer=mailer,
            logins=logins,
            passwords=self.passwords,
            settings=settings.auth,
        )
        self.admin = UserAdminService(db, self.users, logins=logins)

    # ------------------------------------------------------------------ registration

    def _check_credentials(self, username: str, email: str, password: str) -> tuple[str, str]:
        fields: dict[str, str] = {}
        if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
            fields["username"] = f"must be {USERNAME_MIN}–{USERNAME_MAX} characters"
        elif not USERNAME_RE.match(username):
            fields["username"] = "only letters, digits and . _ - are allowed"
        elif username.lower() in RESERVED_USERNAMES:
            fields["username"] = "this name is reserved"
        email = email.strip().lower()
        if not valid_email(email):
            fields["email"] = "not a valid e-mail address"
        password_problem = self.passwords.problem(password, (username, email))
        if password_problem:
            fields["password"] = password_problem
        if fields:
            raise ValidationFailed("some fields are invalid", fields=fields)
        return username, email

    async def _raise_duplicate(self, username: str, email: str) -> None:
        """Name the taken field(s) after a unique-constraint failure (or before one)."""
        async with self.db.session() as s:
            name_taken = await s.scalar(select(User.id).where(User.username == username))
            mail_taken = await s.scalar(select(User.id).where(User.email == email))
        if name_taken:
            raise Conflict(
                "this username is already taken",
                code="username_taken",
                fields={
                    "username": "already taken",
                    **({"email": "already registered"} if mail_taken else {}),
                },
            )
        if mail_taken:
            raise email_taken()

    async def _create(
        self,
        *,
        username: str,
        email: str,
        password: str,
        role: Role,
        first_name: str = "",
        last_name: str = "",
        verified: bool = False,
    ) -> User:
        username, email = self._check_credentials(username, email, password)
        names = {"first_name": first_name.strip(), "last_name": last_name.strip()}
        too_long = {
            k: f"at most {NAME_MAX} characters" for k, v in names.items() if len(v) > NAME_MAX
        }
        if too_long:
            raise ValidationFailed("some fields are invalid", fields=too_long)
        await self._raise_duplicate(username, email)
        # Argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        password_hash = await asyncio.to_thread(hash_password, password)
        user = User(
            username=username,
            email=email,
            password_hash=password_hash,
            role=role.value,
            email_verified=verified,
            skills=[],
            interests=[],
            **names,
        )
        try:
            async with self.db.transaction() as s:
                s.add(user)
        except IntegrityError:
            # Lost a race with a concurrent registration of the same name or address.
            await self._raise_duplicate(username, email)
            raise
        return user

    async def register(
        self,
        *,
        username: str,
        email: str,
        password: str,
        role: str,
        first_name: str = "",
        last_name: str = "",
    ) -> User:
        """Create a learner or mentor account (admins only come from ``create_admin``)."""
        if role not in SELF_SERVICE_ROLES:
            raise ValidationFailed("invalid role", fields={"role": "must be learner or mentor"})
        return await self._create(
            username=username,
            email=email,
            password=password,
            role=Role(role),
            first_name=first_name,
            last_name=last_name,
        )

    async def create_admin(self, username: str, email: str, password: str) -> User:
        return await self._create(
            username=username, email=email, password=password, role=Role.ADMIN, verified=True
        )

    # ------------------------------------------------------------------ sign-in

    async def _find_login(self, login: str) -> User | None:
        login = login.strip()
        async with self.db.session() as s:
            if "@" in login:
                return await s.scalar(select(User).where(User.email == login.lower()))
            return await s.scalar(select(User).where(User.username == login))

    async def authenticate(self, login: str, password: str, *, ip: str) -> User:
        """The user for these credentials.

        Throttled per source address (all attempts) and per account *and* source (failures):
        a guesser is locked out for the window from where it guesses, the owner is not from
        anywhere else. The attempt is counted *before* the password is checked, atomically
        (``INCR`` in Redis, a single step in memory), so concurrent guesses cannot race past
        the limit: at most ``login_max_failures_per_account`` of them are ever evaluated.
        """
        auth = self.settings.auth
        limiter = self.limiter
        window = auth.login_window_seconds
        source = login_source(ip)
        retry = await limiter.hit(f"login:ip:{source}", auth.login_max_attempts_per_ip, window)
        if retry:
            # For monitoring (ASVS 11.1.7); bounded: throttled sources stay throttled.
            log.warning("login throttled: too many attempts from %s", source)
            raise RateLimited("too many login attempts from this address", retry_after=retry)
        user = await self._find_login(login)
        account_key = _failure_key(user, login, source)
        retry = await limiter.hit(account_key, auth.login_max_failures_per_account, window)
        if retry:
            log.warning(
                "login throttled: too many failures for account %s from %s",
                user.id if user else "(unknown)",
                source,
            )
            raise RateLimited(
                "too many failed logins for this account from your address; try again later",
                retry_after=retry,
            )
        stored_hash = user.password_hash if user else None
        ok = await asyncio.to_thread(verify_password, stored_hash, password)
        if not ok or user is None:
            raise NotAuthenticated("wrong username/e-mail or password", code="invalid_credentials")
        if not user.is_active:
            raise Forbidden("this account has been deactivated", code="account_inactive")
        await limiter.reset(account_key)
        changes: dict[str, Any] = {"last_login": datetime.now(UTC)}
        if needs_rehash(user.password_hash):
            changes["password_hash"] = await asyncio.to_thread(hash_password, password)
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == user.id).values(**changes))
        for key, value in changes.items():
            setattr(user, key, value)
        return user

    async def check_password(self, user: User, password: str, *, ip: str) -> None:
        """Re-authentication for sensitive changes: the current password, under the same
        per-account-and-source limit as logins (a stolen session cannot guess it freely)."""
        auth = self.settings.auth
        key = _failure_key(user, "", login_source(ip))
        retry = await self.limiter.hit(
            key, auth.login_max_failures_per_account, auth.login_window_seconds
        )
        if retry:
            raise RateLimited("too many wrong passwords; try again later", retry_after=retry)
        current = await self.users.require(user.id)
        if not await asyncio.to_thread(verify_password, current.password_hash, password):
            raise ValidationFailed(
                "the current password is wrong",
                code="wrong_password",
                fields={"current_password": "wrong password"},
            )
        await self.limiter.reset(key)

    def ensure_verified(self, user: User, action: str) -> None:
        """Refuse ``action`` to an unverified account when verification is required."""
        if self.settings.require_verified_email and not user.email_verified and not user.is_admin:
            raise Forbidden(
                f"verify your e-mail address before you {action} (see your profile page)",
                code="email_unverified",
            )

    # ------------------------------------------------------------------ forwarded to the parts

    async def get_user(self, user_id: int) -> User | None:
        return await self.users.get_user(user_id)

    async def get_by_username(self, name: str) -> User | None:
        return await self.users.get_by_username(name)

    async def list_users(
        self,
        *,
        q: str | None = None,
        role: str | None = None,
        active: bool | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[User]:
        return await self.users.list_users(
            q=q, role=role, active=active, page=page, per_page=per_page
        )

    async def list_mentors(
        self, *, skill: str | None = None, q: str | None = None, page: int = 1, per_page: int = 20
    ) -> Page[User]:
        return await self.users.list_mentors(skill=skill, q=q, page=page, per_page=per_page)

    async def update_profile(self, user: User, **changes: Any) -> User:
        return await self.profiles.update_profile(user, **changes)

    async def set_profile_image(self, user: User, data: bytes, content_type: str | None) -> User:
        return await self.profiles.set_profile_image(user, data, content_type)

    @property
    def media_dir(self) -> Path:
        return self.profiles.media_dir

    async def send_verification(self, user: User, base_url: str) -> None:
        await self.credentials.send_verification(user, base_url)

    async def verify_email(self, token: str) -> User:
        return await self.credentials.verify_email(token)

    async def request_password_reset(self, email: str, base_url: str) -> None:
        await self.credentials.request_password_reset(email, base_url)

    async def reset_password(self, token: str, new_password: str) -> User:
        return await self.credentials.reset_password(token, new_password)

    async def change_password(
        self, user: User, current_password: str, new_password: str, *, ip: str
    ) -> User:
        """The current password is required; every session of the account ends (the caller
        signs in afresh) and the address on file is told."""
        await self.check_password(user, current_password, ip=ip)
        return await self.credentials.change_password(user, current_password, new_password)

    async def request_email_change(
        self, user: User, password: str, new_email: str, base_url: str, *, ip: str
    ) -> str:
        """The password is required; the address changes when the link mailed to
        ``new_email`` is opened. Returns the normalised new address."""
        await self.check_password(user, password, ip=ip)
        return await self.credentials.request_email_change(user, new_email, base_url)

    async def confirm_email_change(self, token: str) -> User:
        return await self.credentials.confirm_email_change(token)

    async def _issue_token(self, user_id: int, purpose: str, ttl: timedelta) -> str:
        # Kept for tests that mint a token directly; code uses credentials.issue_token.
        return await self.credentials.issue_token(user_id, purpose, ttl)

    async def set_active(self, actor: User, user_id: int, active: bool) -> User:
        return await self.admin.set_active(actor, user_id, active)

    async def set_role(self, actor: User, user_id: int, role: str) -> User:
        return await self.admin.set_role(actor, user_id, role)
