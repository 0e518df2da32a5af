"""Retransmission policy, both directions, with no aiortc in it (taps.py does the wiring).

* :class:`NackLimiter` — send side: how often a leg may resend what a subscriber NACKs.
  Each packet is resent at most ``max_resends`` times (and not twice within
  ``min_interval_s``) while it is in the sender's history; all resends of a leg share one
  token bucket, so a client that NACKs in a loop costs at most ``rate_per_s`` packets/s.
* :class:`GapTracker` — receive side: when a packet we NACKed is still missing it is
  NACKed once more after ``renack_after_s``; after ``give_up_after_s`` the gap is given
  up (the caller skips it and asks for a keyframe) instead of letting aiortc's jitter
  buffer wait for its overflow (~10 s of frozen video).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Clock = Callable[[], float]

# aiortc keeps the last 128 packets of a sender for retransmission (RTP_HISTORY_SIZE);
# a sequence number older than that can no longer be resent, so its count can go.
HISTORY_PACKETS = 128


@dataclass
class NackCounters:
    requested: int = 0  # sequence numbers NACKed by the subscriber
    sent: int = 0  # retransmissions let through
    refused_repeat: int = 0  # that packet was resent enough (or just now)
    refused_rate: int = 0  # the leg's retransmission budget was spent


class NackLimiter:
    """Per subscriber leg: bounded resends per packet, one token bucket for the leg."""

    def __init__(
        self,
        *,
        max_resends: int = 3,
        min_interval_s: float = 0.02,
        rate_per_s: float = 150.0,
        burst: float = 150.0,
        history: int = HISTORY_PACKETS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_resends = max_resends
        self.min_interval_s = min_interval_s
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._history = history
        self._clock = clock
        self._tokens = burst
        self._refilled = clock()
        # (stream, seq) -> (times resent, when last resent); oldest first.
        self._resends: OrderedDict[tuple[int, int], tuple[int, float]] = OrderedDict()
        self._streams: set[int] = set()
        self.counters = NackCounters()

    def allow(self, stream: int, seq: int) -> bool:
        """May ``stream`` (a sender of this leg) resend ``seq`` now? Counts the answer."""
        self.counters.requested += 1
        now = self._clock()
        key = (stream, seq)
        count, last = self._resends.get(key, (0, -1e9))
        if count >= self.max_resends or now - last < self.min_interval_s:
            self.counters.refused_repeat += 1
            return False
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate_per_s)
        self._refilled = now
        if self._tokens < 1.0:
            self.counters.refused_rate += 1
            return False
        self._tokens -= 1.0
        self._resends[key] = (count + 1, now)
        self._resends.move_to_end(key)
        self._streams.add(stream)
        # Only packets still in some sender's history matter.
        while len(self._resends) > self._history * len(self._streams):
            self._resends.popitem(last=False)
        self.counters.sent += 1
        return True


@dataclass
class _Gap:
    since: float
    renacked: bool = False


@dataclass
class GapDecision:
    renack: list[int] = field(default_factory=list)
    give_up: list[int] = field(default_factory=list)
    next_check_s: float | None = None  # when to look again; None: nothing is pending


class GapTracker:
    """Missing sequence numbers of one receive stream, with when each went missing."""

    def __init__(
        self,
        *,
        renack_after_s: float = 0.1,
        give_up_after_s: float = 0.25,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 < renack_after_s < give_up_after_s:
            raise ValueError("need 0 < renack_after_s < give_up_after_s")
        self.renack_after_s = renack_after_s
        self.give_up_after_s = give_up_after_s
        self._clock = clock
        self._gaps: dict[int, _Gap] = {}
        self.nacked = 0  # sequence numbers seen missing (and NACKed by aiortc)
        self.renacked = 0
        self.repaired = 0
        self.given_up = 0

    def missing(self, seqs: Iterable[int]) -> None:
        """The receiver found these missing (and NACKed them)."""
        now = self._clock()
        for seq in seqs:
            if seq not in self._gaps:
                self._gaps[seq] = _Gap(now)
                self.nacked += 1

    def check(self, still_missing: set[int]) -> GapDecision:
        """What to do now, given what the receiver still misses."""
        now = self._clock()
        decision = GapDecision()
        nearest: float | None = None
        for seq, gap in list(self._gaps.items()):
            if seq not in still_missing:
                del self._gaps[seq]
                self.repaired += 1
                continue
            age = now - gap.since
            if age >= self.give_up_after_s:
                del self._gaps[seq]
                decision.give_up.append(seq)
                self.given_up += 1
                continue
            if not gap.renacked and age >= self.renack_after_s:
                gap.renacked = True
                decision.renack.append(seq)
                self.renacked += 1
            due = (self.give_up_after_s if gap.renacked else self.renack_after_s) - age
            nearest = due if nearest is None else min(nearest, due)
        decision.next_check_s = None if nearest is None else max(0.0, nearest)
        return decision

    @property
    def pending(self) -> int:
        return len(self._gaps)
