"""Fixtures of the browser tests; the classes and helpers they use are in ``harness.py``.

- ``live_server`` (package): the app (``harness.LiveServer``) with a temp SQLite data dir,
  served on 127.0.0.1 in a background thread.
- ``browser`` (package): Chromium launched with the project's flags; each page gets its
  own fresh context (no shared profile, cookies or storage).  Package scope, not session:
  sync Playwright keeps its event loop current in the main thread, so it must be gone
  before the async tests of other packages run.
- ``world`` (module): ``seed.seed_world`` run once per test module (unique names);
  ``seed.as_user(world, "lin")`` gives a signed-in ``TestUser``.
- ``make_user(role, **profile)``: creates an account through the services and returns a
  ``TestUser`` (username, password, id, role, email).
- ``new_page(name="main", *, user=None, phone=False, allow_http_errors=False,
  javascript=True)``: a ``BrowserPage`` (``.page`` is the Playwright page) that records
  console errors, page errors and every request URL (``harness.watch``).  With ``user``
  the context already carries that user's session cookie.  At teardown the harness
  asserts no page requested anything from another origin and, unless allowed, logged no
  console error (``BrowserPage.problems``).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from control.platform import Platform
from tests.e2e.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
    PHONE,
    SCREENSHOT_DIR,
    BrowserPage,
    LiveServer,
    TestUser,
    slug,
    watch,
)
from tests.e2e.seed import seed_world
from tests.support import FAKE_NOW
from web.security import SESSION_COOKIE


@pytest.fixture(scope="package")
def live_server() -> Iterator[LiveServer]:
    with tempfile.TemporaryDirectory(prefix="peerlearn-e2e-") as tmp:
        server = LiveServer(Path(tmp) / "data")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # The machine is shared and small: give conditions time rather than fail on a slow tick.
    expect.set_options(timeout=10_000)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> dict[str, Any]:
    """A seeded world (``seed.py``) per test module, so modules never see each other's edits."""
    seeded = live_server.call(seed_world)
    live_server.refit_recommender()  # no background fits in tests: recommendations need one
    return seeded


@pytest.fixture
def make_user(live_server: LiveServer) -> Callable[..., TestUser]:
    """``make_user("mentor", skills=[...], bio=...)`` → a fresh account (unique username)."""

    def make(role: str = "learner", username: str | None = None, **profile: Any) -> TestUser:
        username = username or f"{role}_{uuid.uuid4().hex[:8]}"
        email = f"{username}@example.org"

        async def create(platform: Platform) -> tuple[int, str]:
            if role == "admin":
                user = await platform.accounts.create_admin(username, email, PASSWORD)
            else:
                user = await platform.accounts.register(
                    username=username,
                    email=email,
                    password=PASSWORD,
                    role=role,
                    first_name=profile.pop("first_name", ""),
                    last_name=profile.pop("last_name", ""),
                )
            if profile:
                user = await platform.accounts.update_profile(user, **profile)
            return user.id, (await platform.accounts.logins.start(user))[1]

        user_id, token = live_server.call(create)
        return TestUser(user_id, username, email, PASSWORD, role, token)

    return make


@pytest.fixture
def new_page(
    browser: Any, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., BrowserPage]]:
    created: list[tuple[Any, BrowserPage]] = []
    test_name = slug(request.node.name)
    # This test's screenshots from an earlier run (perhaps of steps since renamed) go, so
    # the folder shows what the last run of each test saw.
    for old in SCREENSHOT_DIR.glob(f"{test_name}-*.png"):
        old.unlink(missing_ok=True)

    def make(
        name: str = "main",
        *,
        user: TestUser | None = None,
        phone: bool = False,
        allow_http_errors: bool = False,
        javascript: bool = True,
    ) -> BrowserPage:
        context = browser.new_context(
            base_url=live_server.url,
            viewport=PHONE if phone else DESKTOP,
            timezone_id="UTC",
            locale="en-GB",
            java_script_enabled=javascript,
        )
        context.set_default_timeout(10_000)
        if user is not None:
            context.add_cookies(
                [{"name": SESSION_COOKIE, "value": user.token, "url": live_server.url}]
            )
        bp = BrowserPage(None, name, live_server.url, test_name, allow_http_errors)
        watch(context, bp)
        bp.page = context.new_page()
        if FAKE_NOW:  # the browser's clock where the server's is (tests/conftest.py)
            bp.page.clock.install(time=datetime.now(UTC))
        created.append((context, bp))
        return bp

    yield make
    problems = []
    for context, bp in created:
        problems += bp.problems()
        context.close()
    assert not problems, "\n".join(problems)
