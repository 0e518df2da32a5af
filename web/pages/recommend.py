"""Recommendations for pages: the wired recommender when there is one, else popularity.

The recommender (``app[RECOMMENDER]``) returns objects with ``id``, ``score`` and
``reason``; pages turn ids back into sessions/mentors and drop what is no longer bookable.
Until it is wired (or if it fails) the pages fall back to popular upcoming sessions and to
mentors whose skills match the user's interests, each with its reason.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from control.errors import DomainError
from control.models import Session, User
from web.keys import RECOMMENDER
from web.pages.common import platform_of

log = logging.getLogger(__name__)


@dataclass
class Pick:
    item: Any  # a Session or a User
    reason: str
    score: float | None = None


async def _call(obj: Any, name: str, *args: Any) -> list[Any] | None:
    """Call ``obj.name(*args)`` (sync or async); None when absent or failing."""
    method = getattr(obj, name, None) if obj is not None else None
    if method is None:
        return None
    try:
        result = method(*args)
        if inspect.isawaitable(result):
            result = await result
        return list(result or [])
    except Exception:  # recommendations are optional: fall back rather than fail the page
        log.exception("recommender %s failed; using the popularity fallback", name)
        return None


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _booked(session: Session) -> int:
    return int(session.current_participants or 0)


async def recommended_sessions(request: web.Request, user: User, k: int = 8) -> list[Pick]:
    platform = platform_of(request)
    recs = await _call(request.app.get(RECOMMENDER), "recommend_sessions", user.id, k)
    picks: list[Pick] = []
    if recs:
        for rec in recs:
            try:
                session = await platform.sessions.get(str(_field(rec, "id")))
            except DomainError:
                continue
            if session.status != "scheduled" or session.mentor_id == user.id:
                continue
            picks.append(Pick(session, str(_field(rec, "reason", "") or "recommended"),
                              _field(rec, "score")))
        if picks:
            return picks[:k]
    upcoming = [s for s in await platform.sessions.upcoming(60) if s.mentor_id != user.id]
    upcoming.sort(key=lambda s: (-_booked(s), s.schedule))
    return [Pick(s, "popular", None) for s in upcoming[:k]]


async def recommended_mentors(request: web.Request, user: User, k: int = 6) -> list[Pick]:
    platform = platform_of(request)
    recs = await _call(request.app.get(RECOMMENDER), "recommend_mentors", user.id, k)
    picks: list[Pick] = []
    for rec in recs or []:
        try:
            mentor = await platform.accounts.get_user(int(_field(rec, "id")))
        except (TypeError, ValueError):
            continue
        if mentor is not None and mentor.is_active and mentor.id != user.id:
            picks.append(Pick(mentor, str(_field(rec, "reason", "") or "recommended"),
                              _field(rec, "score")))
    if picks:
        return picks[:k]
    wanted = {t.lower() for t in [*(user.interests or []), *(user.skills or [])]}
    mentors = (await platform.accounts.list_mentors(page=1, per_page=50)).items
    scored = []
    for mentor in mentors:
        if mentor.id == user.id:
            continue
        overlap = [s for s in mentor.skills or [] if s.lower() in wanted]
        reason = f"teaches {', '.join(overlap[:3])}" if overlap else "active mentor"
        scored.append((len(overlap), Pick(mentor, reason, float(len(overlap)))))
    scored.sort(key=lambda pair: -pair[0])
    return [pick for _, pick in scored[:k]]


async def trending_sessions(request: web.Request, user: User | None, k: int = 6) -> list[Pick]:
    platform = platform_of(request)
    recs = await _call(request.app.get(RECOMMENDER), "trending", k)
    picks: list[Pick] = []
    for rec in recs or []:
        try:
            session = await platform.sessions.get(str(_field(rec, "id")))
        except DomainError:
            continue
        if session.status == "scheduled":
            picks.append(Pick(session, str(_field(rec, "reason", "") or "trending"),
                              _field(rec, "score")))
    if picks:
        return picks[:k]
    upcoming = await platform.sessions.upcoming(60)
    upcoming.sort(key=lambda s: (-_booked(s), s.schedule))
    out = []
    for s in upcoming[:k]:
        n = _booked(s)
        out.append(Pick(s, f"trending: {n} learner{'s' if n != 1 else ''} booked"
                        if n else "new this week", float(n)))
    return out
