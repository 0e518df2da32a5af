"""Feedback: attendees rate a started or completed session once; the mentor hears about it."""

from __future__ import annotations

from typing import Any

import pytest

from control.limits import COMMENT_MAX
from tests.api.sessions_helpers import (
    anon,
    create_session,
    iso_in,
    notifications_of,
    platform_of,
    run_session,
)


async def test_feedback_flow(api: Any) -> None:
    mentor = await api.register("mentor")
    a, b = await api.register("learner"), await api.register("learner")
    stranger = await api.register("learner")
    sid = await run_session(api, mentor, [a, b])
    recorded: list[dict] = []
    platform_of(api).interactions.listeners.append(recorded.append)
    status, fb = await api.call(
        "POST", f"/api/sessions/{sid}/feedback/", a, json={"rating": 5, "comment": " great "}
    )
    assert status == 201, fb
    assert fb["rating"] == 5 and fb["comment"] == "great"
    assert [(r["kind"], r["value"]) for r in recorded] == [("rating", 5.0)]
    status, data = await api.call("POST", f"/api/sessions/{sid}/feedback/", a, json={"rating": 1})
    assert status == 409 and data["error"]["code"] == "already_rated"
    status, data = await api.call(
        "POST", f"/api/sessions/{sid}/feedback/", stranger, json={"rating": 1}
    )
    assert status == 403
    status, data = await api.call(
        "POST", f"/api/sessions/{sid}/feedback/", mentor, json={"rating": 5}
    )
    assert status == 403
    await api.call("POST", f"/api/sessions/{sid}/feedback/", b, json={"rating": 2})
    status, listing = await anon(api, "GET", f"/api/sessions/{sid}/feedback/")
    assert status == 200 and sorted(f["rating"] for f in listing) == [2, 5]
    _, detail = await api.call("GET", f"/api/sessions/{sid}/", a)
    assert detail["mentor_rating"] == {"average": 3.5, "count": 2}
    assert detail["my_feedback_given"] is True
    assert [n.event for n in await notifications_of(api, mentor)].count("feedback_received") == 2


async def test_feedback_opens_when_the_session_starts(api: Any) -> None:
    mentor = await api.register("mentor")
    learner, other = await api.register("learner"), await api.register("learner")
    s = await create_session(api, mentor, schedule=iso_in(10))
    for who in (learner, other):
        await api.call("POST", f"/api/sessions/{s['id']}/book/", who)
    path = f"/api/sessions/{s['id']}/feedback/"
    status, data = await api.call("POST", path, learner, json={"rating": 4})
    assert status == 409 and data["error"]["code"] == "invalid_state"  # nothing happened yet
    assert (await api.call("POST", f"/api/sessions/{s['id']}/start/", mentor))[0] == 200
    status, data = await api.call("POST", path, learner, json={"rating": 4})
    assert status == 201, data  # rating during the live session
    assert (await api.call("POST", f"/api/sessions/{s['id']}/end/", mentor))[0] == 200
    status, data = await api.call("POST", path, other, json={"rating": 2})
    assert status == 201, data  # and after it
    status, data = await api.call("POST", path, learner, json={"rating": 5})
    assert status == 409 and data["error"]["code"] == "already_rated"


async def test_cancelled_session_cannot_be_rated(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor)
    await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert (await api.call("POST", f"/api/sessions/{s['id']}/cancel/", mentor))[0] == 200
    status, data = await api.call(
        "POST", f"/api/sessions/{s['id']}/feedback/", learner, json={"rating": 3}
    )
    # The cancellation cancelled the booking too: the learner is no attendee.
    assert status == 403, data


@pytest.mark.parametrize(
    "body",
    [
        {"rating": 0},
        {"rating": 6},
        {"rating": 4.5},
        {"rating": "5"},
        {"rating": True},
        {},
        {"rating": 3, "comment": "x" * (COMMENT_MAX + 1)},
        {"rating": 3, "extra": 1},
    ],
)
async def test_feedback_validation(sqlite_api: Any, body: dict[str, Any]) -> None:
    api = sqlite_api
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    sid = await run_session(api, mentor, [learner])
    status, data = await api.call("POST", f"/api/sessions/{sid}/feedback/", learner, json=body)
    assert status == 400, (body, data)
    assert data["error"]["code"] == "validation_error"
