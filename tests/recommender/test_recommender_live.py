"""Catalogue changes applied live, without a refit: a session published, a session closed,
a booking cancelled; and the database's word on who holds a seat at fit time."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from recommender.data import MentorItem, RecommenderWeights, Snapshot, UserProfile
from recommender.engine import Engine
from recommender.hybrid import Recommender, fit_model
from tests.recommender.support import (
    ALICE,
    BLANK,
    BOB,
    CONTENT_ONLY,
    DAVE,
    DESIGNER,
    NOW,
    PY_LOVER,
    event,
    ids,
    session,
)

NEWCOMER = 500  # a mentor who registered after the fit
TIMEOUT = 10


def test_a_published_session_is_served_at_once(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot), CONTENT_ONLY)
    fitted = rec.model
    assert rec.add_session(session("figma-2", BOB, "Figma prototyping", ("Figma",)))
    out = rec.recommend_sessions(DESIGNER, k=3, now=NOW)
    assert "figma-2" in ids(out)
    added = next(r for r in out if r.id == "figma-2")
    assert added.reason == "matches your interest in Figma" and added.source == "content"
    # ... and not to the Python lover ahead of Python sessions.
    py = ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    assert py.index("py-intro") < py.index("figma-2")
    assert not rec.add_session(session("figma-2", BOB, "again", ("Figma",)))  # known: no-op
    assert rec.model is not fitted  # a new model object; the fitted one is left as it was
    assert "figma-2" not in fitted.catalog.session_index


def test_a_session_of_a_mentor_new_since_the_fit(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    newcomer = MentorItem(NEWCOMER, "Grace Hopper", ("Python", "Compilers"), "Compilers", None, 0)
    rec.add_session(session("compilers", NEWCOMER, "Python compilers", ("Python",)), newcomer)
    assert "compilers" in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    assert "compilers" in ids(rec.trending(k=10, now=NOW))
    assert NEWCOMER in ids(rec.recommend_mentors(PY_LOVER, k=10, now=NOW))
    # Events on it are recorded like any other: the seat counts, the view moves popularity.
    rec.record(event(BLANK, "compilers", NEWCOMER, "view", 0))
    rec.record(event(BLANK, "compilers", NEWCOMER, "booking", 0))
    assert ids(rec.trending(k=1, now=NOW)) == ["compilers"]
    assert "compilers" not in ids(rec.recommend_sessions(BLANK, k=10, now=NOW))  # booked


def test_a_full_live_session_is_filtered_like_a_fitted_one(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    rec.add_session(session("tiny", BOB, "Figma one to one", ("Figma",), cap=1))
    assert "tiny" in ids(rec.recommend_sessions(DESIGNER, k=10, now=NOW))
    rec.record(event(BLANK, "tiny", BOB, "booking", 0))
    assert "tiny" not in ids(rec.recommend_sessions(DESIGNER, k=10, now=NOW))


def test_closed_sessions_are_never_suggested_again(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    rec.close_session("py-intro")
    rec.close_session("no-such-session")  # unknown: ignored
    assert "py-intro" not in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    assert "py-intro" not in ids(rec.trending(k=10, now=NOW))


def test_a_cancelled_booking_is_suggested_again_and_frees_its_seat(snapshot: Snapshot) -> None:
    # "py-booked" was booked by the Python lover before the fit.
    rec = Recommender(fit_model(snapshot))
    assert "py-booked" not in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    rec.unbook(PY_LOVER, "py-booked")
    assert "py-booked" in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    rec.unbook(PY_LOVER, "py-booked")  # twice: the seat is not freed twice
    assert int(rec.live.taken_extra[rec.model.catalog.session_index["py-booked"]]) == -1
    # Booked again: hidden again, the seat taken again.
    rec.record(event(PY_LOVER, "py-booked", ALICE, "booking", 0))
    assert "py-booked" not in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    assert int(rec.live.taken_extra[rec.model.catalog.session_index["py-booked"]]) == 0


def test_a_live_booking_cancelled_before_any_refit(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    rec.record(event(DESIGNER, "figma", BOB, "booking", 0))
    assert "figma" not in ids(rec.recommend_sessions(DESIGNER, k=10, now=NOW))
    rec.unbook(DESIGNER, "figma")
    assert "figma" in ids(rec.recommend_sessions(DESIGNER, k=10, now=NOW))


def test_cancelling_frees_a_seat_in_a_full_session(snapshot: Snapshot) -> None:
    full = session("duo", DAVE, "Pandas in pairs", ("Pandas",), cap=1, taken=1)
    snap = replace(
        snapshot,
        sessions=[*snapshot.sessions, full],
        interactions=[*snapshot.interactions, event(BLANK, "duo", DAVE, "booking")],
        seats=[(PY_LOVER, "py-booked"), (BLANK, "guitar"), (BLANK, "duo")],
    )
    rec = Recommender(fit_model(snap))
    assert "duo" not in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    rec.unbook(BLANK, "duo")
    assert "duo" in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))


def test_seats_in_the_snapshot_override_booking_events(snapshot: Snapshot) -> None:
    """A booking event whose booking was cancelled before the fit does not hide the session."""
    still_held = [(BLANK, "guitar")]  # the Python lover cancelled "py-booked"
    rec = Recommender(fit_model(replace(snapshot, seats=still_held)))
    assert "py-booked" in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))
    assert "guitar" not in ids(rec.recommend_sessions(BLANK, k=10, now=NOW))
    # Without the list (synthetic data), the booking events are the bookings.
    rec = Recommender(fit_model(snapshot))
    assert "py-booked" not in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))


def test_a_started_session_is_not_bookable_at_fit_either(snapshot: Snapshot) -> None:
    live = session("live-now", ALICE, "Python live", ("Python",), days=0.01, status="active")
    rec = Recommender(fit_model(replace(snapshot, sessions=[*snapshot.sessions, live])))
    assert "live-now" not in ids(rec.recommend_sessions(PY_LOVER, k=10, now=NOW))


async def test_changes_during_a_slow_load_survive_the_swap(snapshot: Snapshot) -> None:
    """The snapshot being loaded predates a publication, a closing and a cancellation: the
    refitted model must still show all three."""
    loading, release = asyncio.Event(), asyncio.Event()
    loads = 0

    async def loader() -> Snapshot:
        nonlocal loads
        loads += 1
        if loads == 2:
            loading.set()
            await release.wait()
        return snapshot

    engine = Engine(loader, RecommenderWeights(refit_interval_s=3600), min_refit_gap_s=0)
    await asyncio.wait_for(engine.start(wait=True), TIMEOUT)
    try:
        refit = asyncio.create_task(engine.refresh_now())
        await asyncio.wait_for(loading.wait(), TIMEOUT)
        engine.add_session(session("figma-2", BOB, "Figma prototyping", ("Figma",)))
        engine.close_session("py-intro")
        engine.unbook(PY_LOVER, "py-booked")
        release.set()
        await asyncio.wait_for(refit, TIMEOUT)
        assert engine.version == 2
        assert "figma-2" in ids(engine.recommend_sessions(DESIGNER, k=10, now=NOW))
        python = ids(engine.recommend_sessions(PY_LOVER, k=10, now=NOW))
        assert "py-intro" not in python and "py-booked" in python
    finally:
        await engine.stop()


def test_a_live_session_reaches_a_user_registered_after_the_fit(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot), CONTENT_ONLY)
    rec.add_session(session("guitar-2", ALICE, "Guitar for Pythonistas", ("Guitar",)))
    newbie = UserProfile(5000, "learner", (), ("Guitar",))
    out = rec.recommend_sessions(5000, k=2, now=NOW, profile=newbie)
    assert set(ids(out)) == {"guitar", "guitar-2"}


def test_the_first_session_of_an_empty_platform() -> None:
    rec = Recommender(fit_model(Snapshot()))
    rec.add_session(session("first", NEWCOMER, "Compilers from scratch", ("Compilers",)))
    assert ids(rec.recommend_sessions(PY_LOVER, now=NOW)) == ["first"]
    assert ids(rec.trending(now=NOW)) == ["first"]
    assert ids(rec.recommend_mentors(PY_LOVER, now=NOW)) == [NEWCOMER]
    rec.record(event(PY_LOVER, "first", NEWCOMER, "booking", 0))
    assert rec.recommend_sessions(PY_LOVER, now=NOW) == []
