"""Every POST/PUT endpoint of the whole API (from /api/openapi.json) answers garbage with a 4xx
in the error shape — never a 5xx."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.api.sessions_helpers import admin_of, create_session

BAD_BODIES: list[tuple[str, bytes]] = [
    ("invalid json", b'{"title": '),
    ("json array", b"[1, 2, 3]"),
    ("json string", b'"hello"'),
    ("null", b"null"),
    ("not utf-8", b'{"a": "\xff\xfe"}'),
    ("nul char", b'{"title": "a\\u0000b", "username": "a\\u0000b", "text": "\\u0000"}'),
    ("lone surrogate", b'{"title": "\\ud800", "username": "\\ud800", "bio": "\\udfff"}'),
    ("huge number", b'{"rating": 1e999, "max_participants": 99999999999999999999999}'),
    ("deep nesting", b"[" * 5000 + b"]" * 5000),
]


def wrong_types(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """Bodies where each known field gets a value of the wrong type."""
    ref = schema.get("$ref")
    if ref:
        schema = components[ref.rsplit("/", 1)[1]]
    props = schema.get("properties", {})
    bodies = [{name: [] for name in props}, {name: {"x": 1} for name in props}]
    bodies.append({name: ("x" * 300_000 if i % 2 == 0 else 12345) for i, name in enumerate(props)})
    bodies.append({name: "x" * 300_000 for name in props})
    return bodies


def concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "1"), path)


async def test_post_and_put_endpoints_never_5xx(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    admin = await admin_of(api)  # admin-only endpoints parse their bodies only for admins
    session = await create_session(api, mentor)
    ids = {
        "id": session["id"],
        "session_id": session["id"],
        "booking_id": "1",
        "user_id": str(mentor["user"]["id"]),
        "username": mentor["user"]["username"],
        "notification_id": "1",
    }
    status, doc = await api.call("GET", "/api/openapi.json")
    assert status == 200
    components = doc["components"]["schemas"]
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "put", "patch"):
                continue
            url = concrete(path, ids)
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            bodies: list[tuple[str, bytes | None, Any]] = [
                (name, raw, None) for name, raw in BAD_BODIES
            ]
            bodies += [("wrong types", None, b) for b in wrong_types(schema, components)]
            bodies.append(("300 KB string", f'"{"x" * 300_000}"'.encode(), None))
            for who in (mentor, learner, admin):
                for name, raw, js in bodies:
                    kwargs: dict[str, Any] = {"headers": {"Content-Type": "application/json"}}
                    if raw is not None:
                        kwargs["data"] = raw
                    else:
                        kwargs["json"] = js
                    status, data = await api.call(method.upper(), url, who, **kwargs)
                    checked += 1
                    if not content and status < 400:
                        continue  # an endpoint without a body ignores it (e.g. logout, start)
                    assert 400 <= status < 500, (method, path, name, status, data)
                    assert isinstance(data, dict) and set(data["error"]) >= {"code", "message"}, (
                        method,
                        path,
                        name,
                        data,
                    )
    assert checked > 100


async def test_unknown_ids_are_404(api: Any) -> None:
    mentor = await api.register("mentor")
    for path in (
        f"/api/sessions/{uuid.uuid4()}/",
        "/api/sessions/../",
        "/api/sessions/00000000-0000-0000-0000-00000000000g/",
        f"/api/sessions/{uuid.uuid4()}/feedback/",
        f"/api/sessions/{uuid.uuid4()}/bookings/",
        f"/api/sessions/{uuid.uuid4()}/calendar.ics",
    ):
        status, data = await api.call("GET", path, mentor)
        assert status == 404, (path, data)
    for action in ("start", "end", "cancel", "book"):
        status, _ = await api.call("POST", f"/api/sessions/{uuid.uuid4()}/{action}/", mentor)
        assert status in (403, 404), action
    status, _ = await api.call("POST", f"/api/sessions/{'9' * 40}/start/", mentor)
    assert status == 404


GARBAGE_QUERY_VALUES = ["", "abc", "-1", "1e999", "99999999999999999999999", "x" * 5000, "\x00"]


async def test_query_parameters_never_5xx(sqlite_api: Any) -> None:
    """Every documented query parameter of every GET endpoint, given garbage, is a 4xx."""
    api = sqlite_api
    admin = await admin_of(api)
    status, doc = await api.call("GET", "/api/openapi.json")
    checked = 0
    for path, ops in doc["paths"].items():
        op = ops.get("get")
        if op is None or "{" in path:
            continue
        names = [p["name"] for p in op["parameters"] if p["in"] == "query"]
        for name in [*names, "not_a_parameter"]:
            for value in GARBAGE_QUERY_VALUES:
                status, data = await api.call("GET", path, admin, params={name: value})
                checked += 1
                if status < 400:
                    continue  # e.g. an empty or free-text value is a fine search
                assert status < 500 and set(data["error"]) >= {"code", "message"}, (
                    path,
                    name,
                    value[:20],
                    status,
                    data,
                )
    assert checked > 100
