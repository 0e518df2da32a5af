"""End-to-end harness: the real app on a free port + Debian's headless Chromium.

Fixtures other test modules reuse:

- ``live_server`` (package): the app from ``create_app`` with a temp SQLite data dir, served
  on 127.0.0.1 in a background thread.  ``live_server.url`` is the base URL;
  ``live_server.call(fn, *args)`` runs ``await fn(platform, *args)`` on the server's loop
  (seed data, simulate room joins, read state); ``live_server.app`` is the aiohttp app.
  Background loops are off (``create_app(background=False)``): ``refit_recommender()``
  fits the recommender (``world`` does after seeding); ``recommended_to(username)`` is
  what its model ranks for a user (no page fallback involved).
- ``browser`` (package): Chromium launched with the project's flags; each page gets its
  own fresh context (no shared profile, cookies or storage).  Package scope, not session:
  sync Playwright keeps its event loop current in the main thread, so it must be gone
  before the async tests of other packages run.
- ``world`` (module): ``e2e.seed.seed_world`` run once per test module (unique names);
  ``e2e.seed.as_user(world, "lin")`` gives a signed-in ``TestUser``.
- ``make_user(role, **profile)``: creates an account through the services and returns a
  ``TestUser`` (username, password, id, role, email).
- ``new_page(name="main", *, user=None, phone=False, allow_http_errors=False,
  javascript=True)``: a
  ``BrowserPage`` (``.page`` is the Playwright page) that records console errors, page
  errors and every request URL.  With ``user`` the context already carries that user's
  session cookie.  At teardown the harness asserts no page requested anything from another
  origin and, unless allowed, logged no console error.
  Listeners sit on the browser *context*, so pop-ups and every navigation are covered, and
  WebSocket URLs count as requests too.
- ``BrowserPage.shot(step)`` saves ``test-artifacts/screenshots/<test>-<name>-<step>.png``.
- ``live_server.link_in_mail(address, path)``: the link a mail to ``address`` carries
  (verification, password reset), read from the file mail backend.
- ``login_via_form(bp, user)`` logs in through the real form.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.sync_api import expect

from config.settings import load_settings
from control.platform import Platform
from tests.conftest import FAKE_NOW
from web.keys import PLATFORM, RECOMMENDER
from web.security import SESSION_COOKIE

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 780}
PASSWORD = "correct-horse-42"


class LiveServer:
    """The app served from its own event loop in a daemon thread."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = load_settings(
            environ={},
            overrides={
                "server": {"data_dir": str(data_dir)},
                "email": {"backend": "file", "file_dir": str(data_dir / "mail")},
                # Journeys log in many users from one IP; keep the limiter out of the way.
                "auth": {"login_max_attempts_per_ip": 10000},
            },
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        from web.app import create_app

        self.app = create_app(self.settings, background=False)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def _run(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    @property
    def platform(self) -> Platform:
        return self.app[PLATFORM]

    def refit_recommender(self) -> int:
        """Fit the recommender now (the app runs without background loops); its version."""
        gateway = self.app[RECOMMENDER]
        self._run(gateway.refresh())
        return int(gateway.model_version)

    def recommended_to(self, username: str, k: int = 10) -> list[str]:
        """Session ids the recommender's own model ranks for ``username`` (no fallback)."""

        async def ask() -> list[str]:
            user = await self.platform.accounts.get_by_username(username)
            assert user is not None, username
            engine = self.app[RECOMMENDER].engine
            return [str(r.id) for r in engine.recommend_sessions(user.id, k)]

        return list(self._run(ask()))

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Run ``await fn(platform, *args, **kwargs)`` on the server loop and return it."""
        return self._run(fn(self.platform, *args, **kwargs))

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        # Handler helpers still parked on a queue or event (a closed socket's reader, say)
        # would otherwise be destroyed pending when the loop stops.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def stop(self) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def mail_to(self, address: str) -> list[str]:
        """Bodies of the e-mails sent to ``address`` (file backend), oldest first."""
        folder = Path(self.settings.email.file_dir or "")
        out = []
        for path in sorted(folder.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == address:
                body = message.get_body(preferencelist=("plain",))
                out.append(body.get_content() if body else "")
        return out

    def link_in_mail(self, address: str, path: str) -> str:
        """The last link to ``path`` mailed to ``address``, as a path + query on this app."""
        for body in reversed(self.mail_to(address)):
            match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"\S*)", body)
            if match:
                return match.group(1)
        raise AssertionError(f"no mail to {address} links to {path}")


@dataclass
class TestUser:
    __test__ = False  # not a test class, despite the name

    id: int
    username: str
    email: str
    password: str
    role: str
    token: str = ""


@dataclass
class BrowserPage:
    """A Playwright page with what it logged and requested."""

    page: Any
    name: str
    base_url: str
    test_name: str
    allow_http_errors: bool = False
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error_documents: set[str] = field(default_factory=set)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def shot(self, step: str, *, full_page: bool = True) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{self.test_name}-{self.name}-{_slug(step)}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def foreign_requests(self) -> list[str]:
        own = urlsplit(self.base_url).netloc
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.netloc != own:
                out.append(url)
        return out

    def real_console_errors(self) -> list[str]:
        """Console errors, minus Chromium's note about a 4xx *document* we navigated to."""
        out = []
        for text in self.console_errors:
            _, _, url = text.rpartition(" @ ")
            if text.startswith("Failed to load resource") and (
                url in self.error_documents or self.allow_http_errors
            ):
                continue  # a form re-rendered with 400, or a 403/404 page we meant to open
            out.append(text)
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]


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
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> dict[str, Any]:
    """A seeded world (``e2e.seed``) per test module, so modules never see each other's edits."""
    from e2e.seed import seed_world

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
                    username=username, email=email, password=PASSWORD, role=role,
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
    test_name = _slug(request.node.name)
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
            context.add_cookies([{"name": SESSION_COOKIE, "value": user.token,
                                  "url": live_server.url}])
        bp = BrowserPage(None, name, live_server.url, test_name, allow_http_errors)
        context.on("console", lambda msg: bp.console_errors.append(
            f"{msg.text} @ {msg.location.get('url', '')}") if msg.type == "error" else None)
        context.on("weberror", lambda err: bp.console_errors.append(f"pageerror: {err.error}"))
        context.on("request", lambda req: bp.requests.append(req.url))
        context.on("response", lambda resp: _on_response(bp, resp))
        context.on("page", lambda page: page.on(
            "websocket", lambda ws: bp.requests.append(ws.url)))
        bp.page = context.new_page()
        if FAKE_NOW:  # the browser's clock where the server's is (tests/conftest.py)
            bp.page.clock.install(time=datetime.now(UTC))
        created.append((context, bp))
        return bp

    yield make
    problems = []
    for context, bp in created:
        foreign = bp.foreign_requests()
        if foreign:
            problems.append(f"{bp.name}: requests left the app's origin: {foreign}")
        errors = bp.real_console_errors()
        if errors:
            problems.append(f"{bp.name}: console errors: {errors}")
        if bp.failed and not bp.allow_http_errors:
            problems.append(f"{bp.name}: failed sub-resources: {bp.failed}")
        context.close()
    assert not problems, "\n".join(problems)


