"""REST endpoints: recommended sessions and mentors for the signed-in user, trending sessions.

Each result carries the item, its blended score, a human reason ("matches your interest in
Python", "learners like you booked with this mentor", "trending this week") and the
component that produced it (``content``, ``collaborative``, ``popularity`` or ``hybrid`` when
two contributed). ``model_version`` counts the refits since start-up (0 = no model yet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from recommender.data import Recommendation
from web.api.registry import ApiCall, ApiRegistry, Auth, Handler
from web.api.schemas import SessionOut, UserPublic
from web.recommendations import RECOMMENDER, SessionPick

api = ApiRegistry()
TAGS = ["recommendations"]

Source = Literal["content", "collaborative", "popularity", "hybrid"]


class RecommendationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=10, ge=1, le=50, description="how many results (1-50)")


class Ranked(BaseModel):
    score: float
    reason: str
    source: Source

    @staticmethod
    def fields(rec: Recommendation) -> dict[str, Any]:
        return {"score": round(rec.score, 6), "reason": rec.reason, "source": rec.source}


class SessionRecommendationOut(Ranked):
    session: SessionOut


class MentorRecommendationOut(Ranked):
    mentor: UserPublic


class SessionRecommendationsOut(BaseModel):
    results: list[SessionRecommendationOut]
    model_version: int


class MentorRecommendationsOut(BaseModel):
    results: list[MentorRecommendationOut]
    model_version: int


def _sessions_out(picks: list[SessionPick], version: int) -> SessionRecommendationsOut:
    return SessionRecommendationsOut(
        results=[
            SessionRecommendationOut(
                session=SessionOut.of(p.session), **Ranked.fields(p.recommendation)
            )
            for p in picks
        ],
        model_version=version,
    )


def _get(kind: str, response: type[BaseModel], auth: Auth = "user") -> Callable[[Handler], Handler]:
    """``GET /api/recommendations/<kind>/``, taking the shared ``limit`` query."""
    return api.route(
        "GET",
        f"/api/recommendations/{kind}/",
        query=RecommendationQuery,
        response=response,
        auth=auth,
        tags=TAGS,
    )


@_get("sessions", SessionRecommendationsOut)
async def recommended_sessions(
    request: web.Request, call: ApiCall[None, RecommendationQuery]
) -> SessionRecommendationsOut:
    """Upcoming sessions picked for me (never my own, booked, full, past or cancelled ones)."""
    gateway = request.app[RECOMMENDER]
    picks = await gateway.session_picks(call.me, call.query.limit)
    return _sessions_out(picks, gateway.model_version)


@_get("mentors", MentorRecommendationsOut)
async def recommended_mentors(
    request: web.Request, call: ApiCall[None, RecommendationQuery]
) -> MentorRecommendationsOut:
    """Mentors I might follow (never myself or mentors I already follow)."""
    gateway = request.app[RECOMMENDER]
    picks = await gateway.mentor_picks(call.me, call.query.limit)
    return MentorRecommendationsOut(
        results=[
            MentorRecommendationOut(
                mentor=UserPublic.of(p.mentor), **Ranked.fields(p.recommendation)
            )
            for p in picks
        ],
        model_version=gateway.model_version,
    )


@_get("trending", SessionRecommendationsOut, auth=None)
async def trending_sessions(
    request: web.Request, call: ApiCall[None, RecommendationQuery]
) -> SessionRecommendationsOut:
    """Upcoming sessions with the most recent views, bookings and good ratings (public)."""
    gateway = request.app[RECOMMENDER]
    picks = await gateway.trending_picks(call.user, call.query.limit)
    return _sessions_out(picks, gateway.model_version)
