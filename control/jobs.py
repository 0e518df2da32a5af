"""Background jobs: loops that run one pass every so often until the platform closes.

With several nodes (or worker processes) every node spawns the same loops, yet each must run
once per cluster: reminders would be mailed twice, holds released twice. ``Jobs`` therefore
runs each loop under a ``JobLock``: a node that takes a job's lock runs its loop and keeps the
lock alive; the others wait and take over when the holder stops renewing (it died, or lost
Redis). Three locks, chosen by ``create_job_lock``:

* ``RedisJobLock`` (``[redis] url`` set): ``SET key token NX PX ttl``, renewed every third of
  the TTL by a Lua compare-and-``PEXPIRE`` and released by a Lua compare-and-``DEL``, so a
  node never extends or frees a lock another node took after its own expired;
* ``PostgresJobLock`` (PostgreSQL without Redis): ``pg_try_advisory_lock`` on a connection
  held while the loop runs; the server frees it when that connection dies;
* ``LocalJobLock`` (the embedded default, one process): always granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from control.redis_scripts import RELEASE_IF_OWNER, RENEW_IF_OWNER

log = logging.getLogger(__name__)

Pass = Callable[[], Awaitable[object]]

#: a lock not renewed for this long is free for another node (what a dead node costs)
DEFAULT_TTL_S = 15.0


async def run_every(seconds: float, job: Pass, what: str) -> None:
    """Run ``job`` now and then every ``seconds`` until cancelled; a failed pass is logged
    and the next one runs on time."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background pass failed: %s", what)
        await asyncio.sleep(seconds)


class JobLock(Protocol):
    """A cluster-wide mutex per job name, held by at most one node at a time."""

    ttl_s: float

    async def acquire(self, name: str) -> bool:
        """Take the lock now if it is free (never waits)."""
        ...

    async def renew(self, name: str) -> bool:
        """Keep holding it; False when it is no longer ours (expired, taken, unreachable)."""
        ...

    async def release(self, name: str) -> None: ...

    async def close(self) -> None: ...


