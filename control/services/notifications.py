"""In-app notifications: persisted, then pushed live on the user's bus channel
(``control.events.user_channel``). What they say is ``control.notices``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update

from control.db import Database, rows_changed
from control.errors import ValidationFailed
from control.events import EventBus, user_channel
from control.models import NOTIFICATION_TYPES, Notification
from control.services.common import Page, page_bounds

__all__ = ["NotificationService", "notification_dict"]

log = logging.getLogger(__name__)

TITLE_MAX, EVENT_MAX, LINK_MAX, MESSAGE_MAX = 200, 50, 500, 5000


def notification_dict(n: Notification) -> dict[str, Any]:
    """The JSON shape used by the API and the live push."""
    return {
        "id": n.id,
        "title": n.title,
        "message": n.message,
        "type": n.type,
        "event": n.event,
        "link": n.link,
        "is_read": n.is_read,
        "created_at": n.created_at.isoformat(),
    }


class NotificationService:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self.db = db
        self.bus = bus

    @staticmethod
    def _row(
        user_id: int, *, title: str, message: str, type: str, event: str, link: str | None
    ) -> Notification:
        if type not in NOTIFICATION_TYPES:
            raise ValidationFailed("invalid notification type", fields={"type": "unknown type"})
        # Callers pass display text built from user input: clip instead of failing the action.
        return Notification(
            user_id=user_id,
            title=title[:TITLE_MAX],
            message=message[:MESSAGE_MAX],
            type=type,
            event=event[:EVENT_MAX],
            link=link[:LINK_MAX] if link else None,
            is_read=False,
        )

    async def _push(self, notification: Notification) -> None:
        unread = await self.unread_count(notification.user_id)
        try:
            await self.bus.publish(
                user_channel(notification.user_id),
                {
                    "type": "notification",
                    "notification": notification_dict(notification),
                    "unread": unread,
                },
            )
        except Exception:  # the row is stored; a bus hiccup must not fail the caller's action
            log.exception("publishing notification %s failed", notification.id)

    async def notify(
        self,
        user_id: int,
        *,
        title: str,
        message: str,
        type: str = "info",
        event: str = "general",
        link: str | None = None,
    ) -> Notification:
        """Store a notification for one user and push it to their open pages."""
        row = self._row(user_id, title=title, message=message, type=type, event=event, link=link)
        async with self.db.transaction() as s:
            s.add(row)
        await self._push(row)
        return row

    async def notify_many(
        self,
        user_ids: Iterable[int],
        *,
        title: str,
        message: str,
        type: str = "info",
        event: str = "general",
        link: str | None = None,
    ) -> list[Notification]:
        """The same notification to several users, stored in one transaction."""
        ids = list(dict.fromkeys(user_ids))  # de-duplicate, keep order
        rows = [
            self._row(uid, title=title, message=message, type=type, event=event, link=link)
            for uid in ids
        ]
        if not rows:
            return []
        async with self.db.transaction() as s:
            s.add_all(rows)
        for row in rows:
            await self._push(row)
        return rows

    async def page_for(
        self, user_id: int, *, unread_only: bool = False, page: int = 1, per_page: int = 20
    ) -> Page[Notification]:
        """Newest first."""
        offset, limit = page_bounds(page, per_page)
        where = [Notification.user_id == user_id]
        if unread_only:
            where.append(Notification.is_read.is_(False))
        async with self.db.session() as s:
            total = await s.scalar(select(func.count()).select_from(Notification).where(*where))
            rows = await s.scalars(
                select(Notification)
                .where(*where)
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .offset(offset)
                .limit(limit)
            )
            items = list(rows.all())
        return Page(items=items, total=int(total or 0), page=offset // limit + 1, per_page=limit)

    async def latest_and_unread(self, user_id: int, latest: int) -> tuple[list[Notification], int]:
        """The newest ``latest`` notifications and the count of unread ones, in one statement
        (the page header's): the count rides on each row. No row means no notification at
        all, so none unread."""
        unread = (
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.is_read.is_(False))
            .scalar_subquery()
        )
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(Notification, unread)
                    .where(Notification.user_id == user_id)
                    .order_by(Notification.created_at.desc(), Notification.id.desc())
                    .limit(max(1, latest))
                )
            ).all()
        return [row[0] for row in rows], int(rows[0][1]) if rows else 0

    async def unread_count(self, user_id: int) -> int:
        async with self.db.session() as s:
            count = await s.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.user_id == user_id, Notification.is_read.is_(False))
            )
        return int(count or 0)

    async def mark_read(self, user_id: int, ids: list[int] | None) -> int:
        """Mark the given ids (only this user's) or, with None, all as read; returns how many."""
        stmt = update(Notification).where(
            Notification.user_id == user_id, Notification.is_read.is_(False)
        )
        if ids is not None:
            if not ids:
                return 0
            stmt = stmt.where(Notification.id.in_(ids))
        async with self.db.transaction() as s:
            result = await s.execute(stmt.values(is_read=True))
        changed = rows_changed(result)
        if changed:
            count = await self.unread_count(user_id)
            try:
                await self.bus.publish(user_channel(user_id), {"type": "unread", "count": count})
            except Exception:
                log.exception("publishing unread count failed")
        return changed
