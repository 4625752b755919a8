"""Whether this process should be sent traffic (``GET /readyz``), and why not.

Ready means: the writer thread is alive, an ID node is held, the database answers ``SELECT 1``
within ``PROBE_TIMEOUT_SECONDS``, and Redis answers a PING if rate limits are counted there.

A Redis that is down makes the process not ready only when it refuses requests for it (redis
failure mode ``closed``). In mode ``open`` every request is still served, its limits counted per
process, and the outage is reported under ``degraded``: every process shares the one Redis, and
taking them all out of the load balancer at once would turn a degraded service into none.

The database and Redis are asked at most once per ``CACHE_SECONDS``; the database on a thread of
its own, so a probe that hangs (a connect to a silent host) never blocks the event loop and never
piles up threads: while one probe runs, the next readiness check waits for it, not for another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from convhub.ratelimit.limiter import RateLimiter
from convhub.store.database import GroupCommitDatabase
from convhub.store.nodes import NodeLease

PROBE_TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 1.0


class Readiness:
    def __init__(
        self,
        *,
        db: GroupCommitDatabase,
        lease: NodeLease,
        probe_engine: Engine,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._lease = lease
        self._engine = probe_engine
        self._limiter = limiter
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="convhub-probe")
        self._probing: Future[str | None] | None = None
        self._database: tuple[float, str | None] = (float("-inf"), None)
        self._redis: tuple[float, str | None] = (float("-inf"), None)

    async def report(self) -> tuple[list[str], list[str]]:
        """``(problems, degraded)``: any problem makes the process not ready."""
        database, redis = await asyncio.gather(self._database_problem(), self._redis_problem())
        problems = []
        if not self._db.alive:
            problems.append("the database writer has stopped")
        if not self._lease.held():
            problems.append("no ID node is held")
        if database:
            problems.append(database)
        degraded = []
        if redis and self._limiter.failure == "closed":
            problems.append(redis)
        elif redis:
            degraded.append(f"{redis}: rate limits are counted per process")
        return problems, degraded

    async def _database_problem(self) -> str | None:
        asked_at, answer = self._database
        if self._clock() - asked_at < CACHE_SECONDS:
            return answer
        if self._probing is None or self._probing.done():
            self._probing = self._thread.submit(self._select_one)
        try:
            probing = asyncio.wrap_future(self._probing)
            answer = await asyncio.wait_for(asyncio.shield(probing), PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            answer = f"the database did not answer within {PROBE_TIMEOUT_SECONDS:g} s"
        self._database = (self._clock(), answer)
        return answer

    def _select_one(self) -> str | None:
        try:
            with self._engine.connect() as conn:
                # Read-only: on SQLite a writer's BEGIN IMMEDIATE would queue for the write lock.
                conn.execution_options(convhub_readonly=True).exec_driver_sql("SELECT 1")
        except SQLAlchemyError as error:
            return f"the database is unreachable ({type(error).__name__})"
        return None

    async def _redis_problem(self) -> str | None:
        asked_at, answer = self._redis
        if self._clock() - asked_at >= CACHE_SECONDS:
            answer = await self._limiter.redis_problem()
            self._redis = (self._clock(), answer)
        return answer

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
