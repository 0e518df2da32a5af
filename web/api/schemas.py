"""Output models shared by several API modules (and pages): users, pages of results, and the
session and booking shapes that sessions, bookings, feedback and admin answers all embed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from control.models import Booking, Session, User
from control.services.common import Page
from control.services.payments import PaymentStart

T = TypeVar("T")


def values_of(enum: type[StrEnum]) -> Any:
    """``Literal[...]`` of the enum's values, for a field that takes one of them: pydantic
    checks and documents it inline (a ``StrEnum`` field would be a ``$ref``, which a query
    parameter cannot use). Type-check such a field as ``str`` (see ``web.api.sessions``)."""
    return Literal[tuple(v.value for v in enum)]


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
    def of(cls, user: User) -> UserOut:
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


# A user as a session or a review names them (models' docstrings would become their OpenAPI
# descriptions, so these notes are comments).
class MentorSummary(BaseModel):
    id: int
    username: str
    display_name: str
    profile_image: str | None

    @classmethod
    def of(cls, user: User) -> MentorSummary:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            profile_image=f"/media/{user.profile_image}" if user.profile_image else None,
        )


class SessionOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    mentor_id: int
    mentor: MentorSummary
    schedule: datetime
    duration: int
    end_time: datetime
    max_participants: int
    current_participants: int
    seats_left: int
    status: str
    skills_required: list[str]
    price: float
    is_free: bool
    created_at: datetime

    @classmethod
    def fields_of(cls, s: Session) -> dict[str, Any]:
        return {
            "id": s.id,
            "title": s.title,
            "description": s.description,
            "mentor_id": s.mentor_id,
            "mentor": MentorSummary.of(s.mentor),
            "schedule": s.schedule,
            "duration": s.duration,
            "end_time": s.ends_at,
            "max_participants": s.max_participants,
            "current_participants": s.current_participants,
            "seats_left": s.seats_left,
            "status": s.status,
            "skills_required": list(s.skills_required or []),
            "price": float(s.price),
            "is_free": s.price == 0,
            "created_at": s.created_at,
        }

    @classmethod
    def of(cls, s: Session) -> SessionOut:
        return cls(**cls.fields_of(s))


class SessionPage(PageOut[SessionOut]):
    """A page of sessions."""


# The session a booking is for.
class SessionBrief(BaseModel):
    id: uuid.UUID
    title: str
    schedule: datetime
    duration: int
    status: str
    price: float
    mentor: MentorSummary

    @classmethod
    def of(cls, s: Session) -> SessionBrief:
        return cls(
            id=s.id,
            title=s.title,
            schedule=s.schedule,
            duration=s.duration,
            status=s.status,
            price=float(s.price),
            mentor=MentorSummary.of(s.mentor),
        )


class PaymentOut(BaseModel):
    provider: str
    payment_id: str | None
    instructions: str
    expires_at: datetime
    redirect_url: str | None = Field(
        default=None, description="where to send the learner to pay (gateway providers)"
    )

    @classmethod
    def of(cls, start: PaymentStart, provider: str) -> PaymentOut:
        return cls(
            provider=provider,
            payment_id=start.payment_id,
            instructions=start.instructions,
            expires_at=start.expires_at,
            redirect_url=start.redirect_url,
        )


class BookingOut(BaseModel):
    id: int
    session_id: uuid.UUID
    learner_id: int
    status: str
    payment_status: str
    payment_id: str | None
    payment_expires_at: datetime | None
    amount: float
    booking_time: datetime
    joined_at: datetime | None
    left_at: datetime | None
    session: SessionBrief
    payment: PaymentOut | None = None

    @classmethod
    def of(cls, b: Booking, start: PaymentStart | None = None, provider: str = "") -> BookingOut:
        """``start``: the payment just begun by booking (with its ``provider``'s name)."""
        return cls(
            id=b.id,
            session_id=b.session_id,
            learner_id=b.learner_id,
            status=b.status,
            payment_status=b.payment_status,
            payment_id=b.payment_id,
            payment_expires_at=b.payment_expires_at,
            amount=float(b.amount),
            booking_time=b.booking_time,
            joined_at=b.joined_at,
            left_at=b.left_at,
            session=SessionBrief.of(b.session),
            payment=PaymentOut.of(start, provider) if start else None,
        )
