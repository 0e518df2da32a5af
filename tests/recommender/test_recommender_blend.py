"""The learned blend (``recommender.blend``) and sessions in brand-new topics served live.

A small seeded synthetic population has enough history for the blend to be learnt; the
conftest's hand-made platform has too little and falls back to the configured weights.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from recommender.blend import FEATURES, MIN_QUERIES, fit_pairwise
from recommender.data import MentorItem, RecommenderWeights, SessionItem, Snapshot, UserProfile
from recommender.evaluation import METHODS, evaluate_users, make_split, weights_for
from recommender.hybrid import Recommender, fit_model
from recommender.synthetic import Population, PopulationParams, generate
from tests.recommender.support import DESIGNER, NOW, PY_LOVER

SMALL = PopulationParams(seed=5, users=800, mentors=40, sessions=300, interactions=12_000)
#: four topics the population has never heard of, each by a mentor who joined after the fit
NEW_TOPICS = (
    ("Beekeeping", "Hive inspections", "smokers frames queens and swarms for new keepers"),
    ("Glassblowing", "Glassblowing at the furnace", "gathering punties and annealing"),
    ("Sailing", "Dinghy sailing", "tacking gybing knots and reading the wind"),
    ("Calligraphy", "Brush calligraphy", "nib angles ink and letterforms"),
)
#: a user at the fit who declared an interest no session had yet
EARLY_BIRD = 9_000_001


@pytest.fixture(scope="module")
def population() -> Population:
    pop = generate(SMALL)
    early = UserProfile(EARLY_BIRD, "learner", (), ("Beekeeping",))
    return replace(pop, snapshot=replace(pop.snapshot, users=(*pop.snapshot.users, early)))


@pytest.fixture(scope="module")
def learned(population: Population) -> Recommender:
    return Recommender(fit_model(population.snapshot))


def test_the_blend_is_learnt_on_enough_history(learned: Recommender) -> None:
    blend = learned.model.blend
    assert blend is not None
    assert blend.queries >= MIN_QUERIES and blend.pairs > blend.queries
    assert blend.coef.shape == (len(FEATURES),) and np.isfinite(blend.coef).all()
    assert all(name in blend.describe() for name in FEATURES)


def test_the_learned_blend_ranks_held_out_bookings(population: Population) -> None:
    """Fitted (blend included) on the past of a temporal split, ranked on its future. A
    sanity check on a small population; the goals are ``recommender-eval --check``'s."""
    split = make_split(population.snapshot, 0.75, 0.0, 5)
    model = fit_model(split.train)
    assert model.blend is not None
    ndcg = {
        method: evaluate_users(
            model,
            weights_for(method, RecommenderWeights()),
            split.warm,
            "temporal",
            split.cutoff,
            split.candidates,
            method,
        ).ndcg
        for method in METHODS
    }
    assert ndcg["hybrid"] > 2 * ndcg["popularity"]
    assert ndcg["hybrid"] > 0.9 * max(ndcg["content"], ndcg["collaborative"])


def test_the_learned_blend_ranks_and_explains(population: Population, learned: Recommender) -> None:
    fixed = Recommender(learned.model, replace(learned.weights, learn_blend=False))
    now = population.end - timedelta(days=3)
    users = [u.id for u in population.snapshot.users[:60]]
    differ = 0
    for uid in users:
        out = learned.recommend_sessions(uid, 10, now=now)
        assert out and len({r.id for r in out}) == len(out)
        assert all(
            r.reason and r.source in {"content", "collaborative", "popularity", "hybrid"}
            for r in out
        )
        assert [r.score for r in out] == sorted((r.score for r in out), reverse=True)
        differ += [r.id for r in out] != [r.id for r in fixed.recommend_sessions(uid, 10, now=now)]
    assert differ > 0  # the learned blend is what serves, not the configured weights


@pytest.mark.parametrize("uid", [PY_LOVER, DESIGNER])
def test_too_little_history_falls_back_to_the_configured_weights(
    snapshot: Snapshot, uid: int
) -> None:
    model = fit_model(snapshot)
    assert model.blend is None  # four interactions
    learned = Recommender(model)
    fixed = Recommender(model, RecommenderWeights(learn_blend=False))
    a = learned.recommend_sessions(uid, 10, now=NOW)
    b = fixed.recommend_sessions(uid, 10, now=NOW)
    assert [(r.id, r.score, r.reason) for r in a] == [(r.id, r.score, r.reason) for r in b]


def test_the_blend_can_be_turned_off(population: Population) -> None:
    assert fit_model(population.snapshot, RecommenderWeights(learn_blend=False)).blend is None


def test_fit_pairwise_recovers_which_feature_wins() -> None:
    rng = np.random.default_rng(1)
    # booked minus not-booked differences: feature 0 decides, feature 1 is noise
    diffs = np.column_stack([rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 400)])
    blend = fit_pairwise(diffs, 40)
    assert blend.coef[0] > 1.0 and abs(blend.coef[1]) < 0.3
    assert blend.queries == 40 and blend.pairs == 400


