"""Admin user management, the settings view, the permission matrix and `peerlearn create-admin`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.sessions_helpers import admin_of
from tests.support import ApiDriver
from web.cli import main as cli_main


async def test_list_and_search_users(api: Any):
    admin = await admin_of(api)
    mentor = await api.register("mentor", username="grace_mentor")
    learner = await api.register("learner", username="ada_learner")
    status, body = await api.call("GET", "/api/admin/users/", admin)
    assert status == 200 and body["total"] == 3
    assert {u["username"] for u in body["items"]} == {"root", "grace_mentor", "ada_learner"}
    assert "email" in body["items"][0]
    status, body = await api.call("GET", "/api/admin/users/?q=GRACE", admin)
    assert [u["id"] for u in body["items"]] == [mentor["user"]["id"]]
    status, body = await api.call("GET", "/api/admin/users/?q=ada_learner%40example", admin)
    assert [u["id"] for u in body["items"]] == [learner["user"]["id"]]
    status, body = await api.call("GET", "/api/admin/users/?role=admin", admin)
    assert [u["username"] for u in body["items"]] == ["root"]
    await api.call(
        "POST", f"/api/admin/users/{learner['user']['id']}/active/", admin, json={"active": False}
    )
    status, body = await api.call("GET", "/api/admin/users/?active=false", admin)
    assert [u["id"] for u in body["items"]] == [learner["user"]["id"]]
    status, body = await api.call("GET", "/api/admin/users/?per_page=2&page=2", admin)
    assert body["total"] == 3 and len(body["items"]) == 1


@pytest.mark.parametrize("bad", ["role=wizard", "active=perhaps", "page=0", "q=" + "x" * 101])
async def test_user_search_refuses_bad_queries(sqlite_api: Any, bad: str) -> None:
    admin = await admin_of(sqlite_api)
    status, _ = await sqlite_api.call("GET", f"/api/admin/users/?{bad}", admin)
    assert status == 400, bad


async def test_deactivate_and_reactivate(api: Any):
    admin = await admin_of(api)
    learner = await api.register("learner")
    uid = learner["user"]["id"]
    status, body = await api.call(
        "POST", f"/api/admin/users/{uid}/active/", admin, json={"active": False}
    )
    assert status == 200 and body["is_active"] is False
    assert (await api.call("GET", "/api/auth/user/", learner))[0] == 401
    status, body = await api.call(
        "POST", f"/api/admin/users/{uid}/active/", admin, json={"active": True}
    )
    assert status == 200 and body["is_active"] is True
    # Deactivation ended every session: the old token stays dead, a new login works.
    api.client.session.cookie_jar.clear()
    assert (await api.call("GET", "/api/auth/user/", learner))[0] == 401
    status, login = await api.call(
        "POST",
        "/api/auth/login/",
        json={"username": learner["user"]["username"], "password": learner["password"]},
    )
    assert status == 200
    fresh = {"headers": {"Authorization": f"Bearer {login['token']}"}}
    assert (await api.call("GET", "/api/auth/user/", fresh))[0] == 200
    status, body = await api.call(
        "POST", f"/api/admin/users/{admin['user']['id']}/active/", admin, json={"active": False}
    )
    assert status == 403 and body["error"]["code"] == "cannot_change_self"


async def test_change_role(api: Any):
    admin = await admin_of(api)
    mentor = await api.register("mentor")
    uid = mentor["user"]["id"]
    await api.call("PUT", "/api/users/profile/update/", mentor, json={"hourly_rate": 30})
    status, body = await api.call(
        "POST", f"/api/admin/users/{uid}/role/", admin, json={"role": "learner"}
    )
    assert status == 200 and body["role"] == "learner" and body["hourly_rate"] is None
    status, body = await api.call(
        "POST", f"/api/admin/users/{uid}/role/", admin, json={"role": "admin"}
    )
    assert status == 200 and body["role"] == "admin"
    # The promoted account now passes admin checks (the role is read per request).
    assert (await api.call("GET", "/api/admin/users/", mentor))[0] == 200
    status, body = await api.call(
        "POST", f"/api/admin/users/{admin['user']['id']}/role/", admin, json={"role": "learner"}
    )
    assert status == 403 and body["error"]["code"] == "cannot_change_self"


@pytest.mark.parametrize("bad", [{"role": "wizard"}, {}, {"role": "admin", "x": 1}, {"role": None}])
async def test_set_role_refuses_bad_bodies(sqlite_api: Any, bad: dict[str, Any]) -> None:
    admin = await admin_of(sqlite_api)
    uid = (await sqlite_api.register("learner"))["user"]["id"]
    status, _ = await sqlite_api.call("POST", f"/api/admin/users/{uid}/role/", admin, json=bad)
    assert status == 400, bad


@pytest.mark.parametrize(
    "path",
    [
        "/api/admin/users/999999/active/",
        "/api/admin/users/99999999999999999999/active/",
        "/api/admin/users/abc/active/",
        "/api/admin/users/0/role/",
    ],
)
async def test_unknown_ids_404(api: Any, path: str):
    admin = await admin_of(api)
    body = {"active": True} if path.endswith("active/") else {"role": "learner"}
    status, _ = await api.call("POST", path, admin, json=body)
    assert status == 404, path


async def test_settings_in_force_masks_secrets(app_factory: Any, make_settings: Any):
    settings = make_settings(email={"smtp_password": "hunter2-smtp"})
    api = ApiDriver(await app_factory(settings))
    admin = await admin_of(api)
    status, body = await api.call("GET", "/api/admin/settings/", admin)
    assert status == 200
    assert body["server"]["secret_key"] == "********"
    assert body["email"]["smtp_password"] == "********"
    assert body["sessions"]["max_participants"] == 10
    assert settings.secret_key not in str(body) and "hunter2" not in str(body)


@pytest.mark.parametrize("role", [None, "learner", "mentor"])
async def test_admin_endpoints_refuse_non_admins(api: Any, role: str | None):
    who = await api.register(role) if role else None
    api.client.session.cookie_jar.clear()
    target = who["user"]["id"] if who else 1
    expected = 403 if who else 401
    calls = [
        ("GET", "/api/admin/users/", None),
        ("GET", "/api/admin/settings/", None),
        ("POST", f"/api/admin/users/{target}/active/", {"active": False}),
        ("POST", f"/api/admin/users/{target}/role/", {"role": "admin"}),
    ]
    for method, path, body in calls:
        status, data = await api.call(method, path, who, json=body)
        assert status == expected, (method, path, data)


# ---------------------------------------------------------------- CLI


def test_cli_create_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("PEERLEARN_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.delenv("PEERLEARN_CONFIG", raising=False)
    args = ["create-admin", "boss", "Boss@Example.org", "--password", "cli-admin-pass"]
    monkeypatch.setenv("PEERLEARN_SERVER__MODE", "production")
    monkeypatch.setenv("PEERLEARN_SERVER__SECRET_KEY", "s" * 40)
    assert cli_main(args) == 1  # production, not migrated yet: refused with a clear message
    assert "peerlearn migrate" in capsys.readouterr().err
    monkeypatch.delenv("PEERLEARN_SERVER__MODE")
    assert cli_main(args) == 0  # development migrates first, as `serve` does
    assert "admin 'boss' created" in capsys.readouterr().out
    assert cli_main(args) == 1  # duplicate
    assert "username" in capsys.readouterr().err
    assert cli_main(["create-admin", "x!", "bad", "--password", "short"]) == 1
    assert "password" in capsys.readouterr().err

    import asyncio

    from config.settings import load_settings
    from control.platform import Platform

    async def check() -> None:
        platform = Platform(load_settings())
        try:
            user = await platform.accounts.authenticate(
                "boss@example.org", "cli-admin-pass", ip="127.0.0.1"
            )
            assert user.role == "admin" and user.email_verified
        finally:
            await platform.close()

    asyncio.run(check())
