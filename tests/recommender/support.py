"""Small hand-made catalogue for the recommender tests (the ``snapshot`` fixture in conftest.py
builds a platform from it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from recommender.data import (
    Interaction,
    InteractionKind,
    MentorItem,
    Recommendation,
    RecommenderWeights,
    SessionItem,
    UserProfile,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
PY_LOVER, DESIGNER, BLANK = 1, 2, 3
#: the content model alone: rankings that follow skills and interests only
CONTENT_ONLY = RecommenderWeights(content=1.0, collaborative=0.0, popularity=0.0)
ALICE, BOB, CAROL, DAVE = 100, 101, 102, 103


def session(
    sid: str,
    mentor: int,
    title: str,
    skills: tuple[str, ...],
    *,
    days: float = 3,
    status: str = "scheduled",
    cap: int = 10,
    taken: int = 0,
    description: str = "",
) -> SessionItem:
    """A session ``days`` from NOW (negative = past)."""
    return SessionItem(
        id=sid,
        mentor_id=mentor,
        title=title,
        description=description or title,
        skills=skills,
        schedule=NOW + timedelta(days=days),
        status=status,
        max_participants=cap,
        current_participants=taken,
        price=0.0,
    )


def event(
    user: int,
    sid: str,
    mentor: int,
    kind: InteractionKind,
    days_ago: float = 1,
    value: float | None = None,
) -> Interaction:
    return Interaction(user, sid, mentor, kind, NOW - timedelta(days=days_ago), value)


def ids(recs: Iterable[Recommendation]) -> list[str | int]:
    """The ids of ``recs``, in order."""
    return [r.id for r in recs]


USERS = (
    UserProfile(PY_LOVER, "learner", ("Python",), ("Python", "Pandas")),
    UserProfile(DESIGNER, "learner", (), ("Figma", "UX research")),
    UserProfile(BLANK, "learner", (), ()),
    UserProfile(ALICE, "mentor", ("Python", "Django"), ()),
    UserProfile(BOB, "mentor", ("Figma",), ()),
)
MENTORS = (
    MentorItem(ALICE, "alice", ("Python", "Django"), "Pythonista", 4.8, 20),
    MentorItem(BOB, "bob", ("Figma", "UX research"), "Designer", 4.2, 5),
    MentorItem(CAROL, "carol", ("Guitar", "Music theory"), "Musician", None, 0),
    MentorItem(DAVE, "dave", ("Python", "Pandas"), "Data person", 3.9, 3),
)
SESSIONS = (
    session(
        "py-intro",
        ALICE,
        "Intro to Python",
        ("Python",),
        description="variables loops functions in python",
    ),
    session("pandas", DAVE, "Pandas for data analysis", ("Pandas", "Python")),
    session("figma", BOB, "Figma basics", ("Figma", "UX research")),
    session("guitar", CAROL, "Guitar chords", ("Guitar",)),
    session("py-past", ALICE, "Python yesterday", ("Python",), days=-1, status="completed"),
    session("py-full", DAVE, "Python full house", ("Python",), cap=5, taken=5),
    session("py-cancelled", DAVE, "Python cancelled", ("Python",), status="cancelled"),
    session("py-booked", ALICE, "Advanced Python", ("Python",)),
)
