"""Dashboard figures at the edges of the calendar, under a fake clock (time-machine).

Earnings are grouped by the month a session takes place in, activity by the week (Monday
first), both in UTC. These are the instants where a test that assumed "today" would break:
the first and the last minute of a month and of a year, and a day on which Europe's clocks
change (UTC has no DST, so nothing may move). The expected buckets are written out by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine

from control.platform import Platform
from tests.e2e.seed import backdate

PASSWORD = "correct-horse-42"

#: (now, the month of a session 3 weeks ago, the month of one in 2 days, this week's Monday)
INSTANTS = [
    (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "2026-12", "2027-01", date(2026, 12, 28)),
    (datetime(2027, 12, 31, 23, 59, tzinfo=UTC), "2027-12", "2028-01", date(2027, 12, 27)),
    (datetime(2027, 2, 28, 23, 59, tzinfo=UTC), "2027-02", "2027-03", date(2027, 2, 22)),
    (datetime(2027, 3, 1, 0, 0, tzinfo=UTC), "2027-02", "2027-03", date(2027, 3, 1)),
    (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), "2027-03", "2027-03", date(2027, 3, 22)),
    (datetime(2027, 10, 31, 23, 59, tzinfo=UTC), "2027-10", "2027-11", date(2027, 10, 25)),
]
IDS = [now.strftime("%Y-%m-%dT%H:%M") for now, *_ in INSTANTS]


async def _user(platform: Platform, role: str, name: str) -> Any:
    return await platform.accounts.register(
        username=name, email=f"{name}@example.org", password=PASSWORD, role=role
    )


@pytest.mark.parametrize(("now", "past_month", "next_month", "monday"), INSTANTS, ids=IDS)
async def test_earnings_fall_in_the_month_of_the_session(
    platform: Platform, now: datetime, past_month: str, next_month: str, monday: date
) -> None:
    with time_machine.travel(now, tick=False):
        mentor = await _user(platform, "mentor", "ada")
        learners = [await _user(platform, "learner", f"learner{i}") for i in range(2)]

        async def paid_session(minutes: int, price: int, seats: list[Any]) -> Any:
            s = await platform.sessions.create(
                mentor,
                title=f"Paid {minutes}",
                description="A paid session.",
                schedule=now + timedelta(minutes=minutes),
                duration=60,
                max_participants=4,
                skills_required=["Python"],
                price=price,
            )
            for learner in seats:
                booking = await platform.bookings.book(learner, s.id)
                await platform.bookings.mark_paid(mentor, booking.id)
            return s

        past = await paid_session(10, 20, learners)
        await platform.sessions.start(mentor, past.id)
        await platform.sessions.end(mentor, past.id)
        await backdate(platform, past.id, timedelta(weeks=3))
        await paid_session(60 * 48, 25, learners[:1])

        stats = await platform.stats.mentor_overview(mentor)
    per_month = {m["month"]: m["amount"] for m in stats["earnings_per_month"]}
    expected = {past_month: 40.0, next_month: 25.0}
    if past_month == next_month:
        expected = {past_month: 65.0}
    assert per_month == expected
    assert stats["earnings_total"] == 65.0


@pytest.mark.parametrize(("now", "past_month", "next_month", "monday"), INSTANTS, ids=IDS)
async def test_weekly_activity_weeks_start_on_monday(
    platform: Platform, now: datetime, past_month: str, next_month: str, monday: date
) -> None:
    start_of_week = datetime.combine(monday, datetime.min.time(), tzinfo=UTC)
    with time_machine.travel(start_of_week - timedelta(seconds=1), tick=False):
        await _user(platform, "learner", "last_week")
    with time_machine.travel(start_of_week, tick=False):
        await _user(platform, "learner", "this_week_first")
    with time_machine.travel(now, tick=False):
        await _user(platform, "learner", "now")
        weekly = await platform.stats.weekly_activity(8)
    assert weekly["weeks"][-1] == monday.isoformat()
    assert weekly["weeks"][0] == (monday - timedelta(weeks=7)).isoformat()
    assert all(date.fromisoformat(w).weekday() == 0 for w in weekly["weeks"])
    assert weekly["signups"][-2:] == [1, 2]
    assert sum(weekly["signups"]) == 3
