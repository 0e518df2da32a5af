"""Learners (and mentors) following mentors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from control.errors import NotFound, ValidationFailed
from control.models import Follow, User

if TYPE_CHECKING:
    from control.platform import Platform

log = logging.getLogger(__name__)
MAX_DB_ID = 2**63 - 1


class FollowService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.db = platform.db

    async def _mentor(self, user: User, mentor_id: int) -> User:
        if user.id == mentor_id:
            raise ValidationFailed(
                "you cannot follow yourself",
                code="cannot_follow_self",
                fields={"mentor_id": "that is you"},
            )
        mentor = await self.platform.accounts.get_user(mentor_id)
        if mentor is None or not mentor.is_active:
            raise NotFound("no such mentor")
        if mentor.role != "mentor":
            raise ValidationFailed(
                "only mentors can be followed",
                code="not_a_mentor",
                fields={"mentor_id": "not a mentor"},
            )
        return mentor

    async def follow(self, user: User, mentor_id: int) -> bool:
        """Follow a mentor; True if this created the follow (idempotent otherwise)."""
        mentor = await self._mentor(user, mentor_id)
        if await self.is_following(user.id, mentor.id):
            return False
        try:
            async with self.db.transaction() as s:
                s.add(Follow(follower_id=user.id, mentor_id=mentor.id))
        except IntegrityError:
            return False  # a concurrent identical request won the race: same end state
        await self.platform.notifications.notify(
            mentor.id,
            title="New follower",
            message=f"{user.display_name} started following you.",
            type="info",
            event="new_follower",
            link=f"/profile/{user.username}/",
        )
        return True

    async def unfollow(self, user: User, mentor_id: int) -> bool:
        """Stop following; True if a follow was removed (idempotent otherwise)."""
        if not 0 < mentor_id <= MAX_DB_ID:
            raise NotFound("no such mentor")
        async with self.db.transaction() as s:
            result = await s.execute(
                delete(Follow).where(Follow.follower_id == user.id, Follow.mentor_id == mentor_id)
            )
        if result.rowcount:  # type: ignore[attr-defined]
            return True
        if await self.platform.accounts.get_user(mentor_id) is None:
            raise NotFound("no such mentor")
        return False

    async def is_following(self, user_id: int, mentor_id: int) -> bool:
        async with self.db.session() as s:
            found = await s.scalar(
                select(Follow.mentor_id).where(
                    Follow.follower_id == user_id, Follow.mentor_id == mentor_id
                )
            )
        return found is not None

    async def followers(self, mentor_id: int) -> list[User]:
        """Active users following this mentor, oldest follow first (for fan-out too)."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(User)
                .join(Follow, Follow.follower_id == User.id)
                .where(Follow.mentor_id == mentor_id, User.is_active.is_(True))
                .order_by(Follow.created_at, User.id)
            )
            return list(rows.all())

    async def following(self, user_id: int) -> list[User]:
        """Active mentors this user follows."""
        async with self.db.session() as s:
            rows = await s.scalars(
                select(User)
                .join(Follow, Follow.mentor_id == User.id)
                .where(Follow.follower_id == user_id, User.is_active.is_(True))
                .order_by(Follow.created_at, User.id)
            )
            return list(rows.all())

    async def counts(self, user_id: int) -> tuple[int, int]:
        """(followers, following) of a user, counting active accounts only."""
        async with self.db.session() as s:
            followers = await s.scalar(
                select(func.count())
                .select_from(Follow)
                .join(User, User.id == Follow.follower_id)
                .where(Follow.mentor_id == user_id, User.is_active.is_(True))
            )
            following = await s.scalar(
                select(func.count())
                .select_from(Follow)
                .join(User, User.id == Follow.mentor_id)
                .where(Follow.follower_id == user_id, User.is_active.is_(True))
            )
        return int(followers or 0), int(following or 0)
