"""Declarative JSON endpoints: one declaration drives routing, validation, auth and OpenAPI.

Usage::

    api = ApiRegistry()

    @api.route("POST", "/api/auth/register/", body=RegisterIn, response=UserOut, status=201,
               summary="Create an account", tags=["auth"])
    async def register(request: web.Request, call: ApiCall[RegisterIn, None]) -> UserOut: ...

The handler receives the parsed ``body`` / ``query`` models and the current user; it returns a
pydantic model, a dict/list, or a ``web.StreamResponse``.  Invalid JSON, wrong types and
oversized bodies become 400 with DESIGN.md's error shape before the handler runs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from control.errors import Forbidden, NotAuthenticated, ValidationFailed
from control.models import User
from web.security import current_user

Auth = Literal[None, "user", "learner", "mentor", "admin"]
B = TypeVar("B", bound=BaseModel | None)
Q = TypeVar("Q", bound=BaseModel | None)

MAX_JSON_BYTES = 256 * 1024
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


@dataclass
class ApiCall(Generic[B, Q]):
    body: B
    query: Q
    user: User | None

    @property
    def me(self) -> User:
        assert self.user is not None
        return self.user


Handler = Callable[[web.Request, ApiCall[Any, Any]], Awaitable[Any]]


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    auth: Auth
    summary: str
    tags: list[str]
    errors: list[int] = field(default_factory=list)
    content_type: str = "application/json"
    request_content_type: str = "application/json"
    # For bodies the handler reads itself (uploads): the OpenAPI schema of that body.
    request_schema: dict[str, Any] | None = None


def validation_fields(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "body"
        fields.setdefault(key, err["msg"].removeprefix("Value error, "))
    return fields


def _check_auth(user: User | None, auth: Auth) -> None:
    if auth is None:
        return
    if user is None:
        raise NotAuthenticated("log in first")
    if auth == "user" or user.is_admin:
        return
    if user.role != auth:
        raise Forbidden(f"only a {auth} can do this")


async def read_json(request: web.Request) -> Any:
    if request.content_length and request.content_length > MAX_JSON_BYTES:
        raise ValidationFailed("request body too large", code="body_too_large")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ValidationFailed("request body too large", code="body_too_large")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: pathologically deep nesting ("[[[[...").
        raise ValidationFailed("request body is not valid JSON", code="invalid_json") from None
    _reject_unstorable_text(data)
    return data


def _reject_unstorable_text(data: Any, depth: int = 0) -> None:
    """NUL characters and lone surrogates cannot be stored (PostgreSQL text, UTF-8): 400."""
    if isinstance(data, str):
        if "\x00" in data or any("\ud800" <= ch <= "\udfff" for ch in data):
            raise ValidationFailed(
                "text contains NUL characters or unpaired surrogates", code="invalid_text"
            )
    elif isinstance(data, dict):
        for key, value in data.items():
            _reject_unstorable_text(key, depth + 1)
            _reject_unstorable_text(value, depth + 1)
    elif isinstance(data, list):
        for value in data:
            _reject_unstorable_text(value, depth + 1)


def parse_model(model: type[BaseModel], data: Any, *, where: str) -> BaseModel:
    if where == "body" and not isinstance(data, dict):
        raise ValidationFailed("request body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(f"invalid {where}", fields=validation_fields(exc)) from None


class ApiRegistry:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        auth: Auth = None,
        summary: str = "",
        tags: list[str] | None = None,
        errors: list[int] | None = None,
        content_type: str = "application/json",
        request_content_type: str = "application/json",
        request_schema: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method.upper(),
                    path=path,
                    handler=handler,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    auth=auth,
                    summary=summary or (handler.__doc__ or "").strip().split("\n")[0],
                    tags=tags or [],
                    errors=errors or [],
                    content_type=content_type,
                    request_content_type=request_content_type,
                    request_schema=request_schema,
                )
            )
            return handler

        return decorate

    def add_to(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, self._wrap(endpoint))

    @staticmethod
    def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            user: User | None = current_user(request)
            _check_auth(user, endpoint.auth)
            body = None
            if endpoint.body is not None:
                body = parse_model(endpoint.body, await read_json(request), where="body")
            query = None
            if endpoint.query is not None:
                params = dict(request.query)
                _reject_unstorable_text(params)
                query = parse_model(endpoint.query, params, where="query")
            result = await endpoint.handler(request, ApiCall(body=body, query=query, user=user))
            if isinstance(result, web.StreamResponse):
                return result
            if isinstance(result, BaseModel):
                # pydantic-core writes the JSON itself: no dict of dicts, no json.dumps
                return web.Response(
                    body=result.model_dump_json().encode(),
                    status=endpoint.status,
                    content_type="application/json",
                    charset="utf-8",
                )
            if endpoint.response is not None and not isinstance(result, dict | list):
                payload = result
            else:
                payload = _jsonable(result)
            return web.json_response(payload, status=endpoint.status)

        handle.__name__ = endpoint.handler.__name__
        return handle


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------- OpenAPI


def _schema_for(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    if isinstance(model, type) and issubclass(model, BaseModel):
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    return schema


def _path_params(path: str) -> list[dict[str, Any]]:
    params = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].partition(":")[0]
            schema: dict[str, Any] = {"type": "string"}
            if name == "session_id" or (name == "id" and path.startswith("/api/sessions/")):
                schema = {"type": "string", "format": "uuid"}
            elif name in ("booking_id", "user_id", "notification_id"):
                schema = {"type": "integer", "minimum": 1}
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _clean_path(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and ":" in part:
            part = "{" + part[1:].split(":", 1)[0] + "}"
        parts.append(part)
    return "/".join(parts)


def build_openapi(registry: ApiRegistry, *, title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for ep in registry.endpoints:
        op: dict[str, Any] = {
            "summary": ep.summary,
            "tags": ep.tags,
            "operationId": ep.handler.__name__,
            "parameters": _path_params(ep.path),
            "responses": {},
        }
        if ep.query is not None:
            q_schema = ep.query.model_json_schema()
            required = set(q_schema.get("required", []))
            for name, prop in q_schema.get("properties", {}).items():
                op["parameters"].append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if ep.body is not None or ep.request_schema is not None:
            body_schema = ep.request_schema or _schema_for(ep.body, components)
            op["requestBody"] = {
                "required": True,
                "content": {ep.request_content_type: {"schema": body_schema}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if ep.response is not None:
            ok["content"] = {ep.content_type: {"schema": _schema_for(ep.response, components)}}
        op["responses"][str(ep.status)] = ok
        reads_input = ep.body or ep.query or ep.request_schema
        error_codes = set(ep.errors) | ({400} if reads_input else set())
        if ep.auth:
            error_codes |= {401} | ({403} if ep.auth != "user" else set())
        for code in sorted(error_codes):
            op["responses"][str(code)] = {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        if ep.auth:
            op["security"] = [{"bearer": []}, {"cookie": []}]
        paths.setdefault(_clean_path(ep.path), {})[ep.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "peerlearn_session"},
            },
        },
    }
