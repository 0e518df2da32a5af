"""The recommender wired into the app: data in from the domain, ranked picks out.

``RecommenderGateway`` (``app[RECOMMENDER]``) owns a ``recommender.engine.Engine``:

* its loader reads the whole platform through ``InteractionService.export()``;
* it listens to ``InteractionService`` so every view, booking, completion and rating reaches
  the live model as it is committed (popularity moves at once; a refit follows on the
  configured schedule, after ``refit_after_interactions`` new ones, or when an unknown
  session shows up); those recorded on *other* nodes arrive on the bus's ``interactions``
  channel (Redis) and are applied the same way (its own, already applied, are skipped);
* it follows the bus's ``catalog`` channel (every node receives it with Redis): a session
  published joins the live model at once (and asks for a refit, which learns its words); a
  session cancelled, started or ended is closed; a booking cancelled (or a payment hold
  released) frees its seat and lets that learner be offered the session again;
* requests take the current profile, bookings and follows from the database, ask the engine
  for a few more ids than needed and re-check each against the database, so a session
  cancelled, filled or edited since the last fit is never offered.

Fits run in the engine's worker thread; requests never wait for one. Until the first fit
has finished (a fraction of a second after start-up on a small platform) answers are empty.
The refit loop (and so the first fit) only runs when the app was created with background
loops on (``create_app(background=True)``); otherwise fits happen when ``refresh()`` is called.

The app factory hands ``setup`` the platform and settings instead of this module reading app
keys: ``RECOMMENDER`` is defined here, next to its type, and ``web.keys`` re-exports it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from config.settings import RecommenderSettings
from control.errors import DomainError
from control.events import CATALOG_CHANNEL, INTERACTIONS_CHANNEL, ORIGIN, origin
from control.ids import MAX_DB_ID
from control.models import Session, User
from control.platform import Platform
from control.services.interactions import mentor_dict, session_dict
from recommender.data import Recommendation, RecommenderWeights, Snapshot, UserProfile
from recommender.engine import Engine
from recommender.serialization import (
    interaction_from_dict,
    mentor_from_dict,
    session_from_dict,
    snapshot_from_dict,
)

log = logging.getLogger(__name__)

#: ids asked of the engine per id shown: room for the ones the database re-check drops
OVERFETCH = 2
OVERFETCH_EXTRA = 5
#: catalogue events after which a session can no longer be booked
CLOSING_EVENTS = frozenset({"session_cancelled", "session_started", "session_ended"})


def weights_from_settings(cfg: RecommenderSettings) -> RecommenderWeights:
    """The ``[recommender]`` config section as the recommender's own knobs."""
    return RecommenderWeights(
        content=cfg.content_weight,
        collaborative=cfg.collaborative_weight,
        popularity=cfg.popularity_weight,
        collaborative_full_history=cfg.collaborative_full_history,
        half_life_days=cfg.half_life_days,
        max_per_mentor=cfg.max_per_mentor,
        refit_interval_s=cfg.refit_interval_s,
        refit_after_interactions=cfg.refit_after_interactions,
    )


async def load_snapshot(platform: Platform) -> Snapshot:
    """Everything the recommender fits on, read from the database."""
    return snapshot_from_dict(await platform.interactions.export())


def profile_of(user: User) -> UserProfile:
    """The user's current skills and interests (edits count before the next refit)."""
    return UserProfile(user.id, user.role, tuple(user.skills or ()), tuple(user.interests or ()))


@dataclass(frozen=True)
class SessionPick:
    recommendation: Recommendation
    session: Session


@dataclass(frozen=True)
class MentorPick:
    recommendation: Recommendation
    mentor: User


