"""Real ``peerlearn serve`` processes sharing the real Redis and PostgreSQL.

Each :class:`Node` is one process (``python -m web.cli serve``) with its own HTTP port,
UDP media port and data folder, the same secret key (a login on one node is valid on
every node) and ``[cluster] enabled``. Users and sessions are made through the real API.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.sfu.client import WsClient

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "cluster-test-secret-" + "k" * 24
START_TIMEOUT_S = 90.0
#: Short TTLs keep the failure tests quick; a node silent this long is gone.
NODE_TTL_S = 3.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    node_id: str
    port: int
    udp_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)


def node_env(tmp: Path, name: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERLEARN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PEERLEARN_DATA_DIR=str(tmp / name),
        PEERLEARN_SERVER__SECRET_KEY=SECRET,
        PEERLEARN_DATABASE__URL=database_url,
        PEERLEARN_REDIS__URL=REDIS_URL,
        PEERLEARN_EMAIL__BACKEND="file",
        PEERLEARN_SFU__INTERFACES="127.0.0.1",
        PEERLEARN_CLUSTER__HEARTBEAT_S="0.5",
        PEERLEARN_CLUSTER__NODE_TTL_S=str(NODE_TTL_S),
        PEERLEARN_CLUSTER__DRAIN_GRACE_S="5",
    )
    env.update(extra)
    return env


async def start_node(tmp: Path, name: str, database_url: str, **extra: str) -> Node:
    """One node, once it answers ``/healthz``."""
    node = spawn_node(tmp, name, database_url, **extra)
    await wait_healthy(node)
    return node


def spawn_node(tmp: Path, name: str, database_url: str, **extra: str) -> Node:
    """Start one node's process (``serve`` returns at once; see :func:`wait_healthy`)."""
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    node_id = f"{name}-{uuid.uuid4().hex[:6]}"
    env = node_env(
        tmp,
        name,
        database_url,
        PEERLEARN_CLUSTER__ENABLED="true",
        PEERLEARN_CLUSTER__NODE_ID=node_id,
        PEERLEARN_SFU__UDP_PORT=str(udp_port),
        **extra,
    )
    log_path = tmp / f"{name}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Node(name, node_id, port, udp_port, proc, log_path, extra)


async def wait_healthy(node: Node) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise AssertionError(f"{node.name} exited: {node.log()[-3000:]}")
            try:
                async with http.get(node.url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{node.name} did not start: {node.log()[-3000:]}")


def stop(node: Node) -> None:
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()


class Api:
    """The real API of one node, as a user (Bearer token)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self._n = 0

    async def call(
        self, method: str, path: str, token: str | None = None, base: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(
            method, (base or self.base) + path, headers=headers, **kw
        ) as resp:
            try:
                return resp.status, await resp.json()
            except (aiohttp.ContentTypeError, ValueError):
                return resp.status, await resp.text()

    async def user(self, role: str) -> dict[str, Any]:
        self._n += 1
        name = f"{role}{self._n}_{uuid.uuid4().hex[:6]}"
        body = {
            "username": name,
            "email": f"{name}@example.org",
            "password": "s3cret-pass-Cluster!",
            "role": role,
        }
        status, data = await self.call("POST", "/api/auth/register/", json=body)
        assert status == 201, data
        status, data = await self.call(
            "POST",
            "/api/auth/login/",
            json={"username": name, "password": body["password"]},
        )
        assert status == 200, data
        return {"token": data["token"], "id": data["user"]["id"], "name": name}

    async def live_session(self, mentor: dict[str, Any], learners: list[dict[str, Any]]) -> str:
        body = {
            "title": "Across nodes",
            "description": "A room with sockets on two nodes.",
            "duration": 60,
            "schedule": (datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
            "max_participants": 5,
            "skills_required": ["WebRTC"],
            "price": 0,
        }
        status, data = await self.call("POST", "/api/sessions/create/", mentor["token"], json=body)
        assert status == 201, data
        sid = str(data["id"])
        for learner in learners:
            status, data = await self.call("POST", f"/api/sessions/{sid}/book/", learner["token"])
            assert status == 201, data
        status, data = await self.call("POST", f"/api/sessions/{sid}/start/", mentor["token"])
        assert status == 200, data
        return sid


class Participant(WsClient):
    """The headless participant of tests/sfu (signaling over the real socket), which can
    also just knock (no wait for ``joined``) and tell how its socket was closed."""

    async def knock(self) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            self._url,
            headers={"Origin": self._origin, "Authorization": f"Bearer {self._token}"},
        )
        self._spawn(self._read())
        await self.send({"type": "join_session"})

    @property
    def close_code(self) -> int | None:
        return None if self._ws is None or not self._ws.closed else self._ws.close_code

    async def wait_closed(self, timeout: float = 30.0) -> int | None:  # noqa: ASYNC109
        await self.wait_for(lambda: self._ws is not None and self._ws.closed, timeout)
        return self.close_code


async def rejoin(
    url: str, sid: str, user: dict[str, Any], clip: Any, *, deadline_s: float = 60.0
) -> Participant:
    """Join as the room page does after losing its socket: retry (1 s apart) until
    ``joined``; a socket closed with 1012 means "the room is moving, come again"."""
    deadline = time.monotonic() + deadline_s
    while True:
        client = Participant(url, sid, user["token"], user["id"], clip)
        try:
            await client.knock()
            await client.wait_for(
                lambda c=client: c.of_type("joined") or c.close_code is not None,  # type: ignore[misc]
                max(1.0, deadline - time.monotonic()),
            )
        except (AssertionError, aiohttp.ClientError):
            pass
        if client.of_type("joined") and client.close_code is None:
            return client
        await client.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"user {user['id']} could not rejoin {sid} on {url}")
        await asyncio.sleep(1.0)
