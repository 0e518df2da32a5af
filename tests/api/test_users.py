"""Users API: own profile, avatar upload, public profiles, mentor directory, follows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.samples import image_bytes
from tests.support import ApiDriver
from web.keys import PLATFORM

PNG, JPEG, GIF, WEBP = (image_bytes(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP"))


def image_form(data: bytes, field: str = "image", ctype: str = "image/png") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename="pic.bin", content_type=ctype)
    return form


# ---------------------------------------------------------------- own profile


async def test_own_profile_and_update(api: Any):
    mentor = await api.register("mentor")
    status, body = await api.call("GET", "/api/users/profile/", mentor)
    assert status == 200
    assert body["username"] == mentor["user"]["username"]
    assert body["followers_count"] == 0 and body["following_count"] == 0
    update = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "bio": "Engines.",
        "skills": ["  Python ", "python", "Machine   Learning", "Go"],
        "interests": ["Math"],
        "hourly_rate": 42.5,
    }
    status, body = await api.call("PUT", "/api/users/profile/update/", mentor, json=update)
    assert status == 200, body
    assert body["display_name"] == "Ada Lovelace"
    assert body["skills"] == ["Python", "Machine Learning", "Go"]  # trimmed, de-duplicated
    assert body["interests"] == ["Math"]
    assert body["hourly_rate"] == 42.5
    # Partial update keeps the rest; null clears the rate.
    status, body = await api.call(
        "PUT", "/api/users/profile/update/", mentor, json={"hourly_rate": None}
    )
    assert status == 200 and body["hourly_rate"] is None and body["bio"] == "Engines."


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"bio": "x" * 5001}, "bio"),
        ({"skills": [f"s{i}" for i in range(31)]}, "skills"),
        ({"skills": ["x" * 51]}, "skills"),
        ({"skills": ["   "]}, "skills"),
        ({"skills": "python"}, "skills"),
        ({"interests": [1, 2]}, "interests.0"),
        ({"first_name": "x" * 101}, "first_name"),
        ({"hourly_rate": -1}, "hourly_rate"),
        ({"hourly_rate": "lots"}, "hourly_rate"),
        ({"email": "new@example.org"}, "email"),
        ({"role": "admin"}, "role"),
    ],
)
async def test_profile_update_validation(sqlite_api: Any, update: dict[str, Any], field: str):
    mentor = await sqlite_api.register("mentor")
    status, body = await sqlite_api.call("PUT", "/api/users/profile/update/", mentor, json=update)
    assert status == 400, body
    assert field in body["error"]["fields"], body


async def test_learner_cannot_set_hourly_rate(api: Any):
    learner = await api.register("learner")
    status, body = await api.call(
        "PUT", "/api/users/profile/update/", learner, json={"hourly_rate": 10}
    )
    assert status == 400
    assert "hourly_rate" in body["error"]["fields"]
    status, _ = await api.call("PUT", "/api/users/profile/update/", learner, json={"bio": "hi"})
    assert status == 200


async def test_profile_anonymous(api: Any):
    for method, path in (
        ("GET", "/api/users/profile/"),
        ("PUT", "/api/users/profile/update/"),
        ("POST", "/api/users/profile/image/"),
        ("POST", "/api/users/follow/"),
        ("GET", "/api/users/followers/"),
        ("GET", "/api/users/following/"),
    ):
        status, body = await api.call(method, path, json={})
        assert status == 401, (method, path)
        assert body["error"]["code"] == "not_authenticated"


# ---------------------------------------------------------------- avatar


async def test_profile_image_upload_replace_and_serve(api: Any, settings: Any):
    user = await api.register("learner")
    status, body = await api.call("POST", "/api/users/profile/image/", user, data=image_form(PNG))
    assert status == 200, body
    first = body["profile_image"]
    assert first.startswith("/media/avatars/") and first.endswith(".png")
    served = await api.client.get(first)
    assert served.status == 200
    with Image.open(io.BytesIO(await served.read())) as shown:  # re-encoded, same picture
        assert shown.format == "PNG" and shown.size == (4, 4)
    first_file = Path(settings.server.data_dir) / "media" / first.removeprefix("/media/")
    assert first_file.exists()

    for data, ext in ((JPEG, "jpg"), (GIF, "gif"), (WEBP, "webp")):
        # The declared type is ignored: the bytes decide.
        status, body = await api.call(
            "POST", "/api/users/profile/image/", user, data=image_form(data, ctype="text/plain")
        )
        assert status == 200, body
        assert body["profile_image"].endswith("." + ext)
    assert not first_file.exists()  # old avatars are removed
    avatars = list((Path(settings.server.data_dir) / "media" / "avatars").iterdir())
    assert len(avatars) == 1


async def test_profile_image_rejections(app_factory: Any, make_settings: Any):
    client = await app_factory(make_settings(uploads={"max_image_bytes": 2048}))
    api = ApiDriver(client)
    user = await api.register("learner")
    status, body = await api.call(
        "POST", "/api/users/profile/image/", user, data=image_form(b"<svg onload=alert(1)>")
    )
    assert status == 400 and body["error"]["code"] == "unsupported_image"
    status, body = await api.call(
        "POST", "/api/users/profile/image/", user, data=image_form(PNG + b"\x00" * 4096)
    )
    assert status == 413 and body["error"]["code"] == "image_too_large"
    status, body = await api.call(
        "POST", "/api/users/profile/image/", user, data=image_form(PNG, field="avatar")
    )
    assert status == 400 and body["error"]["code"] == "image_missing"
    status, body = await api.call("POST", "/api/users/profile/image/", user, json={"image": "x"})
    assert status == 400 and body["error"]["code"] == "expected_multipart"
    status, body = await api.call("POST", "/api/users/profile/image/", user, data=image_form(b""))
    assert status == 400


# ---------------------------------------------------------------- public profiles and mentors


async def test_public_profile(api: Any):
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    name = mentor["user"]["username"]
    status, body = await api.call("GET", f"/api/users/{name}/")
    assert status == 200
    assert body["username"] == name and body["is_following"] is False
    assert "email" not in body and "interests" not in body
    await api.call("POST", "/api/users/follow/", learner, json={"mentor_id": mentor["user"]["id"]})
    status, body = await api.call("GET", f"/api/users/{name}/", learner)
    assert body["is_following"] is True and body["followers_count"] == 1
    status, body = await api.call("GET", "/api/users/no-such-user/")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _ = await api.call("GET", "/api/users/" + "x" * 300 + "/")
    assert status == 404


async def test_deactivated_profile_hidden(api: Any):
    mentor = await api.register("mentor")
    platform = api.client.server.app[PLATFORM]
    admin = await platform.accounts.create_admin("boss", "boss@example.org", "s3cret-pass!")
    await platform.accounts.set_active(admin, mentor["user"]["id"], False)
    status, _ = await api.call("GET", f"/api/users/{mentor['user']['username']}/")
    assert status == 404


async def test_mentor_directory_filters_and_pages(api: Any):
    m1 = await api.register("mentor", first_name="Grace")
    m2 = await api.register("mentor")
    await api.register("learner")
    await api.call("PUT", "/api/users/profile/update/", m1, json={"skills": ["Python", "Go"]})
    await api.call("PUT", "/api/users/profile/update/", m2, json={"skills": ["Google Ads"]})
    status, body = await api.call("GET", "/api/users/mentors/")
    assert status == 200
    assert body["total"] == 2 and all(u["role"] == "mentor" for u in body["items"])
    status, body = await api.call("GET", "/api/users/mentors/?skill=go")
    assert [u["id"] for u in body["items"]] == [m1["user"]["id"]]  # "Go" ≠ "Google Ads"
    status, body = await api.call("GET", "/api/users/mentors/?skill=google%20ads")
    assert [u["id"] for u in body["items"]] == [m2["user"]["id"]]
    status, body = await api.call("GET", "/api/users/mentors/?q=grace")
    assert [u["id"] for u in body["items"]] == [m1["user"]["id"]]
    status, body = await api.call("GET", "/api/users/mentors/?per_page=1&page=2")
    assert body["total"] == 2 and len(body["items"]) == 1 and body["pages"] == 2
    assert body["items"][0]["id"] == m2["user"]["id"]
    status, body = await api.call("GET", "/api/users/mentors/?skill=100%25")
    assert status == 200 and body["total"] == 0  # LIKE wildcards are escaped
    for bad in ("page=0", "per_page=1000", "page=abc", "skill=" + "x" * 51, "nope=1"):
        status, body = await api.call("GET", f"/api/users/mentors/?{bad}")
        assert status == 400, bad


# ---------------------------------------------------------------- follows


async def test_follow_unfollow_idempotent_and_lists(api: Any):
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    mid = mentor["user"]["id"]
    for expected_changed in (True, False):
        status, body = await api.call(
            "POST", "/api/users/follow/", learner, json={"mentor_id": mid, "action": "follow"}
        )
        assert status == 200, body
        assert body == {
            "mentor_id": mid,
            "following": True,
            "changed": expected_changed,
            "followers_count": 1,
        }
    status, body = await api.call("GET", "/api/users/following/", learner)
    assert [u["id"] for u in body["items"]] == [mid] and body["total"] == 1
    status, body = await api.call("GET", "/api/users/followers/", mentor)
    assert [u["id"] for u in body["items"]] == [learner["user"]["id"]]
    status, body = await api.call("GET", "/api/users/profile/", learner)
    assert body["following_count"] == 1
    # The mentor heard about it.
    status, body = await api.call("GET", "/api/notifications/", mentor)
    assert body["items"][0]["event"] == "new_follower"
    for expected_changed in (True, False):
        status, body = await api.call(
            "POST", "/api/users/follow/", learner, json={"mentor_id": mid, "action": "unfollow"}
        )
        assert status == 200
        assert body["changed"] is expected_changed and body["followers_count"] == 0
    status, body = await api.call("GET", "/api/users/following/", learner)
    assert body["items"] == []


async def test_follow_rules(api: Any):
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    other = await api.register("learner")
    status, body = await api.call(
        "POST", "/api/users/follow/", mentor, json={"mentor_id": mentor["user"]["id"]}
    )
    assert status == 400 and body["error"]["code"] == "cannot_follow_self"
    status, body = await api.call(
        "POST", "/api/users/follow/", learner, json={"mentor_id": other["user"]["id"]}
    )
    assert status == 400 and body["error"]["code"] == "not_a_mentor"
    status, body = await api.call("POST", "/api/users/follow/", learner, json={"mentor_id": 987654})
    assert status == 404
    status, body = await api.call(
        "POST", "/api/users/follow/", learner, json={"mentor_id": 987654, "action": "unfollow"}
    )
    assert status == 404
    for bad in (
        {"mentor_id": "x"},
        {"mentor_id": 0},
        {"mentor_id": 2**70},
        {},
        {"mentor_id": 1, "action": "block"},
        {"mentor_id": 1, "extra": True},
    ):
        status, body = await api.call("POST", "/api/users/follow/", learner, json=bad)
        assert status == 400, bad
    # A mentor may follow another mentor.
    mentor2 = await api.register("mentor")
    status, _ = await api.call(
        "POST", "/api/users/follow/", mentor2, json={"mentor_id": mentor["user"]["id"]}
    )
    assert status == 200
