"""Content, filters, diversity and reasons of the hybrid recommender on hand-made data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from recommender.data import RecommenderWeights, Snapshot, UserProfile
from recommender.hybrid import Recommender, fit_model
from tests.recommender.support import (
    ALICE,
    BLANK,
    BOB,
    CONTENT_ONLY,
    DESIGNER,
    MENTORS,
    NOW,
    PY_LOVER,
    USERS,
    event,
    ids,
    session,
)


def test_python_lover_gets_python_first(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    out = rec.recommend_sessions(PY_LOVER, k=10, now=NOW)
    assert out[0].id in {"py-intro", "pandas"}
    assert "Python" in out[0].reason or "Pandas" in out[0].reason
    assert ids(out).index("guitar") > ids(out).index("py-intro")


def test_designer_gets_figma_first(snapshot: Snapshot) -> None:
    out = Recommender(fit_model(snapshot), CONTENT_ONLY).recommend_sessions(DESIGNER, now=NOW)
    assert out[0].id == "figma"
    assert out[0].reason == "matches your interest in Figma"
    assert out[0].source == "content"


def test_filters_booked_past_full_cancelled(snapshot: Snapshot) -> None:
    out = ids(Recommender(fit_model(snapshot)).recommend_sessions(PY_LOVER, k=20, now=NOW))
    assert not {"py-booked", "py-past", "py-full", "py-cancelled"} & set(out)
    assert set(out) == {"py-intro", "pandas", "figma", "guitar"}


def test_booked_ids_argument_and_recorded_booking_filter(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    assert "py-intro" not in ids(rec.recommend_sessions(PY_LOVER, booked_ids=["py-intro"], now=NOW))
    rec.record(event(PY_LOVER, "pandas", 103, "booking", 0))
    assert "pandas" not in ids(rec.recommend_sessions(PY_LOVER, now=NOW))


def test_recorded_bookings_fill_a_session(snapshot: Snapshot) -> None:
    tiny = session("tiny", BOB, "Tiny", ("Figma",), cap=1)
    snap = replace(snapshot, sessions=[*snapshot.sessions, tiny])
    rec = Recommender(fit_model(snap))
    assert "tiny" in ids(rec.recommend_sessions(DESIGNER, now=NOW))
    rec.record(event(BLANK, "tiny", BOB, "booking", 0))
    assert "tiny" not in ids(rec.recommend_sessions(DESIGNER, now=NOW))


def test_own_sessions_are_filtered(snapshot: Snapshot) -> None:
    out = ids(Recommender(fit_model(snapshot)).recommend_sessions(ALICE, k=20, now=NOW))
    assert "py-intro" not in out and out


def test_diversity_cap_per_mentor() -> None:
    sessions = [session(f"a{i}", ALICE, f"Python {i}", ("Python",)) for i in range(8)]
    sessions += [session(f"o{i}", BOB, f"Figma {i}", ("Figma",)) for i in range(3)]
    sessions += [session(f"c{i}", 102, f"Guitar {i}", ("Guitar",)) for i in range(3)]
    sessions += [session(f"d{i}", 103, f"Pandas {i}", ("Pandas",)) for i in range(3)]
    rec = Recommender(fit_model(Snapshot(USERS, sessions, MENTORS, ())), CONTENT_ONLY)
    out = rec.recommend_sessions(PY_LOVER, k=10, now=NOW)
    assert len(out) == 10
    assert sum(str(r.id).startswith("a") for r in out) == 3
    assert str(out[0].id).startswith("a")
    # A second page may hold three more of Alice's sessions, not more.
    out20 = rec.recommend_sessions(PY_LOVER, k=20, now=NOW)
    assert sum(str(r.id).startswith("a") for r in out20[:10]) <= 3


def test_cap_is_strict_when_one_mentor_has_everything() -> None:
    sessions = [session(f"a{i}", ALICE, f"Python {i}", ("Python",)) for i in range(8)]
    rec = Recommender(fit_model(Snapshot(USERS, sessions, MENTORS, ())))
    assert len(rec.recommend_sessions(PY_LOVER, k=10, now=NOW)) == 3


@pytest.mark.parametrize("uid", [PY_LOVER, DESIGNER, BLANK, 999])
def test_session_picks_have_a_reason_and_a_source(snapshot: Snapshot, uid: int) -> None:
    out = Recommender(fit_model(snapshot)).recommend_sessions(uid, now=NOW)
    assert out
    for r in out:
        assert r.reason and r.source in {"content", "collaborative", "popularity", "hybrid"}


def test_mentor_and_trending_picks_have_a_reason(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    assert all(r.reason for r in rec.recommend_mentors(PY_LOVER, now=NOW))
    assert all(r.reason for r in rec.trending(now=NOW))


def test_unknown_and_blank_users_fall_back_to_popularity(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    out = rec.recommend_sessions(424242, now=NOW)
    assert {r.source for r in out} == {"popularity"}
    # Recent bookings outweigh a view of "figma", which beats a session nobody touched.
    assert ids(out)[:2] == ["py-booked", "guitar"]
    assert ids(out).index("figma") < ids(out).index("pandas")
    assert out[0].reason == "trending this week"
    # A user who registered after the fit and declared nothing gets the same list.
    blank = UserProfile(424243, "learner")
    assert ids(rec.recommend_sessions(424243, now=NOW, profile=blank)) == ids(out)


def test_profile_of_a_user_registered_after_the_fit(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot), CONTENT_ONLY)
    newbie = UserProfile(5000, "learner", (), ("Guitar",))
    out = rec.recommend_sessions(5000, now=NOW, profile=newbie)
    assert out[0].id == "guitar" and "Guitar" in out[0].reason


def test_mentor_recommendations(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot))
    out = rec.recommend_mentors(DESIGNER, now=NOW)
    assert out[0].id == BOB
    assert BOB not in ids(rec.recommend_mentors(DESIGNER, followed_ids=[BOB], now=NOW))
    assert ALICE not in ids(rec.recommend_mentors(ALICE, now=NOW))


def test_empty_catalogue() -> None:
    rec = Recommender(fit_model(Snapshot()))
    assert rec.recommend_sessions(1, now=NOW) == []
    assert rec.trending(now=NOW) == []
    assert rec.recommend_mentors(1, now=NOW) == []


def test_collaborative_weight_grows_with_history(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot), RecommenderWeights(collaborative_full_history=4))
    w0 = rec._collab_weight(None, 777)
    for _ in range(2):
        rec.record(event(777, "figma", BOB, "view", 0))
    w2 = rec._collab_weight(None, 777)
    for _ in range(5):
        rec.record(event(777, "figma", BOB, "view", 0))
    assert w0 == 0.0 < w2 < rec._collab_weight(None, 777) == rec.weights.collaborative


def test_recorded_views_move_the_content_profile_at_once(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot), CONTENT_ONLY)
    newcomer = 6000  # unknown at fit time, declared nothing
    assert {r.source for r in rec.recommend_sessions(newcomer, now=NOW)} == {"popularity"}
    rec.record(event(newcomer, "guitar", 102, "view", 0))
    top = rec.recommend_sessions(newcomer, now=NOW)[0]
    assert top.id == "guitar" and top.source == "content"
    assert top.reason == "similar to Guitar sessions you explored"


def test_reasons_use_the_users_own_spelling(snapshot: Snapshot) -> None:
    rec = Recommender(fit_model(snapshot), CONTENT_ONLY)
    fan = UserProfile(7000, "learner", (), ("ux RESEARCH",))
    top = rec.recommend_sessions(7000, now=NOW, profile=fan)[0]
    assert top.id == "figma" and top.reason == "matches your interest in ux RESEARCH"


def test_popularity_reasons_name_the_mentor_as_the_pages_do(snapshot: Snapshot) -> None:
    """The display name ("Alice Liddell"), not the username; the username when there is none."""
    named = [
        replace(m, display_name="Alice Liddell") if m.id == ALICE else m for m in snapshot.mentors
    ]
    quiet = replace(snapshot, mentors=named, interactions=())
    reasons = {r.id: r.reason for r in Recommender(fit_model(quiet)).trending(now=NOW)}
    assert reasons["py-intro"] == "Alice Liddell is highly rated (4.8 from 20 ratings)"
    assert reasons["figma"] == "bob is highly rated (4.2 from 5 ratings)"
    busy = replace(snapshot, mentors=named)  # Alice's booked session makes her popular
    reasons = {r.id: r.reason for r in Recommender(fit_model(busy)).trending(now=NOW)}
    assert reasons["py-intro"] == "new session from Alice Liddell, popular with learners this week"
