"""JSON form of a ``Snapshot`` (the app's export and ``--snapshot-json``; see docs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .data import Interaction, MentorItem, SessionItem, Snapshot, UserProfile

FORMAT = "peerlearn-recommender-snapshot/1"


def _dt(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # naive times are UTC (DESIGN §5)


def _optional_dt(value: str | None) -> datetime | None:
    return None if value is None else _dt(value)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    """Plain JSON-able dict."""
    return {
        "format": FORMAT,
        "users": [
            {"id": u.id, "role": u.role, "skills": list(u.skills), "interests": list(u.interests)}
            for u in s.users
        ],
        "sessions": [
            {
                "id": x.id,
                "mentor_id": x.mentor_id,
                "title": x.title,
                "description": x.description,
                "skills": list(x.skills),
                "schedule": _iso(x.schedule),
                "status": x.status,
                "max_participants": x.max_participants,
                "current_participants": x.current_participants,
                "price": x.price,
                "created_at": _iso(x.created_at),
            }
            for x in s.sessions
        ],
        "mentors": [
            {
                "id": m.id,
                "username": m.username,
                "display_name": m.display_name,
                "skills": list(m.skills),
                "bio": m.bio,
                "rating": m.rating,
                "rating_count": m.rating_count,
            }
            for m in s.mentors
        ],
        "interactions": [
            {
                "user_id": i.user_id,
                "session_id": i.session_id,
                "mentor_id": i.mentor_id,
                "kind": i.kind,
                "at": _iso(i.at),
                "value": i.value,
            }
            for i in s.interactions
        ],
        **({} if s.seats is None else {"seats": [[u, sid] for u, sid in s.seats]}),
    }


def session_from_dict(x: dict[str, Any]) -> SessionItem:
    """One entry of a snapshot's ``sessions``."""
    return SessionItem(
        id=str(x["id"]),
        mentor_id=int(x["mentor_id"]),
        title=x.get("title", ""),
        description=x.get("description", ""),
        skills=tuple(x.get("skills") or ()),
        schedule=_dt(x["schedule"]),
        status=x.get("status", "scheduled"),
        max_participants=int(x.get("max_participants", 10)),
        current_participants=int(x.get("current_participants", 0)),
        price=float(x.get("price", 0.0)),
        created_at=_optional_dt(x.get("created_at")),
    )


def mentor_from_dict(m: dict[str, Any]) -> MentorItem:
    """One entry of a snapshot's ``mentors``."""
    return MentorItem(
        int(m["id"]),
        m.get("username", f"mentor {m['id']}"),
        tuple(m.get("skills") or ()),
        m.get("bio", ""),
        m.get("rating"),
        int(m.get("rating_count", 0)),
        m.get("display_name") or "",
    )


def interaction_from_dict(i: dict[str, Any]) -> Interaction:
    """One entry of a snapshot's ``interactions`` (also what ``InteractionService`` hands its
    listeners)."""
    value = i.get("value")
    return Interaction(
        int(i["user_id"]),
        str(i["session_id"]),
        int(i["mentor_id"]),
        i["kind"],
        _dt(str(i["at"])),
        None if value is None else float(value),
    )


def snapshot_from_dict(d: dict[str, Any]) -> Snapshot:
    """Inverse of ``snapshot_to_dict``; optional fields may be omitted."""
    users = [
        UserProfile(
            int(u["id"]),
            u.get("role", "learner"),
            tuple(u.get("skills") or ()),
            tuple(u.get("interests") or ()),
        )
        for u in d.get("users", [])
    ]
    sessions = [session_from_dict(x) for x in d.get("sessions", [])]
    mentors = [mentor_from_dict(m) for m in d.get("mentors", [])]
    interactions = [interaction_from_dict(i) for i in d.get("interactions", [])]
    seats = d.get("seats")
    held = None if seats is None else [(int(u), str(sid)) for u, sid in seats]
    return Snapshot(users, sessions, mentors, interactions, held)


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot JSON file."""
    return snapshot_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def dump_snapshot(snapshot: Snapshot, path: str | Path) -> None:
    """Write a snapshot JSON file."""
    Path(path).write_text(json.dumps(snapshot_to_dict(snapshot)), encoding="utf-8")
