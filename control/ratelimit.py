"""Fixed-window attempt counters (login throttling), in memory or in Redis."""

from __future__ import annotations

import time
from typing import Protocol


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        """Count one attempt; None if allowed, else seconds until the window resets."""
        ...

    async def blocked_for(self, key: str, limit: int) -> int | None: ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._now = time.monotonic

    def _window(self, key: str) -> tuple[float, int]:
        reset_at, count = self._windows.get(key, (0.0, 0))
        if reset_at <= self._now():
            return 0.0, 0
        return reset_at, count

    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        reset_at, count = self._window(key)
        if not reset_at:
            reset_at = self._now() + window_s
        count += 1
        self._windows[key] = (reset_at, count)
        if len(self._windows) > 100_000:  # bound memory under a credential-stuffing flood
            now = self._now()
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        return None if count <= limit else int(reset_at - self._now()) + 1

    async def blocked_for(self, key: str, limit: int) -> int | None:
        reset_at, count = self._window(key)
        return int(reset_at - self._now()) + 1 if count >= limit else None

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    PREFIX = "peerlearn:rl:"

    def __init__(self, url: str) -> None:
        # Imported here: redis.asyncio costs half a second, which one-node setups never pay.
        import redis.asyncio as redis

        self._redis = redis.from_url(url)

    async def hit(self, key: str, limit: int, window_s: int) -> int | None:
        name = self.PREFIX + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_s, nx=True)
            pipe.ttl(name)
            count, _, ttl = await pipe.execute()
        return None if count <= limit else max(1, int(ttl))

    async def blocked_for(self, key: str, limit: int) -> int | None:
        name = self.PREFIX + key
        count = await self._redis.get(name)
        if count is None or int(count) < limit:
            return None
        return max(1, int(await self._redis.ttl(name)))

    async def reset(self, key: str) -> None:
        await self._redis.delete(self.PREFIX + key)

    async def close(self) -> None:
        await self._redis.aclose()


def create_rate_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
