"""REMB towards publishers: min(cap, subscribers' estimates, uplink estimate)."""

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
        for bitrate, at in self._subscribers.values():
            if now - at <= ESTIMATE_TTL_S:
                target = min(target, bitrate)
        if self._uplink is not None and now - self._uplink[1] <= ESTIMATE_TTL_S:
            target = min(target, self._uplink[0])
        return target

    @property
    def subscriber_estimates(self) -> dict[int, int]:
        return {k: v for k, (v, _) in self._subscribers.items()}
