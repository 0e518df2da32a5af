"""Content-based model: TF-IDF over session text + skills, cosine to a user profile vector."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from .catalog import KIND_CODES, Catalog, is_positive, positive_mask
from .data import MentorItem, SessionItem, UserProfile
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
    profiles: sp.csr_matrix  # n_users x V, declared skills and interests (L2 rows)
    history: sp.csr_matrix  # n_users x V, weighted sum of the sessions they looked at/booked
    names: dict[str, str]  # skill token -> display name
    word_names: dict[str, str]  # word of a one-word skill -> display name ("python" -> "Python")

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

        sessions = _rows(vec, session_docs)
        if len(cat.sessions):
            mentor_part = _rows(vec, mentor_skill_docs)[cat.session_mentor]
            sessions = normalize(sessions + MENTOR_SKILL_WEIGHT * mentor_part).tocsr()
        mentors = _rows(vec, mentor_docs)

        profiles = _profiles(vec, [_profile_doc(u) for u in cat.users])
        ev = cat.events
        view = np.where(ev.kind == KIND_CODES["view"], VIEW_WEIGHT, 0.0)
        hw = np.where(positive_mask(ev), 1.0, view)
        pos = (hw > 0) & (ev.session >= 0)
        hist = sp.csr_matrix(
            (hw[pos], (ev.user[pos], ev.session[pos])), shape=(cat.n_users, cat.n_sessions)
        )
        history = (hist @ sessions).tocsr()

        # Sessions and mentors first: the catalogue's spelling wins over a user's typo.
        names: dict[str, str] = {}
        declared = [s.skills for s in cat.sessions] + [m.skills for m in cat.mentors]
        declared += [u.skills + u.interests for u in cat.users]
        for skills in declared:
            for token, name in display_names(skills).items():
                names.setdefault(token, name)
        features = vec.get_feature_names_out()
        return cls(
            vec, features, sessions, mentors, profiles, history, names, _word_names(names)
        )

    def with_session(
        self, item: SessionItem, mentor: MentorItem, new_mentor: bool
    ) -> ContentModel:
        """This model plus one session published since the fit (and its mentor when new),
        projected on the fitted vocabulary: words and skills the vocabulary lacks only count
        after the next refit."""
        session_doc = (f"{item.title} {item.description}", item.skills)
        row = _rows(self.vectorizer, [session_doc]) + MENTOR_SKILL_WEIGHT * _rows(
            self.vectorizer, [("", mentor.skills)]
        )
        mentors = self.mentors
        if new_mentor:
            mentor_doc = (f"{mentor.bio} {item.title}", mentor.skills)
            mentors = sp.vstack([mentors, _rows(self.vectorizer, [mentor_doc])]).tocsr()
        names = dict(self.names)
        for token, name in display_names((*item.skills, *mentor.skills)).items():
            names.setdefault(token, name)
        return replace(
            self,
            sessions=sp.vstack([self.sessions, normalize(row)]).tocsr(),
            mentors=mentors,
            names=names,
            word_names=_word_names(names),
        )

    def history_weight(self, kind: str, value: float | None) -> float:
        """How much one event moves the user's history vector (live updates)."""
        if is_positive(kind, value):
            return 1.0
        return VIEW_WEIGHT if kind == "view" else 0.0

    def history_of(self, sessions: dict[int, float]) -> np.ndarray:
        """Dense history vector of sessions (index -> weight), e.g. recorded since the fit."""
        idx = np.fromiter(sessions.keys(), np.int64, len(sessions))
        weights = np.fromiter(sessions.values(), np.float64, len(sessions))
        return (sp.csr_matrix(weights[None, :]) @ self.sessions[idx]).toarray().ravel()

    def user_vector(
        self,
        row: int | None,
        profile: UserProfile | None = None,
        extra_history: np.ndarray | None = None,
    ) -> np.ndarray:
        """Dense unit user vector: declared profile blended with what they looked at/booked.

        ``profile`` (the current one, e.g. just edited) replaces the profile seen at fit time;
        ``extra_history`` adds sessions recorded since the fit.
        """
        if profile is not None:
            p = _profiles(self.vectorizer, [_profile_doc(profile)]).toarray().ravel()
        elif row is not None:
            p = self.profiles[row].toarray().ravel()
        else:
            p = np.zeros(len(self.features))
        h = self.history[row].toarray().ravel() if row is not None else np.zeros_like(p)
        if extra_history is not None:
            h = h + extra_history
        u = PROFILE_WEIGHT * _unit(p) + (1 - PROFILE_WEIGHT) * _unit(h)
        return _unit(u)

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

    def display(self, term: str) -> str:
        """A feature as people spell it: "skill:machine_learning" -> "Machine learning"."""
        if term.startswith(SKILL_PREFIX):
            return self.names.get(term, term[len(SKILL_PREFIX) :].replace("_", " "))
        return self.word_names.get(term, term)

    def reason(self, term: str | None, profile: UserProfile | None) -> str:
        """Human reason for a matched feature, naming the skill as the user wrote it."""
        if term is None:
            return "related to what you study"
        if profile is not None:
            name = _declared(term, profile.interests)
            if name:
                return f"matches your interest in {name}"
            name = _declared(term, profile.skills)
            if name:
                return f"builds on your {name} skills"
        return f"similar to {self.display(term)} sessions you explored"


def _word_names(names: dict[str, str]) -> dict[str, str]:
    """The word of each one-word skill -> its display name ("python" -> "Python")."""
    return {w[0]: name for name in names.values() if len(w := words(name)) == 1}


def _declared(term: str, declared: tuple[str, ...]) -> str | None:
    """The user's own spelling of the skill/interest a feature came from, if any."""
    for item in declared:
        if term == skill_token(item) or term in words(normalize_skill(item)):
            return item.strip()
    return None


def _profiles(vec: TfidfVectorizer, docs: list[tuple[str, tuple[str, ...]]]) -> sp.csr_matrix:
    """Declared skills/interests as L2 rows *without* IDF.

    The sessions already carry IDF; applying it to the profile too would square it, and a
    Python lover in a catalogue full of Python would be steered to their rarest interest.
    """
    if not docs:
        return sp.csr_matrix((0, len(vec.vocabulary_)))
    return normalize(vec.transform(docs) @ sp.diags(1.0 / vec.idf_)).tocsr()


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 0 else x


def _rows(vec: TfidfVectorizer, docs: list[tuple[str, tuple[str, ...]]]) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows; an empty list gives an empty matrix (sklearn refuses 0 rows)."""
    if not docs:
        return sp.csr_matrix((0, len(vec.vocabulary_)))
    return normalize(vec.transform(docs)).tocsr()
