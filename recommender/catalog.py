"""Index maps and per-item arrays built once per fit, shared by all components."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from .data import BOOKABLE_STATUSES, Interaction, MentorItem, SessionItem, Snapshot, UserProfile

#: implicit-feedback strength of each kind of event (collaborative + history)
IMPLICIT_WEIGHTS: dict[str, float] = {"view": 1.0, "booking": 3.0, "completion": 3.0}
KIND_CODES: dict[str, int] = {"view": 0, "booking": 1, "completion": 2, "rating": 3}


def implicit_weight(kind: str, value: float | None) -> float:
    """Implicit strength of an event; a bad rating adds nothing (the booking already counted)."""
    if kind == "rating":
        return max(0.0, (value if value is not None else 3.0) - 3.0) * 1.5
    return IMPLICIT_WEIGHTS.get(kind, 0.0)


def is_positive(kind: str, value: float | None) -> bool:
    """Events that say "I want sessions like this": bookings, completions, ratings of 4+."""
    if kind == "rating":
        return value is not None and value >= 4
    return kind in ("booking", "completion")


@dataclass(frozen=True)
class InteractionArrays:
    """Parallel arrays of the snapshot's interactions, resolved to catalogue indices."""

    user: np.ndarray  # user row (-1 = user not in the snapshot's user list and not added)
    session: np.ndarray  # session index or -1
    mentor: np.ndarray  # mentor index or -1
    kind: np.ndarray  # KIND_CODES
    value: np.ndarray  # rating value or nan
    ts: np.ndarray  # epoch seconds


@dataclass(frozen=True)
class Catalog:
    """Users, sessions and mentors of one snapshot, with dense indices and numpy columns."""

    users: tuple[UserProfile, ...]
    user_index: dict[int, int]
    sessions: tuple[SessionItem, ...]
    session_index: dict[str, int]
    mentors: tuple[MentorItem, ...]
    mentor_index: dict[int, int]
    session_mentor: np.ndarray  # mentor index per session
    session_mentor_id: np.ndarray  # mentor user id per session
    session_ts: np.ndarray  # schedule, epoch seconds
    session_created: np.ndarray  # publication, epoch seconds (nan when unknown)
    session_open: np.ndarray  # status allows booking
    session_capacity: np.ndarray
    session_taken: np.ndarray  # current_participants at snapshot time
    booked: sp.csr_matrix  # user x session, 1 where booked (bool-ish)
    history_count: np.ndarray  # interactions per user row
    events: InteractionArrays

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    @property
    def n_mentors(self) -> int:
        return len(self.mentors)

    def booked_of(self, row: int) -> np.ndarray:
        """Session indices a user row had booked at snapshot time."""
        start, end = self.booked.indptr[row], self.booked.indptr[row + 1]
        booked: np.ndarray = self.booked.indices[start:end]
        return booked

    def with_session(self, item: SessionItem, mentor: MentorItem | None = None) -> Catalog:
        """This catalogue plus one session published since the fit (appended, so every index
        already handed out stays valid). Its mentor is appended too when new; ``mentor`` is
        their profile (a placeholder without it)."""
        mentors, mentor_index = self.mentors, self.mentor_index
        if item.mentor_id not in mentor_index:
            mentor_index = {**mentor_index, item.mentor_id: len(mentors)}
            mentors = (*mentors, mentor or _placeholder_mentor(item.mentor_id))
        n = self.n_sessions + 1
        booked = sp.csr_matrix(
            (self.booked.data, self.booked.indices, self.booked.indptr), shape=(self.n_users, n)
        )
        return replace(
            self,
            sessions=(*self.sessions, item),
            session_index={**self.session_index, item.id: n - 1},
            mentors=mentors,
            mentor_index=mentor_index,
            session_mentor=np.append(self.session_mentor, mentor_index[item.mentor_id]),
            session_mentor_id=np.append(self.session_mentor_id, item.mentor_id),
            session_ts=np.append(self.session_ts, item.schedule.timestamp()),
            session_created=np.append(self.session_created, _created_ts(item)),
            session_open=np.append(self.session_open, item.status in BOOKABLE_STATUSES),
            session_capacity=np.append(self.session_capacity, item.max_participants),
            session_taken=np.append(self.session_taken, item.current_participants),
            booked=booked,
        )


def _created_ts(item: SessionItem) -> float:
    return item.created_at.timestamp() if item.created_at is not None else np.nan


def _placeholder_mentor(mentor_id: int) -> MentorItem:
    """A mentor known only from their sessions (no profile in the snapshot)."""
    return MentorItem(mentor_id, f"mentor {mentor_id}", (), "", None, 0)


