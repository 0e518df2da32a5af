"""Reading accounts: one user by id or name, and the paged lists (admin, mentor directory)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Select, Text, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.db import Database
from control.errors import NotFound
from control.ids import is_db_id
from control.limits import USERNAME_MAX
from control.models import Role, User
from control.services.common import Page, page_bounds


async def _page(s: AsyncSession, stmt: Select[User], page: int, per_page: int) -> Page[User]:
    offset, limit = page_bounds(page, per_page)
    total = await s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (await s.scalars(stmt.offset(offset).limit(limit))).all()
    return Page(items=list(rows), total=int(total or 0), page=offset // limit + 1, per_page=limit)


def _text_filter(q: str) -> Any:
    pattern = q.strip().lower()
    return or_(
        *(
            func.lower(col).contains(pattern, autoescape=True)
            for col in (User.username, User.first_name, User.last_name, User.email)
        )
    )


class UserDirectory:
    """``platform.accounts.users``: lookups every other part of accounts shares."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_user(self, user_id: int) -> User | None:
        if not is_db_id(user_id):
            return None
        async with self.db.session() as s:
            return await s.get(User, user_id)

    async def get_by_username(self, name: str) -> User | None:
        if not name or len(name) > USERNAME_MAX:
            return None
        async with self.db.session() as s:
            return await s.scalar(select(User).where(User.username == name))

    async def require(self, user_id: int) -> User:
        """The user, or NotFound."""
        user = await self.get_user(user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def list_users(
        self,
        *,
        q: str | None = None,
        role: str | None = None,
        active: bool | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[User]:
        stmt = select(User).order_by(User.id)
        if q and q.strip():
            stmt = stmt.where(_text_filter(q))
        if role:
            stmt = stmt.where(User.role == role)
        if active is not None:
            stmt = stmt.where(User.is_active.is_(active))
        async with self.db.session() as s:
            return await _page(s, stmt, page, per_page)

    async def list_mentors(
        self, *, skill: str | None = None, q: str | None = None, page: int = 1, per_page: int = 20
    ) -> Page[User]:
        """Active mentors; ``skill`` matches a whole entry of ``skills`` case-insensitively."""
        stmt = select(User).where(User.role == Role.MENTOR, User.is_active.is_(True))
        if skill and skill.strip():
            # JSON arrays are stored as JSON text on both backends; matching the quoted
            # element keeps "Go" from matching "Google" without backend-specific JSON operators.
            needle = json.dumps(" ".join(skill.split()).lower())
            stmt = stmt.where(func.lower(cast(User.skills, Text)).contains(needle, autoescape=True))
        if q and q.strip():
            pattern = q.strip().lower()
            stmt = stmt.where(
                or_(
                    *(
                        func.lower(col).contains(pattern, autoescape=True)
                        for col in (User.username, User.first_name, User.last_name, User.bio)
                    ),
                    func.lower(cast(User.skills, Text)).contains(pattern, autoescape=True),
                )
            )
        stmt = stmt.order_by(User.id)
        async with self.db.session() as s:
            return await _page(s, stmt, page, per_page)
