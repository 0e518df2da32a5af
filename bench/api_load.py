"""Load on the control plane (issue 16): requests/s and p50/p99 of its public and personal
pages under ``wrk``, with the bare-aiohttp floor measured in the same run.

    python bench/api_load.py                       # SQLite, demo data, cache on and off
    python bench/api_load.py --catalogue 2000      # plus 2,000 more sessions
    python bench/api_load.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

For each database it seeds a fresh data folder (``peerlearn seed-demo``), starts
``peerlearn serve`` (one worker) with the catalogue cache on, then off
(``[server] catalogue_cache``, set here by ``PEERLEARN_SERVER__CATALOGUE_CACHE``), and
drives each path with ``wrk -t2 -c100`` over varied
URLs (filters, pages, session ids; a Lua script picks one per request). Then 100 learners race
for the seats of one session (aiohttp client, one request each): 0 lost, 0 duplicate.

``wrk`` is Debian's (``apt-get install -y wrk``; the script installs it when it may). A Python
load generator on the same cores caps below the server, which is why it is not one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEATS = 10  # the raced session's seats (the most [sessions] allows); RACERS learners want one
RACERS = 100

BARE_SERVER = """
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def handle(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

LUA = """
local paths = {%s}
local headers = {%s}
request = function()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
"""


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def row(self) -> str:
        return (
            f"| {self.name} | {self.rps:,.0f} | {self.p50_ms:.1f} ms | {self.p99_ms:.1f} ms "
            f"| {self.errors} |"
        )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's (apt-get install -y wrk)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk is needed (apt-get install wrk)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        sys.exit(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return found.group(1)


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    """wrk's ``812.00us`` / ``5.20ms`` / ``1.10s`` in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if found is None:
        sys.exit(f"unexpected wrk latency {text!r}")
    return float(found.group(1)) * UNITS_MS[found.group(2)]


def run_wrk(
    wrk: str,
    name: str,
    port: int,
    paths: Sequence[str],
    *,
    headers: dict[str, str] | None = None,
    duration: int,
    connections: int,
    threads: int,
) -> Result:
    lua_paths = ", ".join(json.dumps(p) for p in paths)
    lua_headers = ", ".join(
        f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % (lua_paths, lua_headers))
    try:
        out = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}/",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    p50 = _ms(_find(r"\s50%\s+(\S+)", out))
    p99 = _ms(_find(r"\s99%\s+(\S+)", out))
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*?timeout (\d+)"):
        found = re.search(pattern, out)
        errors += int(found.group(1)) if found else 0
    return Result(name, rps, p50, p99, errors)


# --------------------------------------------------------------------------- the server


def _env(data_dir: Path, database_url: str | None, cache: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PEERLEARN_DATA_DIR"] = str(data_dir)
    env["PEERLEARN_SERVER__CATALOGUE_CACHE"] = "true" if cache else "false"
    if database_url:
        env["PEERLEARN_DATABASE__URL"] = database_url
    return env


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "web.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[None]:
    log = open(Path(env["PEERLEARN_DATA_DIR"]) / f"serve-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(port, "/healthz", proc)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextmanager
def bare_server(body: bytes, port: int) -> Iterator[None]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        proc = subprocess.Popen(
            [sys.executable, "-c", BARE_SERVER, str(port), str(Path(tmp) / "body.json")]
        )
        try:
            _wait_for(port, "/", proc)
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_for(port: int, path: str, proc: subprocess.Popen[Any]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server on port {port} exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the server on port {port} did not answer in 60 s")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return bytes(resp.read())


# --------------------------------------------------------------------------- the data


async def _prepare(env: dict[str, str], catalogue: int) -> dict[str, Any]:
    """Extra sessions, a raced session, learners with login tokens (cheap hashes)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("PEERLEARN_")})
    from argon2 import PasswordHasher

    from config.settings import load_settings
    from control import security
    from control.platform import Platform
    from control.services.sessions import SessionFilters

    # The benchmark's own users only; what the server does with passwords is not measured.
    security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    platform = Platform(load_settings())
    await platform.db.require_migrated()
    await platform.start(background=False)
    try:
        mentor = await platform.accounts.register(
            username=f"benchmentor{uuid.uuid4().hex[:6]}",
            email=f"bm{uuid.uuid4().hex[:6]}@example.org",
            password="bench-password-1",
            role="mentor",
        )
        skills = ["Python", "Rust", "Go", "SQL", "Linux", "Design"]
        await _large_catalogue(platform, mentor, catalogue, skills)
        start = datetime.now(UTC) + timedelta(days=1)
        raced = await platform.sessions.create(
            mentor,
            title="The popular session",
            description="Everybody wants a seat",
            schedule=start,
            duration=60,
            max_participants=SEATS,
            skills_required=["Python"],
            price=0,
        )
        tokens = []
        for n in range(RACERS):
            learner = await platform.accounts.register(
                username=f"racer{n}_{uuid.uuid4().hex[:6]}",
                email=f"racer{n}_{uuid.uuid4().hex[:6]}@example.org",
                password="bench-password-1",
                role="learner",
            )
            tokens.append((await platform.accounts.logins.start(learner))[1])
        page = await platform.sessions.search(SessionFilters(), per_page=100)
        return {
            "raced": str(raced.id),
            "tokens": tokens,
            "session_ids": [str(s.id) for s in page.items],
            "skills": skills,
        }
    finally:
        await platform.close()


