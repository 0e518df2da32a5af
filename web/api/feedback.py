"""REST endpoints: attendees' ratings of a session, and the public list of them."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from control.limits import COMMENT_MAX
from control.models import Feedback
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import MentorSummary
from web.api.sessions import SESSION_PATH, session_id_of
from web.keys import PLATFORM

api = ApiRegistry()
TAGS = ["feedback"]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: StrictInt = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=COMMENT_MAX)


class FeedbackOut(BaseModel):
    id: int
    session_id: uuid.UUID
    user: MentorSummary
    rating: int
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, fb: Feedback) -> FeedbackOut:
        return cls(
            id=fb.id,
            session_id=fb.session_id,
            user=MentorSummary.of(fb.user),
            rating=fb.rating,
            comment=fb.comment,
            created_at=fb.created_at,
        )


@api.route(
    "POST",
    SESSION_PATH + "/feedback/",
    body=FeedbackIn,
    response=FeedbackOut,
    status=201,
    auth="user",
    tags=TAGS,
    errors=[403, 404, 409],
)
async def submit_feedback(request: web.Request, call: ApiCall[FeedbackIn, None]) -> FeedbackOut:
    """An attendee rates a started or completed session 1–5, once."""
    fb = await request.app[PLATFORM].feedback.submit(
        call.me, session_id_of(request), rating=call.body.rating, comment=call.body.comment
    )
    return FeedbackOut.of(fb)


@api.route("GET", SESSION_PATH + "/feedback/", response=list[FeedbackOut], tags=TAGS, errors=[404])
async def list_feedback(request: web.Request, call: ApiCall[None, None]) -> list[FeedbackOut]:
    """Public ratings of a session, newest first."""
    reviews = await request.app[PLATFORM].feedback.for_session(session_id_of(request))
    return [FeedbackOut.of(f) for f in reviews]
