"""Per-account, per-operation request limits, counted by the ``limits`` library.

The sliding-window-counter strategy approximates a true one-second window with two counters per
key (no per-hit timestamps), so it stays cheap at thousands of requests a second. In one process the
counters live in memory (``MemoryWindows``, the same rule without ``limits``' asyncio machinery);
with a Redis URL every process shares them, so N processes still admit only the configured rate per
account.

When Redis cannot be reached (refused, reset, or silent past a short timeout) the limiter stops
asking it for ``RETRY_SECONDS`` and then tries again, so a dead Redis costs one short wait a
second, never one per request, and a Redis that comes back is used again without a restart.
Meanwhile it does what ``failure`` says: ``"open"`` counts in this process's memory (as without
Redis: the limits still hold, per process), ``"closed"`` refuses with ``UNAVAILABLE``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, cast

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from convhub.errors import ConvhubError, ErrorCode
from convhub.ratelimit.windows import MemoryWindows

log = logging.getLogger(__name__)

RedisFailure = Literal["open", "closed"]
REDIS_FAILURES: tuple[RedisFailure, ...] = ("open", "closed")
# A Redis next to the server answers in well under a millisecond; one that has not connected or
# answered in this long is treated as down. A ``socket_timeout`` or ``socket_connect_timeout`` in
# the Redis URL overrides them.
SOCKET_TIMEOUT_SECONDS = 0.5
RETRY_SECONDS = 1.0
WARN_EVERY_SECONDS = 60.0
_REDIS_ERRORS = (RedisError, StorageError, OSError, TimeoutError)


class RateLimiter:
    def __init__(
        self,
        *,
        per_second: Mapping[str, int],
        redis_url: str | None = None,
        failure: RedisFailure = "open",
        on_fail_open: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure not in REDIS_FAILURES:
            raise ValueError(f"the Redis failure mode is open or closed, not {failure!r}")
        self._pool: ConnectionPool | None = None
        self._redis: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
            # Our own pool, so that ``aclose`` can hand its connections back. A pool made this way
            # retries nothing: a failure is ours to handle at once.
            self._pool = ConnectionPool.from_url(
                uri.removeprefix("async+"),
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            )
            storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix="convhub",
                # A documented option of RedisStorage; its annotation of **options is too narrow.
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
            self._redis = SlidingWindowCounterRateLimiter(storage)
        # Without Redis, the counts; with it, where they are kept while Redis cannot be reached.
        self._memory = MemoryWindows(clock)
        self._items = {name: RateLimitItemPerSecond(qps) for name, qps in per_second.items()}
        self.failure: RedisFailure = failure
        self._on_fail_open = on_fail_open
        self._clock = clock
        self._down_until = 0.0  # while the clock is before it, Redis is not asked
        self._down_since: float | None = None
        self._warned_at = 0.0
        self._unwarned = 0  # requests served without Redis since the last warning

    async def acquire(self, account_id: int, operation: str) -> None:
        item = self._items.get(operation)
        if item is None:  # a bug: every operation is declared with a limit
            raise ConvhubError(ErrorCode.INTERNAL, f"no rate limit for {operation}")
        if not await self._hit(item, account_id, operation):
            raise ConvhubError(
                ErrorCode.RATE_LIMITED,
                f"{operation} is limited to {item.amount} requests per second per account",
            )

    async def _hit(self, item: RateLimitItemPerSecond, account_id: int, operation: str) -> bool:
        redis = self._redis
        if redis is None:
            return self._memory.hit(item.amount, account_id, operation)
        now = self._clock()
        if now >= self._down_until:
            try:
                allowed = await redis.hit(item, str(account_id), operation)
            except _REDIS_ERRORS as error:
                self._went_down(now, error)
            else:
                if self._down_since is not None:
                    self._came_back(now)
                return allowed
        self._unwarned += 1
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warn(now, "is still unreachable")
        if self.failure == "closed":
            raise ConvhubError(
                ErrorCode.UNAVAILABLE, "rate limits cannot be counted right now; retry later"
            )
        self._on_fail_open()
        return self._memory.hit(item.amount, account_id, operation)

    def _went_down(self, now: float, error: BaseException) -> None:
        self._down_until = now + RETRY_SECONDS
        if self._down_since is None:
            self._down_since = now
            self._warn(now, f"is unreachable ({type(error).__name__}: {error})")

    def _warn(self, now: float, what: str) -> None:
        if self._unwarned == 0:
            since = ""
        elif self.failure == "closed":
            since = f"; {self._unwarned} requests refused since the last warning"
        else:
            since = f"; {self._unwarned} requests counted in this process since the last warning"
        if self.failure == "closed":
            doing = "requests that need a rate limit are refused (redis failure mode: closed)"
        else:
            doing = "rate limits are counted in each process (redis failure mode: open)"
        log.warning("Redis %s: %s%s", what, doing, since)
        self._warned_at = now
        self._unwarned = 0

    def _came_back(self, now: float) -> None:
        assert self._down_since is not None
        log.warning("Redis is reachable again after %.1f s", now - self._down_since)
        self._down_since = None
        self._unwarned = 0

    async def redis_problem(self) -> str | None:
        """Why Redis cannot count right now (a PING with the short timeout), or None; None
        without Redis."""
        if self._pool is None:
            return None
        client = Redis(connection_pool=self._pool)
        try:
            await cast(Awaitable[bool], client.ping())  # typed for both clients, sync and async
        except _REDIS_ERRORS as error:
            return f"Redis is unreachable: {type(error).__name__}"
        finally:
            await client.aclose(close_connection_pool=False)
        return None

    async def aclose(self) -> None:
        """Close the Redis connections. Call it on the event loop that used them, at shutdown:
        left open, they are reported as unclosed resources when that loop closes."""
        if self._pool is not None:
            await self._pool.disconnect()