async def _large_catalogue(platform: Any, mentor: Any, count: int, skills: list[str]) -> None:
    """``count`` more scheduled sessions, one an hour from tomorrow on, written in bulk: rows
    as ``SessionService.create`` makes them, without its per-session checks and notices
    (seeding 2,000 through it would take minutes on a busy machine, for nothing measured)."""
    import secrets
    from decimal import Decimal

    from control.models import Session, SessionStatus

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    now = datetime.now(UTC)
    for first in range(0, count, 500):
        async with platform.db.transaction() as db:
            db.add_all(
                Session(
                    title=f"Catalogue session {n}",
                    description="A session of the large catalogue",
                    mentor_id=mentor.id,
                    schedule=start + timedelta(hours=n),
                    duration=60,
                    max_participants=SEATS,
                    current_participants=0,
                    status=SessionStatus.SCHEDULED.value,
                    meeting_room_id=secrets.token_urlsafe(16),
                    skills_required=[skills[n % len(skills)]],
                    price=Decimal(n % 3 * 5),
                    created_at=now,
                    updated_at=now,
                )
                for n in range(first, min(count, first + 500))
            )


async def _count_bookings(env: dict[str, str], session_id: str) -> tuple[int, int, int]:
    """(seats taken by the counter, bookings holding a seat, distinct learners among them)"""
    os.environ.update({k: v for k, v in env.items() if k.startswith("PEERLEARN_")})
    from config.settings import load_settings
    from control.platform import Platform

    platform = Platform(load_settings())
    try:
        session = await platform.sessions.get(session_id)
        bookings = [b for b in await platform.bookings.for_session(session_id) if b.holds_seat]
        return session.current_participants, len(bookings), len({b.learner_id for b in bookings})
    finally:
        await platform.db.dispose()


