"""Background jobs once per cluster: the Redis lock (SET NX PX, renewed, compare-and-delete)
and the PostgreSQL advisory lock, with two job runners in two real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import create_async_engine

from control.jobs import (
    Jobs,
    LocalJobLock,
    PostgresJobLock,
    RedisJobLock,
    advisory_key,
    create_job_lock,
)

REDIS_URL = os.environ.get("PEERLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # a required part of the suite: fail, never skip
        pytest.fail(f"Redis not reachable at {REDIS_URL} ({exc}); run scripts/test.sh")
    yield client
    await client.aclose()


async def _until(predicate: object, what: str, *, seconds: float = 20.0) -> None:
    """Poll ``predicate`` (a callable returning a bool or an awaitable bool) until true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def test_redis_lock_is_held_by_one_and_freed_only_by_its_holder(
    redis_client: redis.Redis,
) -> None:
    name = f"test-{uuid.uuid4().hex}"
    a, b = RedisJobLock(REDIS_URL, ttl_s=0.5), RedisJobLock(REDIS_URL, ttl_s=0.5)
    try:
        assert await a.acquire(name)
        assert not await b.acquire(name)
        assert not await b.renew(name)  # never held: nothing to renew
        assert await a.renew(name)
        ttl = await redis_client.pttl(RedisJobLock.PREFIX + name)
        assert 0 < ttl <= 500
        # a stops renewing (a stall, a death): the lock expires and b takes it ...
        await _until(lambda: b.acquire(name), "the lock to expire")
        # ... and a, waking up, can neither renew nor delete b's lock.
        assert not await a.renew(name)
        await a.release(name)
        assert await redis_client.exists(RedisJobLock.PREFIX + name)
        await b.release(name)
        assert not await redis_client.exists(RedisJobLock.PREFIX + name)
        assert await a.acquire(name)
        await a.release(name)
    finally:
        await a.close()
        await b.close()


async def test_jobs_on_two_nodes_run_one_loop_and_fail_over(redis_client: redis.Redis) -> None:
    name = f"test-{uuid.uuid4().hex}"
    runs: list[str] = []

    def loop_of(node: str):  # type: ignore[no-untyped-def]
        async def loop() -> None:
            while True:
                runs.append(node)
                await asyncio.sleep(0.02)

        return loop

    a, b = Jobs(RedisJobLock(REDIS_URL, ttl_s=0.6)), Jobs(RedisJobLock(REDIS_URL, ttl_s=0.6))
    a.spawn(name, loop_of("a"))
    await _until(lambda: len(runs) >= 3, "node a to run the job")
    b.spawn(name, loop_of("b"))
    await asyncio.sleep(1.0)  # well over b's retry period
    assert set(runs) == {"a"}
    await a.stop()  # releases at once: b takes over within its retry period
    count = len(runs)
    await _until(lambda: "b" in runs[count:], "node b to take over")
    await b.stop()
    assert a.running == [] and b.running == []


