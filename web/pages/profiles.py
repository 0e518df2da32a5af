"""Profiles: edit your own, public mentor portfolios, follow/unfollow, follower lists."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.errors import DomainError, NotFound, ValidationFailed
from control.models import User
from control.timezones import choices as timezone_choices
from web.keys import SETTINGS
from web.pages.auth import base_url
from web.pages.common import (
    field_errors,
    form_data,
    platform_of,
    redirect,
    require_user,
    safe_next,
    split_list,
)
from web.pages.render import render
from web.security import current_user
from web.uploads import read_image

routes = web.RouteTableDef()


def profile_values(user: User) -> dict[str, str]:
    return {
        "first_name": user.first_name or "",
        "last_name": user.last_name or "",
        "bio": user.bio or "",
        "skills": ", ".join(user.skills or []),
        "interests": ", ".join(user.interests or []),
        "hourly_rate": "" if user.hourly_rate is None else f"{user.hourly_rate:.2f}",
        "timezone": user.timezone,
    }


async def _own_context(request: web.Request, user: User) -> dict[str, Any]:
    followers, following = await platform_of(request).follows.counts(user.id)
    return {
        "followers_count": followers,
        "following_count": following,
        "me": user,
        "max_image_bytes": request.app[SETTINGS].uploads.max_image_bytes,
        "zones": timezone_choices(),
    }


@routes.view("/profile/")
class OwnProfileView(web.View):
    async def get(self) -> web.StreamResponse:
        user = require_user(self.request)
        ctx = await _own_context(self.request, user)
        return await render(
            self.request, "profile/edit.html", {**ctx, "values": profile_values(user), "errors": {}}
        )

    async def post(self) -> web.StreamResponse:
        request = self.request
        user = require_user(request)
        data = await form_data(request)
        values = {k: data.get(k, "").strip() for k in profile_values(user)}
        changes: dict[str, Any] = {
            "first_name": values["first_name"],
            "last_name": values["last_name"],
            "bio": values["bio"],
            "skills": split_list(values["skills"]),
            "interests": split_list(values["interests"]),
        }
        if user.is_mentor:
            changes["hourly_rate"] = values["hourly_rate"] or None
        if values["timezone"]:  # a form without the field keeps the zone
            changes["timezone"] = values["timezone"]
        errors: dict[str, str] = {}
        message = ""
        try:
            await platform_of(request).accounts.update_profile(user, **changes)
        except ValidationFailed as exc:
            errors = field_errors(exc.fields)
            message = exc.message if not errors else ""
        else:
            raise redirect("/profile/", ("success", "Profile saved."))
        ctx = await _own_context(request, user)
        return await render(
            request,
            "profile/edit.html",
            {**ctx, "values": values, "errors": errors, "message": message},
            status=400,
        )


@routes.post("/profile/image/")
async def upload_image(request: web.Request) -> web.StreamResponse:
    """Multipart upload, from the plain form or the page's script (which sends the CSRF
    header); always redirects back to the profile with the outcome as a flash message."""
    user = require_user(request)
    limit = request.app[SETTINGS].uploads.max_image_bytes
    try:
        content, content_type = await read_image(request, limit)
        if not content:  # the form was sent with no file chosen
            raise ValidationFailed("no image uploaded", code="image_missing")
        await platform_of(request).accounts.set_profile_image(user, content, content_type)
    except DomainError as exc:
        if exc.code == "image_missing":
            raise redirect("/profile/", ("error", "Choose an image file to upload.")) from None
        detail = exc.fields.get("image") if exc.fields else None
        raise redirect(
            "/profile/", ("error", f"Image not saved: {detail or exc.message}.")
        ) from None
    raise redirect("/profile/", ("success", "Profile picture updated."))


@routes.post("/profile/verify-email/")
async def resend_verification(request: web.Request) -> web.StreamResponse:
    """Send the e-mail verification link again (same limit as the API: 5 an hour)."""
    user = require_user(request)
    platform = platform_of(request)
    if await platform.limiter.hit(f"verify-mail:{user.id}", 5, 3600):
        raise redirect("/profile/", ("error", "Too many verification e-mails; try again later."))
    try:
        await platform.accounts.send_verification(user, base_url(request))
    except DomainError as exc:
        raise redirect("/profile/", ("info", exc.message)) from None
    raise redirect("/profile/", ("success", f"We sent a verification link to {user.email}."))


async def _public_user(request: web.Request) -> User:
    person = await platform_of(request).accounts.get_by_username(request.match_info["username"])
    if person is None or not person.is_active:
        raise NotFound("no such user")
    return person


@routes.get("/profile/{username}/")
async def public_profile(request: web.Request) -> web.StreamResponse:
    platform = platform_of(request)
    person = await _public_user(request)
    viewer: User | None = current_user(request)
    followers, following = await platform.follows.counts(person.id)
    ctx: dict[str, Any] = {
        "person": person,
        "followers_count": followers,
        "following_count": following,
        "is_self": viewer and viewer.id == person.id,
    }
    if person.is_mentor:
        rating, count = await platform.feedback.mentor_rating(person.id)
        sessions = [s for s in await platform.sessions.for_mentor(person.id) if s.is_open]
        ctx.update(
            rating=rating,
            rating_count=count,
            sessions=sessions,
            reviews=await platform.feedback.for_mentor(person.id, limit=12),
            following=viewer is not None
            and await platform.follows.is_following(viewer.id, person.id),
            can_follow=viewer is not None and viewer.id != person.id,
        )
    return await render(request, "profile/public.html", ctx)


@routes.post("/profile/{username}/follow/")
async def follow(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    person = await _public_user(request)
    data = await form_data(request)
    back = safe_next(data.get("next"), f"/profile/{person.username}/")
    follows = platform_of(request).follows
    try:
        if data.get("action") == "unfollow":
            await follows.unfollow(user, person.id)
            flash = ("info", f"You no longer follow {person.display_name}.")
        else:
            await follows.follow(user, person.id)
            flash = (
                "success",
                f"You follow {person.display_name}: their new sessions will "
                "show up in your notifications.",
            )
    except DomainError as exc:
        raise redirect(back, ("error", exc.message)) from None
    raise redirect(back, flash)


async def _people(request: web.Request, which: str) -> web.StreamResponse:
    person = await _public_user(request)
    follows = platform_of(request).follows
    people = (
        await follows.followers(person.id)
        if which == "followers"
        else await follows.following(person.id)
    )
    return await render(
        request, "profile/people.html", {"person": person, "which": which, "people": people}
    )


@routes.get("/profile/{username}/followers/")
async def followers(request: web.Request) -> web.StreamResponse:
    return await _people(request, "followers")


@routes.get("/profile/{username}/following/")
async def following(request: web.Request) -> web.StreamResponse:
    return await _people(request, "following")