async def race(port: int, session_id: str, tokens: list[str]) -> tuple[Result, dict[str, int]]:
    import aiohttp

    async with aiohttp.ClientSession() as client:
        go = asyncio.Event()

        async def one(token: str) -> tuple[int, float]:
            await go.wait()
            began = time.perf_counter()
            async with client.post(
                f"http://127.0.0.1:{port}/api/sessions/{session_id}/book/",
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                await resp.read()
                return resp.status, (time.perf_counter() - began) * 1000

        tasks = [asyncio.create_task(one(t)) for t in tokens]
        await asyncio.sleep(0.2)
        began = time.perf_counter()
        go.set()
        answers = await asyncio.gather(*tasks)
        took = time.perf_counter() - began
    times = sorted(ms for _, ms in answers)
    statuses: dict[str, int] = {}
    for status, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    result = Result(
        f"booking: {len(tokens)} learners race for {SEATS} seats",
        len(tokens) / took,
        statistics.median(times),
        p99,
        sum(n for s, n in statuses.items() if s not in ("201", "409")),
    )
    return result, statuses


# --------------------------------------------------------------------------- the run


def _paths(data: dict[str, Any], catalogue: int) -> dict[str, list[str]]:
    ids = data["session_ids"]
    skills = data["skills"]
    api = ["/api/sessions/", "/api/sessions/?page=2&per_page=5", "/api/sessions/?free_only=true"]
    api += [f"/api/sessions/?skill={s}" for s in skills] + ["/api/sessions/?q=session"]
    pages = ["/sessions/", "/sessions/?page=2", "/sessions/?free=1", "/sessions/?q=session"]
    pages += [f"/sessions/?skill={s}" for s in skills]
    if catalogue >= 200:  # a large catalogue: deep pages too (an OFFSET far in)
        deep = [catalogue // 100, catalogue // 40, catalogue // 25]
        api += [f"/api/sessions/?page={n}" for n in deep]
        pages += [f"/sessions/?page={n}" for n in deep]
    return {
        "GET /api/sessions/ (listing API)": api,
        "GET /sessions/ (listing page)": pages,
        "GET /sessions/{id}/ (session page)": [f"/sessions/{i}/" for i in ids],
        "GET / (landing)": ["/"],
    }


def bench_database(args: argparse.Namespace, wrk: str, label: str, url: str | None) -> list[str]:
    lines = [f"### {label}", ""]
    with tempfile.TemporaryDirectory(prefix="peerlearn-bench-") as tmp:
        env = _env(Path(tmp), url, cache=True)
        cli(env, "migrate")
        cli(env, "seed-demo")
        data = asyncio.run(_prepare(env, args.catalogue))
        paths = _paths(data, args.catalogue)
        token = data["tokens"][-1]  # the last racer never books before the race
        run = {
            "duration": args.duration,
            "connections": args.connections,
            "threads": args.threads,
        }
        port = free_port()
        body = b""
        results: list[Result] = []
        for cache in (True, False):
            env = _env(Path(tmp), url, cache=cache)
            with serving(env, port):
                body = body or get(port, "/api/sessions/")
                for name, varied in paths.items():
                    for path in varied:  # warm: templates compiled, statements cached
                        get(port, path)
                    results.append(
                        run_wrk(
                            wrk, f"{name}, cache {'on' if cache else 'off'}", port, varied, **run
                        )
                    )
                if cache:
                    results.append(
                        run_wrk(
                            wrk,
                            "GET /dashboard/ (signed-in learner)",
                            port,
                            ["/dashboard/"],
                            headers={"Authorization": f"Bearer {token}"},
                            **run,
                        )
                    )
                    booked, statuses = asyncio.run(race(port, data["raced"], data["tokens"]))
                    results.append(booked)
        seats, holding, learners = asyncio.run(_count_bookings(env, data["raced"]))
        bare_port = free_port()
        with bare_server(body, bare_port):
            floor = run_wrk(wrk, "bare aiohttp, the same JSON (floor)", bare_port, ["/"], **run)
    lines += ["| path | requests/s | p50 | p99 | errors |", "|---|---|---|---|---|"]
    lines += [r.row() for r in [*results, floor]]
    granted = statuses.get("201", 0)
    # lost: a seat left free although someone was refused, or a 201 with no booking behind it
    lost = max(0, min(SEATS, RACERS) - granted) + max(0, granted - holding)
    # duplicate: a seat given twice (more 201s than seats, a learner twice, counter off)
    duplicates = max(0, granted - SEATS) + (holding - learners) + abs(seats - holding)
    lines += [
        "",
        f"Booking race: answers {statuses}; seats counted {seats}/{SEATS}, bookings holding a "
        f"seat {holding}; lost {lost}, duplicate {duplicates}.",
        "",
    ]
    return lines


async def _create_database(admin_url: str) -> str:
    import asyncpg

    name = f"peerlearn_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--catalogue", type=int, default=0, help="sessions added to the demo")
    parser.add_argument("--postgres", help="an admin URL: also run on a fresh PostgreSQL database")
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL")
    args = parser.parse_args(argv)
    random.seed(16)
    wrk = ensure_wrk()
    load = os.getloadavg()[0]
    lines = [
        f"{os.cpu_count()} cores, load {load:.2f} at the start; wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s; demo data + {args.catalogue} sessions",
        "",
    ]
    if not args.no_sqlite:
        lines += bench_database(args, wrk, "SQLite (the embedded default)", None)
    if args.postgres:
        name = asyncio.run(_create_database(args.postgres))
        base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        try:
            lines += bench_database(args, wrk, "PostgreSQL", f"{base}/{name}")
        finally:
            asyncio.run(_drop_database(args.postgres, name))
    lines.append(f"load {os.getloadavg()[0]:.2f} at the end")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
