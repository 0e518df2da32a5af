"""Popularity / trending: exponentially time-decayed interaction counts.

Sums are stored relative to a fixed reference time: an event of weight ``w`` at time ``t`` adds
``w * 2**((t - ref) / half_life)``, and the value "now" is the stored sum times
``2**(-(now - ref) / half_life)``. So recording an event is O(1) and never touches other items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import Interaction

#: how much each kind of event says about popularity
POPULARITY_WEIGHTS: dict[str, float] = {"view": 1.0, "booking": 4.0, "completion": 4.0}


def popularity_weight(kind: str, value: float | None) -> float:
    """Weight of one event; a rating counts by how good it is (1-2 stars count nothing)."""
    if kind == "rating":
        return max(0.0, (value if value is not None else 3.0) - 2.0) * 2.0
    return POPULARITY_WEIGHTS.get(kind, 0.0)


class DecayedCounter:
    """A vector of exponentially decayed sums with O(1) updates."""

    __slots__ = ("half_life_s", "ref_ts", "values")

    def __init__(self, size: int, half_life_s: float, ref_ts: float) -> None:
        self.half_life_s = float(half_life_s)
        self.ref_ts = float(ref_ts)
        self.values = np.zeros(size, dtype=np.float64)

    def add(self, idx: int, weight: float, ts: float) -> None:
        """Record ``weight`` for item ``idx`` at time ``ts`` (epoch seconds)."""
        self.values[idx] += weight * 2.0 ** ((ts - self.ref_ts) / self.half_life_s)

    def add_many(self, idx: np.ndarray, weight: np.ndarray, ts: np.ndarray) -> None:
        """Vectorised ``add`` for a fit."""
        if len(idx):
            np.add.at(self.values, idx, weight * np.exp2((ts - self.ref_ts) / self.half_life_s))

    def at(self, now_ts: float) -> np.ndarray:
        """Decayed values at ``now_ts`` (a new array)."""
        decay: float = 2.0 ** (-(now_ts - self.ref_ts) / self.half_life_s)
        return self.values * decay

    def value(self, idx: int, now_ts: float) -> float:
        """Decayed value of one item at ``now_ts``."""
        return float(self.values[idx] * 2.0 ** (-(now_ts - self.ref_ts) / self.half_life_s))

    def copy(self) -> DecayedCounter:
        out = DecayedCounter(0, self.half_life_s, self.ref_ts)
        out.values = self.values.copy()
        return out

    def grown(self, size: int) -> DecayedCounter:
        """A copy with room for ``size`` items (the new ones at zero)."""
        out = DecayedCounter(size, self.half_life_s, self.ref_ts)
        out.values[: len(self.values)] = self.values
        return out


def build_counters(
    session_idx: np.ndarray,
    mentor_idx: np.ndarray,
    weights: np.ndarray,
    ts: np.ndarray,
    n_sessions: int,
    n_mentors: int,
    half_life_days: float,
    ref_ts: float,
) -> tuple[DecayedCounter, DecayedCounter]:
    """Session and mentor counters from parallel arrays of events (-1 index = unknown item)."""
    half_life_s = half_life_days * 86400.0
    sessions = DecayedCounter(n_sessions, half_life_s, ref_ts)
    mentors = DecayedCounter(n_mentors, half_life_s, ref_ts)
    known = session_idx >= 0
    sessions.add_many(session_idx[known], weights[known], ts[known])
    known = mentor_idx >= 0
    mentors.add_many(mentor_idx[known], weights[known], ts[known])
    return sessions, mentors


def interaction_arrays(interactions: Sequence[Interaction]) -> tuple[np.ndarray, np.ndarray]:
    """Popularity weights and timestamps of a list of interactions."""
    w = np.fromiter(
        (popularity_weight(i.kind, i.value) for i in interactions), np.float64, len(interactions)
    )
    ts = np.fromiter((i.at.timestamp() for i in interactions), np.float64, len(interactions))
    return w, ts
