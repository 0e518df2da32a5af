"""/api/recommendations/{sessions,mentors,trending}/ with new, heavy and skill-less users."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from web.keys import RECOMMENDER

SOURCES = {"content", "collaborative", "popularity", "hybrid"}


def _in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def _profile(api: Any, who: dict[str, Any], **fields: Any) -> None:
    status, body = await api.call("PUT", "/api/users/profile/update/", who, json=fields)
    assert status == 200, body


async def _session(api: Any, mentor: dict[str, Any], title: str, skills: list[str],
                   *, days: float = 2, seats: int = 5) -> str:
    body = {
        "title": title, "description": f"{title}: a live group session.",
        "schedule": _in_days(days), "duration": 60, "max_participants": seats,
        "skills_required": skills, "price": 0,
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
    status, body = await api.call(
        "GET", f"/api/recommendations/sessions/?limit={limit}", who
    )
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


async def test_invalid_queries_are_400(sqlite_api: Any) -> None:
    learner = await sqlite_api.register("learner")
    for query in ("limit=0", "limit=51", "limit=ten", "limit=3&colour=blue"):
        for path in ("sessions", "mentors", "trending"):
            status, body = await sqlite_api.call(
                "GET", f"/api/recommendations/{path}/?{query}", learner
            )
            assert status == 400, (path, query, body)
            assert body["error"]["code"] and body["error"]["message"]


async def test_personal_recommendations_need_a_login(sqlite_api: Any) -> None:
    await sqlite_api.register("learner")
    sqlite_api.client.session.cookie_jar.clear()
    for path in ("sessions", "mentors"):
        status, body = await sqlite_api.call("GET", f"/api/recommendations/{path}/")
        assert status == 401 and body["error"]["code"], path


async def test_empty_platform_answers_empty_lists(sqlite_api: Any) -> None:
    await sqlite_api.client.app[RECOMMENDER].refresh()
    learner = await sqlite_api.register("learner")
    for path in ("sessions", "mentors", "trending"):
        status, body = await sqlite_api.call("GET", f"/api/recommendations/{path}/", learner)
        assert status == 200 and body["results"] == [], path


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
