"""Scheduling across a daylight-saving change, in real Chromium.

Each case is a mentor whose browser runs in ``Europe/Berlin`` or ``America/New_York``
(Playwright ``timezone_id``) with its clock (``page.clock``) a day before one of the zone's
2027 changes, scheduling a session for a few days after it. The browser's zone name travels
with the form; the server reads the wall time with the rules of the session's own date. Then:
the UTC instant stored, and the text of the session's time on every page that shows it, for
the mentor and for a learner whose browser is in the other zone. The skipped spring hour is
refused under the field; the repeated autumn hour is taken as its first occurrence.

The server's clock is pinned to the same day with time-machine (sessions must be in the
future, at most two years ahead), so the dates below never go stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from playwright.sync_api import expect

from control.platform import Platform
from tests.e2e.harness import (
    DESKTOP,
    BrowserPage,
    LiveServer,
    TestUser,
    login_via_form,
    slug,
    watch,
)

pytestmark = pytest.mark.browser

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


@dataclass(frozen=True)
class Case:
    zone: str
    now: datetime  # the browser's and the server's clock: the day before the change
    schedule: str  # what the mentor types (datetime-local), after the change
    stored: datetime  # the UTC instant it must be
    shown: str  # how the mentor's pages write it
    other_zone: str  # a learner's browser elsewhere
    other_shown: str  # how the learner's pages write it
    special: str  # the change's own odd hour: skipped (spring) or repeated (autumn)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


CASES = {
    # Berlin, 28 March 2027: 02:00 CET (UTC+1) → 03:00 CEST (UTC+2).
    "berlin-spring": Case(
        BERLIN,
        datetime(2027, 3, 27, 12, 0, tzinfo=ZoneInfo(BERLIN)),
        "2027-04-02T18:00",
        _utc(2027, 4, 2, 16, 0),
        "Fri 02 Apr 2027, 18:00 CEST",
        NEW_YORK,
        "Fri 02 Apr 2027, 12:00 EDT",
        "2027-03-28T02:30",
    ),
    # Berlin, 31 October 2027: 03:00 CEST → 02:00 CET (New York is still on EDT until 7 Nov).
    "berlin-autumn": Case(
        BERLIN,
        datetime(2027, 10, 30, 12, 0, tzinfo=ZoneInfo(BERLIN)),
        "2027-11-02T18:00",
        _utc(2027, 11, 2, 17, 0),
        "Tue 02 Nov 2027, 18:00 CET",
        NEW_YORK,
        "Tue 02 Nov 2027, 13:00 EDT",
        "2027-10-31T02:30",
    ),
    # New York, 14 March 2027: 02:00 EST (UTC-5) → 03:00 EDT (UTC-4).
    "new-york-spring": Case(
        NEW_YORK,
        datetime(2027, 3, 13, 10, 0, tzinfo=ZoneInfo(NEW_YORK)),
        "2027-03-16T09:00",
        _utc(2027, 3, 16, 13, 0),
        "Tue 16 Mar 2027, 09:00 EDT",
        BERLIN,
        "Tue 16 Mar 2027, 14:00 CET",
        "2027-03-14T02:30",
    ),
    # New York, 7 November 2027: 02:00 EDT → 01:00 EST.
    "new-york-autumn": Case(
        NEW_YORK,
        datetime(2027, 11, 6, 10, 0, tzinfo=ZoneInfo(NEW_YORK)),
        "2027-11-09T09:00",
        _utc(2027, 11, 9, 14, 0),
        "Tue 09 Nov 2027, 09:00 EST",
        BERLIN,
        "Tue 09 Nov 2027, 15:00 CET",
        "2027-11-07T01:30",
    ),
}


@pytest.fixture
def zoned_page(
    browser: Any, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[[str, str, datetime], BrowserPage]]:
    """``zoned_page(name, zone, now)``: a fresh context in ``zone`` whose page clock starts at
    ``now``; like ``new_page``, it fails the test on console errors or foreign requests."""
    made: list[tuple[Any, BrowserPage]] = []

    def make(name: str, zone: str, now: datetime) -> BrowserPage:
        context = browser.new_context(
            base_url=live_server.url, viewport=DESKTOP, timezone_id=zone, locale="en-GB"
        )
        context.set_default_timeout(10_000)
        bp = BrowserPage(None, name, live_server.url, slug(request.node.name))
        # As in ``new_page``: a form re-rendered with 400 is expected, other errors are not.
        watch(context, bp)
        bp.page = context.new_page()
        bp.page.clock.install(time=now)  # before any page script reads the time
        made.append((context, bp))
        return bp

    yield make
    problems = []
    for context, bp in made:
        problems += bp.problems()
        context.close()
    assert not problems, "\n".join(problems)


def _sessions_of(platform: Platform, mentor_id: int) -> Any:
    return platform.sessions.for_mentor(mentor_id)


def _user(platform: Platform, username: str) -> Any:
    return platform.accounts.get_by_username(username)


def fill_session(bp: BrowserPage, title: str, schedule: str) -> None:
    form = bp.page.locator("form[data-tz-form]")
    form.get_by_label("Title").fill(title)
    form.get_by_label("Date and time").fill(schedule)
    form.get_by_label("Duration (minutes)").fill("60")
    form.get_by_label("Learner seats").fill("4")
    form.get_by_label("Skills").fill("Time zones")
    form.get_by_role("button", name="Create session").click()


def shown_times(bp: BrowserPage, stored: datetime) -> list[str]:
    """The text of every <time> for the instant on the current page."""
    return bp.page.locator(f'time[datetime="{stored.isoformat()}"]').all_inner_texts()


@pytest.mark.parametrize("case_id", list(CASES))
def test_scheduling_across_a_daylight_saving_change(
    case_id: str,
    zoned_page: Callable[[str, str, datetime], BrowserPage],
    live_server: LiveServer,
    make_user: Callable[..., TestUser],
) -> None:
    case = CASES[case_id]
    with time_machine.travel(case.now, tick=True):
        mentor_user = make_user("mentor")
        learner_user = make_user("learner")
        mentor = zoned_page("mentor", case.zone, case.now)
        login_via_form(mentor, mentor_user)
        mentor.goto("/dashboard/?tab=create")
        # The page asked the browser for its zone (the account is still on UTC).
        expect(mentor.page.get_by_label("Time zone")).to_have_value(case.zone)
        title = f"Across the change {uuid.uuid4().hex[:6]}"
        fill_session(mentor, title, case.schedule)
        mentor.page.wait_for_url("**/dashboard/?tab=sessions")
        flash = mentor.page.locator("[data-flash]")
        expect(flash).to_contain_text(f"Session created for {case.shown}.")
        expect(flash).to_contain_text(f"Times are now shown in {case.zone}")
        mentor.shot("created")

        [session] = live_server.call(_sessions_of, mentor_user.id)
        assert session.schedule == case.stored, (session.schedule, case.stored)
        assert live_server.call(_user, mentor_user.username).timezone == case.zone

        # Every page that shows the session's time, as the mentor sees it.
        sid = session.id
        pages = [
            f"/sessions/{sid}/",
            "/dashboard/?tab=sessions",
            "/dashboard/",
            f"/profile/{mentor_user.username}/",
            f"/sessions/?q={title.replace(' ', '+')}",
        ]
        for path in pages:
            mentor.goto(path)
            assert shown_times(mentor, case.stored) == [case.shown], path

        # The change's odd hour, typed in the same form (now showing the saved zone).
        mentor.goto("/dashboard/?tab=create")
        expect(mentor.page.get_by_label("Time zone")).to_have_value(case.zone)
        odd = datetime.strptime(case.special, "%Y-%m-%dT%H:%M")
        fill_session(mentor, f"Odd hour {uuid.uuid4().hex[:6]}", case.special)
        if "spring" in case_id:
            error = mentor.page.locator("#err-schedule")
            expect(error).to_contain_text(f"{odd:%H:%M} does not exist on {odd:%d %b %Y}")
            expect(error).to_contain_text("clocks go forward")
            expect(mentor.page.get_by_label("Date and time")).to_have_value(case.special)
            mentor.shot("skipped-hour")
            assert len(live_server.call(_sessions_of, mentor_user.id)) == 1
        else:
            mentor.page.wait_for_url("**/dashboard/?tab=sessions")
            expect(mentor.page.locator("[data-flash]")).to_contain_text(
                f"{odd:%H:%M} happens twice: this is the first"
            )
            mentor.shot("repeated-hour")
            made = live_server.call(_sessions_of, mentor_user.id)
            [repeated] = [s for s in made if s.id != sid]
            first = odd.replace(tzinfo=ZoneInfo(case.zone), fold=0).astimezone(UTC)
            assert repeated.schedule == first
            assert first.astimezone(ZoneInfo(case.zone)).dst()  # still on summer time

        # A learner whose browser is in the other zone, its clock on the same day.
        learner = zoned_page("learner", case.other_zone, case.now)
        login_via_form(learner, learner_user)
        learner.goto("/profile/")
        learner.page.get_by_label("Time zone").select_option(case.other_zone)
        learner.page.get_by_role("button", name="Save profile").click()
        expect(learner.page.locator("[data-flash]")).to_contain_text("Profile saved.")
        for path in (f"/sessions/{sid}/", f"/profile/{mentor_user.username}/"):
            learner.goto(path)
            assert shown_times(learner, case.stored) == [case.other_shown], path
        learner.shot("other-zone")
