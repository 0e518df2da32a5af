"""/api/recommendations/{sessions,mentors,trending}/ with new, heavy and skill-less users."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import ApiDriver, StatementCounter
from web.keys import PLATFORM, RECOMMENDER

SOURCES = {"content", "collaborative", "popularity", "hybrid"}


def _in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def _profile(api: Any, who: dict[str, Any], **fields: Any) -> None:
    status, body = await api.call("PUT", "/api/users/profile/update/", who, json=fields)
    assert status == 200, body


async def _session(
    api: Any,
    mentor: dict[str, Any],
    title: str,
    skills: list[str],
    *,
    days: float = 2,
    seats: int = 5,
) -> str:
    body = {
        "title": title,
        "description": f"{title}: a live group session.",
        "schedule": _in_days(days),
        "duration": 60,
        "max_participants": seats,
        "skills_required": skills,
        "price": 0,
    }
    status, data = await api.call("POST", "/api/sessions/create/", mentor, json=body)
    assert status == 201, data
    return str(data["id"])


async def _platform(api: Any) -> dict[str, Any]:
    """Three mentors, eight sessions, a refit. Returns mentors and session ids by name."""
    alice = await api.register("mentor", username="alice_py")
    bob = await api.register("mentor", username="bob_design")
    carol = await api.register("mentor", username="carol_music")
    await _profile(api, alice, skills=["Python", "Django"], bio="Pythonista")
    await _profile(api, bob, skills=["Figma", "UX research"], bio="Designer")
    await _profile(api, carol, skills=["Guitar"], bio="Musician")
    ids = {
        "py-intro": await _session(api, alice, "Intro to Python", ["Python"]),
        "py-web": await _session(api, alice, "Python web apps with Django", ["Python", "Django"]),
        "py-async": await _session(api, alice, "Async Python", ["Python"], days=3),
        "py-data": await _session(api, alice, "Python for data", ["Python"], days=4),
        "py-test": await _session(api, alice, "Testing Python", ["Python"], days=5),
        "figma": await _session(api, bob, "Figma basics", ["Figma", "UX research"]),
        "ux": await _session(api, bob, "UX research interviews", ["UX research"], days=3),
        "guitar": await _session(api, carol, "Guitar chords", ["Guitar"], seats=1),
    }
    await api.client.app[RECOMMENDER].refresh()
    return {"alice": alice, "bob": bob, "carol": carol, "ids": ids}


async def _sessions_for(api: Any, who: dict[str, Any], limit: int = 10) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/recommendations/sessions/?limit={limit}", who)
    assert status == 200, body
    return body


def _names(body: dict[str, Any], ids: dict[str, str]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r["session"]["id"]] for r in body["results"]]


async def test_new_user_with_interests_gets_matching_sessions_first(api: Any) -> None:
    world = await _platform(api)
    # Registered after the last refit: known to the database only, not to the model.
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Figma"])
    body = await _sessions_for(api, learner)
    names = _names(body, world["ids"])
    assert names[0] == "figma"
    first = body["results"][0]
    assert "Figma" in first["reason"] and first["source"] in {"content", "hybrid"}
    assert first["session"]["title"] == "Figma basics" and first["session"]["seats_left"] == 5
    assert body["model_version"] >= 1
    # A changed profile counts at once, without a refit.
    await _profile(api, learner, interests=["Python"], skills=[])
    names = _names(await _sessions_for(api, learner), world["ids"])
    assert names[0].startswith("py-")


async def test_user_without_skills_gets_trending_sessions_with_reasons(sqlite_api: Any) -> None:
    api = sqlite_api
    world = await _platform(api)
    fans = [await api.register("learner") for _ in range(2)]
    for fan in fans:  # views are recorded as they happen; no refit in between
        status, _ = await api.call("GET", f"/api/sessions/{world['ids']['ux']}/", fan)
        assert status == 200
    blank = await api.register("learner")
    body = await _sessions_for(api, blank)
    assert body["results"], "a user with no skills still gets recommendations"
    assert _names(body, world["ids"])[0] == "ux"
    assert body["results"][0]["reason"] == "trending this week"
    for r in body["results"]:
        assert r["reason"] and r["source"] in SOURCES


async def test_heavy_user_never_gets_booked_full_or_cancelled_sessions(sqlite_api: Any) -> None:
    api = sqlite_api
    world = await _platform(api)
    ids = world["ids"]
    heavy = await api.register("learner")
    await _profile(api, heavy, interests=["Python"], skills=["Python"])
    for name in ("py-intro", "py-web", "figma"):
        status, body = await api.call("POST", f"/api/sessions/{ids[name]}/book/", heavy)
        assert status == 201, body
    for name in ids:
        await api.call("GET", f"/api/sessions/{ids[name]}/", heavy)
    other = await api.register("learner")
    status, _ = await api.call("POST", f"/api/sessions/{ids['guitar']}/book/", other)
    assert status == 201  # its only seat
    status, _ = await api.call("POST", f"/api/sessions/{ids['py-data']}/cancel/", world["alice"])
    assert status == 200

    for refit in (False, True):  # what the live model knows, then a fresh fit
        if refit:
            await api.client.app[RECOMMENDER].refresh()
        names = _names(await _sessions_for(api, heavy), ids)
        assert names, refit
        assert not {"py-intro", "py-web", "figma", "guitar", "py-data"} & set(names), refit
        assert names[0].startswith("py-"), refit


async def test_diversity_and_own_sessions(sqlite_api: Any) -> None:
    api = sqlite_api
    world = await _platform(api)
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Python"])
    body = await _sessions_for(api, learner)
    mentors = Counter(r["session"]["mentor"]["username"] for r in body["results"])
    assert mentors["alice_py"] == 3  # five Python sessions, at most three of one mentor
    own = _names(await _sessions_for(api, world["alice"]), world["ids"])
    assert own and not any(name.startswith("py-") for name in own)


async def test_mentor_recommendations(sqlite_api: Any) -> None:
    api = sqlite_api
    world = await _platform(api)
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Python", "Django"])
    status, body = await api.call("GET", "/api/recommendations/mentors/", learner)
    assert status == 200, body
    usernames = [r["mentor"]["username"] for r in body["results"]]
    assert usernames[0] == "alice_py" and "Python" in body["results"][0]["reason"]
    assert set(usernames) == {"alice_py", "bob_design", "carol_music"}
    status, _ = await api.call(
        "POST", "/api/users/follow/", learner, json={"mentor_id": world["alice"]["user"]["id"]}
    )
    assert status == 200
    status, body = await api.call("GET", "/api/recommendations/mentors/", learner)
    assert "alice_py" not in [r["mentor"]["username"] for r in body["results"]]
    status, body = await api.call("GET", "/api/recommendations/mentors/", world["bob"])
    assert "bob_design" not in [r["mentor"]["username"] for r in body["results"]]


async def test_trending_is_public_and_live(sqlite_api: Any) -> None:
    api = sqlite_api
    world = await _platform(api)
    learner = await api.register("learner")
    version = api.client.app[RECOMMENDER].model_version
    status, _ = await api.call("POST", f"/api/sessions/{world['ids']['py-test']}/book/", learner)
    assert status == 201
    api.client.session.cookie_jar.clear()  # the test client kept the last login's cookie
    status, body = await api.call("GET", "/api/recommendations/trending/?limit=3")
    assert status == 200, body
    assert len(body["results"]) == 3
    assert body["results"][0]["session"]["id"] == world["ids"]["py-test"]
    assert body["results"][0]["reason"] == "trending this week"
    assert body["model_version"] == version  # no refit was needed
    # The booker does not get their own booked session back as "trending".
    status, mine = await api.call("GET", "/api/recommendations/trending/", learner)
    assert world["ids"]["py-test"] not in [r["session"]["id"] for r in mine["results"]]


@pytest.mark.parametrize("path", ["sessions", "mentors", "trending"])
@pytest.mark.parametrize("query", ["limit=0", "limit=51", "limit=ten", "limit=3&colour=blue"])
async def test_invalid_queries_are_400(sqlite_api: Any, path: str, query: str) -> None:
    learner = await sqlite_api.register("learner")
    status, body = await sqlite_api.call("GET", f"/api/recommendations/{path}/?{query}", learner)
    assert status == 400, body
    assert body["error"]["code"] and body["error"]["message"]


@pytest.mark.parametrize("path", ["sessions", "mentors"])
async def test_personal_recommendations_need_a_login(sqlite_api: Any, path: str) -> None:
    await sqlite_api.register("learner")
    sqlite_api.client.session.cookie_jar.clear()
    status, body = await sqlite_api.call("GET", f"/api/recommendations/{path}/")
    assert status == 401 and body["error"]["code"]


@pytest.mark.parametrize("path", ["sessions", "mentors", "trending"])
async def test_empty_platform_answers_empty_lists(sqlite_api: Any, path: str) -> None:
    await sqlite_api.client.app[RECOMMENDER].refresh()
    learner = await sqlite_api.register("learner")
    status, body = await sqlite_api.call("GET", f"/api/recommendations/{path}/", learner)
    assert status == 200 and body["results"] == []


async def test_background_flag_keeps_the_refit_loop_off_until_asked(
    app_factory: Any, sqlite_settings: Any
) -> None:
    """``create_app(background=False)`` (the tests' app): no fit runs by itself."""
    client = await app_factory(sqlite_settings, background=False)
    gateway = client.app[RECOMMENDER]
    assert not gateway.engine.refitting_in_background
    await asyncio.sleep(0.2)  # room for a first fit the flag failed to hold back
    assert gateway.model_version == 0
    await gateway.refresh()  # tests fit explicitly
    assert gateway.model_version == 1


async def test_background_app_fits_by_itself(app_factory: Any, sqlite_settings: Any) -> None:
    client = await app_factory(sqlite_settings, background=True)
    gateway = client.app[RECOMMENDER]
    assert gateway.engine.refitting_in_background
    await asyncio.wait_for(gateway.engine.wait_for_version(1), timeout=30)


def _engine_ids(api: Any, who: dict[str, Any]) -> list[str]:
    """What the live model itself answers (before the gateway's database re-check)."""
    engine = api.client.app[RECOMMENDER].engine
    return [str(r.id) for r in engine.recommend_sessions(who["user"]["id"], 20)]


async def test_a_new_session_is_recommended_at_once_without_a_refit(api: Any) -> None:
    """On SQLite and PostgreSQL: published, it reaches the model over the bus at once."""
    world = await _platform(api)
    gateway = api.client.app[RECOMMENDER]
    version = gateway.model_version
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Figma"])
    # A mentor who registered after the fit, so the model knows neither them nor the session.
    newcomer = await api.register("mentor", username="dana_design")
    await _profile(api, newcomer, skills=["Figma"], bio="Prototyping")
    new_id = await _session(api, newcomer, "Figma prototyping", ["Figma"])
    world["ids"]["figma-2"] = new_id
    body = await _sessions_for(api, learner)
    assert "figma-2" in _names(body, world["ids"])[:2]
    assert body["model_version"] == version  # no refit ran, none was waited for
    assert new_id in _engine_ids(api, learner)
    status, mentors = await api.call("GET", "/api/recommendations/mentors/", learner)
    assert status == 200 and "dana_design" in [r["mentor"]["username"] for r in mentors["results"]]


async def test_sessions_in_brand_new_topics_are_first_seconds_after_publishing(
    sqlite_api: Any,
) -> None:
    """The issue's scenario on a fresh server: mentors publish sessions in topics the fitted
    vocabulary never saw; a learner with one matching interest asks right away (no refit)."""
    api = sqlite_api
    world = await _platform(api)
    gateway = api.client.app[RECOMMENDER]
    # A popular, booked session of an old topic: what the vocabulary lag used to serve.
    fan = await api.register("learner")
    status, _ = await api.call("POST", f"/api/sessions/{world['ids']['py-intro']}/book/", fan)
    assert status == 201
    version = gateway.model_version
    # Two mentors known to the model and two who registered after the fit (the register
    # rate limit allows ten accounts per address and hour).
    topics = {
        "Beekeeping": ("Hive inspections", world["alice"]),
        "Glassblowing": ("Glassblowing at the furnace", world["bob"]),
        "Sailing": ("Dinghy sailing", None),
        "Calligraphy": ("Brush calligraphy", None),
    }
    for topic, (title, mentor) in topics.items():
        if mentor is None:
            mentor = await api.register("mentor", username=f"{topic.lower()}_teacher")
            await _profile(api, mentor, skills=[topic], bio=f"{topic} teacher")
        new_id = await _session(api, mentor, title, [topic])
        learner = await api.register("learner")
        await _profile(api, learner, interests=[topic])
        body = await _sessions_for(api, learner)
        first = body["results"][0]
        assert first["session"]["id"] == new_id, (topic, body["results"][:2])
        assert first["reason"] == f"matches your interest in {topic}"
        assert body["model_version"] == version  # no refit ran, none was waited for


async def test_cancelled_and_started_sessions_leave_the_model_at_once(sqlite_api: Any) -> None:
    api = sqlite_api
    world = await _platform(api)
    ids = world["ids"]
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Figma", "UX research"])
    assert {ids["figma"], ids["ux"]} <= set(_engine_ids(api, learner))
    status, _ = await api.call("POST", f"/api/sessions/{ids['figma']}/cancel/", world["bob"])
    assert status == 200
    assert ids["figma"] not in _engine_ids(api, learner)
    platform = api.client.app[PLATFORM]
    ux = await platform.sessions.get(ids["ux"])
    async with platform.db.transaction() as db:  # due now, so the mentor may open the room
        ux_row = await db.get(type(ux), ux.id)
        ux_row.schedule = datetime.now(UTC) + timedelta(minutes=5)
    status, _ = await api.call("POST", f"/api/sessions/{ids['ux']}/start/", world["bob"])
    assert status == 200
    assert ids["ux"] not in _engine_ids(api, learner)


async def test_a_cancelled_booking_is_recommended_again_at_once(api: Any) -> None:
    world = await _platform(api)
    ids = world["ids"]
    gateway = api.client.app[RECOMMENDER]
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Guitar"])
    status, booking = await api.call("POST", f"/api/sessions/{ids['guitar']}/book/", learner)
    assert status == 201, booking
    await gateway.refresh()  # the fit itself knows the booking
    version = gateway.model_version
    assert "guitar" not in _names(await _sessions_for(api, learner), ids)
    status, _ = await api.call("POST", f"/api/bookings/{booking['id']}/cancel/", learner)
    assert status == 200
    body = await _sessions_for(api, learner)
    assert _names(body, ids)[0] == "guitar"  # its only seat is free again, and it is theirs
    assert body["model_version"] == version
    # ... and a later refit agrees: the database says the seat is no longer held.
    await gateway.refresh()
    assert _names(await _sessions_for(api, learner), ids)[0] == "guitar"


async def test_catalogue_changes_reach_every_node_over_redis(
    app_factory: Any, make_settings: Any, postgres_database: str
) -> None:
    """Two nodes on one PostgreSQL and one Redis: a session published through node A is
    recommended by node B's model, which never refitted."""
    import os

    redis_url = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    settings = make_settings(database={"url": postgres_database}, redis={"url": redis_url})
    node_a, node_b = await app_factory(settings), await app_factory(settings)
    gateway_b = node_b.app[RECOMMENDER]
    await gateway_b.refresh()
    api_a = ApiDriver(node_a)
    mentor = await api_a.register("mentor")
    learner = await api_a.register("learner")
    await _profile(api_a, learner, interests=["Figma"])
    new_id = await _session(api_a, mentor, "Figma prototyping", ["Figma"])
    learner_id = learner["user"]["id"]
    for _ in range(100):  # delivered asynchronously: up to 5 s
        if new_id in [r.id for r in gateway_b.engine.recommend_sessions(learner_id, 5)]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("node B's recommender never heard of the new session")
    assert gateway_b.model_version == 1


async def test_reasons_name_mentors_as_the_pages_do(sqlite_api: Any) -> None:
    api = sqlite_api
    ada = await api.register(
        "mentor", username="ada_928e54", first_name="Ada", last_name="Lovelace"
    )
    booked = await _session(api, ada, "Analytical engines", ["Mathematics"])
    fresh = await _session(api, ada, "Notes on the engine", ["Mathematics"], days=3)
    learner = await api.register("learner")
    status, _ = await api.call("POST", f"/api/sessions/{booked}/book/", learner)
    assert status == 201
    await api.client.app[RECOMMENDER].refresh()
    api.client.session.cookie_jar.clear()
    status, body = await api.call("GET", "/api/recommendations/trending/")
    assert status == 200, body
    reasons = {r["session"]["id"]: r["reason"] for r in body["results"]}
    assert reasons[fresh] == "new session from Ada Lovelace, popular with learners this week"
    assert "ada_928e54" not in " ".join(reasons.values())


async def test_picks_read_their_rows_in_one_query_whatever_the_count(sqlite_api: Any) -> None:
    api = sqlite_api
    await _platform(api)
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Python"])
    gateway = api.client.app[RECOMMENDER]
    user = await api.client.app[PLATFORM].accounts.get_user(learner["user"]["id"])
    counts = {}
    for k in (1, 3, 10):
        with StatementCounter(api.client.app[PLATFORM]) as statements:
            picks = await gateway.session_picks(user, k)
        assert len(picks) == min(k, 6)  # 3 of Alice's 5 (the diversity cap), 2 + 1 others
        counts[k] = statements.count
    # The learner's bookings, then every candidate session at once: no read per session.
    assert counts == {1: 2, 3: 2, 10: 2}


async def test_mentor_picks_read_their_rows_in_one_query_whatever_the_count(
    sqlite_api: Any,
) -> None:
    api = sqlite_api
    world = await _platform(api)
    for name in ("dora_py", "emil_py", "fay_data"):
        mentor = await api.register("mentor", username=name)
        await _profile(api, mentor, skills=["Python"], bio="Python mentor")
    learner = await api.register("learner")
    await _profile(api, learner, interests=["Python"])
    status, body = await api.call(
        "POST", "/api/users/follow/", learner, json={"mentor_id": world["carol"]["user"]["id"]}
    )
    assert status == 200, body
    platform = api.client.app[PLATFORM]
    gateway = api.client.app[RECOMMENDER]
    await gateway.refresh()
    user = await platform.accounts.get_user(learner["user"]["id"])
    counts = {}
    for k in (1, 3, 10):
        with StatementCounter(platform) as statements:
            picks = await gateway.mentor_picks(user, k)
        names = [p.mentor.username for p in picks]
        assert len(names) == min(k, 5) and "carol_music" not in names  # followed: left out
        counts[k] = statements.count
    # The learner's follows, then every candidate mentor at once: no read per mentor.
    assert counts == {1: 2, 3: 2, 10: 2}
