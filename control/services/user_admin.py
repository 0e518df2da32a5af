"""What administrators change about other accounts: active or not, and the role."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from control.db import Database
from control.errors import Forbidden, ValidationFailed
from control.models import Role, User
from control.services.logins import LoginService
from control.services.users import UserDirectory


class UserAdminService:
    """``platform.accounts.admin``: ``set_active`` and ``set_role``."""

    def __init__(self, db: Database, users: UserDirectory, *, logins: LoginService) -> None:
        self.db = db
        self.users = users
        self.logins = logins

    async def set_active(self, actor: User, user_id: int, active: bool) -> User:
        if not actor.is_admin:
            raise Forbidden("only an admin can do this")
        target = await self.users.require(user_id)
        if target.id == actor.id and not active:
            raise Forbidden("you cannot deactivate your own account", code="cannot_change_self")
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == target.id).values(is_active=active))
        if not active:
            # Every session ends; its sockets close on the one "sessions_revoked" event.
            await self.logins.revoke_all(target.id, "deactivated")
        return await self.users.require(target.id)

    async def set_role(self, actor: User, user_id: int, role: str) -> User:
        if not actor.is_admin:
            raise Forbidden("only an admin can do this")
        if role not in set(Role):
            raise ValidationFailed(
                "invalid role", fields={"role": "must be learner, mentor or admin"}
            )
        target = await self.users.require(user_id)
        if target.id == actor.id and role != actor.role:
            raise Forbidden("you cannot change your own role", code="cannot_change_self")
        values: dict[str, Any] = {"role": role}
        if role != Role.MENTOR:
            values["hourly_rate"] = None  # only mentors have a rate
        async with self.db.transaction() as s:
            await s.execute(update(User).where(User.id == target.id).values(**values))
        return await self.users.require(target.id)
