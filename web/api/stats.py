"""REST endpoint: the dashboard figures for the current user's role."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from control.models import Role
from web.api.registry import ApiCall, ApiRegistry
from web.keys import PLATFORM

api = ApiRegistry()


class SessionSummaryOut(BaseModel):
    id: str
    title: str
    schedule: datetime
    status: str
    duration: int


class ActivityOut(BaseModel):
    kind: str
    session_id: str
    title: str
    value: float | None
    at: datetime


class LearnerStatsOut(BaseModel):
    bookings_upcoming: int
    bookings_completed: int
    bookings_total: int
    hours_learned: float
    next_sessions: list[SessionSummaryOut]
    recent_activity: list[ActivityOut]


class SessionEarningOut(SessionSummaryOut):
    bookings: int
    amount: float


class MonthEarningOut(BaseModel):
    month: str
    amount: float


class AttendanceOut(SessionSummaryOut):
    booked: int
    joined: int


class MentorStatsOut(BaseModel):
    currency: str
    earnings_total: float
    earnings_per_session: list[SessionEarningOut]
    earnings_per_month: list[MonthEarningOut]
    sessions_by_status: dict[str, int]
    rating_average: float | None
    rating_count: int
    rating_distribution: dict[str, int]
    attendance: list[AttendanceOut]
    pending_payments: int


class TopMentorOut(BaseModel):
    id: int
    username: str
    bookings: int
    rating: float | None


class AdminStatsOut(BaseModel):
    currency: str
    users_by_role: dict[str, int]
    sessions_by_status: dict[str, int]
    bookings_by_status: dict[str, int]
    revenue: float
    top_mentors: list[TopMentorOut]


class StatsOut(BaseModel):
    role: str
    learner: LearnerStatsOut | None = None
    mentor: MentorStatsOut | None = None
    admin: AdminStatsOut | None = None


@api.route("GET", "/api/stats/overview/", response=StatsOut, auth="user", tags=["stats"])
async def stats_overview(request: web.Request, call: ApiCall[None, None]) -> StatsOut:
    """Dashboard figures for the current user's role."""
    stats = request.app[PLATFORM].stats
    me = call.me
    if me.role == Role.LEARNER:
        return StatsOut(role=me.role, learner=LearnerStatsOut(**await stats.learner_overview(me)))
    if me.role == Role.MENTOR:
        return StatsOut(role=me.role, mentor=MentorStatsOut(**await stats.mentor_overview(me)))
    return StatsOut(role=me.role, admin=AdminStatsOut(**await stats.admin_overview()))