def _on_response(bp: BrowserPage, resp: Any) -> None:
    if resp.status < 400:
        return
    if resp.request.resource_type == "document":
        bp.error_documents.add(resp.url)
    else:
        bp.failed.append(f"{resp.status} {resp.url}")


def login_via_form(bp: BrowserPage, user: TestUser) -> None:
    """Log in through /auth/login/ like a person would; ends on the dashboard."""
    bp.goto("/auth/login/")
    bp.page.get_by_label("Username or e-mail").fill(user.username)
    bp.page.get_by_label("Password").fill(user.password)
    bp.page.get_by_role("button", name="Log in").click()
    bp.page.wait_for_url("**/dashboard/")


def room_steps(
    live_server: LiveServer, mentor_page: BrowserPage, learner_page: BrowserPage,
    session_id: str, learner: TestUser,
) -> None:
    """The journey's room: both follow "Join room" from the session page, see each other's
    video (decoded in the browser) and chat. They stay in the room for the mentor's end."""
    from e2e.room_helpers import join_from_lobby, send_chat, wait_decoding  # imports us

    for bp in (mentor_page, learner_page):
        bp.page.get_by_role("link", name="Join room").click()
        bp.page.wait_for_url(f"**/sessions/{session_id}/room")
        join_from_lobby(bp)
    for bp in (mentor_page, learner_page):
        wait_decoding(bp, others=1)
    send_chat(learner_page, "Hi! Can we start with the lexer?")
    expect(mentor_page.page.locator(".chat-text").last).to_have_text(
        "Hi! Can we start with the lexer?"
    )
    for bp in (mentor_page, learner_page):
        bp.shot("room")
