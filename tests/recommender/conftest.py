"""The recommender tests' fixture: a tiny platform from the catalogue in support.py."""

from __future__ import annotations

import pytest

from recommender.data import Snapshot
from tests.recommender.support import (
    ALICE,
    BLANK,
    BOB,
    CAROL,
    DESIGNER,
    MENTORS,
    PY_LOVER,
    SESSIONS,
    USERS,
    event,
)


@pytest.fixture
def snapshot() -> Snapshot:
    """Tiny platform: a Python lover (who booked one session), a designer, a blank user."""
    interactions = (
        event(PY_LOVER, "py-booked", ALICE, "booking"),
        event(DESIGNER, "figma", BOB, "view", 0.5),
        event(BLANK, "guitar", CAROL, "view", 2),
        event(BLANK, "guitar", CAROL, "booking", 2),
    )
    return Snapshot(USERS, SESSIONS, MENTORS, interactions)
