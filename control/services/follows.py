"""Learners (and mentors) following mentors."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from control import notices
from control.db import Database, rows_changed
from control.errors import NotFound, ValidationFailed
from control.ids import is_db_id
from control.models import Follow, User
from control.notices import NoticeSender
from control.services.accounts import AccountService


class FollowService:
    def __init__(self, db: Database, *, accounts: AccountService, notices: NoticeSender) -> None:
        self.db = db
        self.accounts = accounts
        self.notices = notices

    async def _mentor(self, user: User, mentor_id: int) -> User:
        if user.id == mentor_id:
            raise ValidationFailed(
                "you cannot follow yourself",
                code="cannot_follow_self",
                fields={"mentor_id": "that is you"},
            )
        mentor = await self.accounts.get_user(mentor_id)
        if mentor is None or not mentor.is_active:
            raise NotFound("no such mentor")
        if not mentor.is_mentor:
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
        await self.notices.send([mentor.id], notices.new_follower(user))
        return True

    async def unfollow(self, user: User, mentor_id: int) -> bool:
        """Stop following; True if a follow was removed (idempotent otherwise)."""
        if not is_db_id(mentor_id):
            raise NotFound("no such mentor")
        async with self.db.transaction() as s:
            result = await s.execute(
                delete(Follow).where(Follow.follower_id == user.id, Follow.mentor_id == mentor_id)
            )
        if rows_changed(result):
            return True
        if await self.accounts.get_user(mentor_id) is None:
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
        followers = (
            select(func.count())
            .select_from(Follow)
            .join(User, User.id == Follow.follower_id)
            .where(Follow.mentor_id == user_id, User.is_active.is_(True))
        )
        following = (
            select(func.count())
            .select_from(Follow)
            .join(User, User.id == Follow.mentor_id)
            .where(Follow.follower_id == user_id, User.is_active.is_(True))
        )
        async with self.db.session() as s:  # both counts in one statement
            row = (
                await s.execute(select(followers.scalar_subquery(), following.scalar_subquery()))
            ).one()
        return int(row[0] or 0), int(row[1] or 0)
