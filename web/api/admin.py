"""REST endpoints for admins: every session (cancelled too), user management, the settings in
force."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.errors import NotFound
from control.ids import MAX_DB_ID
from control.models import Role
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import PageOut, SessionOut, SessionPage, UserOut, values_of
from web.api.sessions import SessionListQuery
from web.keys import PLATFORM, SETTINGS

api = ApiRegistry()
TAGS = ["admin"]
USER_PATH = r"/api/admin/users/{user_id:\d{1,19}}"
if TYPE_CHECKING:
    RoleName = str
else:
    RoleName = values_of(Role)


class UsersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=100)
    role: RoleName | None = None
    active: bool | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)


class ActiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleName


def _user_id(request: web.Request) -> int:
    user_id = int(request.match_info["user_id"])
    if not 0 < user_id <= MAX_DB_ID:
        raise NotFound("no such user")
    return user_id


@api.route(
    "GET",
    "/api/admin/sessions/",
    query=SessionListQuery,
    response=SessionPage,
    auth="admin",
    tags=TAGS,
)
async def admin_sessions(
    request: web.Request, call: ApiCall[None, SessionListQuery]
) -> SessionPage:
    """All sessions including cancelled ones (cancel through /api/sessions/{id}/cancel/)."""
    q = call.query
    page = await request.app[PLATFORM].sessions.search(
        q.filters(include_cancelled=True), page=q.page, per_page=q.per_page
    )
    return SessionPage.of(page, SessionOut.of)


@api.route(
    "GET", "/api/admin/users/", query=UsersQuery, response=PageOut[UserOut], auth="admin", tags=TAGS
)
async def list_users(request: web.Request, call: ApiCall[None, UsersQuery]) -> PageOut[UserOut]:
    """Search users by name/e-mail, role and active state."""
    q = call.query
    page = await request.app[PLATFORM].accounts.list_users(
        q=q.q, role=q.role, active=q.active, page=q.page, per_page=q.per_page
    )
    return PageOut[UserOut].of(page, UserOut.of)


@api.route(
    "POST",
    USER_PATH + "/active/",
    body=ActiveIn,
    response=UserOut,
    auth="admin",
    tags=TAGS,
    errors=[404],
)
async def set_active(request: web.Request, call: ApiCall[ActiveIn, None]) -> UserOut:
    """Deactivate (blocks login and every token at once) or reactivate an account."""
    user = await request.app[PLATFORM].accounts.set_active(
        call.me, _user_id(request), call.body.active
    )
    return UserOut.of(user)


@api.route(
    "POST",
    USER_PATH + "/role/",
    body=RoleIn,
    response=UserOut,
    auth="admin",
    tags=TAGS,
    errors=[404],
)
async def set_role(request: web.Request, call: ApiCall[RoleIn, None]) -> UserOut:
    """Change a user's role (not your own)."""
    user = await request.app[PLATFORM].accounts.set_role(call.me, _user_id(request), call.body.role)
    return UserOut.of(user)


@api.route("GET", "/api/admin/settings/", response=dict[str, Any], auth="admin", tags=TAGS)
async def settings_in_force(request: web.Request, call: ApiCall[None, None]) -> dict[str, Any]:
    """The settings this node runs with; secrets and URL passwords masked."""
    return request.app[SETTINGS].public_summary()
