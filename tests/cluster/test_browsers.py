"""Real browsers on two real nodes: each page loads from and signals to its own node, the
room runs on one of them, and both decode each other's video. When the room's owner is
killed, the page on the other node is told to reconnect (1012) and is back by itself.

Headless Chromium (as tests/e2e); the nodes are subprocesses on the real Redis and
PostgreSQL. Synchronous: Playwright's sync API cannot run inside an event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from tests.cluster.support import REDIS_URL, Api, Node, spawn_node, stop, wait_healthy
from tests.cluster.test_two_nodes import owner_of

pytest.importorskip("playwright")
from playwright.sync_api import expect, sync_playwright

from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, BrowserPage
from tests.e2e.room_helpers import join_from_lobby, wait_decoding

pytestmark = pytest.mark.slow

# As tests/conftest.py (not imported: a conftest must not load twice under two names).
POSTGRES_ADMIN_URL = os.environ.get(
    "PEERLEARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _pg_url(database: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + database


def _outside_playwright(coro: Any) -> Any:
    """Run a coroutine on a thread of its own (Playwright's loop owns this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _world(a: Node) -> tuple[dict[str, Any], dict[str, Any], str]:
    async with aiohttp.ClientSession() as http:
        api = Api(http, a.url)
        mentor, learner = await api.user("mentor"), await api.user("learner")
        sid = await api.live_session(mentor, [learner])
        return mentor, learner, sid


def _page(browser: Any, node: Node, who: dict[str, Any], name: str) -> BrowserPage:
    context = browser.new_context(base_url=node.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    bp = BrowserPage(page, name, node.url, "cluster-browsers")
    bp.goto("/auth/login/")
    page.get_by_label("Username or e-mail").fill(who["name"])
    page.get_by_label("Password").fill("s3cret-pass-Cluster!")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/")
    return bp


async def _fresh_database() -> str:
    """A new PostgreSQL database (as tests/conftest.py's fixture, which is async: this
    test must stay out of any event loop for Playwright's sync API)."""
    name = f"peerlearn_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    client = redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return _pg_url(name)


async def _drop_database(url: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


def test_browsers_on_two_nodes_decode_each_other_and_survive_the_owner(tmp_path: Path) -> None:
    postgres_database = asyncio.run(_fresh_database())
    a = spawn_node(tmp_path, "a", postgres_database)
    asyncio.run(wait_healthy(a))
    b = spawn_node(tmp_path, "b", postgres_database)
    asyncio.run(wait_healthy(b))
    try:
        mentor, learner, sid = asyncio.run(_world(a))
        expect.set_options(timeout=15_000)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                pages = [_page(browser, a, mentor, "mentor"), _page(browser, b, learner, "learner")]
                for bp in pages:
                    bp.goto(f"/sessions/{sid}/room")
                    join_from_lobby(bp)
                for bp in pages:
                    wait_decoding(bp, others=1, timeout_s=40)

                owner = _outside_playwright(owner_of(sid))
                killed, survivor_page = (a, pages[1]) if owner == a.node_id else (b, pages[0])
                killed_at = time.monotonic()
                killed.kill()
                # The survivor's page: told to reconnect, then in the room (now on its own
                # node) again by itself.
                status = survivor_page.page.locator("[data-status]")
                expect(status).not_to_have_text("Connected", timeout=20_000)
                expect(status).to_have_text("Connected", timeout=30_000)
                back_after = time.monotonic() - killed_at
                assert _outside_playwright(owner_of(sid)) != killed.node_id
            finally:
                browser.close()
        print(f"\nbrowser on the survivor back in the room {back_after:.1f} s after the SIGKILL")
    finally:
        stop(a)
        stop(b)
        asyncio.run(_drop_database(postgres_database))
