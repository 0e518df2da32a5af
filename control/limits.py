"""Fixed limits of what the services accept: the one source for the services' checks and
the API's schemas (``web/api``), so the two cannot drift.

Limits an operator may change are settings instead (``config/settings.py``: e.g.
``[sessions] min_duration_minutes`` / ``max_duration_minutes`` / ``max_participants``);
the settings' own bounds come from here where the database fixes them
(``MAX_PARTICIPANTS``, ``CHAT_MAX_CHARS``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

#: the largest page any list returns (``control.services.common.page_bounds`` clamps to it)
MAX_PER_PAGE = 100

# ---------------------------------------------------------------- accounts and profiles

USERNAME_MIN, USERNAME_MAX = 3, 150
EMAIL_MAX = 254
#: ASVS 2.1.2: at least 64 allowed, more than 128 denied
PASSWORD_MAX = 128
NAME_MAX = 100
BIO_MAX = 5000
#: a profile's skills and interests: at most TAGS_MAX entries of 1–TAG_MAX_CHARS characters
TAGS_MAX, TAG_MAX_CHARS = 30, 50
HOURLY_RATE_MAX = Decimal("1000000")

# ---------------------------------------------------------------- sessions

TITLE_MIN, TITLE_MAX = 3, 200
DESCRIPTION_MAX = 10000
#: a session's required skills: 1–SKILLS_MAX entries of 1–SKILL_MAX_CHARS characters
SKILLS_MAX, SKILL_MAX_CHARS = 20, 50
MAX_PRICE = Decimal("100000")
MAX_SCHEDULE_AHEAD = timedelta(days=2 * 365)
#: seats of one session (the ``sessions.max_participants`` CHECK constraint); the setting
#: ``[sessions] max_participants`` may only lower it
MAX_PARTICIPANTS = 10

# ---------------------------------------------------------------- feedback and chat

RATING_MIN, RATING_MAX = 1, 5
COMMENT_MAX = 2000
#: a stored chat message; ``[sfu] chat_max_chars`` may only lower it
CHAT_MAX_CHARS = 2000