class RecommenderGateway:
    """Recommendations for the API and the pages, backed by the live engine."""

    def __init__(self, platform: Platform, weights: RecommenderWeights) -> None:
        self.platform = platform
        self.engine = Engine(self._load, weights)
        self._unsubscribe: list[Callable[[], None]] = []

    async def _load(self) -> Snapshot:
        return await load_snapshot(self.platform)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, *, background: bool = True) -> None:
        """Listen to the platform; with ``background`` also start the refit loop, whose first
        fit begins at once. Without it (tests) nothing fits until ``refresh()``."""
        self.platform.interactions.listeners.append(self.on_interaction)
        bus = self.platform.bus
        self._unsubscribe = [
            bus.subscribe(CATALOG_CHANNEL, self.on_catalog_change),
            bus.subscribe(INTERACTIONS_CHANNEL, self.on_remote_interaction),
        ]
        if background:
            await self.engine.start()

    async def stop(self) -> None:
        if self.on_interaction in self.platform.interactions.listeners:
            self.platform.interactions.listeners.remove(self.on_interaction)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self.engine.stop()

    async def refresh(self) -> None:
        """Refit now and return once the new model serves requests (CLI, tests, admin)."""
        await self.engine.refresh_now()

    def on_interaction(self, data: dict[str, Any]) -> None:
        """InteractionService listener: runs on the loop right after the commit."""
        try:
            self.engine.record(interaction_from_dict(data))
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring malformed interaction for the recommender: %r", data)

    async def on_remote_interaction(self, message: dict[str, Any]) -> None:
        """Bus handler of ``INTERACTIONS_CHANNEL``: another node's interaction; this node's own
        reached the model through ``on_interaction`` already."""
        if origin(message) == self.platform.bus.node:
            return
        self.on_interaction({k: v for k, v in message.items() if k != ORIGIN})

    async def on_catalog_change(self, message: dict[str, Any]) -> None:
        """Bus handler of ``CATALOG_CHANNEL``: a live update, never a wait for a refit."""
        event, session_id = message.get("type"), str(message.get("session_id"))
        if event == "session_created":
            try:
                session = await self.platform.sessions.get(session_id)
            except DomainError:  # deleted meanwhile
                return
            mentor = mentor_from_dict(
                mentor_dict(
                    session.mentor, *await self.platform.feedback.mentor_rating(session.mentor_id)
                )
            )
            self.engine.add_session(session_from_dict(session_dict(session)), mentor)
        elif event in CLOSING_EVENTS:
            self.engine.close_session(session_id)
        elif event == "booking_cancelled" and isinstance(message.get("user_id"), int):
            self.engine.unbook(message["user_id"], session_id)

    @property
    def model_version(self) -> int:
        return self.engine.version

    # -- picks with their database rows: what the API and the pages ask -------------------
    async def session_picks(self, user: User, k: int = 10) -> list[SessionPick]:
        """Bookable sessions for ``user``, best first, each with its reason."""
        booked = await self._booked_ids(user.id)
        recs = self.engine.recommend_sessions(
            user.id, _ask(k), booked_ids=booked, profile=profile_of(user)
        )
        return await self._sessions(recs, k, user, booked)

    async def trending_picks(self, user: User | None, k: int = 10) -> list[SessionPick]:
        """Trending upcoming sessions (minus the viewer's own and booked ones)."""
        booked = await self._booked_ids(user.id) if user else set()
        recs = self.engine.trending(_ask(k), user_id=user.id if user else None)
        return await self._sessions(recs, k, user, booked)

    async def mentor_picks(self, user: User, k: int = 10) -> list[MentorPick]:
        """Mentors ``user`` does not follow yet, best first."""
        followed = {m.id for m in await self.platform.follows.following(user.id)}
        recs = self.engine.recommend_mentors(
            user.id, _ask(k), followed_ids=followed, profile=profile_of(user)
        )
        # One query for every candidate row (2k + 5 of them), not one per mentor.
        ids = [int(r.id) for r in recs if 0 < int(r.id) <= MAX_DB_ID]
        rows: dict[int, User] = {}
        if ids:
            async with self.platform.db.session() as db:
                found = await db.scalars(select(User).where(User.id.in_(ids)))
                rows = {u.id: u for u in found.all()}
        out: list[MentorPick] = []
        for rec in recs:
            mentor = rows.get(int(rec.id))
            if (
                mentor is not None
                and mentor.is_active
                and mentor.role == "mentor"
                and mentor.id != user.id
                and mentor.id not in followed
            ):
                out.append(MentorPick(rec, mentor))
                if len(out) == k:
                    break
        return out

    # -- internals ------------------------------------------------------------------------
    async def _booked_ids(self, user_id: int) -> set[str]:
        bookings = await self.platform.bookings.for_learner(user_id)
        return {str(b.session_id) for b in bookings if b.holds_seat}

    async def _sessions(
        self, recs: Iterable[Recommendation], k: int, user: User | None, booked: set[str]
    ) -> list[SessionPick]:
        recs = list(recs)
        now = datetime.now(UTC)
        # One query for every candidate row (2k + 5 of them); a session deleted since the
        # fit is simply not there.
        found = await self.platform.sessions.get_many(str(r.id) for r in recs)
        rows = {str(s.id): s for s in found}
        out: list[SessionPick] = []
        for rec in recs:
            session = rows.get(str(rec.id))
            if session is not None and _bookable_for(session, user, booked, now):
                out.append(SessionPick(rec, session))
                if len(out) == k:
                    break
        return out


def _ask(k: int) -> int:
    return OVERFETCH * k + OVERFETCH_EXTRA


def _bookable_for(session: Session, user: User | None, booked: set[str], now: datetime) -> bool:
    """The database's word on what the model believed at its last fit."""
    return (
        session.status == "scheduled"
        and session.schedule > now
        and session.seats_left > 0
        and str(session.id) not in booked
        and (user is None or session.mentor_id != user.id)
    )


RECOMMENDER = web.AppKey("recommender", RecommenderGateway)


def setup(
    app: web.Application,
    platform: Platform,
    settings: RecommenderSettings,
    *,
    background: bool,
) -> None:
    """Create the gateway at ``app[RECOMMENDER]``, started with the app (register this after
    the platform's context: it listens to the platform) and stopped before the platform."""
    gateway = RecommenderGateway(platform, weights_from_settings(settings))
    app[RECOMMENDER] = gateway

    async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
        await gateway.start(background=background)
        yield
        await gateway.stop()

    app.cleanup_ctx.append(gateway_ctx)
