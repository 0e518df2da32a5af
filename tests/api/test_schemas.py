"""The shared page shape of every paginated endpoint (``PageOut.of``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.settings import SessionSettings
from control.services.common import Page
from control.services.sessions import (
    DESCRIPTION_MAX,
    SKILL_MAX_CHARS,
    SKILLS_MAX,
    TITLE_MAX,
    TITLE_MIN,
)
from web.api.notifications import NotificationPageOut
from web.api.schemas import PageOut
from web.api.sessions import SessionCreateIn

PAGE_FIELDS = {"items", "total", "page", "per_page", "pages"}


def test_page_out_of_a_service_page() -> None:
    page = Page(items=[1, 2, 3], total=23, page=2, per_page=3)
    out = PageOut[str].of(page, lambda n: f"#{n}")
    assert out.model_dump() == {
        "items": ["#1", "#2", "#3"],
        "total": 23,
        "page": 2,
        "per_page": 3,
        "pages": 8,
    }


def test_subclasses_add_their_fields() -> None:
    out = NotificationPageOut.of(Page(items=[], total=0, page=1, per_page=20), str, unread=4)
    assert out.model_dump() == {
        "items": [],
        "total": 0,
        "page": 1,
        "per_page": 20,
        "pages": 1,
        "unread": 4,
    }


async def test_every_paginated_endpoint_answers_the_same_shape(sqlite_api: Any) -> None:
    api = sqlite_api
    learner = await api.register("learner")
    for path in ("/api/sessions/", "/api/users/mentors/", "/api/notifications/"):
        status, body = await api.call("GET", f"{path}?per_page=5", learner)
        assert status == 200, (path, body)
        assert PAGE_FIELDS <= set(body) and body["per_page"] == 5 and body["page"] == 1, path


def test_session_schema_bounds_come_from_the_service_and_the_settings() -> None:
    """No limit of its own: the service's constants, and for what ``[sessions]`` configures
    the widest value any configuration may set (the service applies the configured one)."""
    props = SessionCreateIn.model_json_schema()["properties"]
    assert (props["title"]["minLength"], props["title"]["maxLength"]) == (TITLE_MIN, TITLE_MAX)
    assert props["description"]["maxLength"] == DESCRIPTION_MAX
    assert props["skills_required"]["maxItems"] == SKILLS_MAX
    assert props["skills_required"]["items"]["maxLength"] == SKILL_MAX_CHARS
    widest = SessionSettings(min_duration_minutes=1, max_duration_minutes=24 * 60)
    assert props["duration"]["minimum"] == widest.min_duration_minutes
    assert props["duration"]["maximum"] == widest.max_duration_minutes
    assert props["max_participants"]["maximum"] == SessionSettings().max_participants


@pytest.mark.parametrize(
    "past_the_bound", [{"min_duration_minutes": 0}, {"max_duration_minutes": 24 * 60 + 1}]
)
def test_no_configuration_goes_past_the_schema_bounds(past_the_bound: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        SessionSettings(**past_the_bound)
