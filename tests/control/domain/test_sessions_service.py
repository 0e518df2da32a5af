"""Session/booking/interaction services without HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from control.errors import Conflict, Forbidden, NotFound, ValidationFailed
from control.events import CATALOG_CHANNEL
from control.platform import Platform
from recommender.serialization import snapshot_from_dict
from tests.support import StatementCounter


async def _user(p: Platform, name: str, role: str) -> Any:
    return await p.accounts.register(
        username=name, email=f"{name}@example.org", password="s3cret-pass!", role=role
    )


def _kw(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(
        title="Service level",
        description="d",
        schedule=datetime.now(UTC) + timedelta(days=1),
        duration=60,
        max_participants=2,
        skills_required=["Go"],
        price=Decimal("0"),
    )
    kw.update(over)
    return kw


async def test_create_validates_in_the_service_too(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    learner = await _user(platform, "leo", "learner")
    with pytest.raises(Forbidden):
        await platform.sessions.create(learner, **_kw())
    for over, field in (
        ({"schedule": datetime.now(UTC) - timedelta(minutes=1)}, "schedule"),
        ({"schedule": datetime(2030, 1, 1)}, "schedule"),
        ({"price": Decimal("1.001")}, "price"),
        ({"price": "abc"}, "price"),
        ({"skills_required": []}, "skills_required"),
        ({"title": "  a  "}, "title"),
        ({"duration": 5}, "duration"),
    ):
        with pytest.raises(ValidationFailed) as err:
            await platform.sessions.create(mentor, **_kw(**over))
        assert field in err.value.fields
    s = await platform.sessions.create(mentor, **_kw(price="7.5"))
    assert s.price == Decimal("7.50") and len(s.meeting_room_id) >= 16
    other = await platform.sessions.create(mentor, **_kw())
    assert other.meeting_room_id != s.meeting_room_id
    with pytest.raises(NotFound):
        await platform.sessions.get("nope")


async def test_interactions_export_and_listeners(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    mentor = await platform.accounts.update_profile(mentor, skills=["Go"], bio="gopher")
    learner = await _user(platform, "leo", "learner")
    learner = await platform.accounts.update_profile(learner, interests=["Go"])
    s = await platform.sessions.create(mentor, **_kw())
    seen: list[dict[str, Any]] = []
    platform.interactions.listeners.append(seen.append)
    platform.interactions.listeners.append(lambda _d: 1 / 0)  # a broken listener is contained
    await platform.interactions.record(learner.id, s.id, "view")
    await platform.bookings.book(learner, s.id)
    assert [d["kind"] for d in seen] == ["view", "booking"]
    assert seen[0] == {
        "user_id": learner.id,
        "session_id": str(s.id),
        "mentor_id": mentor.id,
        "kind": "view",
        "value": None,
        "at": seen[0]["at"],
    }
    data = await platform.interactions.export()
    assert {u["id"]: u["interests"] for u in data["users"]}[learner.id] == ["Go"]
    [sess] = data["sessions"]
    assert (
        sess["id"] == str(s.id) and sess["skills"] == ["Go"] and sess["current_participants"] == 1
    )
    assert sess["price"] == 0.0 and isinstance(sess["schedule"], str)
    # Publication time: the offline evaluation's temporal split needs it.
    assert datetime.fromisoformat(sess["created_at"]) == s.created_at
    [m] = data["mentors"]
    assert m == {
        "id": mentor.id,
        "username": "mia",
        "display_name": "mia",  # no first or last name given
        "skills": ["Go"],
        "bio": "gopher",
        "rating": None,
        "rating_count": 0,
    }
    assert [i["kind"] for i in data["interactions"]] == ["view", "booking"]
    assert data["seats"] == [[learner.id, str(s.id)]]  # who holds a seat now
    with pytest.raises(ValidationFailed):
        await platform.interactions.record(learner.id, s.id, "like")


async def test_booking_rules_in_the_service(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    a, b, c = [await _user(platform, n, "learner") for n in ("ann", "bob", "cat")]
    s = await platform.sessions.create(mentor, **_kw(max_participants=2))
    with pytest.raises(Forbidden):
        await platform.bookings.book(mentor, s.id)
    await platform.bookings.book(a, s.id)
    with pytest.raises(Conflict) as err:
        await platform.bookings.book(a, s.id)
    assert err.value.code == "already_booked"
    await platform.bookings.book(b, s.id)
    with pytest.raises(Conflict) as err:
        await platform.bookings.book(c, s.id)
    assert err.value.code == "session_full"
    assert (await platform.sessions.get(s.id)).current_participants == 2
    assert len(await platform.bookings.for_session(s.id)) == 2
    assert [x.session_id for x in await platform.bookings.for_learner(a.id)] == [s.id]


async def test_feedback_aggregates_and_chat(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    a = await _user(platform, "ann", "learner")
    s = await platform.sessions.create(
        mentor, **_kw(schedule=datetime.now(UTC) + timedelta(minutes=5))
    )
    await platform.bookings.book(a, s.id)
    await platform.sessions.start(mentor, s.id)
    msg = await platform.chat.add(s.id, a.id, "hi <there>")
    assert msg["text"] == "hi <there>" and msg["display_name"] == "ann"
    await platform.sessions.end(mentor, s.id)
    with pytest.raises(ValidationFailed):
        await platform.feedback.submit(a, s.id, rating=6)
    await platform.bookings.record_join(s.id, a.id)  # only attendees who came are counted
    await platform.feedback.submit(a, s.id, rating=3, comment="fine")
    assert await platform.feedback.mentor_rating(mentor.id) == (3.0, 1)
    assert await platform.feedback.distribution(mentor.id) == {1: 0, 2: 0, 3: 1, 4: 0, 5: 0}
    assert [f.rating for f in await platform.feedback.for_mentor(mentor.id)] == [3]
    assert [m["text"] for m in await platform.chat.history(s.id)] == ["hi <there>"]


async def test_catalogue_changes_are_announced_on_the_bus(platform: Platform) -> None:
    """What every node's recommender and catalogue cache follow: publication, lifecycle,
    seats taken and freed."""
    seen: list[dict[str, Any]] = []

    async def on_change(message: dict[str, Any]) -> None:
        seen.append(message)

    platform.bus.subscribe(CATALOG_CHANNEL, on_change)
    mentor = await _user(platform, "mia", "mentor")
    ann, bob = await _user(platform, "ann", "learner"), await _user(platform, "bob", "learner")
    soon = await platform.sessions.create(
        mentor, **_kw(schedule=datetime.now(UTC) + timedelta(minutes=5))
    )
    paid = await platform.sessions.create(mentor, **_kw(price=Decimal("10")))
    assert seen == [
        {"type": "session_created", "session_id": str(soon.id)},
        {"type": "session_created", "session_id": str(paid.id)},
    ]
    seen.clear()
    booking = await platform.bookings.book(ann, soon.id)
    await platform.bookings.cancel(ann, booking.id)
    held = await platform.bookings.book(bob, paid.id)  # a payment hold...
    later = datetime.now(UTC) + timedelta(days=1)
    assert await platform.bookings.release_expired_holds(later) == 1  # ... that lapses
    assert seen == [
        {"type": "booking_created", "session_id": str(soon.id), "user_id": ann.id},
        {"type": "booking_cancelled", "session_id": str(soon.id), "user_id": ann.id},
        {"type": "booking_created", "session_id": str(paid.id), "user_id": bob.id},
        {"type": "booking_cancelled", "session_id": str(paid.id), "user_id": held.learner_id},
    ]
    seen.clear()
    await platform.sessions.start(mentor, soon.id)
    await platform.sessions.end(mentor, soon.id)
    await platform.sessions.cancel(mentor, paid.id)
    assert [m["type"] for m in seen] == ["session_started", "session_ended", "session_cancelled"]
    assert {m["session_id"] for m in seen} == {str(soon.id), str(paid.id)}


async def test_export_keeps_the_newest_interactions_when_bounded(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    learner = await _user(platform, "leo", "learner")
    sessions = [await platform.sessions.create(mentor, **_kw(title=f"Go {i}")) for i in range(4)]
    for s in sessions:
        await platform.interactions.record(learner.id, s.id, "view")
    everything = (await platform.interactions.export())["interactions"]
    assert [i["session_id"] for i in everything] == [str(s.id) for s in sessions]
    bounded = (await platform.interactions.export(max_interactions=2))["interactions"]
    assert bounded == everything[2:]  # the newest two, still oldest first
    assert (await platform.interactions.export(max_interactions=0))["interactions"] == []
    snapshot = snapshot_from_dict(await platform.interactions.export())
    assert [x.created_at for x in snapshot.sessions] == [s.created_at for s in sessions]


async def test_get_many_reads_sessions_in_one_query(platform: Platform) -> None:
    mentor = await _user(platform, "mia", "mentor")
    made = [await platform.sessions.create(mentor, **_kw(title=f"Go {i}")) for i in range(25)]
    asked = [str(s.id) for s in reversed(made)]
    with StatementCounter(platform) as statements:
        got = await platform.sessions.get_many(asked)
    assert [str(s.id) for s in got] == asked  # in the order asked
    assert statements.count == 1
    assert got[0].mentor.username == "mia"  # the mentor comes along (joined), no extra read
    unknown, malformed = str(uuid.uuid4()), "not-a-uuid"
    again = await platform.sessions.get_many([unknown, made[3].id, malformed, str(made[3].id)])
    assert [s.id for s in again] == [made[3].id]  # unknown, malformed and repeats left out
    assert await platform.sessions.get_many([]) == []
