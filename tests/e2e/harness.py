"""The browser-test harness: the live app, the browser page wrapper and the accounts the
fixtures in ``conftest.py`` hand out. Test modules import what they name from here
(``from tests.e2e.harness import BrowserPage``); ``conftest.py`` holds fixtures only.

- ``LiveServer``: the app from ``create_app`` with a temp data dir, served on 127.0.0.1 in
  a background thread. ``url`` is the base URL; ``call(fn, *args)`` runs
  ``await fn(platform, *args)`` on the server's loop (seed data, simulate room joins, read
  state). Background loops are off (``create_app(background=False)``):
  ``refit_recommender()`` fits the recommender; ``recommended_to(username)`` is what its
  model ranks for a user (no page fallback involved). ``link_in_mail(address, path)`` is
  the link a mail to ``address`` carries (verification, password reset), read from the
  file mail backend.
- ``BrowserPage``: a Playwright page (``.page``) with what it logged and requested;
  ``watch(context, bp)`` records that for every page of a context (pop-ups and every
  navigation included; WebSocket URLs count as requests too) and ``bp.problems()`` is what
  the fixtures fail a test for: requests to another origin, console errors, failed
  sub-resources. ``bp.shot(step)`` saves
  ``test-artifacts/screenshots/<test>-<name>-<step>.png``.
- ``TestUser``: username, password, id, role, email and a session token.
- ``login_via_form(bp, user)`` logs in through the real form.
- ``axe_violations(bp)``: axe-core's WCAG 2.0/2.1 A and AA rules run on the page as it is
  now (``axe-playwright-python`` bundles axe-core: nothing is fetched), one line per
  violated rule and element. ``heading_problems(bp)``: headings that skip a level, or a
  page whose first heading is not its one ``h1``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from config.settings import load_settings
from control.platform import Platform
from web.keys import PLATFORM, RECOMMENDER

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
        path = SCREENSHOT_DIR / f"{self.test_name}-{self.name}-{slug(step)}.png"
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

    def problems(self) -> list[str]:
        """What fails the test that opened this page: requests that left the app's origin,
        console errors, and (unless allowed) failed sub-resources."""
        out = []
        foreign = self.foreign_requests()
        if foreign:
            out.append(f"{self.name}: requests left the app's origin: {foreign}")
        errors = self.real_console_errors()
        if errors:
            out.append(f"{self.name}: console errors: {errors}")
        if self.failed and not self.allow_http_errors:
            out.append(f"{self.name}: failed sub-resources: {self.failed}")
        return out


def slug(text: str) -> str:
    """``text`` as a file-name part (screenshots are named after tests and steps)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]


def watch(context: Any, bp: BrowserPage) -> None:
    """Record on ``bp`` what every page of the Playwright ``context`` logs and requests.

    The listeners sit on the context, so pop-ups and every navigation are covered; the
    WebSocket URLs a page opens count as requests too."""
    context.on(
        "console",
        lambda msg: (
            bp.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")
            if msg.type == "error"
            else None
        ),
    )
    context.on("weberror", lambda err: bp.console_errors.append(f"pageerror: {err.error}"))
    context.on("request", lambda req: bp.requests.append(req.url))
    context.on("response", lambda resp: _on_response(bp, resp))
    context.on("page", lambda page: page.on("websocket", lambda ws: bp.requests.append(ws.url)))


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


#: The axe-core tags of WCAG 2.0 and 2.1, levels A and AA: every rule they hold, none off.
WCAG_AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(bp: BrowserPage, where: str = "") -> list[str]:
    """``rule (impact) at selector: summary`` for each element axe-core finds failing."""
    # The package ships no type information (no py.typed); Axe.run returns AxeResults.
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    options = {"runOnly": {"type": "tag", "values": WCAG_AA_TAGS}, "resultTypes": ["violations"]}
    results = Axe().run(bp.page, options=options)
    label = where or bp.page.url.removeprefix(bp.base_url)
    out = []
    for violation in results.response["violations"]:
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            summary = node.get("failureSummary", "").replace("\n", " ")
            out.append(f"{label}: {violation['id']} ({violation['impact']}) at {target}: {summary}")
    return out


HEADINGS_JS = """() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]
  .filter((h) => h.getClientRects().length > 0)
  .map((h) => [Number(h.tagName[1]), h.textContent.trim().slice(0, 40)])"""


def heading_problems(bp: BrowserPage, where: str = "") -> list[str]:
    """Headings out of order (WCAG 1.3.1 / 2.4.6): the first must be the page's only h1,
    and none may go more than one level deeper than the heading before it."""
    label = where or bp.page.url.removeprefix(bp.base_url)
    headings = bp.page.evaluate(HEADINGS_JS)
    out = []
    if not headings or headings[0][0] != 1:
        out.append(f"{label}: the first heading is not an h1: {headings[:1]}")
    if sum(1 for level, _ in headings if level == 1) > 1:
        out.append(f"{label}: more than one h1")
    for (before, _), (level, text) in pairwise(headings):
        if level > before + 1:
            out.append(f"{label}: h{level} {text!r} follows an h{before}")
    return out
