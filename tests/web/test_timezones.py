"""Local times and daylight-saving changes: the rule in ``control.timezones`` (Berlin and New
York, both transitions of 2027), and the pages, API and notifications that follow it.

Every date is fixed; the server's "now" (sessions must be in the future) is pinned with
time-machine to a day before the change, so nothing here depends on when the suite runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
import time_machine
from sqlalchemy import update

from control.models import User
from control.timezones import (
    NonexistentLocalTime,
    UnknownTimeZone,
    check_zone,
    format_local,
    local_input_value,
    local_to_utc,
    parse_local_input,
    zone_label,
)
from web.keys import PLATFORM
from web.security import CSRF_COOKIE

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
PASSWORD = "s3cret-pass!"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        # Berlin: clocks go 02:00 CET → 03:00 CEST on 28 March 2027.
        (BERLIN, datetime(2027, 3, 28, 1, 59), utc(2027, 3, 28, 0, 59)),
        (BERLIN, datetime(2027, 3, 28, 3, 0), utc(2027, 3, 28, 1, 0)),
        (BERLIN, datetime(2027, 4, 6, 18, 0), utc(2027, 4, 6, 16, 0)),  # summer: UTC+2
        (BERLIN, datetime(2027, 3, 20, 18, 0), utc(2027, 3, 20, 17, 0)),  # winter: UTC+1
        # Berlin: clocks go 03:00 CEST → 02:00 CET on 31 October 2027.
        (BERLIN, datetime(2027, 10, 31, 1, 59), utc(2027, 10, 30, 23, 59)),
        (BERLIN, datetime(2027, 10, 31, 3, 0), utc(2027, 10, 31, 2, 0)),
        # New York: 02:00 EST → 03:00 EDT on 14 March 2027; 02:00 EDT → 01:00 EST on 7 Nov.
        (NEW_YORK, datetime(2027, 3, 14, 1, 59), utc(2027, 3, 14, 6, 59)),
        (NEW_YORK, datetime(2027, 3, 14, 3, 0), utc(2027, 3, 14, 7, 0)),
        (NEW_YORK, datetime(2027, 3, 20, 9, 0), utc(2027, 3, 20, 13, 0)),  # EDT: UTC-4
        (NEW_YORK, datetime(2027, 11, 7, 0, 59), utc(2027, 11, 7, 4, 59)),
        (NEW_YORK, datetime(2027, 11, 7, 2, 0), utc(2027, 11, 7, 7, 0)),
        (NEW_YORK, datetime(2027, 12, 1, 9, 0), utc(2027, 12, 1, 14, 0)),  # EST: UTC-5
    ],
)
def test_wall_time_uses_the_rules_of_its_own_date(
    zone: str, local: datetime, expected: datetime
) -> None:
    got = local_to_utc(local, zone)
    assert got.utc == expected and got.utc.tzinfo is UTC
    assert not got.ambiguous
    # And back: what a page shows is what was typed.
    assert local_input_value(got.utc, zone) == local.strftime("%Y-%m-%dT%H:%M")


@pytest.mark.parametrize(
    ("zone", "local", "moved_to"),
    [
        (BERLIN, datetime(2027, 3, 28, 2, 0), "03:00"),
        (BERLIN, datetime(2027, 3, 28, 2, 30), "03:30"),
        (BERLIN, datetime(2027, 3, 28, 2, 59), "03:59"),
        (NEW_YORK, datetime(2027, 3, 14, 2, 30), "03:30"),
    ],
)
def test_a_skipped_time_is_refused_with_a_clear_error(
    zone: str, local: datetime, moved_to: str
) -> None:
    with pytest.raises(NonexistentLocalTime) as caught:
        local_to_utc(local, zone, field="schedule")
    message = caught.value.fields["schedule"]
    assert f"{local:%H:%M} does not exist on {local:%d %b %Y} in {zone}" in message
    assert "clocks go forward" in message and moved_to in message
    assert caught.value.code == "nonexistent_local_time" and caught.value.status == 400


@pytest.mark.parametrize(
    ("zone", "local", "first", "label"),
    [
        (BERLIN, datetime(2027, 10, 31, 2, 0), utc(2027, 10, 31, 0, 0), "CEST"),
        (BERLIN, datetime(2027, 10, 31, 2, 30), utc(2027, 10, 31, 0, 30), "CEST"),
        (BERLIN, datetime(2027, 10, 31, 2, 59), utc(2027, 10, 31, 0, 59), "CEST"),
        (NEW_YORK, datetime(2027, 11, 7, 1, 30), utc(2027, 11, 7, 5, 30), "EDT"),
    ],
)
def test_a_repeated_time_is_its_first_occurrence(
    zone: str, local: datetime, first: datetime, label: str
) -> None:
    got = local_to_utc(local, zone)
    assert got.ambiguous
    assert got.utc == first  # fold=0: still summer time; the second one is an hour later
    assert format_local(got.utc, zone, "%H:%M") == f"{local:%H:%M} {label}"


def test_aware_times_need_no_rule() -> None:
    aware = datetime.fromisoformat("2027-03-28T02:30:00+01:00")
    assert local_to_utc(aware, BERLIN).utc == utc(2027, 3, 28, 1, 30)


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus_Mons",
        "",
        "   ",
        "../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "Europe/" + "x" * 80,
        "europe/berlin",
    ],
)
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(UnknownTimeZone) as caught:
        check_zone(name)
    assert caught.value.fields["timezone"]
    assert caught.value.code == "unknown_timezone"


def test_known_zones_pass_and_form_input_is_checked() -> None:
    assert check_zone(" Europe/Berlin ") == BERLIN
    assert check_zone("UTC") == "UTC"
    assert check_zone("US/Eastern") == "US/Eastern"  # legacy aliases some browsers still send
    got = parse_local_input("2027-04-06T18:00", BERLIN)
    assert got.utc == utc(2027, 4, 6, 16, 0)
    for bad in ("", "tomorrow", "2027-02-30T10:00", "2027-04-06 18:00:00"):
        with pytest.raises(Exception, match="pick a date") as caught:
            parse_local_input(bad, BERLIN)
        assert caught.value.fields == {"schedule": "Pick a date and time."}  # type: ignore[attr-defined]


def test_display_in_a_zone() -> None:
    when = utc(2027, 4, 6, 16, 0)
    assert format_local(when, BERLIN) == "Tue 06 Apr 2027, 18:00 CEST"
    assert format_local(when, NEW_YORK) == "Tue 06 Apr 2027, 12:00 EDT"
    assert format_local(utc(2027, 3, 20, 17, 0), BERLIN) == "Sat 20 Mar 2027, 18:00 CET"
    assert format_local(when, "UTC") == "Tue 06 Apr 2027, 16:00 UTC"
    assert format_local(when, "Asia/Kolkata") == "Tue 06 Apr 2027, 21:30 IST"
    assert format_local(when, "America/Sao_Paulo").endswith("13:00 UTC-03:00")  # no abbreviation
    assert format_local(when, "No/Such_Zone") == "Tue 06 Apr 2027, 16:00 UTC"  # shown as UTC
    assert format_local(None, BERLIN) == ""
    assert zone_label(when.astimezone(UTC)) == "UTC"


# -------------------------------------------------------------------- pages, API, notices


@pytest.fixture
def before_spring() -> Iterator[None]:
    """The server's clock on Saturday 20 March 2027, a week before Berlin's spring change
    (and after New York's); it ticks, so the app's timers behave."""
    with time_machine.travel(utc(2027, 3, 20, 11, 0), tick=True):
        yield


class Browserless:
    """A client signed in through the real login API, with a CSRF cookie for forms."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.platform = client.app[PLATFORM]

    async def sign_up(self, username: str, role: str, zone: str | None = None) -> Any:
        user = await self.platform.accounts.register(
            username=username, email=f"{username}@example.org", password=PASSWORD, role=role
        )
        if zone:
            user = await self.platform.accounts.update_profile(user, timezone=zone)
        return user

    async def log_in(self, username: str) -> None:
        self.client.session.cookie_jar.clear()
        resp = await self.client.post(
            "/api/auth/login/", json={"username": username, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()

    async def page(self, path: str) -> str:
        resp = await self.client.get(path, headers={"Accept": "text/html"})
        assert resp.status == 200, (path, resp.status)
        return await resp.text()

    def csrf(self) -> str:
        """The CSRF cookie the server set (pages and login set it)."""
        for cookie in self.client.session.cookie_jar:
            if cookie.key == CSRF_COOKIE:
                return str(cookie.value)
        raise AssertionError("no CSRF cookie yet: open a page first")

    async def form(self, path: str, data: dict[str, str]) -> tuple[int, str, Any]:
        resp = await self.client.post(
            path,
            data={"csrf_token": self.csrf(), **data},
            headers={"Accept": "text/html"},
            allow_redirects=False,
        )
        return resp.status, await resp.text(), resp

    async def user(self, username: str) -> Any:
        return await self.platform.accounts.get_by_username(username)


def session_form(
    schedule: str, zone: str | None, title: str = "Across the change"
) -> dict[str, str]:
    data = {
        "title": title,
        "description": "",
        "schedule": schedule,
        "duration": "60",
        "max_participants": "4",
        "skills_required": "Python",
        "price": "0",
    }
    if zone is not None:
        data["timezone"] = zone
    return data


def flash_of(resp: Any) -> str:
    return unquote(resp.cookies["peerlearn_flash"].value)


def time_text(html: str, iso: str) -> list[str]:
    """The text of every <time> element for instant ``iso`` on a page."""
    return re.findall(rf'<time datetime="{re.escape(iso)}"[^>]*>([^<]*)</time>', html)


@pytest.fixture
async def web_site(sqlite_client: Any, before_spring: None) -> Browserless:
    return Browserless(sqlite_client)


async def test_create_form_reads_the_time_in_the_named_zone(web_site: Browserless) -> None:
    site = web_site
    await site.sign_up("berta", "mentor")
    await site.log_in("berta")
    form = await site.page("/dashboard/?tab=create")
    # A mentor still on the default zone: the browser may fill in its own (app.js).
    assert re.search(r'<select id="f-timezone" name="timezone" data-tz-name data-tz-detect', form)
    # 20 March (winter time, UTC+1) for 6 April (summer time, UTC+2), 18:00 in Berlin.
    status, _, resp = await site.form(
        "/dashboard/create-session/", session_form("2027-04-06T18:00", BERLIN)
    )
    assert status == 302, resp
    flash = flash_of(resp)
    assert "Session created for Tue 06 Apr 2027, 18:00 CEST." in flash
    assert "Times are now shown in Europe/Berlin" in flash
    mentor = await site.user("berta")
    assert mentor.timezone == BERLIN  # the form's zone is now the profile's
    [session] = await site.platform.sessions.for_mentor(mentor.id)
    assert session.schedule == utc(2027, 4, 6, 16, 0)  # not 17:00, the old offset's answer
    iso = session.schedule.isoformat()
    for path in (
        f"/sessions/{session.id}/",
        "/dashboard/?tab=sessions",
        "/dashboard/",
        "/profile/berta/",
    ):
        assert time_text(await site.page(path), iso) == ["Tue 06 Apr 2027, 18:00 CEST"], path
    # Next time the form shows the saved zone and asks the browser for nothing.
    form = await site.page("/dashboard/?tab=create")
    assert '<option value="Europe/Berlin" selected>' in form and "data-tz-detect" not in form
    # The default date is tomorrow at the hour, in the mentor's zone (now: 11:00 UTC = 12:00).
    assert 'value="2027-03-21T12:00"' in form

    # Another viewer in New York sees the same instant in their zone.
    await site.sign_up("nora", "learner", NEW_YORK)
    await site.log_in("nora")
    for path in (f"/sessions/{session.id}/", "/sessions/", "/profile/berta/"):
        assert time_text(await site.page(path), iso) == ["Tue 06 Apr 2027, 12:00 EDT"], path
    # An anonymous visitor gets UTC, marked for the browser to localise.
    site.client.session.cookie_jar.clear()
    html = await site.page(f"/sessions/{session.id}/")
    assert f'<time datetime="{iso}" data-local-time>Tue 06 Apr 2027, 16:00 UTC</time>' in html


async def test_the_skipped_hour_is_refused_and_the_repeated_one_explained(
    web_site: Browserless,
) -> None:
    site = web_site
    mentor = await site.sign_up("kurt", "mentor", BERLIN)
    await site.log_in("kurt")
    status, html, _ = await site.form(
        "/dashboard/create-session/", session_form("2027-03-28T02:30", BERLIN)
    )
    assert status == 400
    assert 'id="err-schedule"' in html
    assert "02:30 does not exist on 28 Mar 2027 in Europe/Berlin" in html
    assert 'value="2027-03-28T02:30"' in html  # what was typed stays
    assert '<option value="Europe/Berlin" selected>' in html
    assert await site.platform.sessions.for_mentor(mentor.id) == []

    status, _, resp = await site.form(
        "/dashboard/create-session/", session_form("2027-10-31T02:30", BERLIN)
    )
    assert status == 302
    flash = flash_of(resp)
    assert "Sun 31 Oct 2027, 02:30 CEST" in flash and "02:30 happens twice" in flash
    assert "this is the first, CEST" in flash
    [session] = await site.platform.sessions.for_mentor(mentor.id)
    assert session.schedule == utc(2027, 10, 31, 0, 30)


async def test_unknown_zone_and_forms_without_the_field(web_site: Browserless) -> None:
    site = web_site
    mentor = await site.sign_up("ngozi", "mentor", NEW_YORK)
    await site.log_in("ngozi")
    status, html, _ = await site.form(
        "/dashboard/create-session/", session_form("2027-04-06T18:00", "Mars/Olympus_Mons")
    )
    assert status == 400 and 'id="err-timezone"' in html
    assert "unknown time zone “Mars/Olympus_Mons”" in html
    # An older page without the zone field: read in the profile's zone (New York, EDT).
    status, _, resp = await site.form(
        "/dashboard/create-session/", session_form("2027-04-06T18:00", None)
    )
    assert status == 302
    assert "Times are now shown" not in flash_of(resp)
    [session] = await site.platform.sessions.for_mentor(mentor.id)
    assert session.schedule == utc(2027, 4, 6, 22, 0)


async def test_profile_page_sets_the_zone(web_site: Browserless) -> None:
    site = web_site
    await site.sign_up("pia", "learner")
    await site.log_in("pia")
    html = await site.page("/profile/")
    assert '<option value="UTC" selected>UTC</option>' in html
    assert '<html lang="en" data-timezone="UTC">' in html
    profile = {"first_name": "Pia", "last_name": "", "bio": "", "skills": "", "interests": ""}
    status, html, _ = await site.form("/profile/", {**profile, "timezone": "Europe/Atlantis"})
    assert status == 400 and 'id="err-timezone"' in html
    assert (await site.user("pia")).timezone == "UTC"
    status, _, _ = await site.form("/profile/", {**profile, "timezone": NEW_YORK})
    assert status == 302
    assert (await site.user("pia")).timezone == NEW_YORK
    html = await site.page("/profile/")
    assert '<option value="America/New_York" selected>America/New York</option>' in html
    assert '<html lang="en" data-timezone="America/New_York">' in html
    # A profile form without the field keeps the zone.
    status, _, _ = await site.form("/profile/", profile)
    assert status == 302 and (await site.user("pia")).timezone == NEW_YORK


async def test_api_profile_carries_the_zone(web_site: Browserless) -> None:
    site = web_site
    await site.sign_up("api_user", "learner")
    await site.log_in("api_user")
    headers = {"X-CSRF-Token": site.csrf()}
    resp = await site.client.get("/api/users/profile/")
    assert (await resp.json())["timezone"] == "UTC"
    resp = await site.client.put(
        "/api/users/profile/update/", json={"timezone": BERLIN}, headers=headers
    )
    assert resp.status == 200 and (await resp.json())["timezone"] == BERLIN
    resp = await site.client.put(
        "/api/users/profile/update/", json={"timezone": "Nowhere"}, headers=headers
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "timezone" in error["fields"] and error["code"] == "validation_error"
    resp = await site.client.put(
        "/api/users/profile/update/", json={"timezone": None}, headers=headers
    )
    assert resp.status == 200 and (await resp.json())["timezone"] == "UTC"


async def test_notifications_name_the_time_in_each_recipients_zone(
    web_site: Browserless,
) -> None:
    platform = web_site.platform
    mentor = await web_site.sign_up("mira", "mentor", BERLIN)
    fans = {
        zone: await web_site.sign_up(f"fan_{i}", "learner", zone)
        for i, zone in enumerate((BERLIN, NEW_YORK, "UTC"))
    }
    for fan in fans.values():
        await platform.follows.follow(fan, mentor.id)
    when = local_to_utc(datetime(2027, 4, 6, 18, 0), BERLIN).utc
    session = await platform.sessions.create(
        mentor,
        title="Zones",
        description="",
        schedule=when,
        duration=60,
        max_participants=4,
        skills_required=["Python"],
        price=0,
    )
    expected = {BERLIN: "18:00 CEST", NEW_YORK: "12:00 EDT", "UTC": "16:00 UTC"}
    for zone, fan in fans.items():
        [note] = (await platform.notifications.page_for(fan.id)).items
        assert note.message == f"mira scheduled “Zones” for Tue 06 Apr 2027, {expected[zone]}."
    # They book (free session), then the mentor cancels: each notice in its reader's zone.
    async with platform.db.transaction() as db:
        await db.execute(update(User).values(email_verified=True))
    for fan in fans.values():
        await platform.bookings.book(await web_site.user(fan.username), session.id)
    await platform.sessions.cancel(mentor, session.id)
    for zone, fan in fans.items():
        notes = (await platform.notifications.page_for(fan.id)).items
        cancelled = [n.message for n in notes if n.event == "session_cancelled"]
        assert cancelled == [f"“Zones” on Tue 06 Apr 2027, {expected[zone]} was cancelled."]
        booked = [n.message for n in notes if n.event == "booking_confirmed"]
        assert booked == [f"You are booked into “Zones” on Tue 06 Apr 2027, {expected[zone]}."]
