"""REST endpoints: own profile, avatar upload, public profiles, mentor directory, follows."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.errors import NotFound
from control.ids import MAX_DB_ID
from control.limits import USERNAME_MAX
from control.models import User
from control.timezones import DEFAULT_ZONE
from web.api.registry import ApiCall, ApiRegistry
from web.api.schemas import PageOut, UserOut, UserPublic
from web.keys import PLATFORM, SETTINGS
from web.uploads import read_image

api = ApiRegistry()
TAGS = ["users"]

# Coarse caps; the service trims, de-duplicates and gives precise per-field messages.
Tag = Annotated[str, Field(max_length=200)]


class ProfileUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    bio: str | None = Field(default=None, max_length=5000)
    skills: list[Tag] | None = Field(default=None, max_length=100)
    interests: list[Tag] | None = Field(default=None, max_length=100)
    hourly_rate: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone (e.g. Europe/Berlin) pages and notifications use; "
        "null sets UTC",
    )


class ProfileOut(UserOut):
    followers_count: int
    following_count: int


class PublicProfileOut(UserPublic):
    followers_count: int
    following_count: int
    is_following: bool


class MentorsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: str | None = Field(default=None, max_length=50)
    q: str | None = Field(default=None, max_length=100)
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)


class FollowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mentor_id: int = Field(ge=1, le=MAX_DB_ID)
    action: Literal["follow", "unfollow"] = "follow"


class FollowOut(BaseModel):
    mentor_id: int
    following: bool
    changed: bool
    followers_count: int


class UserListOut(BaseModel):
    items: list[UserPublic]
    total: int


async def _profile(request: web.Request, user: User) -> ProfileOut:
    followers, following = await request.app[PLATFORM].follows.counts(user.id)
    return ProfileOut(
        **UserOut.of(user).model_dump(), followers_count=followers, following_count=following
    )


@api.route("GET", "/api/users/profile/", response=ProfileOut, auth="user", tags=TAGS)
async def own_profile(request: web.Request, call: ApiCall[None, None]) -> ProfileOut:
    """The signed-in user's full profile with follower/following counts."""
    return await _profile(request, call.me)


@api.route(
    "PUT",
    "/api/users/profile/update/",
    body=ProfileUpdateIn,
    response=ProfileOut,
    auth="user",
    tags=TAGS,
)
async def update_profile(request: web.Request, call: ApiCall[ProfileUpdateIn, None]) -> ProfileOut:
    """Change names, bio, skills, interests, the time zone and (mentors only) the hourly
    rate. An unknown time zone is a 400 naming the ``timezone`` field."""
    changes = call.body.model_dump(exclude_unset=True)
    if "timezone" in changes and changes["timezone"] is None:
        changes["timezone"] = DEFAULT_ZONE
    user = await request.app[PLATFORM].accounts.update_profile(call.me, **changes)
    return await _profile(request, user)


@api.route(
    "POST",
    "/api/users/profile/image/",
    response=ProfileOut,
    auth="user",
    tags=TAGS,
    errors=[413],
    request_content_type="multipart/form-data",
    request_schema={
        "type": "object",
        "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary"}},
    },
)
async def upload_image(request: web.Request, call: ApiCall[None, None]) -> ProfileOut:
    """Upload a profile picture (PNG, JPEG, GIF or WEBP) as multipart field ``image``."""
    limit = request.app[SETTINGS].uploads.max_image_bytes
    data, content_type = await read_image(request, limit)
    user = await request.app[PLATFORM].accounts.set_profile_image(call.me, data, content_type)
    return await _profile(request, user)


@api.route(
    "GET", "/api/users/mentors/", query=MentorsQuery, response=PageOut[UserPublic], tags=TAGS
)
async def mentors(request: web.Request, call: ApiCall[None, MentorsQuery]) -> PageOut[UserPublic]:
    """Active mentors, filterable by skill (whole entry) and free text."""
    q = call.query
    page = await request.app[PLATFORM].accounts.list_mentors(
        skill=q.skill, q=q.q, page=q.page, per_page=q.per_page
    )
    return PageOut[UserPublic].of(page, UserPublic.of)


@api.route(
    "POST",
    "/api/users/follow/",
    body=FollowIn,
    response=FollowOut,
    auth="user",
    tags=TAGS,
    errors=[404],
)
async def follow(request: web.Request, call: ApiCall[FollowIn, None]) -> FollowOut:
    """Follow or unfollow a mentor (idempotent)."""
    follows = request.app[PLATFORM].follows
    body = call.body
    if body.action == "follow":
        changed = await follows.follow(call.me, body.mentor_id)
    else:
        changed = await follows.unfollow(call.me, body.mentor_id)
    followers, _ = await follows.counts(body.mentor_id)
    return FollowOut(
        mentor_id=body.mentor_id,
        following=body.action == "follow",
        changed=changed,
        followers_count=followers,
    )


@api.route("GET", "/api/users/followers/", response=UserListOut, auth="user", tags=TAGS)
async def my_followers(request: web.Request, call: ApiCall[None, None]) -> UserListOut:
    """Who follows me."""
    users = await request.app[PLATFORM].follows.followers(call.me.id)
    return UserListOut(items=[UserPublic.of(u) for u in users], total=len(users))


@api.route("GET", "/api/users/following/", response=UserListOut, auth="user", tags=TAGS)
async def my_following(request: web.Request, call: ApiCall[None, None]) -> UserListOut:
    """The mentors I follow."""
    users = await request.app[PLATFORM].follows.following(call.me.id)
    return UserListOut(items=[UserPublic.of(u) for u in users], total=len(users))


# Registered last so the fixed paths above win over the {username} pattern.
@api.route("GET", "/api/users/{username}/", response=PublicProfileOut, tags=TAGS, errors=[404])
async def public_profile(request: web.Request, call: ApiCall[None, None]) -> PublicProfileOut:
    """Anyone's public profile, with whether the viewer follows them."""
    platform = request.app[PLATFORM]
    name = request.match_info["username"]
    user = await platform.accounts.get_by_username(name) if len(name) <= USERNAME_MAX else None
    viewer = call.user
    if user is None or (not user.is_active and not (viewer and viewer.is_admin)):
        raise NotFound("no such user")
    followers, following = await platform.follows.counts(user.id)
    is_following = viewer is not None and await platform.follows.is_following(viewer.id, user.id)
    return PublicProfileOut(
        **UserPublic.of(user).model_dump(),
        followers_count=followers,
        following_count=following,
        is_following=is_following,
    )
