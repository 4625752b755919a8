"""Per-account, per-operation request limits, counted by the ``limits`` library.

The sliding-window-counter strategy approximates a true one-second window with two counters per
key (no per-hit timestamps), so it stays cheap at thousands of requests a second. In one process the
counters live in memory; with a Redis URL every process shares them, so N processes still admit
only the configured rate per account.
"""

from __future__ import annotations

from collections.abc import Mapping

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import ConnectionPool

from convhub.errors import ConvhubError, ErrorCode


class RateLimiter:
    def __init__(self, *, per_second: Mapping[str, int], redis_url: str | None = None) -> None:
        storage: Storage
        self._pool: ConnectionPool | None = None
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
            # Our own pool, so that ``aclose`` can hand its connections back.
            self._pool = ConnectionPool.from_url(uri.removeprefix("async+"))
            storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix="convhub",
                # A documented option of RedisStorage; its annotation of **options is too narrow.
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._items = {name: RateLimitItemPerSecond(qps) for name, qps in per_second.items()}

    async def acquire(self, account_id: int, operation: str) -> None:
        item = self._items.get(operation)
        if item is None:  # a bug: every operation is declared with a limit
            raise ConvhubError(ErrorCode.INTERNAL, f"no rate limit for {operation}")
        if not await self._strategy.hit(item, str(account_id), operation):
            raise ConvhubError(
                ErrorCode.RATE_LIMITED,
                f"{operation} is limited to {item.amount} requests per second per account",
            )

    async def reset(self) -> None:
        await self._storage.reset()

    async def aclose(self) -> None:
        """Close the Redis connections. Call it on the event loop that used them, at shutdown:
        left open, they are reported as unclosed resources when that loop closes."""
        if self._pool is not None:
            await self._pool.disconnect()
