"""Recommendation pages with the recommender wired (a stand-in with known answers), failing,
or absent; and Admin Control with the SFU reporting rooms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from aiohttp import web

from config.settings import Settings
from control.models import Session, User
from control.platform import Platform
from recommender.data import Recommendation
from web.keys import PLATFORM, RECOMMENDER, SFU
from web.security import SESSION_COOKIE


@dataclass(frozen=True)
class SessionPick:
    """The shape of ``web.recommendations.SessionPick``."""

    recommendation: Recommendation
    session: Session


class StandIn:
    """Answers like ``web.recommendations.RecommenderGateway``: rows with their ranking."""

    def __init__(self, fail: bool = False) -> None:
        self.sessions: list[tuple[Session, str]] = []  # filled by the test
        self.fail = fail

    async def session_picks(self, user: User, k: int) -> list[SessionPick]:
        if self.fail:
            raise RuntimeError("model not fitted")
        return [
            SessionPick(Recommendation(str(s.id), 1.0 - i / 10, reason, "hybrid"), s)
            for i, (s, reason) in enumerate(self.sessions)
        ][:k]

    async def mentor_picks(self, user: User, k: int) -> list[Any]:
        return []

    async def trending_picks(self, user: User | None, k: int) -> list[SessionPick]:
        return []


async def start_app(aiohttp_client: Any, settings: Settings, **keys: Any) -> Any:
    """The app with ``keys`` (``recommender``, ``sfu``) set once its own start-up has run
    (so they replace whatever the app wired itself)."""
    from web.app import create_app

    app = create_app(settings, background=False)

    async def install(app: web.Application) -> None:
        for key, value in keys.items():
            app[{"recommender": RECOMMENDER, "sfu": SFU}[key]] = value

    app.on_startup.append(install)
    return await aiohttp_client(app)


async def world(platform: Platform) -> dict[str, Any]:
    acc = platform.accounts
    mentor = await acc.register(
        username="ada",
        email="ada@example.org",
        password="s3cret-pass!",
        role="mentor",
        first_name="Ada",
        last_name="Lovelace",
    )
    mentor = await acc.update_profile(mentor, skills=["Python", "Rust"])
    learner = await acc.register(
        username="lin", email="lin@example.org", password="s3cret-pass!", role="learner"
    )
    learner = await acc.update_profile(learner, interests=["Rust"])
    soon = datetime.now(UTC) + timedelta(days=1)

    async def session(title: str, skills: list[str], days: int = 0) -> Session:
        return await platform.sessions.create(
            mentor,
            title=title,
            description="d",
            schedule=soon + timedelta(days=days),
            duration=60,
            max_participants=5,
            skills_required=skills,
            price=0,
        )

    out = {
        "mentor": mentor,
        "learner": learner,
        "python": await session("Python intro", ["Python"]),
        "rust": await session("Rust ownership", ["Rust"], 1),
        "booked": await session("Rust async", ["Rust"], 2),
    }
    await platform.bookings.book(learner, out["booked"].id)
    return out


async def page(client: Any, user: User, path: str) -> str:
    _, token = await client.app[PLATFORM].accounts.logins.start(user)
    resp = await client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert resp.status == 200, await resp.text()
    return await resp.text()


def cards(html: str) -> list[tuple[str, str]]:
    """(title, reason) of each session card, in page order."""
    found = re.findall(
        r'<h3 class="card-title"><a href="/sessions/[^/]+/">([^<]+)</a></h3>'
        r'.*?<span class="reason"[^>]*>([^<]+)</span>',
        html,
        re.S,
    )
    return [(unescape(title), unescape(reason)) for title, reason in found]


async def test_pages_show_the_recommenders_picks_and_reasons(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    recommender = StandIn()
    client = await start_app(aiohttp_client, sqlite_settings, recommender=recommender)
    w = await world(client.app[PLATFORM])
    recommender.sessions = [
        (w["python"], "learners like you booked it"),
        (w["rust"], "similar to sessions you rated highly"),
    ]
    html = await page(client, w["learner"], "/dashboard/?tab=recommendations")
    assert cards(html) == [
        ("Python intro", "learners like you booked it"),
        ("Rust ownership", "similar to sessions you rated highly"),
    ]


@pytest.mark.parametrize(
    "recommender",
    [None, StandIn(fail=True), StandIn()],
    ids=["absent", "failing", "not-fitted-yet"],
)
async def test_pages_fall_back_to_interests_when_the_recommender_cannot_answer(
    aiohttp_client: Any, sqlite_settings: Settings, recommender: Any
) -> None:
    client = await start_app(aiohttp_client, sqlite_settings, recommender=recommender)
    w = await world(client.app[PLATFORM])
    html = await page(client, w["learner"], "/recommendations/")
    picks = cards(html.split('id="rec-mentors"')[0])
    # Interest matches first; the booked session is never suggested again.
    assert picks[0] == ("Rust ownership", "matches your interest in Rust")
    assert "Rust async" not in [title for title, _ in picks]
    assert "teaches Rust, which you&#39;re interested in" in html


class FakeSfu:
    def __init__(self) -> None:
        self.rooms: dict[str, Any] = {}  # filled by the test

    def stats(self) -> dict[str, Any]:
        return {"rooms": self.rooms}


async def test_admin_control_lists_live_sessions_and_stray_rooms(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    sfu = FakeSfu()
    client = await start_app(aiohttp_client, sqlite_settings, sfu=sfu)
    platform = client.app[PLATFORM]
    w = await world(platform)
    live = await platform.sessions.create(
        w["mentor"],
        title="Live now",
        description="d",
        schedule=datetime.now(UTC) + timedelta(minutes=5),
        duration=60,
        max_participants=3,
        skills_required=["Rust"],
        price=0,
    )
    await platform.sessions.start(w["mentor"], live.id)
    admin = await platform.accounts.create_admin("root", "root@example.org", "s3cret-pass!")
    figures = {
        "display_name": "Ada Lovelace",
        "bitrate_in_kbps": 310.5,
        "bitrate_out_kbps": 620.0,
        "rtt_ms": 12.5,
        "packets_lost": 3,
        "frames_forwarded": 900,
        "frames_dropped": 2,
        "keyframes_requested": 1,
        "publish": {
            "audio": {"frames_in": 50},
            "camera": {"frames_in": 40},
            "screen": {"frames_in": 0},
        },
        "subscribe": [{}, {}],
    }
    sfu.rooms = {
        str(live.id): {"participants": {w["mentor"].id: figures}},
        "stray-room": {"participants": {}},
    }
    html = await page(client, admin, "/dashboard/?tab=control")
    section = html.split(f'data-room="{live.id}"')[1].split("</section>")[0]
    assert "Live now" in section and "data-connected>1<" in section
    row = re.sub(r"\s+", " ", section.split("<tbody>")[1])
    for cell in ("Ada Lovelace", "audio, camera", "310.5", "620.0", "12.5", "900"):
        assert f">{cell}<" in row, cell
    assert "screen" not in row  # an idle transceiver is not "publishing"
    assert 'data-room="stray-room"' in html and "No live session owns this room" in html


async def test_pages_show_what_the_wired_recommender_picks(
    aiohttp_client: Any, sqlite_settings: Settings
) -> None:
    """The real gateway, fitted on the seeded platform: the page shows its picks as given."""
    client = await start_app(aiohttp_client, sqlite_settings)
    w = await world(client.app[PLATFORM])
    gateway = client.app[RECOMMENDER]
    await gateway.refresh()
    picks = await gateway.session_picks(w["learner"], 9)
    assert picks, "the fitted model recommends the learner's interest"
    html = await page(client, w["learner"], "/recommendations/")
    shown = cards(html.split('id="rec-mentors"')[0])
    assert shown == [(p.session.title, p.recommendation.reason) for p in picks]


def test_the_stand_in_answers_exactly_what_the_gateway_offers() -> None:
    """The pages and the API ask the gateway for picks only; the stand-in mimics that."""
    from web.recommendations import RecommenderGateway

    def asks(cls: type) -> set[str]:
        return {name for name in vars(cls) if name.endswith("_picks")}

    offered = {
        name
        for name in vars(RecommenderGateway)
        if not name.startswith("_") and callable(getattr(RecommenderGateway, name))
    }
    lifecycle = {
        "start",
        "stop",
        "refresh",
        "on_interaction",
        "on_remote_interaction",
        "on_catalog_change",
    }
    assert (
        offered - lifecycle
        == asks(RecommenderGateway)
        == asks(StandIn)
        == {"session_picks", "mentor_picks", "trending_picks"}
    )
