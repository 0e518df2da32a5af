"""Content-based model: TF-IDF over session text + skills, cosine to a user profile vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from .catalog import KIND_CODES, Catalog, positive_mask
from .data import UserProfile
from .text import SKILL_PREFIX, analyze, display_names, normalize_skill, skill_token, words

#: how much a mentor's general skills colour each of their sessions (own text/skills = 1)
MENTOR_SKILL_WEIGHT = 0.4
#: profile vs. history in the user vector when both exist
PROFILE_WEIGHT = 0.4
#: a view says less than a booking, but far more than nothing (most events are views)
VIEW_WEIGHT = 0.6


def _profile_doc(user: UserProfile) -> tuple[str, tuple[str, ...]]:
    # Interests are free text in the spec; treat each as a skill too so "Python" == "python".
    return ("", tuple(user.skills) + tuple(user.interests))


@dataclass(frozen=True)
class ContentModel:
    """Fitted TF-IDF space: sessions, mentors and users as L2-normalised rows."""

    vectorizer: TfidfVectorizer
    features: np.ndarray  # feature names by column
    sessions: sp.csr_matrix  # n_sessions x V
    mentors: sp.csr_matrix  # n_mentors x V
    users: sp.csr_matrix  # n_users x V (profile + positive history)
    names: dict[str, str]  # skill token -> display name

    @classmethod
    def fit(cls, cat: Catalog) -> ContentModel:
        """Fit the vocabulary on sessions and mentors; project users into it."""
        session_docs = [(f"{s.title} {s.description}", s.skills) for s in cat.sessions]
        mentor_skill_docs = [("", m.skills) for m in cat.mentors]
        titles: list[list[str]] = [[] for _ in cat.mentors]
        for s, m in zip(cat.sessions, cat.session_mentor, strict=True):
            titles[m].append(s.title)
        mentor_docs = [
            (f"{m.bio} {' '.join(t)}", m.skills) for m, t in zip(cat.mentors, titles, strict=True)
        ]
        vec = TfidfVectorizer(analyzer=analyze, sublinear_tf=True, dtype=np.float64)
        # The sentinel keeps the vocabulary non-empty on a brand-new platform.
        vec.fit([*session_docs, *mentor_docs, ("peerlearn", ())])

        sessions = normalize(vec.transform(session_docs)) if session_docs else _empty(vec)
        if len(cat.sessions):
            mentor_part = normalize(vec.transform(mentor_skill_docs))[cat.session_mentor]
            sessions = normalize(sessions + MENTOR_SKILL_WEIGHT * mentor_part).tocsr()
        mentors = normalize(vec.transform(mentor_docs)).tocsr() if mentor_docs else _empty(vec)

        profiles = normalize(vec.transform([_profile_doc(u) for u in cat.users]))
        ev = cat.events
        hw = np.where(positive_mask(ev), 1.0, np.where(ev.kind == KIND_CODES["view"], VIEW_WEIGHT, 0))
        pos = (hw > 0) & (ev.session >= 0)
        hist = sp.csr_matrix(
            (hw[pos], (ev.user[pos], ev.session[pos])), shape=(cat.n_users, cat.n_sessions)
        )
        history = normalize(hist @ sessions) if cat.n_sessions else profiles * 0
        users = normalize(PROFILE_WEIGHT * profiles + (1 - PROFILE_WEIGHT) * history).tocsr()

        names: dict[str, str] = {}
        for s in cat.sessions:
            names.update({k: v for k, v in display_names(s.skills).items() if k not in names})
        for m in cat.mentors:
            names.update({k: v for k, v in display_names(m.skills).items() if k not in names})
        for u in cat.users:
            skills = u.skills + u.interests
            names.update({k: v for k, v in display_names(skills).items() if k not in names})
        features = vec.get_feature_names_out()
        return cls(vec, features, sessions, mentors, users, names)

    def user_vector(self, row: int | None, profile: UserProfile | None = None) -> np.ndarray:
        """Dense user vector: the fitted row, or a profile projected now (new users)."""
        if row is not None and (profile is None or self.users[row].nnz):
            return self.users[row].toarray().ravel()
        if profile is not None:
            v = normalize(self.vectorizer.transform([_profile_doc(profile)]))
            return v.toarray().ravel()
        return np.zeros(len(self.features))

    def score_sessions(self, u: np.ndarray) -> np.ndarray:
        """Cosine of the user vector with every session."""
        return self.sessions @ u

    def score_mentors(self, u: np.ndarray) -> np.ndarray:
        """Cosine of the user vector with every mentor's profile and session titles."""
        return self.mentors @ u

    def best_term(self, matrix: sp.csr_matrix, i: int, u: np.ndarray) -> str | None:
        """The feature contributing most to the cosine of row ``i`` with ``u``."""
        lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
        if lo == hi:
            return None
        cols = matrix.indices[lo:hi]
        contrib = matrix.data[lo:hi] * u[cols]
        j = int(np.argmax(contrib))
        return str(self.features[cols[j]]) if contrib[j] > 0 else None

    def reason(self, term: str | None, profile: UserProfile | None) -> str:
        """Human reason for a matched feature, phrased by where the user got it from."""
        if term is None:
            return "related to what you study"
        interests = profile.interests if profile else ()
        skills = profile.skills if profile else ()
        if term.startswith(SKILL_PREFIX):
            name = self.names.get(term, term[len(SKILL_PREFIX) :].replace("_", " "))
            if term in {skill_token(s) for s in interests}:
                return f"matches your interest in {name}"
            if term in {skill_token(s) for s in skills}:
                return f"builds on your {name} skills"
            return f"similar to sessions you booked on {name}"
        if any(term in words(normalize_skill(s)) for s in interests):
            return f"matches your interest in {term}"
        if any(term in words(normalize_skill(s)) for s in skills):
            return f"builds on your {term} skills"
        return f"similar to sessions you booked ({term})"


def _empty(vec: TfidfVectorizer) -> sp.csr_matrix:
    return sp.csr_matrix((0, len(vec.vocabulary_)))
