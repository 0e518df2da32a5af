"""REMB towards publishers, and the measured bitrate of each temporal layer.

A single-layer video is capped at min(cap, subscribers' estimates, uplink estimate): every
subscriber gets the same stream. A layered one (VP8 L1T3) is capped at what its
best-served subscriber can take — min(cap, the largest subscriber estimate, uplink) —
because each weaker subscriber gets fewer layers of it (allocator.py) instead of lowering
everyone's video.
"""

from __future__ import annotations

import time

ESTIMATE_TTL_S = 5.0


class BitrateController:
    """Collects bandwidth estimates for one published video track.

    Subscribers' REMB (arriving at their forwarding senders) and the receive leg's own
    estimate are kept for a few seconds; :meth:`target` is what the publisher is told.
    """

    def __init__(self, max_bitrate_bps: int) -> None:
        self.max_bitrate_bps = max_bitrate_bps
        self.layered = False  # the publisher sends temporal layers
        self._subscribers: dict[int, tuple[int, float]] = {}
        self._uplink: tuple[int, float] | None = None
        self.last_sent: int | None = None

    def set_subscriber(self, key: int, bitrate_bps: int) -> None:
        self._subscribers[key] = (int(bitrate_bps), time.monotonic())

    def remove_subscriber(self, key: int) -> None:
        self._subscribers.pop(key, None)

    def set_uplink(self, bitrate_bps: int) -> None:
        self._uplink = (int(bitrate_bps), time.monotonic())

    def target(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        target = self.max_bitrate_bps
        fresh = [b for b, at in self._subscribers.values() if now - at <= ESTIMATE_TTL_S]
        if fresh:
            target = min(target, max(fresh) if self.layered else min(fresh))
        if self._uplink is not None and now - self._uplink[1] <= ESTIMATE_TTL_S:
            target = min(target, self._uplink[0])
        return target

    @property
    def subscriber_estimates(self) -> dict[int, int]:
        return {k: v for k, (v, _) in self._subscribers.items()}


LAYER_WINDOW_S = 2.0
LAYERS = 3


class LayerRates:
    """Bytes received per temporal layer over the last ``LAYER_WINDOW_S`` (in 0.5 s buckets)."""

    BUCKET_S = 0.5

    def __init__(self) -> None:
        count = int(LAYER_WINDOW_S / self.BUCKET_S)
        self._buckets: list[list[int]] = [[0] * LAYERS for _ in range(count)]
        self._current = 0
        self._started_at: float | None = None
        self._bucket_at = 0.0

    def add(self, tid: int, nbytes: int, now: float) -> None:
        if self._started_at is None:
            self._started_at = self._bucket_at = now
        while now - self._bucket_at >= self.BUCKET_S:
            self._bucket_at += self.BUCKET_S
            self._current = (self._current + 1) % len(self._buckets)
            self._buckets[self._current] = [0] * LAYERS
            if now - self._bucket_at > LAYER_WINDOW_S:  # idle for long: start over
                self._bucket_at = now
        self._buckets[self._current][min(tid, LAYERS - 1)] += nbytes

    def cumulative_bps(self, now: float) -> list[float]:
        """bit/s of layers 0..k together, for k = 0, 1, 2."""
        if self._started_at is None:
            return [0.0] * LAYERS
        span = min(LAYER_WINDOW_S, max(self.BUCKET_S, now - self._started_at))
        totals = [sum(b[layer] for b in self._buckets) for layer in range(LAYERS)]
        out, running = [], 0
        for total in totals:
            running += total
            out.append(running * 8 / span)
        return out
