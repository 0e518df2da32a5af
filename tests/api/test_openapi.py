"""The OpenAPI document at /api/openapi.json describes every API route, each exactly once."""

from __future__ import annotations

import re
from typing import Any

import pytest

from web.api.registry import ERROR_SCHEMA


def _shape(path: str) -> str:
    """``/api/sessions/{id}/`` and ``/api/sessions/{session_id}/`` are the same route."""
    return re.sub(r"\{[^}]+\}", "{}", path)


async def test_document_covers_every_api_route_once(sqlite_client: Any) -> None:
    resp = await sqlite_client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    documented: list[tuple[str, str]] = []
    operation_ids: list[str] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            documented.append((method.upper(), _shape(path)))
            operation_ids.append(op["operationId"])
            assert op["responses"], (method, path)
            if op.get("security"):
                assert "401" in op["responses"], (method, path)
    assert len(set(operation_ids)) == len(operation_ids), "operationIds must be unique"
    assert len(set(documented)) == len(documented), "a route is documented twice"

    routed = {
        (route.method, _shape(route.resource.canonical))
        for route in sqlite_client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    } - {("GET", "/api/openapi.json")}
    assert routed == set(documented)
    assert doc["components"]["schemas"]["Error"] == ERROR_SCHEMA


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth/user/"),
        ("GET", "/api/sessions/not-a-uuid/"),
        ("POST", "/api/auth/login/"),
        ("DELETE", "/api/sessions/"),
        ("GET", "/api/no-such-thing/"),
    ],
)
async def test_error_responses_have_the_documented_shape(
    sqlite_client: Any, method: str, path: str
) -> None:
    resp = await sqlite_client.request(
        method, path, data=b"{", headers={"Content-Type": "application/json"}
    )
    assert 400 <= resp.status < 500, (method, path, resp.status)
    body = await resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
