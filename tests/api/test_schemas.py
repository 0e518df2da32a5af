"""The shared page shape of every paginated endpoint (``PageOut.of``)."""

from __future__ import annotations

from typing import Any

from control.services.common import Page
from web.api.notifications import NotificationPageOut
from web.api.schemas import PageOut

PAGE_FIELDS = {"items", "total", "page", "per_page", "pages"}


def test_page_out_of_a_service_page() -> None:
    page = Page(items=[1, 2, 3], total=23, page=2, per_page=3)
    out = PageOut[str].of(page, lambda n: f"#{n}")
    assert out.model_dump() == {
        "items": ["#1", "#2", "#3"], "total": 23, "page": 2, "per_page": 3, "pages": 8,
    }


def test_subclasses_add_their_fields() -> None:
    out = NotificationPageOut.of(Page(items=[], total=0, page=1, per_page=20), str, unread=4)
    assert out.model_dump() == {
        "items": [], "total": 0, "page": 1, "per_page": 20, "pages": 1, "unread": 4,
    }


async def test_every_paginated_endpoint_answers_the_same_shape(sqlite_api: Any) -> None:
    api = sqlite_api
    learner = await api.register("learner")
    for path in ("/api/sessions/", "/api/users/mentors/", "/api/notifications/"):
        status, body = await api.call("GET", f"{path}?per_page=5", learner)
        assert status == 200, (path, body)
        assert PAGE_FIELDS <= set(body) and body["per_page"] == 5 and body["page"] == 1, path
