"""Property-based API testing with schemathesis against the app's own /api/openapi.json.

The app runs on a real port in a background thread (schemathesis' client is synchronous);
each operation gets a few generated requests, authenticated as a registered mentor, and every
response must be non-5xx and conform to the documented schema.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.settings import Settings

MAX_EXAMPLES = 6


class ServerThread:
    """The app on 127.0.0.1:<free port> in its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from web.app import create_app

        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.runner = web.AppRunner(create_app(self.settings, background=False))
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(30), "server did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.runner is not None
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def base_url(make_settings: Any) -> Iterator[str]:
    settings = make_settings(auth={"login_max_attempts_per_ip": 100_000})
    with ServerThread(settings) as url:
        yield url


def _register(base: str, role: str) -> dict[str, Any]:
    name = f"{role}_{uuid.uuid4().hex[:8]}"
    resp = requests.post(
        f"{base}/api/auth/register/",
        json={
            "username": name,
            "email": f"{name}@example.org",
            "password": "s3cret-pass!",
            "role": role,
        },
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_api_conforms_to_its_openapi_document(base_url: str) -> None:
    mentor = _register(base_url, "mentor")
    headers = {"Authorization": f"Bearer {mentor['token']}"}
    # Some data so that list/detail operations return real objects, not just empty lists.
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    created = requests.post(
        f"{base_url}/api/sessions/create/",
        headers=headers,
        timeout=10,
        json={
            "title": "Schema walk",
            "description": "d",
            "schedule": tomorrow,
            "duration": 60,
            "max_participants": 3,
            "skills_required": ["Python"],
            "price": 5,
        },
    )
    assert created.status_code == 201, created.text
    learner = _register(base_url, "learner")
    booked = requests.post(
        f"{base_url}/api/sessions/{created.json()['id']}/book/",
        timeout=10,
        headers={"Authorization": f"Bearer {learner['token']}"},
    )
    assert booked.status_code == 201, booked.text

    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=base_url,
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance],
                timeout=15,
            )
            statuses.append(response.status_code)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert operations > 30
    assert len(statuses) > 2 * operations  # generation really ran
    print(
        f"schemathesis: {operations} operations, {len(statuses)} calls, "
        f"{sorted(set(statuses))} statuses"
    )
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 120
