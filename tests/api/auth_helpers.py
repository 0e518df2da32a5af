"""Helpers shared by the login, hardening and ASVS API tests."""

from __future__ import annotations

import email
import re
import uuid
from email import policy
from pathlib import Path
from typing import Any

from tests.support import ApiDriver
from web.keys import PLATFORM

PASSWORD = "s3cret-pass!"
NEW_PASSWORD = "tangerine-orbit-cellar"
PUBLIC = "https://learn.example.org"


def production(make_settings: Any, **extra: Any) -> Any:
    sections: dict[str, Any] = {
        "server": {
            "mode": "production",
            "secret_key": "Zq8" + uuid.uuid4().hex + "x7Lm",
            "public_url": PUBLIC,
            "cookie_secure": True,
        },
    }
    for key, values in extra.items():
        sections.setdefault(key, {}).update(values)
    return make_settings(**sections)


def link_token(tmp_path: Path, to: str, path: str) -> str:
    """The token of the newest mailed link to ``path`` sent to ``to`` (file mail backend)."""
    for item in sorted((tmp_path / "mail").glob("*.eml"), reverse=True):
        message = email.message_from_bytes(item.read_bytes(), policy=policy.default)
        if message["To"] != to:
            continue
        body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]  # our mails always have a text part
        match = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_\-]+)", body)
        if match:
            return match.group(1)
    raise AssertionError(f"no mail to {to} with {path}")


async def login(api: ApiDriver, who: dict[str, Any], password: str | None = None) -> dict:
    status, body = await api.call(
        "POST",
        "/api/auth/login/",
        json={"username": who["user"]["username"], "password": password or who["password"]},
    )
    assert status == 200, body
    return {"token": body["token"], "headers": {"Authorization": f"Bearer {body['token']}"}}


async def me_status(api: ApiDriver, headers: dict[str, str]) -> int:
    api.client.session.cookie_jar.clear()
    status, _ = await api.call("GET", "/api/auth/user/", headers=headers)
    return status


async def seen_ip(api: ApiDriver, headers: dict[str, str]) -> str:
    """The address a login is recorded from (its device row)."""
    name = f"ip_{uuid.uuid4().hex[:8]}"
    await api.register("learner", username=name, password=PASSWORD)
    api.client.session.cookie_jar.clear()
    status, body = await api.call(
        "POST", "/api/auth/login/", json={"username": name, "password": PASSWORD}, headers=headers
    )
    assert status == 200, body
    platform = api.client.app[PLATFORM]
    rows = await platform.accounts.logins.for_user(body["user"]["id"])
    return rows[0].ip
