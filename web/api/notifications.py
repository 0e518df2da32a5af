"""REST endpoints: the signed-in user's notifications."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from control.ids import MAX_DB_ID
from control.services.notifications import notification_dict
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import PageOut
from web.keys import PLATFORM

api = ApiRegistry()
TAGS = ["notifications"]


class NotificationOut(BaseModel):
    id: int
    title: str
    message: str
    type: str
    event: str
    link: str | None
    is_read: bool
    created_at: datetime


class NotificationPageOut(PageOut[NotificationOut]):
    unread: int


class NotificationsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unread_only: bool = False
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)


class MarkReadIn(BaseModel):
    """Either ``{"ids": [...]}`` or ``{"all": true}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"all": True}]})

    ids: list[int] | None = Field(default=None, max_length=1000)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkReadIn:
        if self.all == (self.ids is not None):
            raise ValueError('give either "ids" or "all": true')
        if self.ids and any(not 0 < i <= MAX_DB_ID for i in self.ids):
            raise ValueError("ids must be positive integers")
        return self


class UnreadOut(BaseModel):
    count: int


class MarkReadOut(BaseModel):
    updated: int
    unread: int


@api.route(
    "GET",
    "/api/notifications/",
    query=NotificationsQuery,
    response=NotificationPageOut,
    auth="user",
    tags=TAGS,
)
async def list_notifications(
    request: web.Request, call: ApiCall[None, NotificationsQuery]
) -> NotificationPageOut:
    """My notifications, newest first."""
    service = request.app[PLATFORM].notifications
    q = call.query
    page = await service.page_for(
        call.me.id, unread_only=q.unread_only, page=q.page, per_page=q.per_page
    )
    return NotificationPageOut.of(
        page,
        lambda n: NotificationOut(**notification_dict(n)),
        unread=await service.unread_count(call.me.id),
    )


@api.route("GET", "/api/notifications/unread-count/", response=UnreadOut, auth="user", tags=TAGS)
async def unread_count(request: web.Request, call: ApiCall[None, None]) -> UnreadOut:
    """How many of my notifications are unread."""
    return UnreadOut(count=await request.app[PLATFORM].notifications.unread_count(call.me.id))


@api.route(
    "POST",
    "/api/notifications/mark-read/",
    body=MarkReadIn,
    response=MarkReadOut,
    auth="user",
    tags=TAGS,
)
async def mark_read(request: web.Request, call: ApiCall[MarkReadIn, None]) -> MarkReadOut:
    """Mark some (``ids``; others' ids are ignored) or all of my notifications as read."""
    service = request.app[PLATFORM].notifications
    ids = None if call.body.all else call.body.ids
    updated = await service.mark_read(call.me.id, ids)
    return MarkReadOut(updated=updated, unread=await service.unread_count(call.me.id))
