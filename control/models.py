"""SQLAlchemy 2 models for every table of DESIGN.md §5 (times are UTC)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from control.limits import MAX_PARTICIPANTS, RATING_MAX, RATING_MIN

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT keys on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY auto-increments there).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Role(StrEnum):
    MENTOR = "mentor"
    LEARNER = "learner"
    ADMIN = "admin"


class SessionStatus(StrEnum):
    """scheduled → active → completed, or scheduled → cancelled (SessionService._transition)."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


def session_status(value: str | None) -> SessionStatus | None:
    """``value`` as a session status, or None for anything else (a filter left blank or forged)."""
    try:
        return SessionStatus(value) if value else None
    except ValueError:
        return None


class BookingStatus(StrEnum):
    """pending (payment on hold) → confirmed → completed, or → cancelled."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class PaymentStatus(StrEnum):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"


#: ``notifications.type`` (``control.notices.NoticeType``)
NOTIFICATION_TYPES = ("info", "success", "warning", "error")
#: ``interactions.kind``: the implicit feedback the recommender learns from
INTERACTION_KINDS = ("view", "booking", "completion", "rating")


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _one_of(column: str, values: type[StrEnum], name: str) -> CheckConstraint:
    """The CHECK constraint that keeps ``column`` to the enum's values (names as migrated)."""
    return CheckConstraint(f"{column} IN ({_listed(tuple(v.value for v in values))})", name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20))
    bio: Mapped[str] = mapped_column(Text, default="")
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    interests: Mapped[list[str]] = mapped_column(JSON, default=list)
    profile_image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    hourly_rate: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    date_joined: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # IANA zone name (control/timezones.py) for reading and showing this user's local times.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")

    __table_args__ = (_one_of("role", Role, "role"),)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_mentor(self) -> bool:
        return self.role == Role.MENTOR

    @property
    def display_name(self) -> str:
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.username


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    schedule: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration: Mapped[int] = mapped_column(Integer)
    max_participants: Mapped[int] = mapped_column(Integer, default=10)
    current_participants: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(
        String(20), default=SessionStatus.SCHEDULED.value, index=True
    )
    meeting_room_id: Mapped[str] = mapped_column(String(100), unique=True)
    skills_required: Mapped[list[str]] = mapped_column(JSON, default=list)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("0"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminder_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    mentor: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        _one_of("status", SessionStatus, "status"),
        CheckConstraint(
            f"max_participants BETWEEN 1 AND {MAX_PARTICIPANTS}", name="max_participants"
        ),
        CheckConstraint(
            "current_participants >= 0 AND current_participants <= max_participants",
            name="seats",
        ),
        CheckConstraint("price >= 0", name="price"),
        CheckConstraint("duration > 0", name="duration"),
    )

    @property
    def seats_left(self) -> int:
        return max(0, self.max_participants - self.current_participants)

    @property
    def ends_at(self) -> datetime:
        """When the session is scheduled to end (its room may close earlier or later)."""
        return self.schedule + timedelta(minutes=self.duration)

    @property
    def is_open(self) -> bool:
        """Not yet over: scheduled or running."""
        return self.status in OPEN_SESSION_STATUSES

    @property
    def accepts_feedback(self) -> bool:
        """Ratings are taken from the moment the room opens."""
        return self.status in FEEDBACK_SESSION_STATUSES


class Booking(Base):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=BookingStatus.PENDING.value)
    payment_status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.PENDING.value)
    payment_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("0"))
    booking_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    is_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    learner: Mapped[User] = relationship(lazy="joined")
    session: Mapped[Session] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("learner_id", "session_id", name="uq_bookings_learner_session"),
        _one_of("status", BookingStatus, "status"),
        _one_of("payment_status", PaymentStatus, "payment_status"),
    )

    @property
    def holds_seat(self) -> bool:
        """Counted in the session's ``current_participants``."""
        return self.status in SEAT_HOLDING_STATUSES

    @property
    def is_kept(self) -> bool:
        """Still on: pending or confirmed (cancelling and holds' expiry release these)."""
        return self.status in SEAT_STATUSES

    @property
    def is_attendee(self) -> bool:
        """Let into the room and allowed to rate: confirmed, or completed after the session."""
        return self.status in ATTENDEE_STATUSES

    @property
    def is_earned(self) -> bool:
        """Counts towards the mentor's earnings: paid, or free and attended (kept)."""
        if self.payment_status == PaymentStatus.PAID:
            return True
        return self.payment_status == PaymentStatus.NOT_REQUIRED and self.is_attendee

    @property
    def awaits_payment(self) -> bool:
        """A seat held for a payment nobody confirmed yet (``mark_paid`` / ``settle_payment``
        take only these)."""
        return self.status == BookingStatus.PENDING and self.payment_status == PaymentStatus.PENDING

    @property
    def may_rate(self) -> bool:
        """What ``FeedbackService.submit`` takes (bar "once"): an attendee of a session that
        accepts feedback. The pages offer "Rate" exactly then."""
        return self.is_attendee and self.session.accepts_feedback

    def is_upcoming(self, now: datetime) -> bool:
        """Kept, and its session neither closed nor past its scheduled end."""
        return self.is_kept and self.session.is_open and self.session.ends_at >= now


# The rules above as status sets, for the queries that apply them in SQL (one definition:
# the properties use these too).
#: Bookings that can still be cancelled or expire, and so release a seat (``is_kept``).
SEAT_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED)
#: Bookings counted as holding a seat (``holds_seat``; a completed one held it).
SEAT_HOLDING_STATUSES = (*SEAT_STATUSES, BookingStatus.COMPLETED)
#: Bookings of attendees, who enter the room and may rate (``is_attendee``).
ATTENDEE_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
#: Sessions not yet over (``Session.is_open``).
OPEN_SESSION_STATUSES = (SessionStatus.SCHEDULED, SessionStatus.ACTIVE)
#: Sessions that take ratings (``Session.accepts_feedback``).
FEEDBACK_SESSION_STATUSES = (SessionStatus.ACTIVE, SessionStatus.COMPLETED)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("session_id", "user_id", name="uq_feedback_session_user"),
        CheckConstraint(f"rating BETWEEN {RATING_MIN} AND {RATING_MAX}", name="rating"),
    )


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(50), default="info")
    event: Mapped[str] = mapped_column(String(50), default="general")
    link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    is_read: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_notifications_user_unread", "user_id", "is_read"),
        CheckConstraint(f"type IN ({_listed(NOTIFICATION_TYPES)})", name="type"),
    )


class Follow(Base):
    __tablename__ = "follows"

    follower_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    mentor_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMessage(Base):
    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class Interaction(Base):
    """Implicit feedback for the recommender: views, bookings, completions, ratings."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    mentor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (CheckConstraint(f"kind IN ({_listed(INTERACTION_KINDS)})", name="kind"),)


class RoomBan(Base):
    """A participant removed from a session's room by its mentor; they cannot rejoin it."""

    __tablename__ = "room_bans"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserToken(Base):
    """Single-use e-mail verification and password reset tokens (only the hash is stored)."""

    __tablename__ = "user_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose"),
    )


class AuthSession(Base):
    """A signed-in device: one row per login, referenced by the cookie and the JWT's ``sid``.

    Revoking it (logout, "log out everywhere", a password change or reset, deactivation) is
    what ends a token before it expires; ``last_seen_at`` is written at most once a minute.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(30), nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class EmailChange(Base):
    """A requested new address, applied when the link mailed to it is opened (hash stored)."""

    __tablename__ = "email_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    new_email: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
