"""Active speaker from the RFC 6464 audio level (``ssrc-audio-level``) of received audio."""

from __future__ import annotations

import time

# dBov: 0 is the loudest, 127 silence. Quieter than this is not speech.
SPEECH_THRESHOLD_DBOV = 60
LEVEL_TTL_S = 0.5


class ActiveSpeakerDetector:
    """Picks the loudest recent speaker; reports only changes."""

    def __init__(self) -> None:
        self.current: int | None = None

    def pick(self, levels: dict[int, tuple[int, float]], now: float | None = None) -> int | None:
        """``levels``: user_id -> (dBov, monotonic time seen). Returns a *new* speaker or None."""
        now = time.monotonic() if now is None else now
        best: tuple[int, int] | None = None
        for user_id, (level, at) in levels.items():
            if now - at > LEVEL_TTL_S or level > SPEECH_THRESHOLD_DBOV:
                continue
            if best is None or level < best[0]:
                best = (level, user_id)
        if best is None or best[1] == self.current:
            return None
        self.current = best[1]
        return self.current

    def forget(self, user_id: int) -> None:
        if self.current == user_id:
            self.current = None
