"""Recommendations for pages: the recommender's picks, else a simple interest match.

``app[RECOMMENDER]`` is ``web.recommendations.RecommenderGateway``: its ``session_picks``,
``mentor_picks`` and ``trending_picks`` answer database rows already re-checked (bookable,
not booked, not the viewer's own), each with the recommendation and its reason. The gateway
answers nothing until its first fit, and may fail; then the pages fall back to upcoming
sessions and mentors matching the user's interests (then popularity), each with its reason,
so a page is never empty for want of a model.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from control.models import Session, User
from web.keys import RECOMMENDER
from web.pages.common import platform_of

log = logging.getLogger(__name__)


@dataclass
class Pick:
    item: Any  # a Session or a User
    reason: str
    score: float | None = None


async def _from_gateway(request: web.Request, method: str, user: User | None, k: int) -> list[Pick]:
    """``gateway.<method>(user, k)`` as Picks; [] when there is no gateway or it fails."""
    gateway = request.app.get(RECOMMENDER)
    ask: Callable[..., Awaitable[list[Any]]] | None = getattr(gateway, method, None)
    if ask is None:
        return []
    try:
        picks = await ask(user, k)
    except Exception:  # recommendations are optional: fall back rather than fail the page
        log.exception("recommender %s failed; using the interest-match fallback", method)
        return []
    out = []
    for pick in picks:
        item = pick.mentor if hasattr(pick, "mentor") else pick.session
        rec = pick.recommendation
        out.append(Pick(item, rec.reason or "recommended for you", rec.score))
    return out


def _booked(session: Session) -> int:
    return int(session.current_participants or 0)


def _wanted(user: User) -> dict[str, str]:
    """The user's interests and skills, lower-cased → as written."""
    return {t.lower(): t for t in [*(user.skills or []), *(user.interests or [])]}


async def _bookable(request: web.Request, user: User | None) -> list[Session]:
    """Upcoming sessions with seats that ``user`` neither teaches nor has a seat in."""
    platform = platform_of(request)
    booked: set[Any] = set()
    if user is not None:
        booked = {
            b.session_id for b in await platform.bookings.for_learner(user.id) if b.holds_seat
        }
    return [
        s
        for s in await platform.sessions.upcoming(60)
        if s.seats_left and s.id not in booked and (user is None or s.mentor_id != user.id)
    ]


async def _fallback_sessions(request: web.Request, user: User, k: int) -> list[Pick]:
    """Bookable sessions ranked by match with the user's interests, then by popularity."""
    followed = {m.id for m in await platform_of(request).follows.following(user.id)}
    wanted = _wanted(user)
    scored = []
    for s in await _bookable(request, user):
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
    return await _from_gateway(request, "session_picks", user, k) or await _fallback_sessions(
        request, user, k
    )


async def recommended_mentors(request: web.Request, user: User, k: int = 6) -> list[Pick]:
    picks = await _from_gateway(request, "mentor_picks", user, k)
    if picks:
        return picks
    platform = platform_of(request)
    wanted = _wanted(user)
    followed = {m.id for m in await platform.follows.following(user.id)}
    mentors = (await platform.accounts.list_mentors(page=1, per_page=50)).items
    scored = []
    for mentor in mentors:
        if mentor.id == user.id or mentor.id in followed:
            continue
        overlap = [s for s in mentor.skills or [] if s.lower() in wanted]
        reason = (
            f"teaches {', '.join(overlap[:3])}, which you're interested in"
            if overlap
            else "mentor on PeerLearn"
        )
        scored.append((len(overlap), Pick(mentor, reason, float(len(overlap)))))
    scored.sort(key=lambda pair: -pair[0])
    return [pick for _, pick in scored[:k]]


async def trending_sessions(request: web.Request, user: User | None, k: int = 6) -> list[Pick]:
    picks = await _from_gateway(request, "trending_picks", user, k)
    if picks:
        return picks
    upcoming = await _bookable(request, user)
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
