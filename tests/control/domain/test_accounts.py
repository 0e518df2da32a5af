"""AccountService, FollowService and NotificationService without HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from control.errors import Conflict, Forbidden, NotAuthenticated, RateLimited, ValidationFailed
from control.models import UserToken
from control.platform import Platform
from control.security import hash_opaque_token
from control.services.images import image_extension
from control.services.profiles import normalise_tags

PASSWORD = "correct-horse-1"


async def test_register_validates_and_normalises(platform: Platform):
    user = await platform.accounts.register(
        username="Bob.B-1", email="  Bob@Example.ORG ", password=PASSWORD, role="mentor"
    )
    assert user.email == "bob@example.org" and user.role == "mentor" and user.is_active
    assert user.password_hash != PASSWORD
    with pytest.raises(ValidationFailed) as exc:
        await platform.accounts.register(username="x", email="nope", password="1", role="learner")
    assert set(exc.value.fields) == {"username", "email", "password"}
    with pytest.raises(ValidationFailed):
        await platform.accounts.register(
            username="carol", email="c@example.org", password=PASSWORD, role="admin"
        )


async def test_concurrent_duplicate_registration_is_a_conflict(platform: Platform):
    results = await asyncio.gather(
        *(
            platform.accounts.register(
                username="dup", email=f"d{i}@example.org", password=PASSWORD, role="learner"
            )
            for i in range(3)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(
        isinstance(r, Conflict) and r.code == "username_taken"
        for r in results
        if isinstance(r, Exception)
    )


async def test_authenticate_rules(platform: Platform):
    user = await platform.accounts.register(
        username="eve", email="eve@example.org", password=PASSWORD, role="learner"
    )
    assert (
        await platform.accounts.authenticate("EVE@example.org", PASSWORD, ip="1.1.1.1")
    ).id == user.id
    with pytest.raises(NotAuthenticated):
        await platform.accounts.authenticate("Eve", PASSWORD, ip="1.1.1.1")  # usernames are exact
    for _ in range(platform.settings.auth.login_max_failures_per_account):
        with pytest.raises(NotAuthenticated):
            await platform.accounts.authenticate("eve", "wrong", ip="1.1.1.2")
    # Locked for the guessing source, the right password included ...
    with pytest.raises(RateLimited) as exc:
        await platform.accounts.authenticate("eve", PASSWORD, ip="1.1.1.2")
    assert exc.value.retry_after >= 1
    # ... but not for the owner elsewhere.
    assert (await platform.accounts.authenticate("eve", PASSWORD, ip="1.1.1.3")).id == user.id


async def test_expired_and_wrong_purpose_tokens(platform: Platform):
    user = await platform.accounts.register(
        username="frank", email="f@example.org", password=PASSWORD, role="learner"
    )
    token = await platform.accounts._issue_token(user.id, "reset_password", timedelta(minutes=5))
    with pytest.raises(ValidationFailed):
        await platform.accounts.verify_email(token)  # a reset token does not verify e-mail
    async with platform.db.transaction() as s:
        await s.execute(
            update(UserToken)
            .where(UserToken.token_hash == hash_opaque_token(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(ValidationFailed) as exc:
        await platform.accounts.reset_password(token, "new-password-1")
    assert exc.value.code == "invalid_token"


async def test_reset_token_of_deactivated_user_is_refused(platform: Platform):
    admin = await platform.accounts.create_admin("adm", "adm@example.org", PASSWORD)
    user = await platform.accounts.register(
        username="gina", email="g@example.org", password=PASSWORD, role="learner"
    )
    token = await platform.accounts._issue_token(user.id, "reset_password", timedelta(minutes=5))
    await platform.accounts.set_active(admin, user.id, False)
    with pytest.raises(ValidationFailed):
        await platform.accounts.reset_password(token, "new-password-1")
    with pytest.raises(Forbidden):
        await platform.accounts.set_active(user, admin.id, False)  # not an admin


async def test_mentors_and_follows(platform: Platform):
    mentor = await platform.accounts.register(
        username="mentor1", email="m1@example.org", password=PASSWORD, role="mentor"
    )
    learner = await platform.accounts.register(
        username="learner1", email="l1@example.org", password=PASSWORD, role="learner"
    )
    await platform.accounts.update_profile(mentor, skills=["C++", "Data_Science"])
    assert [u.id for u in (await platform.accounts.list_mentors(skill="c++")).items] == [mentor.id]
    assert (await platform.accounts.list_mentors(skill="data%science")).total == 0
    assert (await platform.accounts.list_mentors(q="scien")).total == 1
    assert await platform.follows.follow(learner, mentor.id) is True
    assert await platform.follows.follow(learner, mentor.id) is False
    assert await platform.follows.counts(mentor.id) == (1, 0)
    assert [u.id for u in await platform.follows.followers(mentor.id)] == [learner.id]
    assert await platform.follows.unfollow(learner, mentor.id) is True
    assert await platform.follows.is_following(learner.id, mentor.id) is False


async def test_notification_publish_shape(platform: Platform):
    user = await platform.accounts.register(
        username="notified1", email="n1@example.org", password=PASSWORD, role="learner"
    )
    seen: list[dict[str, Any]] = []

    async def handler(message: dict[str, Any]) -> None:
        seen.append(message)

    unsubscribe = platform.bus.subscribe(f"user:{user.id}", handler)
    try:
        await platform.notifications.notify(
            user.id, title="T" * 300, message="m", type="warning", event="feedback_received"
        )
        assert await platform.notifications.notify_many([], title="t", message="m") == []
        await platform.notifications.mark_read(user.id, None)
    finally:
        unsubscribe()
    assert seen[0]["type"] == "notification" and seen[0]["unread"] == 1
    assert len(seen[0]["notification"]["title"]) == 200  # clipped, not refused
    assert seen[1] == {"type": "unread", "count": 0}


def test_helpers():
    assert image_extension(b"\x89PNG\r\n\x1a\nxx") == "png"
    assert image_extension(b"RIFF1234WEBPVP8 ") == "webp"
    assert image_extension(b"<html>") is None
    assert normalise_tags([" a  b ", "A B", "c"], "skills") == ["a b", "c"]
    with pytest.raises(ValidationFailed):
        normalise_tags(["x"] * 0 + [str(i) for i in range(31)], "skills")


# ---------------------------------------------------------------- ASVS-level account rules


@pytest.mark.parametrize(
    "password", ["password1234", "123456789012", "qwertyuiopas", "eve-eve-eve-eve"]
)
async def test_weak_passwords_are_refused_with_a_hint(platform: Platform, password: str):
    with pytest.raises(ValidationFailed) as exc:
        await platform.accounts.register(
            username="eve", email="eve@example.org", password=password, role="learner"
        )
    assert exc.value.fields["password"].startswith(("too easy to guess", "must be at least"))


async def test_uploaded_photos_lose_their_exif_and_gps(platform: Platform):
    import io

    from PIL import Image

    user = await platform.accounts.register(
        username="snap", email="snap@example.org", password=PASSWORD, role="learner"
    )
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0112] = 6  # orientation: rotated; applied, then dropped
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)  # GPSLatitude
    raw = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(raw, "JPEG", exif=exif.tobytes())
    assert b"CameraMaker" in raw.getvalue()
    user = await platform.accounts.set_profile_image(user, raw.getvalue(), "image/jpeg")
    stored = (platform.accounts.media_dir / user.profile_image).read_bytes()
    assert b"CameraMaker" not in stored and b"Exif" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        assert not img.getexif() and img.size == (20, 40)  # upright, metadata gone


async def test_a_truncated_image_is_refused(platform: Platform):
    user = await platform.accounts.register(
        username="trunc", email="trunc@example.org", password=PASSWORD, role="learner"
    )
    with pytest.raises(ValidationFailed) as exc:
        await platform.accounts.set_profile_image(user, b"\x89PNG\r\n\x1a\n" + b"0" * 50, None)
    assert exc.value.code == "unsupported_image"
