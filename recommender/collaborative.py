"""Collaborative model at the level that carries over to new sessions: mentors and skills.

Future sessions have no bookings yet, so learning "user x session" would be useless for them.
Instead every interaction is credited to the session's mentor and (split evenly) to its skills,
giving a user x (mentors | skills) matrix. A truncated SVD of that matrix finds learners with
similar patterns; a user's reconstructed row is their affinity for every mentor and skill, and
a (new) session is scored through its mentor and its skills.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from .catalog import Catalog, implicit_weights, normalize_rows
from .text import normalize_skill

#: weight of the skill block relative to the mentor block (before the row normalisation)
SKILL_BLOCK_WEIGHT = 0.7
#: how much a session's skills count next to its mentor when scoring a session
SKILL_SCORE_WEIGHT = 0.7
N_COMPONENTS = 48
#: pseudo-weight of an empty audience: a session seen by one look-alike is not a sure hit
AUDIENCE_PRIOR = 3.0
#: weight of "learners like you are looking at this session" next to mentor and skills
AUDIENCE_WEIGHT = 1.0


@dataclass(frozen=True)
class CollaborativeModel:
    """Fitted user x (mentor | skill) factorisation."""

    raw: sp.csr_matrix  # n_users x (n_mentors + n_skills): summed implicit weights
    components: np.ndarray  # k x (n_mentors + n_skills); empty when there is too little data
    session_skills: sp.csr_matrix  # n_sessions x n_skills, rows sum to 1
    session_mentor: np.ndarray
    skill_names: tuple[str, ...]
    n_mentors: int
    #: per session, the implicit-weighted sum of its audience's unit taste vectors (k wide)
    session_audience: np.ndarray
    audience_weight: np.ndarray  # per session, the summed implicit weights behind it
    #: mentors added to the catalogue since the fit (after the fitted ones): they have no
    #: column, so no collaborative affinity until the next refit
    live_mentors: int = 0

    @classmethod
    def fit(cls, cat: Catalog, n_components: int = N_COMPONENTS) -> CollaborativeModel:
        """Aggregate interactions to mentors/skills and factorise."""
        skill_index: dict[str, int] = {}
        names: list[str] = []
        rows, cols = [], []
        for i, s in enumerate(cat.sessions):
            for skill in dict.fromkeys(normalize_skill(x) for x in s.skills if x.strip()):
                if skill not in skill_index:
                    skill_index[skill] = len(names)
                    names.append(skill)
                rows.append(i)
                cols.append(skill_index[skill])
        n_s, n_m, n_k = cat.n_sessions, cat.n_mentors, len(names)
        session_skills = normalize_rows(
            sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_s, n_k)), norm="l1"
        )

        ev = cat.events
        w = implicit_weights(ev)
        on_session = (ev.session >= 0) & (w > 0)
        user_session = sp.csr_matrix(
            (w[on_session], (ev.user[on_session], ev.session[on_session])),
            shape=(cat.n_users, n_s),
        )
        # Events on sessions missing from the snapshot still tell us about the mentor.
        off = (ev.session < 0) & (ev.mentor >= 0) & (w > 0)
        user_mentor = sp.csr_matrix(
            (w[off], (ev.user[off], ev.mentor[off])), shape=(cat.n_users, n_m)
        )
        session_to_mentor = sp.csr_matrix(
            (np.ones(n_s), (np.arange(n_s), cat.session_mentor)), shape=(n_s, n_m)
        )
        user_mentor = user_mentor + user_session @ session_to_mentor
        raw = sp.hstack([user_mentor, user_session @ session_skills]).tocsr()

        components = np.zeros((0, n_m + n_k))
        x = _transform(raw, n_m)
        active = np.flatnonzero(np.diff(x.indptr))
        # Far fewer factors than columns, or the reconstruction just echoes the user's own row.
        k = min(n_components, len(active) - 1, max(2, (n_m + n_k) // 4), n_m + n_k - 1)
        if k >= 2:
            svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=0)
            svd.fit(x[active])
            components = svd.components_
        tastes = normalize_rows(np.asarray(x @ components.T))
        audience = np.asarray(user_session.T @ tastes)
        weight = np.asarray(user_session.sum(axis=0)).ravel()
        return cls(
            raw,
            components,
            session_skills,
            cat.session_mentor,
            tuple(names),
            n_m,
            audience,
            weight,
        )

    def with_session(
        self, skills: tuple[str, ...], mentor: int, new_mentor: bool
    ) -> CollaborativeModel:
        """This model plus one session published since the fit, taught by catalogue mentor
        ``mentor``: scored through its mentor and the skills the fit knows, with no audience
        yet."""
        known = {name: i for i, name in enumerate(self.skill_names)}
        cols = sorted({known[k] for x in skills if (k := normalize_skill(x)) in known})
        row = sp.csr_matrix(
            (np.full(len(cols), 1.0 / max(1, len(cols))), (np.zeros(len(cols), np.int64), cols)),
            shape=(1, len(self.skill_names)),
        )
        return replace(
            self,
            session_skills=sp.vstack([self.session_skills, row]).tocsr(),
            session_mentor=np.append(self.session_mentor, mentor),
            session_audience=np.vstack(
                [self.session_audience, np.zeros((1, self.session_audience.shape[1]))]
            ),
            audience_weight=np.append(self.audience_weight, 0.0),
            live_mentors=self.live_mentors + int(new_mentor),
        )

    def user_row(self, row: int | None, extra: dict[int, float] | None = None) -> np.ndarray:
        """Raw (mentor | skill) weights of a user, plus events recorded since the fit."""
        out = np.zeros(self.raw.shape[1])
        if row is not None:
            lo, hi = self.raw.indptr[row], self.raw.indptr[row + 1]
            out[self.raw.indices[lo:hi]] = self.raw.data[lo:hi]
        if extra:
            for col, v in extra.items():
                out[col] += v
        return out

    def taste(self, raw_row: np.ndarray) -> np.ndarray:
        """The user's unit vector in the latent space (zeros without history)."""
        if not raw_row.any() or not len(self.components):
            return np.zeros(len(self.components))
        z: np.ndarray = self.components @ _transform_row(raw_row, self.n_mentors)
        norm = float(np.linalg.norm(z))
        return z / norm if norm > 0 else z

    def own(self, raw_row: np.ndarray) -> np.ndarray:
        """The user's own (mentor | skill) row as the factorisation sees it (dampened, blocks
        balanced, unit length): what they did themselves, not what look-alikes did."""
        return _transform_row(raw_row, self.n_mentors) if raw_row.any() else raw_row

    def affinity(self, taste: np.ndarray) -> np.ndarray:
        """Reconstructed (mentor | skill) affinities: what learners like this user engage with."""
        if not taste.any():
            return np.zeros(self.raw.shape[1])
        affinity: np.ndarray = taste @ self.components
        return affinity

    def audience_scores(
        self, taste: np.ndarray, audience: np.ndarray, weight: np.ndarray
    ) -> np.ndarray:
        """How close each session's audience so far is to the user (shrunk towards 0)."""
        if not taste.any() or not audience.shape[1]:
            return np.zeros(len(weight))
        scores: np.ndarray = (audience @ taste) / (AUDIENCE_PRIOR + weight)
        return scores

    def score_sessions(self, aff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-session (mentor part, skill part) of the collaborative score."""
        mentor_part = self.score_mentors(aff)[self.session_mentor]
        skill_part = SKILL_SCORE_WEIGHT * (self.session_skills @ aff[self.n_mentors :])
        return mentor_part, skill_part

    def score_mentors(self, aff: np.ndarray) -> np.ndarray:
        """Affinity per catalogue mentor (0 for mentors added since the fit)."""
        fitted = aff[: self.n_mentors]
        return (
            np.concatenate([fitted, np.zeros(self.live_mentors)]) if self.live_mentors else (fitted)
        )

    def top_skill(self, session: int, aff: np.ndarray) -> str | None:
        """The session's skill with the highest collaborative affinity."""
        lo, hi = self.session_skills.indptr[session], self.session_skills.indptr[session + 1]
        if lo == hi:
            return None
        cols = self.session_skills.indices[lo:hi]
        return self.skill_names[int(cols[np.argmax(aff[self.n_mentors + cols])])]

    def event_columns(self, session: int | None, mentor: int | None) -> list[tuple[int, float]]:
        """Columns (and shares) an event on ``session``/``mentor`` adds to (for live updates)."""
        out: list[tuple[int, float]] = []
        if session is not None:
            mentor = int(self.session_mentor[session])
            lo, hi = self.session_skills.indptr[session], self.session_skills.indptr[session + 1]
            out.extend(
                (self.n_mentors + int(c), float(v))
                for c, v in zip(
                    self.session_skills.indices[lo:hi], self.session_skills.data[lo:hi], strict=True
                )
            )
        if mentor is not None and mentor < self.n_mentors:  # a mentor added live has no column
            out.append((mentor, 1.0))
        return out


def _transform(raw: sp.csr_matrix, n_mentors: int) -> sp.csr_matrix:
    """Dampen heavy users (log1p), balance the two blocks, then L2-normalise each row."""
    x = raw.copy()
    x.data = np.log1p(x.data)
    mentors = normalize_rows(x[:, :n_mentors])
    skills = normalize_rows(x[:, n_mentors:]) * SKILL_BLOCK_WEIGHT
    return normalize_rows(sp.hstack([mentors, skills]).tocsr())


def _transform_row(raw_row: np.ndarray, n_mentors: int) -> np.ndarray:
    """``_transform`` for one dense row (no sparse overhead per request)."""
    x: np.ndarray = np.log1p(raw_row)
    for block, scale in ((slice(0, n_mentors), 1.0), (slice(n_mentors, None), SKILL_BLOCK_WEIGHT)):
        norm = np.linalg.norm(x[block])
        if norm > 0:
            x[block] *= scale / norm
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x
