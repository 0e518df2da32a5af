"""Plain data model: what the web/control layer hands the recommender, and what it gets back.

Everything here is frozen and free of ORM/HTTP types so the recommender can be tested, evaluated
and benchmarked without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

InteractionKind = Literal["view", "booking", "completion", "rating"]
#: the three scores every recommendation blends
Component = Literal["content", "collaborative", "popularity"]
COMPONENTS: tuple[Component, ...] = get_args(Component)
#: what a recommendation is credited to: its dominant component, or "hybrid" when none is
Source = Literal[Component, "hybrid"]

#: Session statuses a learner can still book (the platform refuses to book a started session).
BOOKABLE_STATUSES: frozenset[str] = frozenset({"scheduled"})


@dataclass(frozen=True)
class UserProfile:
    """A platform user (learner or mentor) with declared skills and interests."""

    id: int
    role: str
    skills: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionItem:
    """A group session. ``created_at`` is optional; evaluation uses it to tell new sessions."""

    id: str
    mentor_id: int
    title: str
    description: str
    skills: tuple[str, ...]
    schedule: datetime
    status: str
    max_participants: int
    current_participants: int
    price: float
    created_at: datetime | None = None


@dataclass(frozen=True)
class MentorItem:
    """A mentor's public profile. ``display_name`` is the name the pages show (first and last
    name); reasons quote it, or the username when there is none."""

    id: int
    username: str
    skills: tuple[str, ...]
    bio: str
    rating: float | None
    rating_count: int
    display_name: str = ""

    @property
    def name(self) -> str:
        """How reasons name the mentor."""
        return self.display_name or self.username


@dataclass(frozen=True)
class Interaction:
    """One learner event. ``value`` is the 1-5 rating for ``kind == "rating"``."""

    user_id: int
    session_id: str
    mentor_id: int
    kind: InteractionKind
    at: datetime
    value: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything a refit needs, read from the database in one go.

    ``seats`` lists ``(user id, session id)`` for every booking that holds a seat now, when
    the source knows it (the platform's export): a booking cancelled since is then no longer
    "booked". ``None`` derives the booked sessions from the booking interactions (synthetic
    data and the offline evaluation, which have no cancellations).
    """

    users: Sequence[UserProfile] = ()
    sessions: Sequence[SessionItem] = ()
    mentors: Sequence[MentorItem] = ()
    interactions: Sequence[Interaction] = ()
    seats: Sequence[tuple[int, str]] | None = None


@dataclass(frozen=True)
class Recommendation:
    """A ranked item: a session id (str) or a mentor id (int), with a human reason."""

    id: str | int
    score: float
    reason: str
    source: Source


@dataclass(frozen=True)
class RecommenderWeights:
    """Blend weights and engine knobs (filled from config by the web layer)."""

    content: float = 0.5
    collaborative: float = 0.3
    popularity: float = 0.2
    #: interactions at which the collaborative weight reaches its full value
    collaborative_full_history: int = 20
    half_life_days: float = 7.0
    max_per_mentor: int = 3
    refit_interval_s: float = 300
    refit_after_interactions: int = 50
    #: rank sessions with the blend ``fit_model`` learns from the history (when there is
    #: enough of it); False: always the fixed weights above
    learn_blend: bool = True
