"""The password rule: a length window, then an offline strength estimate (zxcvbn)."""

from __future__ import annotations

import re

from zxcvbn import zxcvbn

from config.settings import AuthSettings
from control.limits import PASSWORD_MAX

#: zxcvbn's work grows with the length; the rest of a longer password only adds strength
STRENGTH_CHECK_CHARS = 64


class PasswordPolicy:
    """``[auth] min_password_length`` and ``min_password_score``, applied to new passwords."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    def problem(self, password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
        """What is wrong with ``password`` (too short, too long, too easy to guess from
        common passwords, keyboard walks, names, dates or the account's own name and
        address in ``user_inputs``); None when it is good enough."""
        minimum = self.settings.min_password_length
        if len(password) < minimum:
            return f"must be at least {minimum} characters"
        if len(password) > PASSWORD_MAX:
            return f"must be at most {PASSWORD_MAX} characters"
        inputs = [part for value in user_inputs for part in re.split(r"[@._\-]", value) if part]
        result = zxcvbn(password[:STRENGTH_CHECK_CHARS], user_inputs=[*user_inputs, *inputs])
        if result["score"] >= self.settings.min_password_score:
            return None
        feedback = result.get("feedback") or {}
        hints = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
        hint = " ".join(h.strip() for h in hints if h and h.strip())
        return "too easy to guess" + (f": {hint}" if hint else "; add a few uncommon words")
