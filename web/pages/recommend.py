"""Recommendations for pages: the wired recommender when there is one, else popularity.

The recommender (``app[RECOMMENDER]``) returns objects with ``id``, ``score`` and
``reason``; pages turn ids back into sessions/mentors and drop what is no longer bookable.
Until it is wired (or if it fails) the pages fall back to upcoming sessions and mentors
matching the user's interests (then popularity), each with its reason.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


def _wanted(user: User) -> dict[str, str]:
    """The user's interests and skills, lower-cased → as written."""
    return {t.lower(): t for t in [*(user.skills or []), *(user.interests or [])]}


async def _booked_ids(request: web.Request, user: User) -> set[Any]:
    """Sessions the user holds a seat in: never suggested again."""
    bookings = await platform_of(request).bookings.for_learner(user.id)
    return {b.session_id for b in bookings if b.status != "cancelled"}


async def _fallback_sessions(
    request: web.Request, user: User, k: int, booked: set[Any]
) -> list[Pick]:
    """Bookable sessions ranked by match with the user's interests, then by popularity."""
    platform = platform_of(request)
    followed = {m.id for m in await platform.follows.following(user.id)}
    wanted = _wanted(user)
    scored = []
    for s in await platform.sessions.upcoming(60):
        if s.mentor_id == user.id or s.id in booked or not s.seats_left:
            continue
        overlap = [wanted[t.lower()] for t in s.skills_required or [] if t.lower() in wanted]
        n = _booked(s)
        if overlap:
            reason = f"matches your interest in {', '.join(overlap[:2])}"
        elif s.mentor_id in followed:
            reason = f"new from {s.mentor.display_name}, whom you follow"
        elif n:
            reason = f"popular: {n} learner{'s' if n != 1 else ''} booked"
        else:
            reason = "new on PeerLearn"
        score = 2.0 * len(overlap) + (1.0 if s.mentor_id in followed else 0.0) + 0.1 * n
        scored.append((-score, s.schedule, Pick(s, reason, score)))
    scored.sort(key=lambda row: (row[0], row[1]))
    return [pick for _, _, pick in scored[:k]]


async def recommended_sessions(request: web.Request, user: User, k: int = 8) -> list[Pick]:
    platform = platform_of(request)
    recs = await _call(request.app.get(RECOMMENDER), "recommend_sessions", user.id, k)
    booked = await _booked_ids(request, user)
    picks: list[Pick] = []
    if recs:
        for rec in recs:
            try:
                session = await platform.sessions.get(str(_field(rec, "id")))
            except DomainError:
                continue
            if (session.status != "scheduled" or session.mentor_id == user.id
                    or session.id in booked):
                continue
            picks.append(Pick(session, str(_field(rec, "reason", "") or "recommended"),
                              _field(rec, "score")))
        if picks:
            return picks[:k]
    return await _fallback_sessions(request, user, k, booked)


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
    wanted = _wanted(user)
    followed = {m.id for m in await platform.follows.following(user.id)}
    mentors = (await platform.accounts.list_mentors(page=1, per_page=50)).items
    scored = []
    for mentor in mentors:
        if mentor.id == user.id or mentor.id in followed:
            continue
        overlap = [s for s in mentor.skills or [] if s.lower() in wanted]
        reason = (f"teaches {', '.join(overlap[:3])}, which you're interested in" if overlap
                  else "mentor on PeerLearn")
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
        if n:
            reason = f"trending: {n} learner{'s' if n != 1 else ''} booked"
        elif s.schedule - datetime.now(UTC) < timedelta(days=2):
            reason = "starts soon"
        else:
            reason = "coming up"
        out.append(Pick(s, reason, float(n)))
    return out
