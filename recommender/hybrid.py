"""The hybrid recommender: fit all components once, blend them per request.

``fit_model`` builds an immutable ``FittedModel``; ``LiveState`` is the small mutable overlay
that ``record()`` updates between refits (popularity, seats taken, new bookings, new history);
``Recommender`` pairs the two and answers requests with a few vector operations. The blend of
the components is learnt at the fit (``recommender.blend``) when the history allows it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from .blend import (
    MAX_QUERIES,
    MIN_QUERIES,
    NEGATIVES,
    LearnedBlend,
    as_of,
    fit_pairwise,
    history_level,
    session_features,
    window_start,
)
from .catalog import Catalog, build_catalog, implicit_weight
from .collaborative import AUDIENCE_WEIGHT, CollaborativeModel
from .content import PROFILE_WEIGHT, ContentModel
from .data import (
    COMPONENTS,
    Component,
    Interaction,
    MentorItem,
    Recommendation,
    RecommenderWeights,
    SessionItem,
    Snapshot,
    Source,
    UserProfile,
)
from .popularity import DecayedCounter, build_counters, interaction_arrays, popularity_weight

#: share of a mentor's decayed popularity lent to each of their sessions (new ones have none)
MENTOR_POPULARITY_SHARE = 0.3
#: weight of the mentor's (Bayesian) rating inside the popularity component
RATING_BOOST = 0.25
#: prior of the Bayesian average rating: ``PRIOR_COUNT`` ratings of ``PRIOR_MEAN``
PRIOR_MEAN, PRIOR_COUNT = 3.5, 5.0
#: a component "dominates" an item when it gives at least this share of the blended score
DOMINANT_SHARE = 0.6
PAGE = 10  # the diversity cap applies per page of this many results
#: popularity's share in every blend, far below any real signal: it only orders ties
TIE_BREAK = 1e-3
#: decayed popularity worth calling "trending": about one view today or a booking last week
TRENDING_MIN = 1.0


@dataclass(frozen=True)
class FittedModel:
    """Everything precomputed at fit; never mutated after construction."""

    catalog: Catalog
    content: ContentModel
    collaborative: CollaborativeModel
    session_popularity: DecayedCounter
    mentor_popularity: DecayedCounter
    mentor_rating: np.ndarray  # Bayesian average rating per mentor, 1..5
    fitted_at: datetime
    n_interactions: int
    #: the blend learnt from the history; None: too little of it (the fixed weights serve)
    blend: LearnedBlend | None = None

    def with_session(self, item: SessionItem, mentor: MentorItem | None = None) -> FittedModel:
        """This model plus one session published since the fit: a cheap live update (copies
        of the per-session arrays, one TF-IDF row) that serves it at once; the next refit
        learns it properly (new words and skills, its mentor's collaborative column)."""
        cat = self.catalog.with_session(item, mentor)
        new_mentor = cat.n_mentors > self.catalog.n_mentors
        m = cat.mentor_index[item.mentor_id]
        rating = self.mentor_rating
        if new_mentor:
            profile = cat.mentors[m]
            rating = np.append(
                rating,
                _bayesian_rating(
                    (profile.rating or 0.0) * profile.rating_count, profile.rating_count
                ),
            )
        return replace(
            self,
            catalog=cat,
            content=self.content.with_session(item, cat.mentors[m], new_mentor),
            collaborative=self.collaborative.with_session(item.skills, m, new_mentor),
            session_popularity=self.session_popularity.grown(cat.n_sessions),
            mentor_popularity=self.mentor_popularity.grown(cat.n_mentors),
            mentor_rating=rating,
        )


def fit_model(snapshot: Snapshot, weights: RecommenderWeights | None = None) -> FittedModel:
    """Fit every component on a snapshot, and the blend unless ``weights`` turn it off
    (CPU-bound: run it off the event loop)."""
    weights = weights or RecommenderWeights()
    model = _fit_components(snapshot, weights)
    if weights.learn_blend:
        model = replace(model, blend=learn_blend(snapshot, weights))
    return model


def _fit_components(snapshot: Snapshot, weights: RecommenderWeights) -> FittedModel:
    cat = build_catalog(snapshot)
    content = ContentModel.fit(cat)
    collab = CollaborativeModel.fit(cat)
    now = datetime.now(UTC)
    w, ts = interaction_arrays(snapshot.interactions)
    ref = float(ts.max()) if len(ts) else now.timestamp()
    spop, mpop = build_counters(
        cat.events.session,
        cat.events.mentor,
        w,
        ts,
        cat.n_sessions,
        cat.n_mentors,
        weights.half_life_days,
        ref,
    )
    return FittedModel(
        cat, content, collab, spop, mpop, _mentor_ratings(cat), now, len(snapshot.interactions)
    )


def learn_blend(snapshot: Snapshot, weights: RecommenderWeights) -> LearnedBlend | None:
    """Learn the blend from the snapshot's own history (``recommender.blend``): components
    fitted on all but its most recent part, and each booking in that part a query ranked
    against the sessions the learner could have booked instead, at its time. None with too
    little data."""
    start = window_start(snapshot.interactions)
    if start is None:
        return None
    past = [i for i in snapshot.interactions if i.at < start]
    window = sorted(
        (i for i in snapshot.interactions if i.at >= start and i.kind == "booking"),
        key=lambda i: i.at,
    )
    if len(window) < MIN_QUERIES or not past:
        return None
    rng = np.random.default_rng(0)
    rec = Recommender(
        _fit_components(as_of(snapshot, start, past), weights),
        replace(weights, learn_blend=False),
    )
    cat = rec.model.catalog
    later: dict[int, set[int]] = defaultdict(set)  # what each learner booked in the window
    queries = []
    for it in window:
        s = cat.session_index.get(it.session_id)
        if s is not None:
            later[it.user_id].add(s)
            queries.append((it, s))
    asked = np.ones(len(queries), dtype=bool)
    if len(queries) > MAX_QUERIES:
        asked[:] = False
        asked[rng.choice(len(queries), MAX_QUERIES, False)] = True
    diffs = []
    for q, (it, s) in enumerate(queries):
        if q:
            # The seats of the window's earlier bookings are taken, as the served model's
            # live state counts them: a session full by now is no alternative to this booking,
            # and free seats are what they were then.
            prev = queries[q - 1][1]
            rec.live.taken_extra[prev] += 1
        if not asked[q]:
            continue
        now_ts = it.at.timestamp()
        # Sessions the learner could have booked then: open, published, not their own.
        mask = rec._bookable(now_ts) & ~(cat.session_created > now_ts)
        mask &= cat.session_mentor_id != it.user_id
        rec._drop_booked(mask, it.user_id, ())
        if not mask[s]:
            continue  # e.g. cancelled since: its state at the time is unknown
        negatives = mask.copy()
        negatives[list(later[it.user_id])] = False
        pool = np.flatnonzero(negatives)
        if not len(pool):
            continue
        neg = rng.choice(pool, size=min(NEGATIVES, len(pool)), replace=False)
        feats = rec._features(rec._components(it.user_id, None, now_ts, mask), now_ts, mask)
        diffs.append(feats[s] - feats[neg])
    if len(diffs) < MIN_QUERIES:
        return None
    return fit_pairwise(np.vstack(diffs), len(diffs))


def _mentor_ratings(cat: Catalog) -> np.ndarray:
    """Bayesian average rating per mentor: the profile's rating, else the snapshot's ratings."""
    total = np.zeros(cat.n_mentors)
    count = np.zeros(cat.n_mentors)
    ev = cat.events
    rated = (ev.kind == 3) & (ev.mentor >= 0) & ~np.isnan(ev.value)
    np.add.at(total, ev.mentor[rated], ev.value[rated])
    np.add.at(count, ev.mentor[rated], 1.0)
    for i, m in enumerate(cat.mentors):
        if m.rating is not None and m.rating_count > 0:
            total[i], count[i] = m.rating * m.rating_count, m.rating_count
    return _bayesian_rating(total, count)


def _bayesian_rating(total: np.ndarray | float, count: np.ndarray | float) -> np.ndarray:
    """Average rating shrunk towards ``PRIOR_MEAN`` by ``PRIOR_COUNT`` pseudo-ratings."""
    return (np.asarray(total) + PRIOR_MEAN * PRIOR_COUNT) / (np.asarray(count) + PRIOR_COUNT)


@dataclass
class LiveState:
    """What changed since the fit. Mutated only by ``record`` (on the event loop)."""

    session_popularity: DecayedCounter
    mentor_popularity: DecayedCounter
    taken_extra: np.ndarray
    session_audience: np.ndarray
    audience_weight: np.ndarray
    session_open: np.ndarray  # still bookable: the fit's statuses minus sessions closed since
    booked: dict[int, set[int]] = field(default_factory=dict)  # user -> session indices
    #: user -> session indices of bookings (known to the fit) cancelled since
    unbooked: dict[int, set[int]] = field(default_factory=dict)
    history: dict[int, int] = field(default_factory=dict)  # user -> new interactions
    collab_extra: dict[int, dict[int, float]] = field(default_factory=dict)
    #: user -> {session index: history weight} recorded since the fit (sparse: vocabularies
    #: can be large and many users act between two refits)
    content_extra: dict[int, dict[int, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: FittedModel) -> LiveState:
        return cls(
            model.session_popularity.copy(),
            model.mentor_popularity.copy(),
            np.zeros(model.catalog.n_sessions, dtype=np.int64),
            model.collaborative.session_audience.copy(),
            model.collaborative.audience_weight.copy(),
            model.catalog.session_open.copy(),
        )

    def grow(self, model: FittedModel) -> None:
        """Make room for the sessions and mentors ``model`` added to the one this state
        followed (``FittedModel.with_session``); nothing recorded is lost."""
        cat = model.catalog
        extra = cat.n_sessions - len(self.taken_extra)
        self.session_popularity = self.session_popularity.grown(cat.n_sessions)
        self.mentor_popularity = self.mentor_popularity.grown(cat.n_mentors)
        self.taken_extra = np.append(self.taken_extra, np.zeros(extra, dtype=np.int64))
        self.session_audience = np.vstack(
            [self.session_audience, np.zeros((extra, self.session_audience.shape[1]))]
        )
        self.audience_weight = np.append(self.audience_weight, np.zeros(extra))
        added = cat.session_open[cat.n_sessions - extra :]
        self.session_open = np.concatenate([self.session_open, added])

    def is_booked(self, model: FittedModel, user_id: int, s: int) -> bool:
        """Whether the user holds a seat in session ``s`` (fit, then live changes)."""
        if s in self.booked.get(user_id, ()):
            return True
        row = model.catalog.user_index.get(user_id)
        return (
            row is not None
            and s in model.catalog.booked_of(row)
            and s not in self.unbooked.get(user_id, ())
        )

    def unbook(self, model: FittedModel, user_id: int, session_id: str) -> None:
        """A booking was cancelled: the seat is free again and the session can be suggested
        to that user again. A no-op when the model did not count the booking."""
        s = model.catalog.session_index.get(session_id)
        if s is None or not self.is_booked(model, user_id, s):
            return
        if s in self.booked.get(user_id, ()):
            self.booked[user_id].discard(s)
        else:
            self.unbooked.setdefault(user_id, set()).add(s)
        self.taken_extra[s] -= 1

    def record(self, model: FittedModel, it: Interaction) -> None:
        """Apply one interaction: O(number of the session's skills)."""
        cat = model.catalog
        s = cat.session_index.get(it.session_id)
        m = cat.mentor_index.get(it.mentor_id)
        ts = it.at.timestamp()
        w = popularity_weight(it.kind, it.value)
        if s is not None:
            self.session_popularity.add(s, w, ts)
            if m is None:
                m = int(cat.session_mentor[s])
        if m is not None:
            self.mentor_popularity.add(m, w, ts)
        if it.kind == "booking" and s is not None and not self.is_booked(model, it.user_id, s):
            cancelled = self.unbooked.get(it.user_id)
            if cancelled and s in cancelled:
                cancelled.discard(s)  # booked again: the fit's booking counts once more
            else:
                self.booked.setdefault(it.user_id, set()).add(s)
            self.taken_extra[s] += 1
        self.history[it.user_id] = self.history.get(it.user_id, 0) + 1
        hw = model.content.history_weight(it.kind, it.value)
        if hw > 0 and s is not None:
            seen = self.content_extra.setdefault(it.user_id, {})
            seen[s] = seen.get(s, 0.0) + hw
        iw = implicit_weight(it.kind, it.value)
        if iw > 0 and (s is not None or m is not None):
            extra = self.collab_extra.setdefault(it.user_id, {})
            collab = model.collaborative
            for col, share in collab.event_columns(s, m if s is None else None):
                extra[col] = extra.get(col, 0.0) + iw * share
            if s is not None:
                taste = collab.taste(collab.user_row(cat.user_index.get(it.user_id), extra))
                self.session_audience[s] += iw * taste
                self.audience_weight[s] += iw


@dataclass(frozen=True)
class _User:
    row: int | None  # row in the fitted catalogue, None for users unknown at fit time
    profile: UserProfile | None
    vector: np.ndarray  # content space, unit length (or zeros)
    declared: np.ndarray  # content space: the profile half of ``vector`` (unit or zeros)
    seen: np.ndarray  # content space: the history half of ``vector`` (unit or zeros)
    taste: np.ndarray  # collaborative latent space, unit length (or zeros)
    own: np.ndarray  # the user's own (mentor | skill) row, dampened and normalised


@dataclass(frozen=True)
class _Components:
    """One user's component scores over every session, each scaled over the candidates."""

    user: _User
    content: np.ndarray
    collaborative: np.ndarray  # at full weight (no history ramp)
    popularity: np.ndarray
    history: int  # the user's interactions, fitted and recorded since
    aff: np.ndarray
    collab_parts: dict[str, np.ndarray]  # mentor / skill / audience, unweighted
    #: content against the declared profile alone and against the history alone, scaled
    content_parts: tuple[np.ndarray, np.ndarray]
    seen: np.ndarray  # 1.0 for sessions the user already looked at or booked
    #: the collaborative mentor and skill parts, scaled
    collaborative_parts: tuple[np.ndarray, np.ndarray]
    #: the session's own decayed activity, its mentor's (both log, scaled) and the rating
    popularity_parts: tuple[np.ndarray, np.ndarray, np.ndarray]
    #: the user's own history with the session's mentor and with its skills, scaled
    own_parts: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Scores:
    parts: dict[Component, np.ndarray]  # weighted, normalised component scores
    total: np.ndarray
    user_vec: np.ndarray
    aff: np.ndarray
    collab_parts: dict[str, np.ndarray]  # mentor / skill / audience, unweighted
    profile: UserProfile | None
    now_ts: float


class Recommender:
    """Answers requests from one fitted model and its live overlay."""

    def __init__(
        self,
        model: FittedModel,
        weights: RecommenderWeights | None = None,
        live: LiveState | None = None,
    ) -> None:
        self.model = model
        self.weights = weights or RecommenderWeights()
        self.live = live or LiveState.of(model)

    # -- sessions -------------------------------------------------------------------------
    def recommend_sessions(
        self,
        user_id: int | None,
        k: int = 10,
        booked_ids: Iterable[str] = (),
        now: datetime | None = None,
        profile: UserProfile | None = None,
        candidate_ids: Collection[str] | None = None,
    ) -> list[Recommendation]:
        """Top-``k`` bookable sessions for a user, with a reason each.

        ``profile`` scores a user who registered after the last fit; ``candidate_ids``
        restricts the ranking to a subset (e.g. search results, or the evaluation's new items).
        """
        cat = self.model.catalog
        if not cat.n_sessions or k <= 0:
            return []
        now_ts = (now or datetime.now(UTC)).timestamp()
        mask = self._offerable(user_id, booked_ids, now_ts)
        if candidate_ids is not None:
            keep = np.zeros(cat.n_sessions, dtype=bool)
            keep[[cat.session_index[i] for i in candidate_ids if i in cat.session_index]] = True
            mask &= keep
        if not mask.any():
            return []
        sc = self._session_scores(user_id, profile, now_ts, mask)
        picked = _ranked(sc.total, mask, cat.session_mentor, k, self.weights.max_per_mentor)
        return [self._explain_session(i, sc) for i in picked]

    def trending(
        self, k: int = 10, now: datetime | None = None, user_id: int | None = None
    ) -> list[Recommendation]:
        """Upcoming bookable sessions ranked by decayed interactions (own, then mentor's)."""
        cat = self.model.catalog
        if not cat.n_sessions or k <= 0:
            return []
        now_ts = (now or datetime.now(UTC)).timestamp()
        mask = self._offerable(user_id, (), now_ts)
        own = self.live.session_popularity.at(now_ts)
        mentor = self.live.mentor_popularity.at(now_ts)[cat.session_mentor]
        # Own activity ranks first; the mentor's popularity only orders sessions with none yet.
        score = own + 1e-3 * mentor
        picked = _ranked(score, mask, cat.session_mentor, k, self.weights.max_per_mentor)
        return [
            Recommendation(
                cat.sessions[i].id,
                float(score[i]),
                self._popularity_reason(i, now_ts),
                "popularity",
            )
            for i in picked
        ]

    # -- mentors --------------------------------------------------------------------------
    def recommend_mentors(
        self,
        user_id: int | None,
        k: int = 10,
        followed_ids: Iterable[int] = (),
        now: datetime | None = None,
        profile: UserProfile | None = None,
    ) -> list[Recommendation]:
        """Mentors to follow: similar teaching, learners like you, popular and well rated."""
        cat, w = self.model.catalog, self.weights
        if not cat.n_mentors or k <= 0:
            return []
        now_ts = (now or datetime.now(UTC)).timestamp()
        mask = np.ones(cat.n_mentors, dtype=bool)
        for mid in [*followed_ids, user_id]:
            if mid is not None and mid in cat.mentor_index:
                mask[cat.mentor_index[mid]] = False
        if not mask.any():
            return []
        user = self._user(user_id, profile)
        row, u = user.row, user.vector
        aff = self.model.collaborative.affinity(user.taste)
        pop = np.log1p(self.live.mentor_popularity.at(now_ts))
        rating = (self.model.mentor_rating - 1.0) / 4.0
        parts: dict[Component, np.ndarray] = {
            "content": w.content * _scale(self.model.content.score_mentors(u), mask),
            "collaborative": self._collab_weight(row, user_id)
            * _scale(self.model.collaborative.score_mentors(aff), mask, shift=True),
            "popularity": w.popularity * _scale(pop, mask) * (1 - RATING_BOOST)
            + w.popularity * RATING_BOOST * rating,
        }
        total = _total(parts)
        out = []
        for i in _top(total, mask, k):
            i = int(i)
            m = cat.mentors[i]
            source = _dominant(parts, i)
            if source == "content":
                term = self.model.content.best_term(self.model.content.mentors, i, u)
                name = self.model.content.display(term) if term else None
                reason = (
                    f"teaches {name}, close to your interests" if name else "teaches what you study"
                )
            elif source == "collaborative":
                reason = "learners like you booked with this mentor"
            elif m.rating is not None and m.rating_count >= 3 and m.rating >= 4:
                reason = f"highly rated ({m.rating:.1f} from {m.rating_count} ratings)"
            else:
                reason = "popular with learners this week"
            out.append(Recommendation(m.id, float(total[i]), reason, source))
        return out

    # -- live updates ---------------------------------------------------------------------
    def record(self, it: Interaction) -> None:
        self.live.record(self.model, it)

    def add_session(self, item: SessionItem, mentor: MentorItem | None = None) -> bool:
        """Serve a session published since the fit at once; False if the model has it."""
        if item.id in self.model.catalog.session_index:
            return False
        self.model = self.model.with_session(item, mentor)
        self.live.grow(self.model)
        return True

    def close_session(self, session_id: str) -> None:
        """The session can no longer be booked (cancelled, started or ended)."""
        s = self.model.catalog.session_index.get(session_id)
        if s is not None:
            self.live.session_open[s] = False

    def unbook(self, user_id: int, session_id: str) -> None:
        """A booking was cancelled (or its payment hold lapsed)."""
        self.live.unbook(self.model, user_id, session_id)

    # -- internals ------------------------------------------------------------------------
    def _bookable(self, now_ts: float) -> np.ndarray:
        cat = self.model.catalog
        seats = cat.session_taken + self.live.taken_extra < cat.session_capacity
        bookable: np.ndarray = self.live.session_open & (cat.session_ts >= now_ts) & seats
        return bookable

    def _offerable(
        self, user_id: int | None, booked_ids: Iterable[str], now_ts: float
    ) -> np.ndarray:
        """Sessions bookable now, minus the user's own (a mentor's) and booked ones."""
        mask = self._bookable(now_ts)
        if user_id is not None:
            mask &= self.model.catalog.session_mentor_id != user_id
            self._drop_booked(mask, user_id, booked_ids)
        return mask

    def _drop_booked(self, mask: np.ndarray, user_id: int, booked_ids: Iterable[str]) -> None:
        cat = self.model.catalog
        row = cat.user_index.get(user_id)
        if row is not None:
            cancelled = self.live.unbooked.get(user_id, ())
            mask[[s for s in cat.booked_of(row) if s not in cancelled]] = False
        for s in self.live.booked.get(user_id, ()):
            mask[s] = False
        for sid in booked_ids:
            idx = cat.session_index.get(sid)
            if idx is not None:
                mask[idx] = False

    def _user(self, user_id: int | None, profile: UserProfile | None) -> _User:
        """The user's content vector and collaborative taste, live events included."""
        m = self.model
        row = m.catalog.user_index.get(user_id) if user_id is not None else None
        seen = self.live.content_extra.get(user_id) if user_id is not None else None
        given = profile
        if given is None and row is not None and m.content.vocabulary_grew:
            # The fitted profile rows lack the words published since: re-read the profile,
            # so a declared interest in a brand-new topic matches it before any refit.
            given = m.catalog.users[row]
        declared, history = m.content.user_parts(
            row, given, m.content.history_of(seen) if seen else None
        )
        vector = _unit(PROFILE_WEIGHT * declared + (1 - PROFILE_WEIGHT) * history)
        extra = self.live.collab_extra.get(user_id) if user_id is not None else None
        raw = m.collaborative.user_row(row, extra)
        taste = m.collaborative.taste(raw)
        if profile is None and row is not None:
            profile = m.catalog.users[row]
        return _User(row, profile, vector, declared, history, taste, m.collaborative.own(raw))

    def _touched(self, row: int | None, user_id: int | None) -> np.ndarray:
        """1.0 for each session the user looked at or booked, at the fit or since."""
        out = self.model.content.touched_by(row, self.model.catalog.n_sessions)
        since = self.live.content_extra.get(user_id) if user_id is not None else None
        if since:
            out[list(since)] = 1.0
        return out

    def _history(self, row: int | None, user_id: int | None) -> int:
        """The user's interactions: at the fit plus recorded since."""
        return int(self.model.catalog.history_count[row] if row is not None else 0) + (
            self.live.history.get(user_id, 0) if user_id is not None else 0
        )

    def _collab_weight(self, row: int | None, user_id: int | None) -> float:
        """The collaborative weight grows linearly with history up to ``full_history``."""
        w = self.weights
        n = self._history(row, user_id)
        return w.collaborative * min(1.0, n / max(1, w.collaborative_full_history))

    def _components(
        self, user_id: int | None, profile: UserProfile | None, now_ts: float, mask: np.ndarray
    ) -> _Components:
        m = self.model
        cat = m.catalog
        user = self._user(user_id, profile)
        aff = m.collaborative.affinity(user.taste)
        mentor_part, skill_part = m.collaborative.score_sessions(aff)
        audience = AUDIENCE_WEIGHT * m.collaborative.audience_scores(
            user.taste, self.live.session_audience, self.live.audience_weight
        )
        own = self.live.session_popularity.at(now_ts)
        by_mentor = self.live.mentor_popularity.at(now_ts)[cat.session_mentor]
        pop = own + MENTOR_POPULARITY_SHARE * by_mentor
        rating = (m.mentor_rating[cat.session_mentor] - 1.0) / 4.0
        own_mentor, own_skill = m.collaborative.score_sessions(user.own)
        popularity = (1 - RATING_BOOST) * _scale(np.log1p(pop), mask) + RATING_BOOST * rating
        return _Components(
            user,
            _scale(m.content.score_sessions(user.vector), mask),
            _scale(mentor_part + skill_part + audience, mask, shift=True),
            popularity,
            self._history(user.row, user_id),
            aff,
            {"mentor": mentor_part, "skill": skill_part, "audience": audience},
            (
                _scale(m.content.score_sessions(user.declared), mask),
                _scale(m.content.score_sessions(user.seen), mask),
            ),
            self._touched(user.row, user_id),
            (_scale(mentor_part, mask, shift=True), _scale(skill_part, mask, shift=True)),
            (_scale(np.log1p(own), mask), _scale(np.log1p(by_mentor), mask), rating),
            (_scale(own_mentor, mask), _scale(own_skill, mask)),
        )

    def _features(self, comp: _Components, now_ts: float, mask: np.ndarray) -> np.ndarray:
        """The learned blend's features (``recommender.blend.FEATURES``) of every session."""
        cat = self.model.catalog
        capacity = np.maximum(cat.session_capacity, 1)
        free = np.maximum(0, capacity - cat.session_taken - self.live.taken_extra)
        return session_features(
            (comp.content, comp.collaborative, comp.popularity),
            history_level(comp.history, self.weights.collaborative_full_history),
            comp.content_parts,
            comp.seen,
            comp.collaborative_parts,
            comp.popularity_parts,
            comp.own_parts,
            cat.session_created,
            free / capacity,
            _scale(np.log1p(free), mask),
            now_ts,
        )

    def _session_scores(
        self, user_id: int | None, profile: UserProfile | None, now_ts: float, mask: np.ndarray
    ) -> _Scores:
        w = self.weights
        comp = self._components(user_id, profile, now_ts, mask)
        # A newcomer (no interaction yet, fitted or since) is served by the configured
        # weights: on their declared profile alone the learned blend lets what is the same for
        # everyone (free seats, freshness, popularity) outweigh it, and a learner who declared
        # one interest must get the session that matches it first.
        blend = self.model.blend if w.learn_blend and comp.history > 0 else None
        if blend is not None:
            features = self._features(comp, now_ts, mask)
            parts = blend.parts(features)
            total = blend.score(features)
        else:
            parts = {
                "content": w.content * comp.content,
                "collaborative": self._collab_weight(comp.user.row, user_id) * comp.collaborative,
                "popularity": w.popularity * comp.popularity,
            }
            total = _total(parts)
        # Popularity also breaks ties, so a user nothing is known about (or a blend without a
        # popularity weight) still gets the most wanted sessions first, not catalogue order.
        total = total + TIE_BREAK * comp.popularity
        return _Scores(
            parts,
            total,
            comp.user.vector,
            comp.aff,
            comp.collab_parts,
            comp.user.profile,
            now_ts,
        )

    def _explain_session(self, i: int, sc: _Scores) -> Recommendation:
        cat = self.model.catalog
        contrib = {name: float(part[i]) for name, part in sc.parts.items()}
        ranked = sorted(contrib, key=contrib.__getitem__, reverse=True)
        total = sum(max(0.0, v) for v in contrib.values())
        sid = cat.sessions[i].id
        if total <= 0:  # nothing personal and no popularity weight: ranked by the tie-break
            reason = self._popularity_reason(i, sc.now_ts)
            return Recommendation(sid, float(sc.total[i]), reason, "popularity")
        first = ranked[0]
        reasons = [self._reason(first, i, sc)]
        source: Source = first
        if contrib[first] < DOMINANT_SHARE * total and contrib[ranked[1]] > 0:
            source = "hybrid"
            reasons.append(self._reason(ranked[1], i, sc))
        return Recommendation(sid, float(sc.total[i]), "; ".join(reasons), source)

    def _reason(self, component: str, i: int, sc: _Scores) -> str:
        m = self.model
        if component == "content" and sc.user_vec.any():
            term = m.content.best_term(m.content.sessions, i, sc.user_vec)
            return m.content.reason(term, sc.profile)
        if component == "collaborative" and sc.aff.any():
            part = max(sc.collab_parts, key=lambda name: float(sc.collab_parts[name][i]))
            if part == "mentor":
                return "learners like you booked with this mentor"
            if part == "audience":
                return "learners like you are looking at this session"
            skill = m.collaborative.top_skill(i, sc.aff)
            return (
                f"learners like you are learning {skill}"
                if skill
                else ("learners like you booked similar sessions")
            )
        return self._popularity_reason(i, sc.now_ts)

    def _popularity_reason(self, i: int, now_ts: float) -> str:
        cat = self.model.catalog
        mentor_index = int(cat.session_mentor[i])
        mentor = cat.mentors[mentor_index]
        if self.live.session_popularity.value(i, now_ts) >= TRENDING_MIN:
            return "trending this week"
        if self.live.mentor_popularity.value(mentor_index, now_ts) >= TRENDING_MIN:
            return f"new session from {mentor.name}, popular with learners this week"
        if mentor.rating is not None and mentor.rating_count >= 3 and mentor.rating >= 4:
            return (
                f"{mentor.name} is highly rated ({mentor.rating:.1f} from "
                f"{mentor.rating_count} ratings)"
            )
        return "new upcoming session"


def _scale(x: np.ndarray, mask: np.ndarray, shift: bool = False) -> np.ndarray:
    """Scale to [0, 1] over the candidates (max, or min-max when scores can be negative)."""
    cand = x[mask]
    if not len(cand):
        return np.zeros_like(x, dtype=np.float64)
    lo = float(cand.min()) if shift else 0.0
    hi = float(cand.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(x, dtype=np.float64)
    return np.clip((x - lo) / (hi - lo), 0.0, None)


def _top(score: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best candidates by descending score (ties: catalogue order), via argpartition."""
    idx = np.flatnonzero(mask)
    s = score[idx]
    if n < len(idx):
        part = np.argpartition(-s, n - 1)[:n]
        idx, s = idx[part], s[part]
    return idx[np.lexsort((idx, -s))]


def _ranked(score: np.ndarray, mask: np.ndarray, mentor: np.ndarray, k: int, cap: int) -> list[int]:
    """Diversified top-``k``: a generous head first, everything only if the cap exhausts it."""
    n_cand = int(mask.sum())
    head = min(n_cand, max(8 * k, 64))
    picked = _diversify(_top(score, mask, head), mentor, k, cap)
    if len(picked) < k and head < n_cand:
        picked = _diversify(_top(score, mask, n_cand), mentor, k, cap)
    return picked


def _diversify(order: np.ndarray, mentor: np.ndarray, k: int, cap: int) -> list[int]:
    """At most ``cap`` sessions of one mentor per page of ``PAGE`` results (strict: a page
    that cannot be filled without breaking the cap ends the list)."""
    if cap <= 0:
        return [int(i) for i in order[:k]]
    out: list[int] = []
    pending = [int(i) for i in order]
    while len(out) < k and pending:
        page = min(PAGE, k - len(out))
        counts: dict[int, int] = {}
        rest: list[int] = []
        taken = 0
        for pos, i in enumerate(pending):
            if taken == page:
                rest.extend(pending[pos:])
                break
            m = int(mentor[i])
            if counts.get(m, 0) < cap:
                counts[m] = counts.get(m, 0) + 1
                out.append(i)
                taken += 1
            else:
                rest.append(i)
        if taken < page:
            break
        pending = rest
    return out


def _total(parts: dict[Component, np.ndarray]) -> np.ndarray:
    """The components added up (``sum()`` with an array start: the same floats, typed)."""
    return sum(parts.values(), start=np.zeros(()))


def _dominant(parts: dict[Component, np.ndarray], i: int) -> Component:
    return max(COMPONENTS, key=lambda name: float(parts[name][i]))


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 0 else x