def build_catalog(snapshot: Snapshot) -> Catalog:
    """Index a snapshot. Users and mentors only seen in interactions/sessions are added."""
    users = list(snapshot.users)
    user_index = {u.id: i for i, u in enumerate(users)}
    for it in snapshot.interactions:
        if it.user_id not in user_index:  # history without a profile still counts
            user_index[it.user_id] = len(users)
            users.append(UserProfile(id=it.user_id, role="learner"))

    mentors = list(snapshot.mentors)
    mentor_index = {m.id: i for i, m in enumerate(mentors)}
    sessions = tuple(snapshot.sessions)
    for s in sessions:
        if s.mentor_id not in mentor_index:
            mentor_index[s.mentor_id] = len(mentors)
            mentors.append(_placeholder_mentor(s.mentor_id))
    session_index = {s.id: i for i, s in enumerate(sessions)}

    n = len(sessions)
    session_mentor = np.fromiter((mentor_index[s.mentor_id] for s in sessions), np.int64, n)
    session_mentor_id = np.fromiter((s.mentor_id for s in sessions), np.int64, n)
    session_ts = np.fromiter((s.schedule.timestamp() for s in sessions), np.float64, n)
    session_created = np.fromiter((_created_ts(s) for s in sessions), np.float64, n)
    session_open = np.fromiter((s.status in BOOKABLE_STATUSES for s in sessions), bool, n)
    capacity = np.fromiter((s.max_participants for s in sessions), np.int64, n)
    taken = np.fromiter((s.current_participants for s in sessions), np.int64, n)

    events = _event_arrays(snapshot.interactions, user_index, session_index, mentor_index)
    if snapshot.seats is None:
        booking = (events.kind == KIND_CODES["booking"]) & (events.session >= 0)
        booked_user, booked_session = events.user[booking], events.session[booking]
    else:
        # The source's word on who holds a seat now (cancelled bookings are not "booked").
        held = [
            (user_index[u], session_index[s])
            for u, s in snapshot.seats
            if u in user_index and s in session_index
        ]
        booked_user = np.fromiter((u for u, _ in held), np.int64, len(held))
        booked_session = np.fromiter((s for _, s in held), np.int64, len(held))
    booked = sp.csr_matrix(
        (np.ones(len(booked_user)), (booked_user, booked_session)), shape=(len(users), n)
    )
    booked.sum_duplicates()
    history = np.bincount(events.user, minlength=len(users))
    return Catalog(
        users=tuple(users),
        user_index=user_index,
        sessions=sessions,
        session_index=session_index,
        mentors=tuple(mentors),
        mentor_index=mentor_index,
        session_mentor=session_mentor,
        session_mentor_id=session_mentor_id,
        session_ts=session_ts,
        session_created=session_created,
        session_open=session_open,
        session_capacity=capacity,
        session_taken=taken,
        booked=booked,
        history_count=history,
        events=events,
    )


def _event_arrays(
    interactions: Sequence[Interaction],
    user_index: dict[int, int],
    session_index: dict[str, int],
    mentor_index: dict[int, int],
) -> InteractionArrays:
    m = len(interactions)
    sget, mget = session_index.get, mentor_index.get
    user = np.fromiter((user_index[i.user_id] for i in interactions), np.int64, m)
    session = np.fromiter((sget(i.session_id, -1) for i in interactions), np.int64, m)
    mentor = np.fromiter((mget(i.mentor_id, -1) for i in interactions), np.int64, m)
    kind = np.fromiter((KIND_CODES.get(i.kind, 0) for i in interactions), np.int64, m)
    value = np.fromiter(
        (i.value if i.value is not None else np.nan for i in interactions), np.float64, m
    )
    ts = np.fromiter((i.at.timestamp() for i in interactions), np.float64, m)
    return InteractionArrays(user, session, mentor, kind, value, ts)


def implicit_weights(events: InteractionArrays) -> np.ndarray:
    """Vectorised ``implicit_weight``."""
    w = np.zeros(len(events.kind))
    for kind, code in KIND_CODES.items():
        if kind != "rating":
            w[events.kind == code] = IMPLICIT_WEIGHTS.get(kind, 0.0)
    rating = events.kind == KIND_CODES["rating"]
    w[rating] = np.maximum(0.0, np.nan_to_num(events.value[rating], nan=3.0) - 3.0) * 1.5
    return w


def positive_mask(events: InteractionArrays) -> np.ndarray:
    """Vectorised ``is_positive``."""
    book = (events.kind == KIND_CODES["booking"]) | (events.kind == KIND_CODES["completion"])
    good = (events.kind == KIND_CODES["rating"]) & (np.nan_to_num(events.value) >= 4)
    positive: np.ndarray = book | good
    return positive


def normalize_rows(m: sp.spmatrix | np.ndarray, norm: str = "l2") -> sp.csr_matrix | np.ndarray:
    """Row-normalise; empty matrices pass through (sklearn refuses 0 rows or 0 columns)."""
    out = m if m.shape[0] == 0 or m.shape[1] == 0 else normalize(m, norm=norm)
    return out if isinstance(out, np.ndarray) else out.tocsr()
