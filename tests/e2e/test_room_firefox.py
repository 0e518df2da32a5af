"""Firefox ESR and Chromium in one room: each decodes the other's forwarded video.

Firefox runs through npm's ``puppeteer-core`` over WebDriver BiDi (``tests/e2e/firefox/``;
``scripts/test.sh`` installs Debian's ``firefox-esr`` and that package), with fake media
and ICE on loopback allowed; Chromium through Playwright as in the other room tests.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import BrowserPage, LiveServer, TestUser
from tests.e2e.room_helpers import enter_room, live_session, wait_decoding
from web.security import SESSION_COOKIE

pytestmark = pytest.mark.browser

FIREFOX_DRIVER = Path(__file__).parent / "firefox" / "room.mjs"


def test_firefox_and_chromium_decode_each_other(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    mentor = make_user("mentor", first_name="Grace", last_name="Hopper")
    learner = make_user("learner", first_name="Ada", last_name="Byron")
    sid = live_session(live_server, mentor, [learner])
    result: dict[str, object] = {}

    def firefox() -> None:
        done = subprocess.run(
            [
                "node",
                str(FIREFOX_DRIVER),
                live_server.url,
                SESSION_COOKIE,
                learner.token,
                sid,
                "1",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result.update(json.loads(lines[-1]) if lines else {"errors": [done.stderr[-2000:]]})

    thread = threading.Thread(target=firefox)
    thread.start()
    chromium = new_page("mentor", user=mentor)
    enter_room(chromium, sid)
    try:
        decoding = wait_decoding(chromium, others=1, timeout_s=60)
    finally:
        thread.join()
    assert [s for s in decoding if s["decoded"] > 0], decoding
    firefox_decoded = [s for s in result.get("decoded", []) if s["decoded"] > 30]  # type: ignore[union-attr]
    assert firefox_decoded, result
