"""The access log (issue 16): one line a request, written off the event loop, and no
credential in it: no token, cookie, password or ticket, wherever the request carried it."""

from __future__ import annotations

import logging
import threading

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from web.middlewares import RedactingAccessLogger, wait_for_access_log

SECRETS = ("tok-abc123", "cookie-xyz789", "pass-word-456", "ticket-def000")


def test_a_line_carries_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("aiohttp.access")
    access = RedactingAccessLogger(logger, "")
    request = make_mocked_request(
        "GET",
        f"/api/auth/user/?token={SECRETS[0]}&password={SECRETS[2]}&ticket={SECRETS[3]}&page=2",
        headers={
            "Authorization": f"Bearer {SECRETS[0]}",
            "Cookie": f"peerlearn_session={SECRETS[1]}; peerlearn_csrf={SECRETS[1]}",
            "Referer": f"https://example.org/reset/?code={SECRETS[0]}",
            "User-Agent": "test-agent",
        },
    )
    writers: list[str] = []

    class Where(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            writers.append(threading.current_thread().name)

    where = Where()
    logger.addHandler(where)
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    try:
        access.log(request, web.Response(text="ok"), 0.0012)
        wait_for_access_log()
    finally:
        logger.removeHandler(where)
    (record,) = [r for r in caplog.records if r.name == "aiohttp.access"]
    line = record.getMessage()
    assert "/api/auth/user/?" in line and "page=2" in line and "test-agent" in line
    assert line.count("[redacted]") == 4  # three parameters and the Referer's code
    for secret in SECRETS:
        assert secret not in line
    assert writers and threading.main_thread().name not in writers  # not on the loop's thread


def test_nothing_is_made_when_the_access_log_is_off(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("aiohttp.access")
    access = RedactingAccessLogger(logger, "")
    caplog.set_level(logging.WARNING, logger="aiohttp.access")
    access.log(make_mocked_request("GET", "/"), web.Response(), 0.001)
    wait_for_access_log()
    assert not [r for r in caplog.records if r.name == "aiohttp.access"]
