"""Sessions API: create with validation, search, details, lifecycle, calendar, chat, stats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control.events import session_channel
from control.limits import SKILL_MAX_CHARS
from tests.api.sessions_helpers import (
    admin_of,
    anon,
    create_session,
    iso_in,
    notifications_of,
    platform_of,
    run_session,
    session_body,
    set_session,
)
from tests.support import ApiDriver


async def test_create_session_returns_details(api: Any) -> None:
    mentor = await api.register("mentor")
    data = await create_session(api, mentor, price="12.50", skills_required=[" Python ", "SQL"])
    assert uuid.UUID(data["id"])
    assert data["status"] == "scheduled"
    assert data["seats_left"] == 5 and data["current_participants"] == 0
    assert data["price"] == 12.5 and data["is_free"] is False
    assert data["skills_required"] == ["Python", "SQL"]
    assert data["is_mentor"] is True and data["my_booking"] is None
    assert data["meeting_room_id"]
    assert data["mentor"]["username"] == mentor["user"]["username"]
    assert data["mentor_rating"] == {"average": None, "count": 0}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"title": "ab"}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"description": "x" * 10001}, "description"),
        ({"schedule": iso_in(-5)}, "schedule"),
        ({"schedule": "2030-01-01T10:00:00"}, "schedule"),  # no timezone
        ({"schedule": 1893456000}, "schedule"),  # not an ISO string
        ({"schedule": "tomorrow"}, "schedule"),
        ({"schedule": "9999-12-31T23:59:59-14:00"}, "schedule"),
        ({"duration": 14}, "duration"),
        ({"duration": 481}, "duration"),
        ({"duration": "60"}, "duration"),
        ({"max_participants": 0}, "max_participants"),
        ({"max_participants": 11}, "max_participants"),
        ({"price": -1}, "price"),
        ({"price": "1.234"}, "price"),
        ({"price": 100000.01}, "price"),
        ({"price": "NaN"}, "price"),
        ({"skills_required": []}, "skills_required"),
        ({"skills_required": ["a"] * 21}, "skills_required"),
        ({"skills_required": ["Python", " python "]}, "skills_required"),
        ({"skills_required": ["   "]}, "skills_required"),
        ({"skills_required": ["x" * (SKILL_MAX_CHARS + 1)]}, "skills_required"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_create_session_validation(sqlite_api: Any, override: dict, field: str) -> None:
    mentor = await sqlite_api.register("mentor")
    status, data = await sqlite_api.call(
        "POST", "/api/sessions/create/", mentor, json=session_body(**override)
    )
    assert status == 400, data
    assert data["error"]["code"] == "validation_error"
    assert any(k.startswith(field) for k in data["error"]["fields"]), data


async def test_create_session_max_participants_follows_settings(
    app_factory: Any, make_settings: Any
) -> None:
    api = ApiDriver(await app_factory(make_settings(sessions={"max_participants": 4})))
    mentor = await api.register("mentor")
    status, data = await api.call(
        "POST", "/api/sessions/create/", mentor, json=session_body(max_participants=5)
    )
    assert status == 400 and "max_participants" in data["error"]["fields"]


@pytest.mark.parametrize(
    ("limits", "duration", "accepted"),
    [
        ((30, 600), 29, False),
        ((30, 600), 30, True),
        ((30, 600), 600, True),
        ((30, 600), 601, False),
        ((15, 1440), 1440, True),  # the longest any configuration allows
        ((15, 1440), 1441, False),
    ],
)
async def test_create_session_duration_follows_settings(
    app_factory: Any, make_settings: Any, limits: tuple[int, int], duration: int, accepted: bool
) -> None:
    """The API takes exactly what ``[sessions]`` allows: the schema's bounds are the hard ones,
    the configured ones answer the same ``validation_error`` on ``duration``."""
    low, high = limits
    settings = make_settings(sessions={"min_duration_minutes": low, "max_duration_minutes": high})
    api = ApiDriver(await app_factory(settings))
    mentor = await api.register("mentor")
    status, data = await api.call(
        "POST", "/api/sessions/create/", mentor, json=session_body(duration=duration)
    )
    if accepted:
        assert status == 201 and data["duration"] == duration, data
    else:
        assert status == 400 and data["error"]["code"] == "validation_error", data
        assert set(data["error"]["fields"]) == {"duration"}, data


async def test_a_skill_of_the_longest_length_is_taken(sqlite_api: Any) -> None:
    mentor = await sqlite_api.register("mentor")
    longest = "x" * SKILL_MAX_CHARS
    data = await create_session(sqlite_api, mentor, skills_required=[longest])
    assert data["skills_required"] == [longest]


async def test_only_mentors_create(sqlite_api: Any) -> None:
    learner = await sqlite_api.register("learner")
    status, data = await sqlite_api.call(
        "POST", "/api/sessions/create/", learner, json=session_body()
    )
    assert status == 403 and data["error"]["code"] == "forbidden"
    status, _ = await anon(sqlite_api, "POST", "/api/sessions/create/", json=session_body())
    assert status == 401


async def test_followers_are_notified_of_new_sessions(api: Any) -> None:
    mentor = await api.register("mentor")
    fan = await api.register("learner")
    await platform_of(api).follows.follow(
        await platform_of(api).accounts.get_user(fan["user"]["id"]), mentor["user"]["id"]
    )
    s = await create_session(api, mentor)
    [note] = [n for n in await notifications_of(api, fan) if n.event == "session_created"]
    assert note.link == f"/sessions/{s['id']}/"


async def test_list_and_filters(api: Any) -> None:
    """Runs on SQLite and PostgreSQL: the skill filter matches inside the JSON array."""
    m1 = await api.register("mentor")
    m2 = await api.register("mentor")
    a = await create_session(api, m1, title="Python basics", skills_required=["Python"])
    b = await create_session(
        api,
        m1,
        title="Deep SQL",
        description="window functions 100%",
        price=25,
        skills_required=["SQL", "PostgreSQL"],
        schedule=iso_in(3 * 24 * 60),
    )
    c = await create_session(
        api,
        m2,
        title="Rust for Pythonistas",
        skills_required=["Rust"],
        price=5,
        schedule=iso_in(5 * 24 * 60),
    )
    cancelled = await create_session(api, m2, title="Gone", skills_required=["Python"])
    assert (await api.call("POST", f"/api/sessions/{cancelled['id']}/cancel/", m2))[0] == 200

    async def ids(query: str) -> list[str]:
        status, data = await api.call("GET", "/api/sessions/?" + query)
        assert status == 200, data
        return [item["id"] for item in data["items"]]

    assert await ids("") == [a["id"], b["id"], c["id"]]  # ordered by schedule, no cancelled
    assert await ids("skill=python") == [a["id"]]  # case-insensitive, whole element
    assert await ids("skill=SQL") == [b["id"]]  # not "PostgreSQL" by substring
    assert await ids("q=pythonista") == [c["id"]]
    assert await ids("q=100%25") == [b["id"]]  # % is literal
    assert await ids(f"mentor={m2['user']['username']}") == [c["id"]]
    assert await ids(f"mentor={m1['user']['id']}") == [a["id"], b["id"]]
    assert await ids("free_only=true") == [a["id"]]
    assert await ids("price_min=5&price_max=10") == [c["id"]]
    assert await ids("status=cancelled") == [cancelled["id"]]
    date_from = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    date_to = (datetime.now(UTC) + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids(f"date_from={date_from}&date_to={date_to}") == [b["id"]]
    _, data = await api.call("GET", "/api/sessions/?per_page=2&page=2")
    assert (
        data["total"] == 3 and data["pages"] == 2 and [i["id"] for i in data["items"]] == [c["id"]]
    )


@pytest.mark.parametrize(
    "bad", ["per_page=101", "page=0", "status=bogus", "price_min=-1", "date_from=x", "x=1"]
)
async def test_list_refuses_bad_queries(api: Any, bad: str) -> None:
    status, data = await api.call("GET", "/api/sessions/?" + bad)
    assert status == 400, (bad, data)
    assert data["error"]["code"] == "validation_error"


@pytest.mark.parametrize("bad", ["not-a-uuid", str(uuid.uuid4()), "1", "%00"])
async def test_details_of_no_session_are_404(api: Any, bad: str) -> None:
    status, data = await api.call("GET", f"/api/sessions/{bad}/")
    assert status == 404, (bad, data)
    assert data["error"]["code"] == "not_found"


async def test_details_view_interaction(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor)
    status, anon_view = await anon(api, "GET", f"/api/sessions/{s['id']}/")
    assert status == 200 and anon_view["my_booking"] is None and anon_view["is_mentor"] is False
    assert anon_view["meeting_room_id"] is None
    seen: list[dict] = []
    platform_of(api).interactions.listeners.append(seen.append)
    status, _ = await api.call("GET", f"/api/sessions/{s['id']}/", learner)
    assert status == 200
    assert [(i["kind"], i["user_id"]) for i in seen] == [("view", learner["user"]["id"])]
    # The one rule (SessionDetails.for_viewer): only a learner's read is a view.
    for reader in (mentor, await admin_of(api), await api.register("mentor")):
        assert (await api.call("GET", f"/api/sessions/{s['id']}/", reader))[0] == 200
    assert len(seen) == 1


async def test_lifecycle_state_machine(api: Any) -> None:
    mentor = await api.register("mentor")
    other = await api.register("mentor")
    learner = await api.register("learner")
    far = await create_session(api, mentor)  # tomorrow: outside the 30-minute start window
    status, data = await api.call("POST", f"/api/sessions/{far['id']}/start/", mentor)
    assert status == 409 and data["error"]["code"] == "too_early"
    s = await create_session(api, mentor, schedule=iso_in(20))
    assert (await api.call("POST", f"/api/sessions/{s['id']}/book/", learner))[0] == 201
    events: list[dict] = []

    async def on_event(message: dict) -> None:
        events.append(message)

    platform_of(api).bus.subscribe(session_channel(s["id"]), on_event)
    assert (await api.call("POST", f"/api/sessions/{s['id']}/start/", other))[0] == 403
    assert (await api.call("POST", f"/api/sessions/{s['id']}/end/", mentor))[1]["error"][
        "code"
    ] == "invalid_state"
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/start/", mentor)
    assert status == 200 and data["status"] == "active" and data["started_at"]
    [note] = [n for n in await notifications_of(api, learner) if n.event == "session_started"]
    assert note.link == f"/sessions/{s['id']}/room"
    for action in ("start", "cancel"):
        status, data = await api.call("POST", f"/api/sessions/{s['id']}/{action}/", mentor)
        assert status == 409 and data["error"]["code"] == "invalid_state", action
    await platform_of(api).bookings.record_join(s["id"], learner["user"]["id"])
    recorded: list[dict] = []
    platform_of(api).interactions.listeners.append(recorded.append)
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/end/", mentor)
    assert status == 200 and data["status"] == "completed" and data["ended_at"]
    assert events == [{"type": "session_started"}, {"type": "session_ended"}]
    assert [r["kind"] for r in recorded] == ["completion"]
    _, bookings = await api.call("GET", f"/api/sessions/{s['id']}/bookings/", mentor)
    assert [b["status"] for b in bookings] == ["completed"] and bookings[0]["joined_at"]
    for action in ("start", "end", "cancel"):
        status, data = await api.call("POST", f"/api/sessions/{s['id']}/{action}/", mentor)
        assert status == 409 and data["error"]["code"] == "invalid_state", action


async def test_cancel_session_cancels_bookings_and_notifies(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    admin_user = await platform_of(api).accounts.create_admin(
        "root1", "root1@example.org", "s3cret-pass!"
    )
    login = await api.client.post(
        "/api/auth/login/", json={"username": admin_user.username, "password": "s3cret-pass!"}
    )
    admin = {"headers": {"Authorization": f"Bearer {(await login.json())['token']}"}}
    s = await create_session(api, mentor)
    assert (await api.call("POST", f"/api/sessions/{s['id']}/book/", learner))[0] == 201
    events: list[dict] = []

    async def on_event(message: dict) -> None:
        events.append(message)

    platform_of(api).bus.subscribe(session_channel(s["id"]), on_event)
    assert (await api.call("POST", f"/api/sessions/{s['id']}/cancel/", learner))[0] == 403
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/cancel/", admin)
    assert status == 200 and data["status"] == "cancelled" and data["current_participants"] == 0
    assert events == [{"type": "session_cancelled"}]
    _, mine = await api.call("GET", "/api/bookings/", learner)
    assert [b["status"] for b in mine["past"]] == ["cancelled"] and mine["upcoming"] == []
    assert any(n.event == "session_cancelled" for n in await notifications_of(api, learner))
    assert any(n.event == "session_cancelled" for n in await notifications_of(api, mentor))
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert status == 409 and data["error"]["code"] == "invalid_state"
    # Admin session list includes cancelled sessions; the public one hides them.
    _, page = await api.call("GET", "/api/admin/sessions/", admin)
    assert [i["id"] for i in page["items"]] == [s["id"]]
    assert (await api.call("GET", "/api/admin/sessions/", mentor))[0] == 403
    _, public = await api.call("GET", "/api/sessions/")
    assert public["items"] == []


async def test_calendar_ics(sqlite_api: Any) -> None:
    api = sqlite_api
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    stranger = await api.register("learner")
    year = datetime.now(UTC).year + 1
    s = await create_session(
        api,
        mentor,
        title="Commas, semicolons; and\\slashes",
        description="line1\nline2",
        schedule=f"{year}-06-01T10:30:00+02:00",
        duration=90,
    )
    await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert (await api.call("GET", f"/api/sessions/{s['id']}/calendar.ics", stranger))[0] == 403
    assert (await anon(api, "GET", f"/api/sessions/{s['id']}/calendar.ics"))[0] == 401
    for who in (mentor, learner):
        resp = await api.client.get(f"/api/sessions/{s['id']}/calendar.ics", headers=who["headers"])
        assert resp.status == 200
        assert resp.content_type == "text/calendar"
        raw = (await resp.read()).decode()
        assert raw.startswith("BEGIN:VCALENDAR\r\n") and raw.endswith("END:VCALENDAR\r\n")
        assert "\n" not in raw.replace("\r\n", "")
        lines = raw.split("\r\n")
        assert f"UID:{s['id']}@127.0.0.1" in lines
        assert f"DTSTART:{year}0601T083000Z" in lines and f"DTEND:{year}0601T100000Z" in lines
        assert "SUMMARY:Commas\\, semicolons\\; and\\\\slashes" in lines
        assert "DESCRIPTION:line1\\nline2" in lines
        assert any(line.startswith("URL:http") and s["id"] in line for line in lines)
        assert all(len(line.encode()) <= 75 for line in lines)


async def test_chat_history_access(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    stranger = await api.register("learner")
    s = await create_session(api, mentor)
    await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    chat = platform_of(api).chat
    await chat.add(s["id"], mentor["user"]["id"], "<b>hello</b>")
    await chat.add(s["id"], learner["user"]["id"], "x" * 2000)
    from control.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        await chat.add(s["id"], learner["user"]["id"], "x" * 2001)
    for who in (mentor, learner):
        status, data = await api.call("GET", f"/api/sessions/{s['id']}/chat/", who)
        assert status == 200
        assert [m["text"] for m in data] == ["<b>hello</b>", "x" * 2000]  # stored as given
        assert data[0]["display_name"] == mentor["user"]["username"]
    assert (await api.call("GET", f"/api/sessions/{s['id']}/chat/", stranger))[0] == 403
    assert (await anon(api, "GET", f"/api/sessions/{s['id']}/chat/"))[0] == 401
    assert (await api.call("GET", f"/api/sessions/{uuid.uuid4()}/chat/", mentor))[0] == 404


async def test_stats_overview_per_role(api: Any) -> None:
    mentor = await api.register("mentor")
    learners = [await api.register("learner") for _ in range(2)]
    sid = await run_session(api, mentor, learners)
    await api.call("POST", f"/api/sessions/{sid}/feedback/", learners[0], json={"rating": 4})
    await api.call("POST", f"/api/sessions/{sid}/feedback/", learners[1], json={"rating": 5})
    paid = await create_session(api, mentor, price=20)
    status, booking = await api.call("POST", f"/api/sessions/{paid['id']}/book/", learners[0])
    await api.call("POST", f"/api/bookings/{booking['id']}/mark-paid/", mentor)
    await create_session(api, mentor)

    status, data = await api.call("GET", "/api/stats/overview/", mentor)
    assert status == 200 and data["role"] == "mentor"
    m = data["mentor"]
    assert m["earnings_total"] == 20.0
    assert m["sessions_by_status"] == {"scheduled": 2, "active": 0, "completed": 1, "cancelled": 0}
    assert m["rating_average"] == 4.5 and m["rating_count"] == 2
    assert m["rating_distribution"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}
    assert [(a["booked"], a["joined"]) for a in m["attendance"]] == [(2, 2)]
    assert sum(e["amount"] for e in m["earnings_per_month"]) == 20.0

    status, data = await api.call("GET", "/api/stats/overview/", learners[0])
    lrn = data["learner"]
    assert lrn["bookings_completed"] == 1 and lrn["bookings_upcoming"] == 1
    assert lrn["hours_learned"] == 1.0
    assert {a["kind"] for a in lrn["recent_activity"]} >= {"booking", "completion", "rating"}

    await platform_of(api).accounts.create_admin("root2", "root2@example.org", "s3cret-pass!")
    login = await api.client.post(
        "/api/auth/login/", json={"username": "root2", "password": "s3cret-pass!"}
    )
    admin = {"headers": {"Authorization": f"Bearer {(await login.json())['token']}"}}
    status, data = await api.call("GET", "/api/stats/overview/", admin)
    a = data["admin"]
    assert a["users_by_role"] == {"learner": 2, "mentor": 1, "admin": 1}
    assert a["revenue"] == 20.0
    assert a["top_mentors"][0]["username"] == mentor["user"]["username"]
    assert (await anon(api, "GET", "/api/stats/overview/"))[0] == 401


async def test_session_moved_to_past_cannot_be_booked(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor)
    await set_session(api, s["id"], schedule=datetime.now(UTC) - timedelta(minutes=1))
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert status == 409 and data["error"]["code"] == "session_past"
