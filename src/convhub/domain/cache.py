"""A small time-to-live cache for the lookups on every request's path (keys, apps, tokens).

Hits and misses alike are kept for ``ttl`` seconds: a flood of made-up keys then costs one read
per distinct key and period, not one per request. Requests that miss while a key's read is under
way wait for that read instead of sending their own: on PostgreSQL a read waits for the server,
and every request arriving meanwhile would otherwise read too. A change made from the CLI (a key
disabled, a new key) is therefore seen within ``ttl`` seconds everywhere. With a ``ttl`` of 0
nothing is kept or shared: every request reads. ``keep`` bounds it, and the dialects' caches of
what clients repeat (a signature's parts, a query's action), by starting again empty when full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 10_000


def keep(cache: dict[K, V], key: K, value: V, *, limit: int) -> None:
    """Remember ``value`` under ``key``; a cache holding ``limit`` entries starts again empty (for
    what repeats request after request: a client's keys, queries and headers)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


class TtlCache(Generic[K, V]):
    def __init__(self, *, clock: Callable[[], float], ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[K, tuple[float, V | None]] = {}
        self._loading: dict[K, asyncio.Future[V | None]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        if self._ttl <= 0:
            return await load()
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(key, load, now))
            loading.add_done_callback(_retrieve)
        # Shielded: a request cancelled while it waits does not cancel the read the others share.
        return await asyncio.shield(loading)

    async def _load(self, key: K, load: Callable[[], Awaitable[V | None]], now: float) -> V | None:
        try:
            value = await load()
        finally:
            del self._loading[key]
        keep(self._entries, key, (now + self._ttl, value), limit=MAX_ENTRIES)
        return value


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared read's failure as seen: when every request that waited for it was cancelled,
    nobody else will, and asyncio would log it as never retrieved."""
    if not future.cancelled():
        future.exception()
