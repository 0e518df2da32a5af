"""Login throttling that cannot be raced or abused, per-IP limits on the other entry points,
and the client address behind trusted proxies."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

import control.services.accounts as accounts_module
from control.ratelimit import RedisRateLimiter
from tests.api.auth_helpers import PASSWORD, seen_ip
from tests.support import ApiDriver

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
GUESSES = 40


@pytest.fixture(params=["memory", "redis"])
def limiter_settings(
    request: pytest.FixtureRequest, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The in-memory limiter (one node) and the Redis one (shared by nodes; its keys in a
    namespace of this test: user ids restart with every test database)."""
    monkeypatch.setattr(RedisRateLimiter, "PREFIX", f"peerlearn:test:{uuid.uuid4().hex}:rl:")
    redis = {"url": REDIS_URL} if request.param == "redis" else {}
    return make_settings(redis=redis, auth={"login_max_attempts_per_ip": 100000})


@pytest.fixture
def counted_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the service actually evaluates (Argon2 verify), in order."""
    seen: list[str] = []
    real = accounts_module.verify_password

    def counting(stored: str | None, password: str) -> bool:
        seen.append(password)
        return real(stored, password)

    monkeypatch.setattr(accounts_module, "verify_password", counting)
    return seen


async def test_forty_parallel_guesses_evaluate_at_most_the_limit(
    app_factory: Any, limiter_settings: Any, counted_verifications: list[str]
) -> None:
    api = ApiDriver(await app_factory(limiter_settings))
    name = f"target_{uuid.uuid4().hex[:8]}"
    await api.register("learner", username=name, password=PASSWORD)
    counted_verifications.clear()
    limit = limiter_settings.auth.login_max_failures_per_account
    # All wrong, all at once: the order in which the server takes parallel requests is not
    # the order they were sent in, so the right password comes after them (below).
    guesses = [f"wrong-guess-{i:02d}!" for i in range(GUESSES)]
    results = await asyncio.gather(
        *(
            api.call("POST", "/api/auth/login/", json={"username": name, "password": guess})
            for guess in guesses
        )
    )
    statuses = [status for status, _ in results]
    assert len(counted_verifications) <= limit, statuses
    assert statuses.count(429) >= GUESSES - limit
    assert set(statuses) <= {401, 429}
    # The right password after the limit, from the same source: refused, not evaluated.
    status, _ = await api.call(
        "POST", "/api/auth/login/", json={"username": name, "password": PASSWORD}
    )
    assert status == 429
    assert PASSWORD not in counted_verifications


async def test_the_owner_is_not_locked_out_from_elsewhere(
    app_factory: Any, limiter_settings: Any
) -> None:
    settings = limiter_settings.model_copy(
        update={
            "server": limiter_settings.server.model_copy(update={"trusted_proxies": ("127.0.0.1",)})
        }
    )
    api = ApiDriver(await app_factory(settings))
    name = f"owner_{uuid.uuid4().hex[:8]}"
    await api.register("learner", username=name, password=PASSWORD)
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    owner = {"X-Forwarded-For": "203.0.113.20"}
    for _ in range(settings.auth.login_max_failures_per_account):
        status, _ = await api.call(
            "POST",
            "/api/auth/login/",
            json={"username": name, "password": "nope-nope-nope"},
            headers=attacker,
        )
        assert status == 401
    status, body = await api.call(
        "POST",
        "/api/auth/login/",
        json={"username": name, "password": PASSWORD},
        headers=attacker,
    )
    assert status == 429, body  # locked for that source, even with the right password
    status, _ = await api.call(
        "POST", "/api/auth/login/", json={"username": name, "password": PASSWORD}, headers=owner
    )
    assert status == 200  # the owner, elsewhere, is not


async def test_ipv6_sources_count_per_64(sqlite_api: ApiDriver) -> None:
    assert accounts_module.login_source("2001:db8:1:2:aaaa::1") == accounts_module.login_source(
        "2001:db8:1:2:bbbb::9"
    )
    assert accounts_module.login_source("2001:db8:1:3::1") != accounts_module.login_source(
        "2001:db8:1:2::1"
    )
    assert accounts_module.login_source("192.0.2.1") == "192.0.2.1"


async def test_registration_and_mails_are_limited_per_ip(
    app_factory: Any, make_settings: Any
) -> None:
    settings = make_settings(
        auth={"register_max_per_ip_per_hour": 3, "mail_max_per_ip_per_hour": 2}
    )
    api = ApiDriver(await app_factory(settings))
    statuses = []
    for i in range(5):
        resp = await api.client.post(
            "/api/auth/register/",
            json={
                "username": f"sybil{i}",
                "email": f"sybil{i}@example.org",
                "password": PASSWORD,
                "role": "learner",
            },
        )
        statuses.append(resp.status)
    assert statuses == [201, 201, 201, 429, 429]
    resets = []
    for i in range(3):
        resp = await api.client.post(
            "/api/auth/password-reset/", json={"email": f"victim{i}@example.org"}
        )
        resets.append(resp.status)
    assert resets == [200, 200, 429]


# --------------------------------------------------------------------------- trusted proxies


async def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(
    sqlite_api: ApiDriver,
) -> None:
    assert await seen_ip(sqlite_api, {"X-Forwarded-For": "203.0.113.9"}) == "127.0.0.1"


async def test_client_is_the_rightmost_untrusted_hop(app_factory: Any, make_settings: Any) -> None:
    settings = make_settings(server={"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]})
    api = ApiDriver(await app_factory(settings))
    # nginx's $proxy_add_x_forwarded_for appends the real peer to whatever the client sent.
    spoofed = {"X-Forwarded-For": "1.2.3.4, 198.51.100.23"}
    assert await seen_ip(api, spoofed) == "198.51.100.23"
    # Through two proxies of ours: the hop before them.
    chained = {"X-Forwarded-For": "6.6.6.6, 198.51.100.24, 10.1.2.3"}
    assert await seen_ip(api, chained) == "198.51.100.24"
    # Several header lines count as one list.
    assert await seen_ip(api, {"X-Forwarded-For": "198.51.100.25"}) == "198.51.100.25"


async def test_per_ip_limit_cannot_be_dodged_by_rotating_the_leftmost_hop(
    app_factory: Any, make_settings: Any
) -> None:
    settings = make_settings(
        server={"trusted_proxies": ["127.0.0.1"]}, auth={"login_max_attempts_per_ip": 3}
    )
    api = ApiDriver(await app_factory(settings))
    statuses = []
    for i in range(5):
        status, _ = await api.call(
            "POST",
            "/api/auth/login/",
            json={"username": f"nobody{i}", "password": "whatever-pass"},
            headers={"X-Forwarded-For": f"10.9.9.{i}, 198.51.100.99"},
        )
        statuses.append(status)
    assert statuses == [401, 401, 401, 429, 429]
