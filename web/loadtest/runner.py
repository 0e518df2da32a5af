"""The load test: accounts and live sessions through the real API, R rooms of N headless
participants through the real signaling socket, S seconds of media, then one table."""

from __future__ import annotations

import asyncio
import math
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from peerlearn_sfu.ice import IcePolicy
from web.loadtest.media import Clip, make_clip
from web.loadtest.participant import Participant

#: How long frames sent in the window may still arrive after it.
DRAIN_S = 1.0


class LoadTestError(Exception):
    """Set-up failed (a refused login, registration or booking): nothing was measured."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass
class Options:
    url: str
    rooms: int = 1
    participants: int = 3
    seconds: float = 10.0
    mentors: list[Account] = field(default_factory=list)
    learners: list[Account] = field(default_factory=list)
    admin_token: str | None = None
    admin: Account | None = None  # logged in for its token, if no token is given
    server_pid: int | None = None
    join_timeout_s: float = 30.0
    interfaces: tuple[str, ...] = ()
    fps: int = 20
    progress: bool = True


@dataclass
class User:
    token: str
    id: int
    username: str
    created: bool  # registered by this run (deactivated afterwards with an admin token)


@dataclass
class RoomRun:
    session_id: str
    mentor: User
    participants: list[Participant]


@dataclass
class Result:
    rooms: int
    participants: int
    seconds: float
    join_p50_s: float | None
    join_p95_s: float | None
    frames_received: int
    frames_expected: int
    nacks: int
    failures: int
    failure_reasons: list[str]
    server_cpu_percent: float | None  # of one core, averaged over the media window

    @property
    def loss(self) -> float:
        if not self.frames_expected:
            return 0.0
        return max(0.0, 1.0 - self.frames_received / self.frames_expected)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def parse_account(value: str) -> Account:
    """``USERNAME:PASSWORD`` (the password may contain ``:``)."""
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise ValueError("expected USERNAME:PASSWORD")
    return Account(username, password)


class Api:
    """The server's real REST API, as one user at a time (Bearer tokens)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")

    async def call(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as resp:
            try:
                return resp.status, await resp.json()
            except (aiohttp.ContentTypeError, ValueError):
                return resp.status, await resp.text()

    async def expect(
        self, status: int, method: str, path: str, token: str | None = None, **kw: Any
    ) -> Any:
        got, data = await self.call(method, path, token, **kw)
        if got != status:
            raise LoadTestError(f"{method} {path}: HTTP {got}: {str(data)[:300]}")
        return data

    async def login(self, account: Account) -> User:
        data = await self.expect(
            200,
            "POST",
            "/api/auth/login/",
            json={"username": account.username, "password": account.password},
        )
        return User(data["token"], int(data["user"]["id"]), account.username, created=False)

    async def register(self, role: str, run: str, index: int) -> User:
        name = f"loadtest-{run}-{role[0]}{index}"
        data = await self.expect(
            201,
            "POST",
            "/api/auth/register/",
            json={
                "username": name,
                "email": f"{name}@loadtest.invalid",
                # Random, hence strong enough for any strength rule; never reused.
                "password": secrets.token_urlsafe(18) + "-Lt9",
                "role": role,
            },
        )
        return User(data["token"], int(data["user"]["id"]), name, created=True)

    async def live_session(self, mentor: User, learners: list[User], run: str, room: int) -> str:
        body = {
            "title": f"Load test {run} room {room + 1}",
            "description": "Created by peerlearn loadtest; ended when the test ends.",
            "duration": 60,
            "schedule": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "max_participants": max(1, len(learners)),
            "skills_required": ["Load testing"],
            "price": 0,
        }
        data = await self.expect(201, "POST", "/api/sessions/create/", mentor.token, json=body)
        sid = str(data["id"])
        for learner in learners:
            await self.expect(201, "POST", f"/api/sessions/{sid}/book/", learner.token)
        await self.expect(200, "POST", f"/api/sessions/{sid}/start/", mentor.token)
        return sid


class Progress:
    """A rich progress bar (or nothing, with ``--no-progress`` / not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(),
                transient=False,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def task(self, description: str, total: float) -> Any:
        return self._bar.add_task(description, total=total) if self._bar is not None else None

    def update(self, task: Any, completed: float) -> None:
        if self._bar is not None and task is not None:
            self._bar.update(task, completed=completed)


class ServerCpu:
    """CPU time of ``pid`` and its children (workers), when this machine can see it."""

    def __init__(self, pid: int | None) -> None:
        self._process: Any = None
        if pid is not None:
            import psutil

            self._process = psutil.Process(pid)

    def seconds(self) -> float | None:
        if self._process is None:
            return None
        import psutil

        total = 0.0
        for proc in [self._process, *self._process.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:  # a worker that just exited
                continue
            total += times.user + times.system
        return total


async def _accounts(api: Api, options: Options, run: str) -> list[tuple[User, list[User]]]:
    """Per room: its mentor and its N-1 learners (given logins, else registered)."""
    learners_per_room = options.participants - 1
    if options.learners and len(options.learners) < learners_per_room:
        raise LoadTestError(
            f"{learners_per_room} learner logins needed per room, {len(options.learners)} given"
        )
    mentors = [await api.login(a) for a in options.mentors]
    given = [await api.login(a) for a in options.learners]
    rooms: list[tuple[User, list[User]]] = []
    for room in range(options.rooms):
        mentor = (
            mentors[room % len(mentors)] if mentors else await api.register("mentor", run, room)
        )
        if given:
            learners = given[:learners_per_room]
        else:
            learners = [
                await api.register("learner", run, room * learners_per_room + i)
                for i in range(learners_per_room)
            ]
        rooms.append((mentor, learners))
    return rooms


def _ice(options: Options) -> IcePolicy | None:
    if not options.interfaces:
        return None  # aiortc's own gathering, every interface
    return IcePolicy(port_min=20000, port_max=60999, interfaces=options.interfaces)


async def run(options: Options, clip: Clip | None = None) -> Result:
    """Set up, join everyone, publish for ``options.seconds``, measure, clean up."""
    if options.participants < 2:
        raise LoadTestError("a room needs at least 2 participants to forward anything")
    clip = clip or make_clip(seconds=4, fps=options.fps)
    run_id = uuid.uuid4().hex[:6]
    cpu = ServerCpu(options.server_pid)
    async with aiohttp.ClientSession() as http:
        api = Api(http, options.url)
        admin_token = options.admin_token
        if admin_token is None and options.admin is not None:
            admin_token = (await api.login(options.admin)).token
        plan = await _accounts(api, options, run_id)
        rooms: list[RoomRun] = []
        for index, (mentor, learners) in enumerate(plan):
            sid = await api.live_session(mentor, learners, run_id, index)
            people = [
                Participant(options.url, sid, u.token, u.id, clip, _ice(options))
                for u in [mentor, *learners]
            ]
            rooms.append(RoomRun(sid, mentor, people))
        try:
            return await _measure(options, rooms, cpu)
        finally:
            await asyncio.gather(*(p.close() for r in rooms for p in r.participants))
            for room in rooms:
                await api.call("POST", f"/api/sessions/{room.session_id}/end/", room.mentor.token)
            await _deactivate(api, admin_token, plan)


async def _deactivate(api: Api, token: str | None, plan: list[tuple[User, list[User]]]) -> None:
    """With an admin token, the accounts this run registered are switched off again."""
    if token is None:
        return
    made = {u.id for mentor, learners in plan for u in [mentor, *learners] if u.created}
    for user_id in sorted(made):
        await api.call("POST", f"/api/admin/users/{user_id}/active/", token, json={"active": False})


async def _join(participant: Participant, timeout_s: float) -> None:
    try:
        await participant.join(timeout_s)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        participant.failure = participant.failure or f"join: {type(exc).__name__}: {exc}"


async def _measure(options: Options, rooms: list[RoomRun], cpu: ServerCpu) -> Result:
    everyone = [p for r in rooms for p in r.participants]
    others = {
        id(p): {q.user_id for q in r.participants if q is not p}
        for r in rooms
        for p in r.participants
    }
    pairs = sum(len(v) for v in others.values())
    with Progress(options.progress) as progress:
        joining = progress.task("joining (video seen)", pairs)
        joins = [asyncio.ensure_future(_join(p, options.join_timeout_s)) for p in everyone]
        deadline = time.monotonic() + options.join_timeout_s
        while time.monotonic() < deadline:
            seen = sum(len(others[id(p)] & p.first_video.keys()) for p in everyone)
            progress.update(joining, seen)
            if seen == pairs or (all(j.done() for j in joins) and any(p.failure for p in everyone)):
                break
            await asyncio.sleep(0.1)
        await asyncio.gather(*joins)
        progress.update(joining, sum(len(others[id(p)] & p.first_video.keys()) for p in everyone))

        # The media window: frames sent and received are read at the same two instants.
        sent0 = {p.user_id: p.frames_sent() for p in everyone}
        cpu0, t0 = cpu.seconds(), time.monotonic()
        publishing = progress.task("publishing (s)", options.seconds)
        while (elapsed := time.monotonic() - t0) < options.seconds:
            progress.update(publishing, elapsed)
            await asyncio.sleep(min(0.2, options.seconds - elapsed))
        progress.update(publishing, options.seconds)
        sent1 = {p.user_id: p.frames_sent() for p in everyone}
        cpu1, t1 = cpu.seconds(), time.monotonic()
        # Frames of the window still in flight get a moment to land (they are told apart
        # by their index, so what is sent meanwhile does not count).
        await asyncio.sleep(DRAIN_S)

    received = expected = 0
    for p in everyone:
        for uid in others[id(p)]:
            expected += sent1[uid] - sent0[uid]
            received += p.received_between(uid, sent0[uid], sent1[uid])
    reasons: list[str] = []
    joins_s: list[float] = []
    for p in everyone:
        delay = p.join_to_all_video_s(others[id(p)])
        if p.failure is not None:
            reasons.append(f"user {p.user_id} in {p.session_id}: {p.failure}")
        elif delay is None:
            missing = sorted(others[id(p)] - p.first_video.keys())
            reasons.append(f"user {p.user_id} in {p.session_id}: no video from {missing}")
        else:
            joins_s.append(delay)
    cpu_percent = None
    if cpu0 is not None and cpu1 is not None:
        cpu_percent = 100.0 * (cpu1 - cpu0) / max(1e-6, t1 - t0)
    return Result(
        rooms=len(rooms),
        participants=len(everyone),
        seconds=options.seconds,
        join_p50_s=statistics.median(joins_s) if joins_s else None,
        join_p95_s=percentile(joins_s, 95),
        frames_received=received,
        frames_expected=expected,
        nacks=sum(p.nacked for p in everyone),
        failures=len(reasons),
        failure_reasons=reasons,
        server_cpu_percent=cpu_percent,
    )