#: seats of the four new sessions: a small one must not lose to a roomy one of another topic
NEW_SEATS = (2, 10, 3, 10)


def _publish(rec: Recommender, population: Population) -> dict[str, str]:
    """The four new-topic sessions, published seconds ago; topic -> session id."""
    now = population.end
    out = {}
    for j, (topic, title, description) in enumerate(NEW_TOPICS):
        mentor_id = 8_000_000 + j
        mentor = MentorItem(mentor_id, f"newcomer{j}", (topic,), f"{topic} teacher", None, 0)
        sid = f"new-{topic.lower()}"
        item = SessionItem(
            id=sid,
            mentor_id=mentor_id,
            title=title,
            description=description,
            skills=(topic,),
            schedule=now + timedelta(days=2),
            status="scheduled",
            max_participants=NEW_SEATS[j],
            current_participants=0,
            price=0.0,
            created_at=now - timedelta(seconds=2),
        )
        assert rec.add_session(item, mentor)
        out[topic] = sid
    return out


@pytest.mark.parametrize("learn_blend", [True, False])
def test_a_brand_new_topic_is_first_for_its_learners_without_a_refit(
    population: Population, learned: Recommender, learn_blend: bool
) -> None:
    """The issue's scenario: sessions in topics no fit has seen, asked for seconds later."""
    rec = Recommender(learned.model, replace(learned.weights, learn_blend=learn_blend))
    fitted_width = rec.model.content.vocabulary.size
    published = _publish(rec, population)
    assert rec.model.content.vocabulary.size > fitted_width  # new words became columns
    now = population.end
    for j, (topic, sid) in enumerate(published.items()):
        # someone who registered after the fit, with that one interest
        uid = 7_000_000 + j
        newcomer = UserProfile(uid, "learner", (), (topic,))
        out = rec.recommend_sessions(uid, 10, now=now, profile=newcomer)
        assert out[0].id == sid, (topic, [r.id for r in out[:3]])
        assert out[0].reason == f"matches your interest in {topic}"
    # A learner known at the fit, whose interest no session had then (no profile passed:
    # the fitted one is re-read against the grown vocabulary).
    out = rec.recommend_sessions(EARLY_BIRD, 10, now=now)
    assert out[0].id == published["Beekeeping"]
    # ... and a warm learner of the population with no interest in it is not flooded by them
    warm = population.snapshot.users[0].id
    top = [r.id for r in rec.recommend_sessions(warm, 10, now=now)][:3]
    assert not set(top) & set(published.values())


def test_newcomers_are_served_by_the_configured_weights(
    population: Population, learned: Recommender
) -> None:
    """No interaction yet: the declared profile is all there is, and the learned blend would
    let free seats and freshness outweigh it; the configured weights serve instead."""
    fixed = Recommender(learned.model, replace(learned.weights, learn_blend=False))
    now = population.end - timedelta(days=3)
    for j, template in enumerate(u for u in population.snapshot.users[:40] if u.interests):
        uid = 6_000_000 + j
        profile = UserProfile(uid, "learner", template.skills, template.interests)
        a = learned.recommend_sessions(uid, 10, now=now, profile=profile)
        b = fixed.recommend_sessions(uid, 10, now=now, profile=profile)
        assert [(r.id, r.score) for r in a] == [(r.id, r.score) for r in b]


def test_the_blend_sees_the_users_own_mentors_and_skills(learned: Recommender) -> None:
    """The own-history features: the user's own row of the collaborative matrix, not the
    look-alikes' smoothed affinity (non-zero only for mentors they met)."""
    cm, cat = learned.model.collaborative, learned.model.catalog
    row = int(np.argmax(np.diff(cm.raw.indptr)))  # the learner with the most columns
    raw = cm.user_row(row)
    own = cm.own(raw)
    assert np.isclose(np.linalg.norm(own), 1.0)
    mentor_part, skill_part = cm.score_sessions(own)
    met = np.isin(cat.session_mentor, np.flatnonzero(raw[: cm.n_mentors]))
    assert met.any() and not met.all()
    assert (mentor_part[met] > 0).all() and (mentor_part[~met] == 0).all()
    assert (skill_part >= 0).all() and skill_part.any()
    assert not cm.own(np.zeros_like(raw)).any()  # a newcomer has no own history
    # What the ranker is fed: the mentor part scaled over the candidates.
    uid = cat.users[row].id
    now = NOW.timestamp()
    mask = np.ones(cat.n_sessions, dtype=bool)
    features = learned._features(learned._components(uid, None, now, mask), now, mask)
    column = features[:, FEATURES.index("own mentor history")]
    assert np.allclose(column, mentor_part / mentor_part.max())
