"""Chat validation and per-sender rate limiting (the relay: :mod:`.chatrelay`)."""

from __future__ import annotations

import re
import time
from collections import deque

from .errors import SfuError

# C0/C1 controls except tab and newlines: they only serve to garble a transcript.
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class ChatTooLong(SfuError):
    """Chat message too long."""

    code = "chat_too_long"


class RateLimited(SfuError):
    """Too many chat messages; slow down."""

    code = "rate_limited"


class ChatRateLimiter:
    """Sliding window: at most ``count`` messages per ``window_s`` seconds."""

    def __init__(self, count: int, window_s: float) -> None:
        self.count = count
        self.window_s = window_s
        self._sent: deque[float] = deque()

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        while self._sent and now - self._sent[0] >= self.window_s:
            self._sent.popleft()
        if len(self._sent) >= self.count:
            raise RateLimited(f"at most {self.count} messages per {self.window_s:g} s")
        self._sent.append(now)


def validate_text(text: object, max_chars: int) -> str:
    """The text to relay; plain text only (clients render it with ``textContent``)."""
    if not isinstance(text, str):
        raise SfuError("chat text must be a string", code="bad_request")
    text = text.strip()
    if not text:
        raise SfuError("chat text is empty", code="bad_request")
    if "\x00" in text:
        raise SfuError("chat text must not contain NUL characters", code="bad_request")
    if _CONTROL.search(text):
        raise SfuError("chat text must not contain control characters", code="bad_request")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SfuError("chat text is not valid Unicode", code="bad_request") from None
    if len(text) > max_chars:
        raise ChatTooLong(f"chat messages are limited to {max_chars} characters")
    return text
