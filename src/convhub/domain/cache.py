"""A small time-to-live cache for the lookups on every request's path (keys, apps, tokens).

Hits and misses alike are kept for ``ttl`` seconds: a flood of made-up keys then costs one read
per distinct key and period, not one per request. A change made from the CLI (a key disabled, a
new key) is therefore seen within ``ttl`` seconds everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 10_000


class TtlCache(Generic[K, V]):
    def __init__(self, *, clock: Callable[[], float], ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[K, tuple[float, V | None]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = await load()
        if self._ttl > 0:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, value)
        return value
