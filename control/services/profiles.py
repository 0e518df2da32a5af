"""Profiles: the fields a user edits about themselves, and their avatar."""

from __future__ import annotations

import asyncio
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import update

from control.db import Database
from control.errors import ValidationFailed
from control.limits import BIO_MAX, HOURLY_RATE_MAX, NAME_MAX, TAG_MAX_CHARS, TAGS_MAX
from control.models import User
from control.services.images import PayloadTooLarge, clean_image, image_extension
from control.services.users import UserDirectory
from control.timezones import check_zone

PROFILE_FIELDS = frozenset(
    {"first_name", "last_name", "bio", "skills", "interests", "hourly_rate", "timezone"}
)
AVATAR_DIR = "avatars"


def normalise_tags(values: Any, field: str) -> list[str]:
    """≤ ``TAGS_MAX`` unique (case-insensitively) trimmed strings of 1–``TAG_MAX_CHARS``
    characters, order kept."""
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


class ProfileService:
    """``platform.accounts.profiles``: ``update_profile`` and ``set_profile_image``."""

    def __init__(
        self, db: Database, users: UserDirectory, *, media_dir: Path, max_image_bytes: int
    ) -> None:
        self.db = db
        self.users = users
        #: where uploaded media live (``[server] data_dir``/media); avatars under AVATAR_DIR
        self.media_dir = media_dir
        self.max_image_bytes = max_image_bytes

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
            if rate is not None and not user.is_mentor:
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
        return await self.users.require(user.id)

    async def set_profile_image(self, user: User, data: bytes, content_type: str | None) -> User:
        """Store a PNG/JPEG/GIF/WEBP avatar (checked by content) and drop the previous one."""
        limit = self.max_image_bytes
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
        current = await self.users.require(user.id)
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == user.id).values(profile_image=relative))
        old = current.profile_image
        if old and old.startswith(AVATAR_DIR + "/") and "/" not in old[len(AVATAR_DIR) + 1 :]:
            (self.media_dir / old).unlink(missing_ok=True)
        return await self.users.require(user.id)
