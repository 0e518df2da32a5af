"""Output models shared by several API modules (and pages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from control.models import User
from control.services.common import Page

T = TypeVar("T")


class UserPublic(BaseModel):
    """What anyone may see of a user."""

    id: int
    username: str
    first_name: str
    last_name: str
    display_name: str
    role: str
    bio: str
    skills: list[str]
    profile_image: str | None
    hourly_rate: float | None

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            username=user.username,
            first_name=user.first_name,
            last_name=user.last_name,
            display_name=user.display_name,
            role=user.role,
            bio=user.bio,
            skills=list(user.skills or []),
            profile_image=f"/media/{user.profile_image}" if user.profile_image else None,
            hourly_rate=float(user.hourly_rate) if isinstance(user.hourly_rate, Decimal) else None,
        )


class UserOut(UserPublic):
    """The signed-in user's own view."""

    email: str
    interests: list[str]
    is_active: bool
    email_verified: bool
    date_joined: datetime
    last_login: datetime | None
    timezone: str  # IANA name; times in pages and notifications are shown in it

    @classmethod
    def of(cls, user: User) -> UserOut:  # type: ignore[override]
        return cls(
            **UserPublic.of(user).model_dump(),
            email=user.email,
            interests=list(user.interests or []),
            is_active=user.is_active,
            email_verified=user.email_verified,
            date_joined=user.date_joined,
            last_login=user.last_login,
            timezone=user.timezone,
        )


class PageOut(BaseModel, Generic[T]):
    model_config = ConfigDict(arbitrary_types_allowed=False)

    items: list[T]
    total: int
    page: int
    per_page: int
    pages: int

    @classmethod
    def of(cls, page: Page[Any], item: Callable[[Any], T], **extra: Any) -> Self:
        """A service's ``Page`` with each row turned into ``item(row)`` (``extra``: the
        fields a subclass adds)."""
        return cls(
            items=[item(row) for row in page.items],
            total=page.total,
            page=page.page,
            per_page=page.per_page,
            pages=page.pages,
            **extra,
        )


class Message(BaseModel):
    message: str
