"""Helpers the tests import (the fixtures that use them are in tests/conftest.py).

Kept out of conftest.py so that importing them never loads a conftest a second time under
another module name.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy import event

#: Run the suite as if it were another instant (ISO 8601, e.g. 2027-01-01T00:00:00+00:00):
#: the whole process, in-process live servers included, starts its clock there and ticks
#: on (time-machine); browser pages of the e2e tests get the same clock. Used to prove the
#: date-sensitive tests hold on any day (README, "Tests").
FAKE_NOW = os.environ.get("PEERLEARN_TEST_NOW", "")


class ApiDriver:
    """Registers users and calls the API with their tokens (Bearer auth)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._n = 0

    async def register(
        self,
        role: str = "learner",
        username: str | None = None,
        password: str = "s3cret-pass!",
        **extra: Any,
    ) -> dict[str, Any]:
        self._n += 1
        username = username or f"{role}{self._n}_{uuid.uuid4().hex[:6]}"
        body = {
            "username": username,
            "email": f"{username}@example.org",
            "password": password,
            "role": role,
            **extra,
        }
        resp = await self.client.post("/api/auth/register/", json=body)
        assert resp.status == 201, await resp.text()
        login = await self.client.post(
            "/api/auth/login/", json={"username": username, "password": password}
        )
        assert login.status == 200, await login.text()
        data = await login.json()
        return {
            "token": data["token"],
            "user": data["user"],
            "password": password,
            "headers": {"Authorization": f"Bearer {data['token']}"},
        }

    async def call(
        self, method: str, path: str, who: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers.update(who["headers"])
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        try:
            body = await resp.json()
        except Exception:
            body = await resp.text()
        return resp.status, body


class StatementCounter:
    """Counts the SQL statements the platform's engine runs inside a ``with`` block."""

    def __init__(self, platform: Any) -> None:
        self.engine = platform.db.engine.sync_engine
        self.count = 0

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)
