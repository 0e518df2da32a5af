"""The learned blend: how much content, collaborative and popularity count, learnt from data.

Fixed weights are right for one population and one kind of user at best. ``fit_model`` learns
them instead, as a pairwise logistic ranker (scikit-learn's ``LogisticRegression`` on feature
differences, booked minus not booked) over per-candidate features:

* the three components, each scaled to [0, 1] over the candidates as the fixed blend does;
* each of them times ``h``, the user's history length squashed to [0, 1) (``n / (n + 20)``):
  the right mix differs for a newcomer and for a heavy user;
* their parts: content against the declared profile and against the history, whether the
  user already looked at the session, the collaborative mentor and skill affinities, the
  session's own decayed activity, its mentor's and the mentor's rating;
* the user's own history with the session's mentor and with its skills (their own row of the
  collaborative matrix, not what look-alikes did): a learner who liked a mentor's style books
  with them again;
* the session's freshness (``exp(-age / 7 days)``), the share of its seats still free and
  the number of free seats (log, scaled).

The ranker is trained on the last ``WINDOW`` of the fitted history only, with components
fitted on what came before it (``as_of``), so it learns how the scores of a model that has not
seen a booking relate to that booking: what the served model faces. Every learner keeps their
past there: newcomers are never served by the learned blend, so queries made to look like
theirs would only teach it a case it never meets. The window's bookings are replayed as seats
taken, so a session full by the time of a booking is no alternative to it. With too little
data (``MIN_QUERIES`` bookings) there is no learned blend and the configured weights serve;
they also serve newcomers (no interaction yet), whose declared profile the learned blend
would let seats and freshness outweigh (``hybrid.Recommender._session_scores``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from sklearn.linear_model import LogisticRegression

from .data import COMPONENTS, Component, Interaction, Snapshot

FEATURES = (
    "content",
    "collaborative",
    "popularity",
    "content x history",
    "collaborative x history",
    "popularity x history",
    "profile match",
    "history match",
    "seen before",
    "mentor affinity",
    "skill affinity",
    "own popularity",
    "mentor popularity",
    "mentor rating",
    "own mentor history",
    "own skill history",
    "freshness",
    "seats left",
    "free seats",
)
#: which component each feature's contribution is credited to (for reasons and sources)
CREDIT: tuple[Component | None, ...] = (
    *COMPONENTS * 2,
    "content",
    "content",
    None,
    "collaborative",
    "collaborative",
    "popularity",
    "popularity",
    "popularity",
    "collaborative",
    "collaborative",
    None,
    None,
    None,
)
#: bookings in the training window below which the configured weights serve instead
MIN_QUERIES = 60
#: training queries at most (a random sample beyond: the fit must stay around a second)
MAX_QUERIES = 1500
#: not-booked candidates paired with each booking
NEGATIVES = 20
#: share of the fitted history (the most recent) whose bookings train the ranker
WINDOW = 0.2
DAY = 86400.0
#: inverse L2 strength of the ranker (scikit-learn's ``C``): the features overlap (a component
#: and its parts), and a firmer prior spreads the weight over them instead of betting on one
REGULARISATION = 0.1
#: scale (days) of freshness
TIME_SCALE_DAYS = 7.0


def history_level(n: float, full_history: int) -> float:
    """A user's history length squashed to [0, 1): 0 for a newcomer, 1/2 at ``full_history``."""
    return n / (n + max(1, full_history))