_RUNNER = """
import asyncio, os, sys
import redis.asyncio as redis
from control.jobs import Jobs, RedisJobLock, run_every

url, name, key = sys.argv[1:4]

async def main() -> None:
    client = redis.from_url(url)
    async def one_pass() -> None:
        await client.rpush(key, os.getpid())
    jobs = Jobs(RedisJobLock(url, ttl_s=1.0))
    jobs.spawn(name, lambda: run_every(0.05, one_pass, "test pass"))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_two_processes_run_the_job_once_and_the_survivor_takes_over(
    redis_client: redis.Redis,
) -> None:
    name, key = f"test-{uuid.uuid4().hex}", f"test-passes:{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RUNNER, REDIS_URL, name, key, env=env, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert (await proc.stdout.readline()).strip() == b"ready"

        async def passes() -> list[int]:
            return [int(x) for x in await redis_client.lrange(key, 0, -1)]

        await _until(lambda: _at_least(passes, 40), "40 passes")
        done = await passes()
        assert len(set(done)) == 1, "both processes ran the job"
        holder = next(p for p in procs if p.pid == done[0])
        survivor = next(p for p in procs if p is not holder)
        holder.send_signal(signal.SIGKILL)  # no release: the lock must expire (TTL 1 s)
        await holder.wait()
        started = asyncio.get_running_loop().time()
        await _until(
            lambda: _contains(passes, survivor.pid), "the survivor to take over", seconds=10
        )
        took = asyncio.get_running_loop().time() - started
        assert took < 5.0  # the TTL (1 s) plus a retry period (1/3 s), with room for a busy machine
        after = await passes()
        kill_at = len(done)
        # Nothing from the dead process after its last pass; only the survivor from then on.
        tail = after[after.index(survivor.pid) :]
        assert set(tail) == {survivor.pid} and after.index(survivor.pid) >= kill_at
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await redis_client.delete(key, RedisJobLock.PREFIX + name)


async def _at_least(passes, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await passes()) >= n


async def _contains(passes, pid: int) -> bool:  # type: ignore[no-untyped-def]
    return pid in await passes()


@pytest.mark.postgres
async def test_postgres_advisory_lock_is_held_by_one_connection(postgres_database: str) -> None:
    name = f"test-{uuid.uuid4().hex}"
    one, two = create_async_engine(postgres_database), create_async_engine(postgres_database)
    a, b = PostgresJobLock(one), PostgresJobLock(two)
    try:
        assert await a.acquire(name)
        assert not await b.acquire(name)
        assert await a.renew(name)
        await a.release(name)
        assert await b.acquire(name)
        await b.close()  # close() releases what it holds
        assert await a.acquire(name)
        await a.close()
    finally:
        await one.dispose()
        await two.dispose()
    assert advisory_key(name) == advisory_key(name) and -(2**63) <= advisory_key(name) < 2**63


def test_the_lock_follows_the_settings() -> None:
    engine = object()
    assert isinstance(
        create_job_lock("auto", redis_url=None, engine=engine, is_postgres=False), LocalJobLock
    )
    assert isinstance(
        create_job_lock("auto", redis_url=None, engine=engine, is_postgres=True), PostgresJobLock
    )
    assert isinstance(
        create_job_lock("none", redis_url=REDIS_URL, engine=engine, is_postgres=True),
        LocalJobLock,
    )
    with pytest.raises(ValueError, match="redis"):
        create_job_lock("redis", redis_url=None, engine=engine, is_postgres=False)


def test_a_lock_without_its_part_stops_start_up(tmp_path: Path) -> None:
    from config.settings import ConfigError, load_settings

    base = {"server": {"data_dir": str(tmp_path)}}
    with pytest.raises(ConfigError, match=r"jobs\.lock: 'redis' needs \[redis\] url"):
        load_settings(environ={}, overrides={**base, "jobs": {"lock": "redis"}})
    with pytest.raises(ConfigError, match=r"jobs\.lock: 'postgres' needs a PostgreSQL"):
        load_settings(environ={"PEERLEARN_JOBS__LOCK": "postgres"}, overrides=base)
    assert load_settings(environ={}, overrides=base).jobs.lock == "auto"


async def test_an_unreachable_lock_is_said_once_and_the_job_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from control.jobs import run_while_holding

    class Down(LocalJobLock):
        def __init__(self) -> None:
            super().__init__()
            self.ttl_s, self.tries = 0.03, 0

        async def acquire(self, name: str) -> bool:
            self.tries += 1
            raise ConnectionError("redis is down")

    ran: list[int] = []

    async def loop() -> None:
        ran.append(1)

    lock = Down()
    with caplog.at_level(logging.WARNING, logger="control.jobs"):
        task = asyncio.create_task(run_while_holding(lock, "j", loop))
        await _until(lambda: lock.tries >= 5, "five tries")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ran == []
    assert len([r for r in caplog.records if "cannot reach the job lock" in r.getMessage()]) == 1
