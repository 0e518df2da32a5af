"""Accounts: registration, login, profiles, e-mail verification, password reset and change,
e-mail change, admin. Login sessions themselves are ``control.services.logins``."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from control.errors import (
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from control.models import EmailChange, User, UserToken
from control.security import (
    hash_opaque_token,
    hash_password,
    needs_rehash,
    new_opaque_token,
    verify_password,
)
from control.services.common import Page, page_bounds
from control.services.logins import LoginService
from control.services.mail import MailFailed
from control.timezones import check_zone

if TYPE_CHECKING:
    from control.platform import Platform

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USERNAME_MIN, USERNAME_MAX = 3, 150
EMAIL_MAX = 254
PASSWORD_MAX = 128  # ASVS 2.1.2: at least 64 allowed, more than 128 denied
NAME_MAX = 100
BIO_MAX = 5000
TAGS_MAX, TAG_MAX_CHARS = 30, 50
HOURLY_RATE_MAX = Decimal("1000000")
MAX_DB_ID = 2**63 - 1
SELF_SERVICE_ROLES = ("learner", "mentor")
ROLES = ("learner", "mentor", "admin")
# Path segments under /api/users/ that a username would shadow.
RESERVED_USERNAMES = frozenset({"profile", "mentors", "follow", "followers", "following"})
PROFILE_FIELDS = frozenset(
    {"first_name", "last_name", "bio", "skills", "interests", "hourly_rate", "timezone"}
)
# Magic bytes → file extension; the client's Content-Type is never trusted.
IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
AVATAR_DIR = "avatars"
RESET_REQUESTS_PER_HOUR = 5
#: zxcvbn's work grows with the length; the rest of a longer password only adds strength
STRENGTH_CHECK_CHARS = 64
#: an avatar larger than this many pixels is refused before it is decoded (decompression bombs)
MAX_IMAGE_PIXELS = 25_000_000
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}


def login_source(ip: str) -> str:
    """The "source" a login limit counts: the address, or its /64 for IPv6 (one host's)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _invalid_token() -> ValidationFailed:
    """The one answer to a mailed link that is unknown, used, expired or malformed."""
    return ValidationFailed(
        "this link is invalid or has expired",
        code="invalid_token",
        fields={"token": "invalid or expired"},
    )


def _token_hash(token: str) -> str:
    """The stored hash of a mailed token, or :func:`_invalid_token` for a malformed one."""
    if not token or len(token) > 200:
        raise _invalid_token()
    return hash_opaque_token(token)


def clean_image(data: bytes, ext: str) -> bytes:
    """The image decoded and re-encoded without any metadata (EXIF with GPS, XMP, comments);
    the EXIF orientation is applied first so the picture stays upright."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > MAX_IMAGE_PIXELS:
                raise ValidationFailed(
                    "the image has too many pixels",
                    code="unsupported_image",
                    fields={"image": f"at most {MAX_IMAGE_PIXELS} pixels"},
                )
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)  # animated GIF/WEBP: the first frame is the avatar
            upright = ImageOps.exif_transpose(img) or img.copy()
            transparency = upright.info.get("transparency")
            upright.info = {} if transparency is None else {"transparency": transparency}
            fmt = PIL_FORMATS[ext]
            options: dict[str, Any] = {}
            if fmt == "JPEG":
                if upright.mode not in ("RGB", "L"):
                    upright = upright.convert("RGB")
                options = {"quality": 90, "optimize": True}
            out = io.BytesIO()
            upright.save(out, fmt, **options)
            return out.getvalue()
    except ValidationFailed:
        raise
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValidationFailed(
            "the image could not be read",
            code="unsupported_image",
            fields={"image": "not a readable PNG, JPEG, GIF or WEBP image"},
        ) from exc


class PayloadTooLarge(ValidationFailed):
    status = 413
    code = "image_too_large"


def _now() -> datetime:
    return datetime.now(UTC)


def image_extension(data: bytes) -> str | None:
    """The extension matching the image's magic bytes, or None if not PNG/JPEG/GIF/WEBP."""
    for signature, ext in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return ext
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def normalise_tags(values: Any, field: str) -> list[str]:
    """≤ 30 unique (case-insensitively) trimmed strings of 1–50 characters, order kept."""
    if not isinstance(values, list | tuple):
        raise ValidationFailed("invalid profile", fields={field: "must be a list of strings"})
    seen: set[str] = set()
    result: list[str] = []
    for raw in values:
        if not isinstance(raw, str):
            raise ValidationFailed("invalid profile", fields={field: "must be a list of strings"})
        tag = " ".join(raw.split())
        if not 1 <= len(tag) <= TAG_MAX_CHARS:
            raise ValidationFailed(
                "invalid profile",
                fields={field: f"each entry must be 1–{TAG_MAX_CHARS} characters"},
            )
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            result.append(tag)
    if len(result) > TAGS_MAX:
        raise ValidationFailed("invalid profile", fields={field: f"at most {TAGS_MAX} entries"})
    return result


class AccountService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.db = platform.db
        #: server-side login sessions (``control.services.logins``)
        self.logins = LoginService(platform)

    # ------------------------------------------------------------------ validation

    def _check_credentials(self, username: str, email: str, password: str) -> tuple[str, str]:
        fields: dict[str, str] = {}
        if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
            fields["username"] = f"must be {USERNAME_MIN}–{USERNAME_MAX} characters"
        elif not USERNAME_RE.match(username):
            fields["username"] = "only letters, digits and . _ - are allowed"
        elif username.lower() in RESERVED_USERNAMES:
            fields["username"] = "this name is reserved"
        email = email.strip().lower()
        if len(email) > EMAIL_MAX or not EMAIL_RE.match(email):
            fields["email"] = "not a valid e-mail address"
        password_problem = self._password_problem(password, (username, email))
        if password_problem:
            fields["password"] = password_problem
        if fields:
            raise ValidationFailed("some fields are invalid", fields=fields)
        return username, email

    def _password_problem(self, password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
        """Length, then an offline zxcvbn estimate (common passwords, keyboard walks, names,
        dates, the account's own name and address); None when the password is good enough."""
        from zxcvbn import zxcvbn

        minimum = self.settings.auth.min_password_length
        if len(password) < minimum:
            return f"must be at least {minimum} characters"
        if len(password) > PASSWORD_MAX:
            return f"must be at most {PASSWORD_MAX} characters"
        inputs = [part for value in user_inputs for part in re.split(r"[@._\-]", value) if part]
        result = zxcvbn(password[:STRENGTH_CHECK_CHARS], user_inputs=[*user_inputs, *inputs])
        if result["score"] >= self.settings.auth.min_password_score:
            return None
        feedback = result.get("feedback") or {}
        hints = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
        hint = " ".join(h.strip() for h in hints if h and h.strip())
        return "too easy to guess" + (f": {hint}" if hint else "; add a few uncommon words")

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
            raise Conflict(
                "an account with this e-mail already exists",
                code="email_taken",
                fields={"email": "already registered"},
            )

    async def _create(
        self,
        *,
        username: str,
        email: str,
        password: str,
        role: str,
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
            role=role,
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

    # ------------------------------------------------------------------ registration and login

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
            role=role,
            first_name=first_name,
            last_name=last_name,
        )

    async def create_admin(self, username: str, email: str, password: str) -> User:
        return await self._create(
            username=username, email=email, password=password, role="admin", verified=True
        )

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
        limiter = self.platform.limiter
        window = auth.login_window_seconds
        source = login_source(ip)
        retry = await limiter.hit(f"login:ip:{source}", auth.login_max_attempts_per_ip, window)
        if retry:
            # For monitoring (ASVS 11.1.7); bounded: throttled sources stay throttled.
            log.warning("login throttled: too many attempts from %s", source)
            raise RateLimited("too many login attempts from this address", retry_after=retry)
        user = await self._find_login(login)
        account_key = self._failure_key(user, login, source)
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
        changes: dict[str, Any] = {"last_login": _now()}
        if needs_rehash(user.password_hash):
            changes["password_hash"] = await asyncio.to_thread(hash_password, password)
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == user.id).values(**changes))
        for key, value in changes.items():
            setattr(user, key, value)
        return user

    @staticmethod
    def _failure_key(user: User | None, login: str, source: str) -> str:
        account = str(user.id) if user else "?" + login.strip().lower()[:300]
        return f"login:fail:{account}:{source}"

    async def check_password(self, user: User, password: str, *, ip: str) -> None:
        """Re-authentication for sensitive changes: the current password, under the same
        per-account-and-source limit as logins (a stolen session cannot guess it freely)."""
        auth = self.settings.auth
        key = self._failure_key(user, "", login_source(ip))
        retry = await self.platform.limiter.hit(
            key, auth.login_max_failures_per_account, auth.login_window_seconds
        )
        if retry:
            raise RateLimited("too many wrong passwords; try again later", retry_after=retry)
        current = await self._require(user.id)
        if not await asyncio.to_thread(verify_password, current.password_hash, password):
            raise ValidationFailed(
                "the current password is wrong",
                code="wrong_password",
                fields={"current_password": "wrong password"},
            )
        await self.platform.limiter.reset(key)

    def ensure_verified(self, user: User, action: str) -> None:
        """Refuse ``action`` to an unverified account when verification is required."""
        if self.settings.require_verified_email and not user.email_verified and not user.is_admin:
            raise Forbidden(
                f"verify your e-mail address before you {action} (see your profile page)",
                code="email_unverified",
            )

    # ------------------------------------------------------------------ lookups

    async def get_user(self, user_id: int) -> User | None:
        if not 0 < user_id <= MAX_DB_ID:
            return None
        async with self.db.session() as s:
            return await s.get(User, user_id)

    async def get_by_username(self, name: str) -> User | None:
        if not name or len(name) > USERNAME_MAX:
            return None
        async with self.db.session() as s:
            return await s.scalar(select(User).where(User.username == name))

    async def _require(self, user_id: int) -> User:
        user = await self.get_user(user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    # ------------------------------------------------------------------ profile

    async def update_profile(self, user: User, **changes: Any) -> User:
        """Change profile fields; validates everything, so non-HTTP callers are safe too."""
        unknown = set(changes) - PROFILE_FIELDS
        if unknown:
            raise ValidationFailed(
                "unknown profile fields", fields={k: "unknown field" for k in sorted(unknown)}
            )
        values: dict[str, Any] = {}
        fields: dict[str, str] = {}
        for key in ("first_name", "last_name"):
            if key in changes:
                text = str(changes[key] or "").strip()
                if len(text) > NAME_MAX:
                    fields[key] = f"at most {NAME_MAX} characters"
                values[key] = text
        if "bio" in changes:
            bio = str(changes["bio"] or "").strip()
            if len(bio) > BIO_MAX:
                fields["bio"] = f"at most {BIO_MAX} characters"
            values["bio"] = bio
        for key in ("skills", "interests"):
            if key in changes:
                try:
                    values[key] = normalise_tags(changes[key] or [], key)
                except ValidationFailed as exc:
                    fields.update(exc.fields)
        if "hourly_rate" in changes:
            rate = changes["hourly_rate"]
            if rate is not None and user.role != "mentor":
                fields["hourly_rate"] = "only mentors have an hourly rate"
            elif rate is not None:
                try:
                    amount = Decimal(str(rate)).quantize(Decimal("0.01"))
                except (InvalidOperation, ValueError):
                    amount = Decimal(-1)
                if not amount.is_finite() or not Decimal(0) <= amount <= HOURLY_RATE_MAX:
                    fields["hourly_rate"] = f"must be a number from 0 to {HOURLY_RATE_MAX}"
                values["hourly_rate"] = amount
            else:
                values["hourly_rate"] = None
        if "timezone" in changes:
            try:
                values["timezone"] = check_zone(changes["timezone"])
            except ValidationFailed as exc:
                fields.update(exc.fields)
        if fields:
            raise ValidationFailed("some fields are invalid", fields=fields)
        if values:
            async with self.db.transaction() as s:
                await s.execute(update(User).where(User.id == user.id).values(**values))
        return await self._require(user.id)

    @property
    def media_dir(self) -> Any:
        return self.settings.server.data_dir / "media"

    async def set_profile_image(self, user: User, data: bytes, content_type: str | None) -> User:
        """Store a PNG/JPEG/GIF/WEBP avatar (checked by content) and drop the previous one."""
        limit = self.settings.uploads.max_image_bytes
        if len(data) > limit:
            raise PayloadTooLarge(
                f"the image is larger than {limit} bytes",
                fields={"image": f"at most {limit} bytes"},
            )
        if not data:
            raise ValidationFailed(
                "no image uploaded", code="image_missing", fields={"image": "required"}
            )
        ext = image_extension(data)
        if ext is None:
            raise ValidationFailed(
                "only PNG, JPEG, GIF and WEBP images are accepted",
                code="unsupported_image",
                fields={"image": "not a PNG, JPEG, GIF or WEBP image"},
            )
        # Re-encoded, so no metadata (EXIF/GPS, XMP) the camera wrote survives the upload.
        data = await asyncio.to_thread(clean_image, data, ext)
        relative = f"{AVATAR_DIR}/{secrets.token_urlsafe(16)}.{ext}"
        target = self.media_dir / relative

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

        await asyncio.to_thread(write)
        current = await self._require(user.id)
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == user.id).values(profile_image=relative))
        old = current.profile_image
        if old and old.startswith(AVATAR_DIR + "/") and "/" not in old[len(AVATAR_DIR) + 1 :]:
            (self.media_dir / old).unlink(missing_ok=True)
        return await self._require(user.id)

    # ------------------------------------------------------------------ e-mail tokens

    async def _issue_token(self, user_id: int, purpose: str, ttl: timedelta) -> str:
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
        user = await self.get_user(int(user_id or 0))
        if user is None or not user.is_active:
            raise _invalid_token()
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
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise _invalid_token()
            user_id = await s.scalar(
                select(UserToken.user_id).where(UserToken.token_hash == token_hash)
            )
        user = await self.get_user(int(user_id or 0))
        if user is None or not user.is_active:
            raise _invalid_token()
        return user

    async def _mail(self, to: str, subject: str, body: str) -> None:
        try:
            await self.platform.mailer.send(to, subject, body)
        except Exception as exc:
            log.exception("sending mail to %s failed", to)
            raise MailFailed("the e-mail could not be sent; try again later") from exc

    async def send_verification(self, user: User, base_url: str) -> None:
        """Mail a single-use link to ``/auth/verify-email/?token=...``."""
        if user.email_verified:
            raise Conflict("your e-mail address is already verified", code="already_verified")
        ttl = timedelta(minutes=self.settings.auth.email_token_ttl_minutes)
        token = await self._issue_token(user.id, "verify_email", ttl)
        link = f"{base_url.rstrip('/')}/auth/verify-email/?token={token}"
        await self._mail(
            user.email,
            "Confirm your PeerLearn e-mail address",
            f"Hello {user.display_name},\n\nplease confirm your e-mail address by opening this "
            f"link:\n\n{link}\n\nThe link works once and expires in "
            f"{self.settings.auth.email_token_ttl_minutes // 60 or 1} hour(s).\n",
        )

    async def verify_email(self, token: str) -> User:
        user = await self._consume_token(token, "verify_email")
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == user.id).values(email_verified=True))
        user.email_verified = True
        return user

    async def request_password_reset(self, email: str, base_url: str) -> None:
        """Mail a reset link if an active account has this address; silent either way."""
        email = email.strip().lower()
        if len(email) > EMAIL_MAX or not EMAIL_RE.match(email):
            return
        # Throttle silently so the endpoint cannot be used to flood someone's inbox.
        if await self.platform.limiter.hit(f"reset:{email}", RESET_REQUESTS_PER_HOUR, 3600):
            return
        async with self.db.session() as s:
            user = await s.scalar(select(User).where(User.email == email))
        if user is None or not user.is_active:
            return
        ttl = timedelta(minutes=self.settings.auth.reset_token_ttl_minutes)
        token = await self._issue_token(user.id, "reset_password", ttl)
        link = f"{base_url.rstrip('/')}/auth/password-reset/confirm/?token={token}"
        try:
            await self._mail(
                user.email,
                "Reset your PeerLearn password",
                f"Hello {user.display_name},\n\nsomeone asked to reset the password of your "
                f"PeerLearn account. To choose a new password, open:\n\n{link}\n\nThe link works "
                f"once and expires in {self.settings.auth.reset_token_ttl_minutes} minutes. If it "
                "was not you, ignore this message.\n",
            )
        except MailFailed:
            return  # already logged; the answer must not differ from "no such address"

    async def reset_password(self, token: str, new_password: str) -> User:
        """Set a new password with a mailed token; every session of the account ends."""
        if not new_password or len(new_password) > PASSWORD_MAX:
            raise ValidationFailed(
                "invalid password",
                fields={"password": self._password_problem(new_password) or "invalid"},
            )
        user = await self._peek_token(token, "reset_password")
        problem = self._password_problem(new_password, (user.username, user.email))
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
        return await self._require(user.id)

    async def change_password(
        self, user: User, current_password: str, new_password: str, *, ip: str
    ) -> User:
        """Authenticated change: the current password is required; every session of the
        account ends (the caller signs in afresh) and the address on file is told."""
        await self.check_password(user, current_password, ip=ip)
        problem = self._password_problem(new_password, (user.username, user.email))
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
        return await self._require(user.id)

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

    async def request_email_change(
        self, user: User, password: str, new_email: str, base_url: str, *, ip: str
    ) -> str:
        """Mail a confirmation link to ``new_email`` (the password is required); the address
        changes only when that link is opened. Returns the normalised new address."""
        await self.check_password(user, password, ip=ip)
        email = new_email.strip().lower()
        if len(email) > EMAIL_MAX or not EMAIL_RE.match(email):
            raise ValidationFailed("invalid e-mail", fields={"email": "not a valid e-mail address"})
        if email == user.email:
            raise ValidationFailed("invalid e-mail", fields={"email": "this is your address now"})
        async with self.db.session() as s:
            taken = await s.scalar(select(User.id).where(User.email == email))
        if taken:
            raise Conflict(
                "an account with this e-mail already exists",
                code="email_taken",
                fields={"email": "already registered"},
            )
        token, token_hash = new_opaque_token()
        ttl = timedelta(minutes=self.settings.auth.email_token_ttl_minutes)
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
                    raise _invalid_token()
                await s.execute(
                    update(User)
                    .where(User.id == change.user_id)
                    .values(email=change.new_email, email_verified=True)
                )
                user_id = change.user_id
        except IntegrityError:  # someone registered that address meanwhile
            raise Conflict(
                "an account with this e-mail already exists",
                code="email_taken",
                fields={"email": "already registered"},
            ) from None
        return await self._require(user_id)

    # ------------------------------------------------------------------ listing and admin

    @staticmethod
    async def _page(s: Any, stmt: Any, page: int, per_page: int) -> Page[User]:
        offset, limit = page_bounds(page, per_page)
        total = await s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        rows = (await s.scalars(stmt.offset(offset).limit(limit))).all()
        return Page(
            items=list(rows), total=int(total or 0), page=offset // limit + 1, per_page=limit
        )

    @staticmethod
    def _text_filter(q: str) -> Any:
        pattern = q.strip().lower()
        return or_(
            *(
                func.lower(col).contains(pattern, autoescape=True)
                for col in (User.username, User.first_name, User.last_name, User.email)
            )
        )

    async def list_users(
        self,
        *,
        q: str | None = None,
        role: str | None = None,
        active: bool | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[User]:
        stmt = select(User).order_by(User.id)
        if q and q.strip():
            stmt = stmt.where(self._text_filter(q))
        if role:
            stmt = stmt.where(User.role == role)
        if active is not None:
            stmt = stmt.where(User.is_active.is_(active))
        async with self.db.session() as s:
            return await self._page(s, stmt, page, per_page)

    async def list_mentors(
        self, *, skill: str | None = None, q: str | None = None, page: int = 1, per_page: int = 20
    ) -> Page[User]:
        """Active mentors; ``skill`` matches a whole entry of ``skills`` case-insensitively."""
        stmt = select(User).where(User.role == "mentor", User.is_active.is_(True))
        if skill and skill.strip():
            # JSON arrays are stored as JSON text on both backends; matching the quoted
            # element keeps "Go" from matching "Google" without backend-specific JSON operators.
            needle = json.dumps(" ".join(skill.split()).lower())
            stmt = stmt.where(func.lower(cast(User.skills, Text)).contains(needle, autoescape=True))
        if q and q.strip():
            pattern = q.strip().lower()
            stmt = stmt.where(
                or_(
                    *(
                        func.lower(col).contains(pattern, autoescape=True)
                        for col in (User.username, User.first_name, User.last_name, User.bio)
                    ),
                    func.lower(cast(User.skills, Text)).contains(pattern, autoescape=True),
                )
            )
        stmt = stmt.order_by(User.id)
        async with self.db.session() as s:
            return await self._page(s, stmt, page, per_page)

    async def set_active(self, actor: User, user_id: int, active: bool) -> User:
        if not actor.is_admin:
            raise Forbidden("only an admin can do this")
        target = await self._require(user_id)
        if target.id == actor.id and not active:
            raise Forbidden("you cannot deactivate your own account", code="cannot_change_self")
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == target.id).values(is_active=active))
        if not active:
            # Every session ends; its sockets close on the one "sessions_revoked" event.
            await self.logins.revoke_all(target.id, "deactivated")
        return await self._require(target.id)

    async def set_role(self, actor: User, user_id: int, role: str) -> User:
        if not actor.is_admin:
            raise Forbidden("only an admin can do this")
        if role not in ROLES:
            raise ValidationFailed(
                "invalid role", fields={"role": "must be learner, mentor or admin"}
            )
        target = await self._require(user_id)
        if target.id == actor.id and role != actor.role:
            raise Forbidden("you cannot change your own role", code="cannot_change_self")
        values: dict[str, Any] = {"role": role}
        if role != "mentor":
            values["hourly_rate"] = None  # only mentors have a rate
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == target.id).values(**values))
        return await self._require(target.id)
