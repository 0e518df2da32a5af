"""ICE consent freshness (``peerlearn_sfu.consent``): late answers keep consent, silence
ends it. Two real aioice connections on loopback, with the intervals scaled down."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice
import pytest
from aioice import ice as aioice_ice

from peerlearn_sfu import consent, taps

pytestmark = pytest.mark.asyncio

LATE_S = 0.8  # longer than aioice's one 0.5 s try: every stock check would fail


async def connected_pair(install: bool) -> tuple[Any, Any]:
    a = aioice.Connection(ice_controlling=True, components=1)
    b = aioice.Connection(ice_controlling=False, components=1)
    if install:
        consent.install(a)
        consent.install(b)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for one, other in ((a, b), (b, a)):
        for candidate in other.local_candidates:
            await one.add_remote_candidate(candidate)
        await one.add_remote_candidate(None)
        one.remote_username, one.remote_password = other.local_username, other.local_password
    await asyncio.gather(a.connect(), b.connect())
    return a, b


def answer_late(b: Any, delay: float | None) -> None:
    """``b`` answers every STUN request ``delay`` s late (None: never)."""
    original = b.request_received
    loop = asyncio.get_running_loop()

    def request_received(*args: Any) -> None:
        if delay is not None:
            loop.call_later(delay, original, *args)

    b.request_received = request_received


async def still_connected(a: Any, b: Any) -> bool:
    if not taps.ice_nominated_pairs(a):
        return False
    await a.send(b"ping")
    try:
        return await asyncio.wait_for(b.recv(), 5) == b"ping"
    except (TimeoutError, ConnectionError):
        return False


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consent, "INTERVAL_S", 0.2)
    monkeypatch.setattr(consent, "EXPIRY_S", 2.0)
    monkeypatch.setattr(aioice_ice, "CONSENT_INTERVAL", 0.2)


async def test_late_answers_drop_a_stock_aioice_connection(fast: None) -> None:
    a, b = await connected_pair(install=False)
    try:
        answer_late(b, LATE_S)
        # six failed 0.5 s checks in a row: closed although b answers every one
        await wait_closed(a, patience=15)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_late_answers_keep_consent(fast: None) -> None:
    a, b = await connected_pair(install=True)
    try:
        answer_late(b, LATE_S)
        await asyncio.sleep(2 * consent.EXPIRY_S)  # many checks, each answered late
        assert await still_connected(a, b)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_silence_ends_consent(fast: None) -> None:
    a, b = await connected_pair(install=True)
    try:
        answer_late(b, None)
        await wait_closed(a, patience=consent.EXPIRY_S + 15)
    finally:
        await asyncio.gather(a.close(), b.close())


async def wait_closed(a: Any, patience: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while taps.ice_nominated_pairs(a):
        assert loop.time() < deadline, "consent never expired"
        await asyncio.sleep(0.1)
