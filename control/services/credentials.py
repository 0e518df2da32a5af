"""Proving and changing what an account signs in with: single-use mailed links (e-mail
verification, password reset, e-mail change) and the password change.

Only the hash of a mailed token is stored; a link works once. Callers that change a
signed-in user's password or address check the current password first
(``AccountService.check_password``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from config.settings import AuthSettings
from control.db import Database, rows_changed
from control.errors import Conflict, ValidationFailed
from control.limits import EMAIL_MAX, PASSWORD_MAX
from control.models import EmailChange, User, UserToken
from control.ratelimit import RateLimiter
from control.security import hash_opaque_token, hash_password, new_opaque_token
from control.services.logins import LoginService
from control.services.mail import Mailer, MailFailed
from control.services.passwords import PasswordPolicy
from control.services.users import UserDirectory

log = logging.getLogger(__name__)

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RESET_REQUESTS_PER_HOUR = 5


def _now() -> datetime:
    return datetime.now(UTC)


def valid_email(email: str) -> bool:
    """A plausible address (already trimmed and lower-cased) of at most ``EMAIL_MAX``."""
    return len(email) <= EMAIL_MAX and EMAIL_RE.match(email) is not None


def invalid_token() -> ValidationFailed:
    """The one answer to a mailed link that is unknown, used, expired or malformed."""
    return ValidationFailed(
        "this link is invalid or has expired",
        code="invalid_token",
        fields={"token": "invalid or expired"},
    )


def _token_hash(token: str) -> str:
    """The stored hash of a mailed token, or :func:`invalid_token` for a malformed one."""
    if not token or len(token) > 200:
        raise invalid_token()
    return hash_opaque_token(token)


def email_taken() -> Conflict:
    return Conflict(
        "an account with this e-mail already exists",
        code="email_taken",
        fields={"email": "already registered"},
    )


class CredentialService:
    """``platform.accounts.credentials``: the mailed links and the password change."""

    def __init__(
        self,
        db: Database,
        users: UserDirectory,
        *,
        limiter: RateLimiter,
        mailer: Mailer,
        logins: LoginService,
        passwords: PasswordPolicy,
        settings: AuthSettings,
    ) -> None:
        self.db = db
        self.users = users
        self.limiter = limiter
        self.mailer = mailer
        self.logins = logins
        self.passwords = passwords
        self.settings = settings

    # ------------------------------------------------------------------ tokens

    async def issue_token(self, user_id: int, purpose: str, ttl: timedelta) -> str:
        """A new single-use token of ``purpose`` (``verify_email``, ``reset_password``)."""
        token, token_hash = new_opaque_token()
        async with self.db.transaction() as s:
            s.add(
                UserToken(
                    user_id=user_id, purpose=purpose, token_hash=token_hash, expires_at=_now() + ttl
                )
            )
        return token

    async def _peek_token(self, token: str, purpose: str) -> User:
        """The active user of an unused, unexpired token, without using it up."""
        token_hash = _token_hash(token)
        async with self.db.session() as s:
            user_id = await s.scalar(
                select(UserToken.user_id).where(
                    UserToken.token_hash == token_hash,
                    UserToken.purpose == purpose,
                    UserToken.used_at.is_(None),
                    UserToken.expires_at > _now(),
                )
            )
        user = await self.users.get_user(int(user_id or 0))
        if user is None or not user.is_active:
            raise invalid_token()
        return user

    async def _consume_token(self, token: str, purpose: str) -> User:
        """Mark the token used (atomically, so it works once) and return its active user."""
        token_hash = _token_hash(token)
        now = _now()
        async with self.db.transaction() as s:
            result = await s.execute(
                update(UserToken)
                .where(
                    UserToken.token_hash == token_hash,
                    UserToken.purpose == purpose,
                    UserToken.used_at.is_(None),
                    UserToken.expires_at > now,
                )
                .values(used_at=now)
            )
            if rows_changed(result) != 1:
                raise invalid_token()
            user_id = await s.scalar(
                select(UserToken.user_id).where(UserToken.token_hash == token_hash)
            )
        user = await self.users.get_user(int(user_id or 0))
        if user is None or not user.is_active:
            raise invalid_token()
        return user

    async def _mail(self, to: str, subject: str, body: str) -> None:
        try:
            await self.mailer.send(to, subject, body)
        except Exception as exc:
            log.exception("sending mail to %s failed", to)
            raise MailFailed("the e-mail could not be sent; try again later") from exc

    # ------------------------------------------------------------------ e-mail verification

    async def send_verification(self, user: User, base_url: str) -> None:
        """Mail a single-use link to ``/auth/verify-email/?token=...``."""
        if user.email_verified:
            raise Conflict("your e-mail address is already verified", code="already_verified")
        ttl = timedelta(minutes=self.settings.email_token_ttl_minutes)
        token = await self.issue_token(user.id, "verify_email", ttl)
        link = f"{base_url.rstrip('/')}/auth/verify-email/?token={token}"
        await self._mail(
            user.email,
            "Confirm your PeerLearn e-mail address",
            f"Hello {user.display_name},\n\nplease confirm your e-mail address by opening this "
            f"link:\n\n{link}\n\nThe link works once and expires in "
            f"{self.settings.email_token_ttl_minutes // 60 or 1} hour(s).\n",
        )

    async def verify_email(self, token: str) -> User:
        user = await self._consume_token(token, "verify_email")
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == user.id).values(email_verified=True))
        user.email_verified = True
        return user

    # ------------------------------------------------------------------ passwords

    async def request_password_reset(self, email: str, base_url: str) -> None:
        """Mail a reset link if an active account has this address; silent either way."""
        email = email.strip().lower()
        if not valid_email(email):
            return
        # Throttle silently so the endpoint cannot be used to flood someone's inbox.
        if await self.limiter.hit(f"reset:{email}", RESET_REQUESTS_PER_HOUR, 3600):
            return
        async with self.db.session() as s:
            user = await s.scalar(select(User).where(User.email == email))
        if user is None or not user.is_active:
            return
        ttl = timedelta(minutes=self.settings.reset_token_ttl_minutes)
        token = await self.issue_token(user.id, "reset_password", ttl)
        link = f"{base_url.rstrip('/')}/auth/password-reset/confirm/?token={token}"
        try:
            await self._mail(
                user.email,
                "Reset your PeerLearn password",
                f"Hello {user.display_name},\n\nsomeone asked to reset the password of your "
                f"PeerLearn account. To choose a new password, open:\n\n{link}\n\nThe link works "
                f"once and expires in {self.settings.reset_token_ttl_minutes} minutes. If it "
                "was not you, ignore this message.\n",
            )
        except MailFailed:
            return  # already logged; the answer must not differ from "no such address"

    async def reset_password(self, token: str, new_password: str) -> User:
        """Set a new password with a mailed token; every session of the account ends."""
        if not new_password or len(new_password) > PASSWORD_MAX:
            raise ValidationFailed(
                "invalid password",
                fields={"password": self.passwords.problem(new_password) or "invalid"},
            )
        user = await self._peek_token(token, "reset_password")
        problem = self.passwords.problem(new_password, (user.username, user.email))
        if problem:
            raise ValidationFailed("invalid password", fields={"password": problem})
        user = await self._consume_token(token, "reset_password")
        password_hash = await asyncio.to_thread(hash_password, new_password)
        now = _now()
        async with self.db.transaction() as s:
            # Receiving the mail proves the address, and every other reset link dies with this one.
            await s.execute(
                update(User)
                .where(User.id == user.id)
                .values(password_hash=password_hash, email_verified=True)
            )
            await s.execute(
                update(UserToken)
                .where(
                    UserToken.user_id == user.id,
                    UserToken.purpose == "reset_password",
                    UserToken.used_at.is_(None),
                )
                .values(used_at=now)
            )
        await self.logins.revoke_all(user.id, "password_reset")
        await self._password_notice(user, "reset")
        return await self.users.require(user.id)

    async def change_password(self, user: User, current_password: str, new_password: str) -> User:
        """Replace a password the caller already checked: every session of the account
        ends (the caller signs in afresh) and the address on file is told."""
        problem = self.passwords.problem(new_password, (user.username, user.email))
        if problem:
            raise ValidationFailed("invalid password", fields={"new_password": problem})
        if current_password == new_password:
            raise ValidationFailed(
                "invalid password", fields={"new_password": "must differ from the current one"}
            )
        password_hash = await asyncio.to_thread(hash_password, new_password)
        async with self.db.transaction() as s:
            await s.execute(
                update(User).where(User.id == user.id).values(password_hash=password_hash)
            )
        await self.logins.revoke_all(user.id, "password_changed")
        await self._password_notice(user, "changed")
        return await self.users.require(user.id)

    async def _password_notice(self, user: User, how: str) -> None:
        """Tell the address on file that the password was replaced (ASVS 2.5.5)."""
        try:
            await self._mail(
                user.email,
                "Your PeerLearn password was changed",
                f"Hello {user.display_name},\n\nthe password of your PeerLearn account was just "
                f"{how} and every device was signed out. If it was not you, reset your password "
                "at once and tell an administrator.\n",
            )
        except MailFailed:
            pass  # logged; the change stands

    # ------------------------------------------------------------------ e-mail change

    async def request_email_change(self, user: User, new_email: str, base_url: str) -> str:
        """Mail a confirmation link to ``new_email`` (the caller checked the password); the
        address changes only when that link is opened. Returns the normalised new address."""
        email = new_email.strip().lower()
        if not valid_email(email):
            raise ValidationFailed("invalid e-mail", fields={"email": "not a valid e-mail address"})
        if email == user.email:
            raise ValidationFailed("invalid e-mail", fields={"email": "this is your address now"})
        async with self.db.session() as s:
            taken = await s.scalar(select(User.id).where(User.email == email))
        if taken:
            raise email_taken()
        token, token_hash = new_opaque_token()
        ttl = timedelta(minutes=self.settings.email_token_ttl_minutes)
        async with self.db.transaction() as s:
            s.add(
                EmailChange(
                    user_id=user.id,
                    new_email=email,
                    token_hash=token_hash,
                    expires_at=_now() + ttl,
                )
            )
        link = f"{base_url.rstrip('/')}/auth/email-change/confirm/?token={token}"
        await self._mail(
            email,
            "Confirm your new PeerLearn e-mail address",
            f"Hello {user.display_name},\n\nto use this address for your PeerLearn account, "
            f"open:\n\n{link}\n\nThe link works once. If you did not ask for this, ignore it.\n",
        )
        try:
            await self._mail(
                user.email,
                "A change of your PeerLearn e-mail address was requested",
                f"Hello {user.display_name},\n\nsomeone signed in to your account asked to move "
                f"it to {email}. Nothing changes unless the link sent there is opened. If it was "
                "not you, change your password now.\n",
            )
        except MailFailed:
            pass
        return email

    async def confirm_email_change(self, token: str) -> User:
        """Apply a requested address change (works once); the new address counts as verified."""
        token_hash = _token_hash(token)
        now = _now()
        try:
            async with self.db.transaction() as s:
                change = await s.scalar(
                    update(EmailChange)
                    .where(
                        EmailChange.token_hash == token_hash,
                        EmailChange.used_at.is_(None),
                        EmailChange.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(EmailChange)
                )
                if change is None:
                    raise invalid_token()
                await s.execute(
                    update(User)
                    .where(User.id == change.user_id)
                    .values(email=change.new_email, email_verified=True)
                )
                user_id = change.user_id
        except IntegrityError:  # someone registered that address meanwhile
            raise email_taken() from None
        return await self.users.require(user_id)
