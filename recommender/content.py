"""Content-based model: TF-IDF over session text + skills, cosine to a user profile vector.

The vocabulary and IDF are learnt at the fit (scikit-learn's ``TfidfVectorizer``), then kept in
a ``Vocabulary`` that grows: a session published between two refits adds the words and skills
the fit never saw as new columns, so a brand-new topic matches at once.
"""

from __future__ import annotations

from collections import Counter
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


Doc = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Vocabulary:
    """Feature columns and their IDF: fitted, then extended with tokens seen since the fit."""

    index: dict[str, int]  # token -> column
    idf: np.ndarray  # per column
    features: np.ndarray  # token per column (for reasons)
    n_docs: int  # documents the IDF was fitted on

    @classmethod
    def of(cls, vec: TfidfVectorizer, n_docs: int) -> Vocabulary:
        features = vec.get_feature_names_out()
        index = {str(t): i for i, t in enumerate(features)}
        return cls(index, np.asarray(vec.idf_, dtype=np.float64), features, n_docs)

    @property
    def size(self) -> int:
        return len(self.features)

    def extended(self, docs: list[Doc]) -> Vocabulary:
        """This vocabulary plus the tokens of ``docs`` it lacks (appended: columns handed out
        stay valid). A new token gets the IDF of a term found in one document of the fit's."""
        new = [
            t for t in dict.fromkeys(tok for d in docs for tok in analyze(d)) if t not in self.index
        ]
        if not new:
            return self
        index = dict(self.index)
        for t in new:
            index[t] = len(index)
        # smooth IDF (sklearn's formula) with df = 1: the rarest a fitted term can be
        rare = np.log((1 + self.n_docs) / 2.0) + 1.0
        return Vocabulary(
            index,
            np.concatenate([self.idf, np.full(len(new), rare)]),
            np.concatenate([self.features, np.asarray(new, dtype=object)]),
            self.n_docs,
        )

    def counts(self, docs: list[Doc], sublinear: bool = True) -> sp.csr_matrix:
        """Term frequencies (1 + log tf when ``sublinear``) of known tokens, one row a doc."""
        data: list[float] = []
        cols: list[int] = []
        indptr = [0]
        get = self.index.get
        for d in docs:
            for tok, n in Counter(analyze(d)).items():
                j = get(tok)
                if j is not None:
                    cols.append(j)
                    data.append(1.0 + np.log(n) if sublinear else float(n))
            indptr.append(len(cols))
        return sp.csr_matrix(
            (np.asarray(data, np.float64), np.asarray(cols, np.int64), np.asarray(indptr)),
            shape=(len(docs), self.size),
        )

    def rows(self, docs: list[Doc]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows (what the fitted ``TfidfVectorizer`` would give)."""
        m = self.counts(docs) @ sp.diags(self.idf)
        return normalize(m).tocsr() if len(docs) else sp.csr_matrix(m)

    def profiles(self, docs: list[Doc]) -> sp.csr_matrix:
        """Declared skills/interests as L2 rows *without* IDF.

        The sessions already carry IDF; applying it to the profile too would square it, and a
        Python lover in a catalogue full of Python would be steered to their rarest interest.
        """
        m = self.counts(docs)
        return normalize(m).tocsr() if len(docs) else m


def _profile_doc(user: UserProfile) -> tuple[str, tuple[str, ...]]:
    # Interests are free text in the spec; treat each as a skill too so "Python" == "python".
    return ("", tuple(user.skills) + tuple(user.interests))


@dataclass(frozen=True)
class ContentModel:
    """Fitted TF-IDF space: sessions, mentors and users as L2-normalised rows.

    ``profiles`` and ``history`` keep the width of the fit's vocabulary (they are the large
    matrices); columns added since are zero for them and padded on use.
    """

    vocabulary: Vocabulary
    sessions: sp.csr_matrix  # n_sessions x V
    mentors: sp.csr_matrix  # n_mentors x V
    profiles: sp.csr_matrix  # n_users x V_fit, declared skills and interests (L2 rows)
    history: sp.csr_matrix  # n_users x V_fit, weighted sum of the sessions they looked at/booked
    #: n_users x n_sessions at the fit: the sessions each user looked at or booked
    touched: sp.csr_matrix
    names: dict[str, str]  # skill token -> display name
    word_names: dict[str, str]  # word of a one-word skill -> display name ("python" -> "Python")

    @property
    def features(self) -> np.ndarray:
        """Feature names by column."""
        return self.vocabulary.features

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
        docs = [*session_docs, *mentor_docs, ("peerlearn", ())]
        vec.fit(docs)
        vocab = Vocabulary.of(vec, len(docs))

        sessions = vocab.rows(session_docs)
        if len(cat.sessions):
            mentor_part = vocab.rows(mentor_skill_docs)[cat.session_mentor]
            sessions = normalize(sessions + MENTOR_SKILL_WEIGHT * mentor_part).tocsr()
        mentors = vocab.rows(mentor_docs)

        profiles = vocab.profiles([_profile_doc(u) for u in cat.users])
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
        return cls(vocab, sessions, mentors, profiles, history, hist, names, _word_names(names))

    def with_session(self, item: SessionItem, mentor: MentorItem, new_mentor: bool) -> ContentModel:
        """This model plus one session published since the fit (and its mentor when new).
        Words and skills the vocabulary lacks become new columns first, so a session in a
        brand-new topic matches a learner interested in it before any refit."""
        session_doc = (f"{item.title} {item.description}", item.skills)
        mentor_skills = ("", mentor.skills)
        mentor_doc = (f"{mentor.bio} {item.title}", mentor.skills)
        vocab = self.vocabulary.extended([session_doc, mentor_doc])
        row = vocab.rows([session_doc]) + MENTOR_SKILL_WEIGHT * vocab.rows([mentor_skills])
        mentors = _widen(self.mentors, vocab.size)
        if new_mentor:
            mentors = sp.vstack([mentors, vocab.rows([mentor_doc])]).tocsr()
        names = dict(self.names)
        for token, name in display_names((*item.skills, *mentor.skills)).items():
            names.setdefault(token, name)
        return replace(
            self,
            vocabulary=vocab,
            sessions=sp.vstack([_widen(self.sessions, vocab.size), normalize(row)]).tocsr(),
            mentors=mentors,
            names=names,
            word_names=_word_names(names),
        )

    @property
    def vocabulary_grew(self) -> bool:
        """Whether sessions published since the fit added columns to the vocabulary."""
        return bool(self.vocabulary.size > self.profiles.shape[1])

    def touched_by(self, row: int | None, n_sessions: int) -> np.ndarray:
        """1.0 for each session the user looked at or booked before the fit, else 0."""
        out = np.zeros(n_sessions)
        if row is not None:
            out[self.touched.indices[self.touched.indptr[row] : self.touched.indptr[row + 1]]] = 1
        return out

    def history_weight(self, kind: str, value: float | None) -> float:
        """How much one event moves the user's history vector (live updates)."""
        if is_positive(kind, value):
            return 1.0
        return VIEW_WEIGHT if kind == "view" else 0.0

    def history_of(self, sessions: dict[int, float]) -> np.ndarray:
        """Dense history vector of sessions (index -> weight), e.g. recorded since the fit."""
        idx = np.fromiter(sessions.keys(), np.int64, len(sessions))
        weights = np.fromiter(sessions.values(), np.float64, len(sessions))
        history: np.ndarray = (sp.csr_matrix(weights[None, :]) @ self.sessions[idx]).toarray()
        return history.ravel()

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
        p, h = self.user_parts(row, profile, extra_history)
        return _unit(PROFILE_WEIGHT * p + (1 - PROFILE_WEIGHT) * h)

    def user_parts(
        self,
        row: int | None,
        profile: UserProfile | None = None,
        extra_history: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two halves of ``user_vector``, each of unit length (or zeros): the declared
        profile and the history."""
        width = self.vocabulary.size
        if profile is not None:
            p = _dense_row(self.vocabulary.profiles([_profile_doc(profile)]), 0, width)
        elif row is not None:
            p = _dense_row(self.profiles, row, width)
        else:
            p = np.zeros(width)
        h = _dense_row(self.history, row, width) if row is not None else np.zeros(width)
        if extra_history is not None:
            h = h + extra_history
        return _unit(p), _unit(h)

    def score_sessions(self, u: np.ndarray) -> np.ndarray:
        """Cosine of the user vector with every session."""
        scores: np.ndarray = self.sessions @ u
        return scores

    def score_mentors(self, u: np.ndarray) -> np.ndarray:
        """Cosine of the user vector with every mentor's profile and session titles."""
        scores: np.ndarray = self.mentors @ u
        return scores

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


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 0 else x


def _widen(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """The same rows with zero columns appended up to ``width`` (no data copied)."""
    if m.shape[1] == width:
        return m
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))


def _dense_row(m: sp.csr_matrix, row: int, width: int) -> np.ndarray:
    """Row ``row`` of ``m`` as a dense vector of ``width`` (padded with zeros)."""
    out = np.zeros(width)
    lo, hi = m.indptr[row], m.indptr[row + 1]
    out[m.indices[lo:hi]] = m.data[lo:hi]
    return out