class LocalJobLock:
    """One process is the whole cluster: every lock is granted."""

    def __init__(self) -> None:
        self.ttl_s = DEFAULT_TTL_S

    async def acquire(self, name: str) -> bool:
        return True

    async def renew(self, name: str) -> bool:
        return True

    async def release(self, name: str) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisJobLock:
    """``SET NX PX`` with a random token per holder (see the module docstring)."""

    PREFIX = "peerlearn:job:"

    def __init__(self, url: str, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        import redis.asyncio as redis  # costs half a second; one-node setups never pay it

        self.ttl_s = ttl_s
        self._redis = redis.from_url(url)
        self._tokens: dict[str, str] = {}
        self._renew = self._redis.register_script(RENEW_IF_OWNER)
        self._release = self._redis.register_script(RELEASE_IF_OWNER)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_s * 1000))

    async def acquire(self, name: str) -> bool:
        token = secrets.token_hex(16)
        if await self._redis.set(self.PREFIX + name, token, nx=True, px=self._ttl_ms):
            self._tokens[name] = token
            return True
        return False

    async def renew(self, name: str) -> bool:
        token = self._tokens.get(name)
        if token is None:
            return False
        return bool(await self._renew(keys=[self.PREFIX + name], args=[token, self._ttl_ms]))

    async def release(self, name: str) -> None:
        token = self._tokens.pop(name, None)
        if token is not None:
            await self._release(keys=[self.PREFIX + name], args=[token])

    async def close(self) -> None:
        await self._redis.aclose()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a job name."""
    digest = hashlib.blake2b(f"peerlearn:job:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresJobLock:
    """Session-level advisory locks, each on its own connection held while the job runs."""

    def __init__(self, engine: Any, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        # ``engine``: the platform's SQLAlchemy AsyncEngine (typed loosely: no import here).
        self.ttl_s = ttl_s
        self._engine = engine
        self._connections: dict[str, Any] = {}

    async def acquire(self, name: str) -> bool:
        from sqlalchemy import text

        conn = await self._engine.connect()
        try:
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": advisory_key(name)}
            )
            # Autobegin opened a transaction; end it, or the connection idles in one.
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._connections[name] = conn
        return True

    async def renew(self, name: str) -> bool:
        from sqlalchemy import text

        conn = self._connections.get(name)
        if conn is None:
            return False
        try:  # the lock lives exactly as long as this connection
            await conn.execute(text("SELECT 1"))
            await conn.commit()
        except Exception:
            return False
        return True

    async def release(self, name: str) -> None:
        from sqlalchemy import text

        conn = self._connections.pop(name, None)
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key(name)})
            await conn.commit()
        finally:
            await conn.close()

    async def close(self) -> None:
        for name in list(self._connections):
            with contextlib.suppress(Exception):
                await self.release(name)


def create_job_lock(
    kind: str,
    *,
    redis_url: str | None,
    engine: Any,
    is_postgres: bool,
    ttl_s: float = DEFAULT_TTL_S,
) -> JobLock:
    """``kind`` is ``[jobs] lock``: ``auto`` picks Redis, else PostgreSQL, else local."""
    if kind == "auto":
        kind = "redis" if redis_url else "postgres" if is_postgres else "none"
    if kind == "redis":
        if not redis_url:
            raise ValueError("[jobs] lock = 'redis' needs [redis] url")
        return RedisJobLock(redis_url, ttl_s=ttl_s)
    if kind == "postgres":
        if not is_postgres:
            raise ValueError("[jobs] lock = 'postgres' needs a PostgreSQL database")
        return PostgresJobLock(engine, ttl_s=ttl_s)
    return LocalJobLock()


async def _call(loop: Callable[[], Awaitable[None]]) -> None:
    await loop()


async def run_while_holding(
    lock: JobLock, name: str, loop: Callable[[], Awaitable[None]], *, retry_s: float | None = None
) -> None:
    """Run ``loop`` only while this node holds ``name``'s lock; wait for it otherwise.

    The holder renews every third of the TTL; a failed renewal (the lock expired during a
    stall, Redis restarted or is unreachable) stops the loop at once, since another node may
    already run it. Cancelling this releases the lock for the next node.
    """
    renew_every = lock.ttl_s / 3
    retry = renew_every if retry_s is None else retry_s
    unreachable = False  # said once per outage, not at every retry
    while True:
        try:
            held = await lock.acquire(name)
            unreachable = False
        except asyncio.CancelledError:
            raise
        except Exception:
            if not unreachable:
                log.warning("job %s: cannot reach the job lock; retrying", name, exc_info=True)
            unreachable = True
            held = False
        if not held:
            await asyncio.sleep(retry)
            continue
        log.info("job %s: this node runs it", name)
        task = asyncio.create_task(_call(loop), name=f"{name}-pass")
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=renew_every)
                if done:
                    task.result()  # a loop that ended by itself: re-raise its failure
                    return
                try:
                    still = await lock.renew(name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    still = False
                if not still:
                    log.warning("job %s: lost the job lock; stopping it here", name)
                    break
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.shield(lock.release(name))
        await asyncio.sleep(retry)


class Jobs:
    """The long-lived background loops of one process, cancelled together; each runs under
    ``lock`` (once per cluster), by default the one-process ``LocalJobLock``."""

    def __init__(self, lock: JobLock | None = None) -> None:
        self.lock: JobLock = lock or LocalJobLock()
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` (e.g. a ``run_every`` loop) as a task named ``name``, on the one node
        holding ``name``'s lock."""

        async def run() -> None:
            if isinstance(self.lock, LocalJobLock):
                await loop()
            else:
                await run_while_holding(self.lock, name, loop)

        self._tasks.append(asyncio.create_task(run(), name=name))

    @property
    def running(self) -> list[str]:
        """Names of the loops still running (or waiting for their lock)."""
        return [task.get_name() for task in self._tasks if not task.done()]

    async def stop(self) -> None:
        """Cancel every loop and wait for it; a loop that failed is not re-raised here."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.lock.close()
