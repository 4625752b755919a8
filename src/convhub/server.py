"""Composition root: builds storage, limiter, core and dialects, and routes requests to them."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from convhub import edge, openapi
from convhub.config import Settings
from convhub.dialects.asgi import Receive, Scope, Send, respond
from convhub.dialects.coze.app import CozeDialect
from convhub.dialects.volc.app import VolcDialect
from convhub.dialects.volc.signing import SignatureVerifier
from convhub.domain.authentication import Authenticator
from convhub.domain.conversations import ConversationService
from convhub.domain.messages import MessageService
from convhub.domain.participants import ParticipantService
from convhub.domain.policy import Policy
from convhub.domain.services import Services
from convhub.domain.settings import SettingService
from convhub.health import Readiness
from convhub.ids import SnowflakeIds
from convhub.observe import Observer
from convhub.ratelimit.limiter import RateLimiter
from convhub.store.database import PG_LINGER, GroupCommitDatabase
from convhub.store.engine import create_database_engine, is_sqlite
from convhub.store.nodes import NodeLease


class Convhub:
    """The ASGI application. Building it opens the database; ``close`` releases it."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.observer = Observer()
        engine = create_database_engine(settings.database_url, pool_size=settings.pool_size)
        # The lease renews on a connection of its own: on PostgreSQL the readers and the writer
        # keep every connection the pool size allows, and a renewal that waits for one would
        # let the lease lapse under load. The readiness probe shares it, for that reason.
        self._lease_engine = create_database_engine(settings.database_url, pool_size=1)
        self.lease = NodeLease(self._lease_engine)
        self.ids = SnowflakeIds(self.lease.node, held=self.lease.held)
        self.lease.start(on_change=self.ids.rebind)
        # SQLite reads inline (a local file); PostgreSQL reads on the event loop, on the
        # connections the writer leaves (a network round trip).
        read_connections = 0 if is_sqlite(settings.database_url) else max(1, settings.pool_size - 1)
        self.db = GroupCommitDatabase(
            engine,
            read_connections=read_connections,
            max_queue=settings.max_queued_writes,
            kept_conversations=settings.kept_conversations,
            kept_messages=settings.kept_messages,
            clock_row=self.lease.node,  # no two live processes hold one node
            events=self.observer,
            linger=0.0 if is_sqlite(settings.database_url) else PG_LINGER,
        )
        self.limiter = RateLimiter(
            per_second=settings.rate_limits,
            redis_url=settings.redis_url,
            failure=settings.redis_failure,
            on_fail_open=self.observer.redis_fail_open,
        )
        self.readiness = Readiness(
            db=self.db, lease=self.lease, probe_engine=self._lease_engine, limiter=self.limiter
        )
        ttl = settings.access_cache_seconds
        authenticator = Authenticator(db=self.db, clock=clock, ttl=ttl)
        policy = Policy(db=self.db, clock=clock, ttl=ttl)
        limits = settings.product_limits
        self.services = Services(
            policy=policy,
            conversations=ConversationService(
                db=self.db, ids=self.ids, clock=clock, policy=policy, limits=limits
            ),
            messages=MessageService(db=self.db, ids=self.ids, clock=clock, policy=policy),
            participants=ParticipantService(db=self.db, clock=clock, policy=policy, limits=limits),
            settings=SettingService(db=self.db, policy=policy, limits=limits),
        )
        volc = VolcDialect(
            services=self.services,
            authenticator=authenticator,
            limiter=self.limiter,
            verifier=SignatureVerifier(
                regions=settings.regions, window_seconds=settings.signature_window_seconds
            ),
            clock=clock,
            max_body_bytes=settings.max_body_bytes,
            regions=settings.regions,
        )
        coze = CozeDialect(
            services=self.services,
            authenticator=authenticator,
            limiter=self.limiter,
            max_body_bytes=settings.max_body_bytes,
        )
        # Each dialect answers with what became of the request; the observer makes it metrics
        # and the request's log line.
        self._volc, self._coze = self.observer.wrap(volc), self.observer.wrap(coze)
        self._documents = {f"/openapi/{n}": d for n, d in openapi.rendered().items()}
        self._closed = False
        # Everything built so far lives as long as the process: keep it out of the collector's
        # scans, and collect the young generation less often; both shave the latency tail.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/":
                await self._volc(scope, receive, send)
            elif path.startswith("/v1/"):
                await self._coze(scope, receive, send)
            elif path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            elif path == "/readyz":
                problems, degraded = await self.readiness.report()
                body = orjson.dumps({"status": "not ready" if problems else "ready",
                                     "problems": problems, "degraded": degraded})  # fmt: skip
                await respond(send, 503 if problems else 200, body)
            elif path == "/metrics":
                await self.observer.serve_metrics(send)
            elif path in self._documents:
                await respond(send, 200, self._documents[path])
            else:
                await edge.not_found(send, path)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Stop taking writes, drain the writer, then give the ID node back; the event loop
        keeps serving meanwhile."""
        if not self._closed:
            self._closed = True
            await self.limiter.aclose()
            await self.db.aclose()
            await asyncio.to_thread(self.lease.release)
            self.readiness.close()
            self._lease_engine.dispose()
            self.observer.close()

    def close(self) -> None:
        """``aclose`` for callers without an event loop (the limiter's Redis connections, if
        any, belong to the loop that served and are closed by ``aclose`` only)."""
        if not self._closed:
            self._closed = True
            self.db.close()
            self.lease.release()
            self.readiness.close()
            self._lease_engine.dispose()
            self.observer.close()


def app_from_env() -> Any:
    """uvicorn factory: one application per worker process, configured from CONVHUB_*."""
    return Convhub(Settings.from_env())
