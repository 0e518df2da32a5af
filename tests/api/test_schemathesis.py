"""Property-based API testing with schemathesis against the app's own /api/openapi.json.

The app runs on a real port in a background thread (schemathesis' client is synchronous).
Every operation of the document is exercised:

- as the actor it is meant for (a learner, the session's mentor, or an admin), so requests get
  past the permission checks instead of stopping at 401/403;
- half of the generated cases with *real* path ids (a fresh session, booking or user made for
  that operation), so handlers run on real objects instead of answering 404.

Every response must be non-5xx, carry a documented status code and content type, and match its
documented schema; every operation without a request body (or with a documented example body)
must succeed at least once.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.settings import Settings
from web.keys import PLATFORM

MAX_EXAMPLES = 16
PASSWORD = "s3cret-pass!"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations that act on someone else's objects; everything else runs as a learner.
MENTOR_OPERATIONS = frozenset(
    {
        "create_session",
        "start_session",
        "end_session",
        "cancel_session",
        "session_bookings",
        "pending_bookings",
        "mark_paid",
        "room_stats",
    }
)
# Operations that end their caller's login sessions: each runs as a user of its own, so the
# shared actors stay signed in for the operations after it.
SELF_ENDING_OPERATIONS = frozenset({"logout", "logout_everywhere", "password_change"})
# Operations that cannot succeed from a REST call alone (documented 4xx are still checked).
NO_SUCCESS_EXPECTED = frozenset(
    {
        "room_stats",  # needs a live SFU room with people in it
    }
)


class ServerThread:
    """The app on 127.0.0.1:<free port> in its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from web.app import create_app

        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.app = create_app(self.settings, background=False)
            self.runner = web.AppRunner(self.app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (e.g. to create an admin)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.runner is not None
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Actor:
    id: int
    username: str
    headers: dict[str, str]


@dataclass
class World:
    """Users of the run, and helpers that make fresh objects through the API."""

    base: str
    learner: Actor
    mentor: Actor
    admin: Actor
    made: list[str] = field(default_factory=list)

    def post(self, path: str, who: Actor, body: Any = None, expect: int = 200) -> Any:
        resp = requests.post(f"{self.base}{path}", json=body, headers=who.headers, timeout=15)
        assert resp.status_code == expect, (path, resp.status_code, resp.text)
        return resp.json()

    def session(self, *, price: int = 0) -> str:
        schedule = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
        body = {
            "title": "Schema walk",
            "description": "generated",
            "schedule": schedule,
            "duration": 60,
            "max_participants": 3,
            "skills_required": ["Python"],
            "price": price,
        }
        return str(self.post("/api/sessions/create/", self.mentor, body, 201)["id"])

    def booking(self, session_id: str) -> int:
        return int(self.post(f"/api/sessions/{session_id}/book/", self.learner, expect=201)["id"])

    def user(self) -> int:
        return register(self.base, "learner").id

    def path_ids(self, operation_id: str) -> dict[str, Any]:
        """Real ids for one operation's path, in the state the operation needs."""
        if operation_id == "book_session":
            return {"id": self.session()}
        if operation_id == "end_device":  # another device of the learner, never its own
            login(self.base, self.learner.username)
            devices = requests.get(
                f"{self.base}/api/auth/sessions/", headers=self.learner.headers, timeout=15
            ).json()
            return {"sid": next(d["id"] for d in devices if not d["current"])}
        if operation_id == "mark_paid":
            return {"booking_id": self.booking(self.session(price=5))}
        session_id = self.session()
        booking_id = self.booking(session_id)
        if operation_id in ("end_session", "submit_feedback", "room_stats"):
            self.post(f"/api/sessions/{session_id}/start/", self.mentor)
        return {
            "id": session_id,
            "session_id": session_id,
            "booking_id": booking_id,
            "user_id": self.user(),  # admins may deactivate it: never one of the actors
            "username": self.mentor.username,
        }


def register(base: str, role: str) -> Actor:
    name = f"{role}_{uuid.uuid4().hex[:8]}"
    resp = requests.post(
        f"{base}/api/auth/register/",
        json={"username": name, "email": f"{name}@example.org", "password": PASSWORD, "role": role},
        timeout=15,
    )
    assert resp.status_code == 201, resp.text
    data = resp.json()
    return Actor(data["user"]["id"], name, {"Authorization": f"Bearer {data['token']}"})


def login(base: str, username: str) -> Actor:
    resp = requests.post(
        f"{base}/api/auth/login/", json={"username": username, "password": PASSWORD}, timeout=15
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    return Actor(data["user"]["id"], username, {"Authorization": f"Bearer {data['token']}"})


@pytest.fixture
def server(make_settings: Any) -> Iterator[ServerThread]:
    settings = make_settings(
        auth={
            "login_max_attempts_per_ip": 100_000,
            "register_max_per_ip_per_hour": 100_000,
            "mail_max_per_ip_per_hour": 100_000,
        },
        # the walk starts a session for every operation that needs a live one
        sessions={"max_live_per_mentor": 100},
    )
    with ServerThread(settings) as running:
        yield running


@pytest.fixture
def world(server: ServerThread) -> World:
    assert server.app is not None
    accounts = server.app[PLATFORM].accounts
    server.run(accounts.create_admin("schema_admin", "schema_admin@example.org", PASSWORD))
    return World(
        base=server.url,
        learner=register(server.url, "learner"),
        mentor=register(server.url, "mentor"),
        admin=login(server.url, "schema_admin"),
    )


def _actor(world: World, operation: Any) -> Actor:
    if operation.definition.raw.get("operationId") in SELF_ENDING_OPERATIONS:
        return register(world.base, "learner")
    if operation.path.startswith("/api/admin/"):
        return world.admin
    if operation.definition.raw.get("operationId") in MENTOR_OPERATIONS:
        return world.mentor
    return world.learner


def _valid_request_known(raw: dict[str, Any], schema: Any) -> bool:
    """No body to get right, or the documented body has an example (the explicit phase)."""
    if "requestBody" not in raw:
        return True
    for media in raw["requestBody"]["content"].values():
        body = media.get("schema", {})
        if "$ref" in body:
            body = schema.raw_schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        if body.get("examples") or media.get("example") or media.get("examples"):
            return True
    return False


def _exercise(
    operation: Any, world: World, actor: Actor, ids: dict[str, Any], seen: list[int]
) -> None:
    """Run the generated cases of one operation; raises on the first failing check."""
    use_real_ids = itertools.cycle((True, False))

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
        if ids and next(use_real_ids):
            case.path_parameters = {
                key: ids.get(key, value) for key, value in case.path_parameters.items()
            }
        response = case.call_and_validate(
            base_url=world.base, headers=actor.headers, checks=CHECKS, timeout=15
        )
        seen.append(response.status_code)

    check()


def test_api_conforms_to_its_openapi_document(world: World) -> None:
    schema = schemathesis.openapi.from_url(f"{world.base}/api/openapi.json")
    failures: list[str] = []
    statuses: dict[str, list[int]] = {}
    must_succeed: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        raw = operation.definition.raw
        name = f"{operation.method.upper()} {operation.path}"
        assert name not in statuses, f"{name} is documented twice"
        statuses[name] = []
        if raw["operationId"] not in NO_SUCCESS_EXPECTED and _valid_request_known(raw, schema):
            must_succeed.add(name)
        ids = world.path_ids(raw["operationId"]) if "{" in operation.path else {}
        try:
            _exercise(operation, world, _actor(world, operation), ids, statuses[name])
        except (Exception, FailureGroup) as exc:  # report every operation's failure together
            failures.append(f"{name}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert len(statuses) > 40, sorted(statuses)
    never_ok = {
        name: sorted(set(statuses[name]))
        for name in sorted(must_succeed)
        if not any(200 <= status < 300 for status in statuses[name])
    }
    assert not never_ok, never_ok
    calls = sum(len(v) for v in statuses.values())
    print(f"schemathesis: {len(statuses)} operations, {calls} calls")
    for name, got in sorted(statuses.items()):
        print(f"  {name}: {sorted(set(got))}")
