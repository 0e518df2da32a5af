"""The public catalogue cache: what anyone may see of the catalogue, kept in process until
the catalogue changes.

Entries are dropped, all at once, on every message of ``CATALOG_CHANNEL`` (a session
created, started, ended or cancelled, a seat taken or freed): the bus delivers it on every
node, in process or through Redis, so no node serves seats left from before an event it has
received. A short time to live bounds what no event announces (a mentor renaming
themselves, a new rating, time passing a session's start). Never anything personal: only
reads that answer the same to every viewer go through it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from aiohttp import web

T = TypeVar("T")

#: seconds an entry lives when no catalogue event drops it first
DEFAULT_TTL = 10.0  # [server] catalogue_cache_seconds's default
#: distinct queries kept (least recently used go first): filters make the key space open
DEFAULT_MAX_ENTRIES = 1024


class CatalogueCache:
    """Values by key until the next catalogue event, the time to live, or eviction.

    ``get_or_load`` runs one load per key at a time (a hundred visitors arriving after an
    event cost one query), and never stores what was read before an event that arrived
    during the read.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}
        #: bumped by every invalidation; a load stores only if it did not change meanwhile
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The live entry for ``key``, if any."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any, *, generation: int | None = None) -> None:
        """Keep ``value``, unless the catalogue changed since ``generation`` was read."""
        if not self.enabled or (generation is not None and generation != self.generation):
            return
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value of ``key``, else ``load()``'s (kept for the next callers)."""
        if not self.enabled:
            return await load()
        hit = self.get(key)
        if hit is not None:
            self.hits += 1
            return cast(T, hit)  # stored by this same key's load
        pending = self._loading.get(key)
        if pending is not None:
            try:
                return cast(T, await asyncio.shield(pending))
            except (Exception, asyncio.CancelledError):
                if not pending.done():  # this request itself was cancelled
                    raise
                return await load()  # the first load failed: try once more for this one
        self.misses += 1
        generation = self.generation
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        future.set_result(value)
        self.put(key, value, generation=generation)
        return value

    def clear(self) -> None:
        """Forget everything: loads under way store nothing, new requests load afresh."""
        self.generation += 1
        self._entries.clear()
        self._loading.clear()

    async def on_catalog_change(self, _message: dict[str, Any]) -> None:
        """Bus handler of ``CATALOG_CHANNEL``: any change may touch any listing."""
        self.clear()


CATALOGUE = web.AppKey("catalogue_cache", CatalogueCache)
