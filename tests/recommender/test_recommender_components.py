"""Collaborative carry-over to new sessions, popularity decay, metrics and serialisation."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np

from recommender.data import MentorItem, RecommenderWeights, Snapshot, UserProfile
from recommender.hybrid import Recommender, fit_model
from recommender.metrics import coverage, ndcg_at_k, precision_at_k, recall_at_k
from recommender.popularity import DecayedCounter
from recommender.serialization import snapshot_from_dict, snapshot_to_dict
from tests.recommender.support import NOW, event, session

COLLAB_ONLY = RecommenderWeights(content=0.0, collaborative=1.0, popularity=0.0)
X, Y, Z = 200, 201, 202  # mentors


def _two_communities() -> Snapshot:
    """Users 10-15 learn with mentors X and Y; users 20-25 with Z. User 16 only knows X."""
    mentors = [MentorItem(m, f"m{m}", (), "", None, 0) for m in (X, Y, Z)]
    past = [
        session("x-old", X, "Old X", ("Rust",), days=-10, status="completed"),
        session("y-old", Y, "Old Y", ("Go",), days=-10, status="completed"),
        session("z-old", Z, "Old Z", ("Haskell",), days=-10, status="completed"),
    ]
    new = [
        # Brand-new sessions: nobody interacted with them. Neutral text so content can't help.
        session("y-new", Y, "Evening meetup", ("Zig",)),
        session("z-new", Z, "Evening meetup", ("Zig",)),
    ]
    ev = []
    for u in range(10, 16):
        ev += [event(u, "x-old", X, "booking", 12), event(u, "y-old", Y, "booking", 11)]
    for u in range(20, 26):
        ev += [event(u, "z-old", Z, "booking", 12), event(u, "z-old", Z, "view", 12)]
    ev += [event(16, "x-old", X, "booking", 12)]
    users = [UserProfile(u, "learner") for u in (*range(10, 17), *range(20, 26))]
    return Snapshot(users, past + new, mentors, ev)


def test_collaborative_carries_to_new_session_via_mentor() -> None:
    rec = Recommender(fit_model(_two_communities()), COLLAB_ONLY)
    out = rec.recommend_sessions(16, k=2, now=NOW)
    assert [r.id for r in out] == ["y-new", "z-new"]
    assert out[0].source == "collaborative"
    assert out[0].reason == "learners like you booked with this mentor"


def test_collaborative_carries_via_skills() -> None:
    snap = _two_communities()
    # A new mentor W teaches Go (a skill of the X/Y community) and Haskell's community's nothing.
    sessions = [
        *snap.sessions,
        session("w-go", 203, "Evening meetup", ("Go",)),
        session("w-hs", 204, "Evening meetup", ("Haskell",)),
    ]
    rec = Recommender(
        fit_model(Snapshot(snap.users, sessions, snap.mentors, snap.interactions)), COLLAB_ONLY
    )
    out = [r.id for r in rec.recommend_sessions(16, k=4, now=NOW, booked_ids=["y-new", "z-new"])]
    assert out.index("w-go") < out.index("w-hs")


def test_live_record_moves_collaborative_row() -> None:
    rec = Recommender(fit_model(_two_communities()), COLLAB_ONLY)
    assert rec.recommend_sessions(999, k=2, now=NOW)[0].source == "popularity"
    for _ in range(3):
        rec.record(event(999, "z-old", Z, "booking", 0))
    assert rec.recommend_sessions(999, k=2, now=NOW)[0].id == "z-new"


def test_decayed_counter_half_life() -> None:
    c = DecayedCounter(2, half_life_s=86400 * 7, ref_ts=NOW.timestamp())
    c.add(0, 1.0, (NOW - timedelta(days=7)).timestamp())
    c.add(1, 1.0, NOW.timestamp())
    assert np.allclose(c.at(NOW.timestamp()), [0.5, 1.0])
    assert np.allclose(c.at((NOW + timedelta(days=7)).timestamp()), [0.25, 0.5])


def test_popularity_decay_ordering() -> None:
    sessions = [
        session("old-hit", 200, "A", ("X",)),
        session("fresh", 201, "B", ("Y",)),
        session("quiet", 202, "C", ("Z",)),
    ]
    ev = [event(u, "old-hit", 200, "booking", 30) for u in range(1, 6)]  # 5 bookings, a month ago
    ev += [event(9, "fresh", 201, "booking", 1)]  # 1 booking yesterday
    rec = Recommender(fit_model(Snapshot((), sessions, (), ev)))
    out = rec.trending(now=NOW)
    assert [r.id for r in out] == ["fresh", "old-hit", "quiet"]
    assert out[0].reason == "trending this week"
    # Recording events shows up at once.
    for u in range(20, 23):
        rec.record(event(u, "quiet", 202, "booking", 0))
    assert rec.trending(now=NOW)[0].id == "quiet"


def test_metrics() -> None:
    assert precision_at_k(["a", "b", "c"], {"b"}, 10) == 0.1
    assert recall_at_k(["a", "b"], {"b", "z"}, 10) == 0.5
    assert ndcg_at_k(["b", "a"], {"b"}, 10) == 1.0
    assert 0 < ndcg_at_k(["a", "b"], {"b"}, 10) < 1
    assert ndcg_at_k([], {"b"}, 10) == 0.0
    assert coverage([["a"], ["a", "b"]], 4) == 0.5


def test_snapshot_json_round_trip(snapshot: Snapshot) -> None:
    again = snapshot_from_dict(snapshot_to_dict(snapshot))
    assert tuple(again.sessions) == tuple(snapshot.sessions)
    assert tuple(again.interactions) == tuple(snapshot.interactions)
    assert tuple(again.users) == tuple(snapshot.users)
    assert tuple(again.mentors) == tuple(snapshot.mentors)
    assert again.seats is None  # unknown stays unknown (booking events stand for seats)
    held = replace(snapshot, seats=[(1, "py-booked")])
    assert snapshot_from_dict(snapshot_to_dict(held)).seats == [(1, "py-booked")]


def test_live_audience_of_a_new_session_reaches_look_alikes() -> None:
    rec = Recommender(fit_model(_two_communities()), COLLAB_ONLY)
    assert rec.recommend_sessions(16, k=2, now=NOW)[0].id == "y-new"
    for u in range(10, 16):  # user 16's community starts looking at Z's new session
        for _ in range(2):
            rec.record(event(u, "z-new", Z, "view", 0))
    top = rec.recommend_sessions(16, k=2, now=NOW)[0]
    assert top.id == "z-new"
    assert top.reason == "learners like you are looking at this session"