def session_features(
    components: tuple[np.ndarray, np.ndarray, np.ndarray],
    history: float,
    content_parts: tuple[np.ndarray, np.ndarray],
    seen: np.ndarray,
    collaborative_parts: tuple[np.ndarray, np.ndarray],
    popularity_parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    own_parts: tuple[np.ndarray, np.ndarray],
    created_ts: np.ndarray,
    seats_left: np.ndarray,
    free_seats: np.ndarray,
    now_ts: float,
) -> np.ndarray:
    """The ``FEATURES`` of every session for one user at ``now_ts`` (n_sessions x F):
    ``components`` are content, collaborative and popularity, ``collaborative_parts`` its
    mentor and skill affinities, ``popularity_parts`` the session's own decayed activity,
    its mentor's and the mentor's rating, all scaled to [0, 1]."""
    content, collaborative, popularity = components
    age = np.nan_to_num(np.maximum(0.0, now_ts - created_ts), nan=np.inf) / DAY
    return np.column_stack(
        [
            content,
            collaborative,
            popularity,
            content * history,
            collaborative * history,
            popularity * history,
            *content_parts,
            seen,
            *collaborative_parts,
            *popularity_parts,
            *own_parts,
            np.exp(-age / TIME_SCALE_DAYS),
            seats_left,
            free_seats,
        ]
    )


@dataclass(frozen=True)
class LearnedBlend:
    """A linear score over ``FEATURES``, learnt at the fit."""

    coef: np.ndarray  # one weight per feature
    queries: int  # bookings it was trained on
    pairs: int  # (booked, not booked) pairs

    def score(self, features: np.ndarray) -> np.ndarray:
        scores: np.ndarray = features @ self.coef
        return scores

    def parts(self, features: np.ndarray) -> dict[Component, np.ndarray]:
        """Each component's share of the score (the session features are left out)."""
        out: dict[Component, np.ndarray] = {}
        for j, name in enumerate(CREDIT):
            if name is not None:
                contrib = self.coef[j] * features[:, j]
                out[name] = out[name] + contrib if name in out else contrib
        return out

    def describe(self) -> str:
        """One line with the learnt weights (for logs and the evaluation)."""
        return ", ".join(f"{n} {c:+.2f}" for n, c in zip(FEATURES, self.coef, strict=True))


def fit_pairwise(differences: np.ndarray, queries: int) -> LearnedBlend:
    """A pairwise logistic ranker: P(a above b) = sigmoid(w . (f_a - f_b))."""
    x = np.vstack([differences, -differences])
    y = np.concatenate([np.ones(len(differences)), np.zeros(len(differences))])
    clf = LogisticRegression(C=REGULARISATION, fit_intercept=False, max_iter=1000)
    clf.fit(x, y)
    return LearnedBlend(clf.coef_[0].astype(np.float64), queries, len(differences))


def window_start(interactions: Sequence[Interaction]) -> datetime | None:
    """Where the training window of the ranker begins (None without interactions)."""
    if not interactions:
        return None
    times = sorted(i.at for i in interactions)
    return times[min(len(times) - 1, int((1.0 - WINDOW) * len(times)))]


def as_of(
    snapshot: Snapshot,
    cutoff: datetime,
    past: Sequence[Interaction],
    drop_users: set[int] | frozenset[int] = frozenset(),
) -> Snapshot:
    """The catalogue as the app would have exported it at ``cutoff`` (no future leaks):
    statuses, seats taken and mentor ratings recomputed from ``past``."""
    taken = Counter(i.session_id for i in past if i.kind == "booking")
    sessions = [
        replace(
            s,
            status=s.status
            if s.status == "cancelled"
            else ("completed" if s.schedule < cutoff else "scheduled"),
            current_participants=taken.get(s.id, 0),
        )
        for s in snapshot.sessions
    ]
    ratings: dict[int, list[float]] = defaultdict(list)
    for i in past:
        if i.kind == "rating" and i.value is not None:
            ratings[i.mentor_id].append(i.value)
    mentors = [
        replace(
            m,
            rating=float(np.mean(ratings[m.id])) if ratings.get(m.id) else None,
            rating_count=len(ratings.get(m.id, ())),
        )
        for m in snapshot.mentors
    ]
    kept = [i for i in past if i.user_id not in drop_users]
    return Snapshot(snapshot.users, sessions, mentors, kept)
