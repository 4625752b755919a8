"""Node numbers for the ID generator, leased from the database so that no two live processes
share one.

A process takes the lowest node (0 to 1023) that has no lease or whose lease has not been renewed
for ``ttl`` seconds, renews it every ``ttl / 10`` seconds from a background thread, and releases it
on a clean shutdown. Taking a lease is serialised by the database (SQLite's write lock, a table
lock on PostgreSQL), so two starting processes never pick the same node.

A lease counts as held for ``ttl - ttl / 5`` seconds after its last successful renewal: a process
that cannot renew (database away, a long stall) stops minting IDs a fifth of the TTL before
anybody else may take its node. A process that finds its node taken stops at once and keeps
trying to lease another; until it holds one, writes that need new IDs are refused (UNAVAILABLE)
and readiness says so.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, select, text

from convhub.ids import MAX_NODE
from convhub.store.tables import node_leases
from convhub.threads import named_thread

log = logging.getLogger(__name__)

DEFAULT_TTL = 300


class NodesExhausted(RuntimeError):
    """Every node is held by a live lease."""


class NodeLease:
    def __init__(
        self,
        engine: Engine,
        *,
        ttl: int = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._monotonic = monotonic
        self._validity = ttl - ttl / 5
        self._on_change: Callable[[int], None] | None = None
        self.owner = f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"
        started = monotonic()
        self.node = self._acquire()
        self._valid_until = started + self._validity
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def held(self) -> bool:
        """Whether this process may mint IDs on ``node`` now."""
        return self._monotonic() < self._valid_until

    def _acquire(self) -> int:
        now = int(self._clock())
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("LOCK TABLE node_leases IN SHARE ROW EXCLUSIVE MODE"))
            held = dict(conn.execute(select(node_leases.c.node, node_leases.c.heartbeat)).all())
            free = (n for n in range(MAX_NODE + 1) if held.get(n, -1) < now - self._ttl)
            node = next(free, None)
            if node is None:
                raise NodesExhausted(f"all {MAX_NODE + 1} ID nodes are leased by live processes")
            values = {"owner": self.owner, "heartbeat": now}
            if node in held:
                conn.execute(
                    node_leases.update().where(node_leases.c.node == node).values(**values)
                )
            else:
                conn.execute(node_leases.insert().values(node=node, **values))
        return node

    def renew(self) -> bool:
        """Renew the lease; False when it could not be, or had to be taken anew."""
        started = self._monotonic()
        try:
            with self._engine.begin() as conn:
                renewed = conn.execute(
                    node_leases.update()
                    .where(node_leases.c.node == self.node, node_leases.c.owner == self.owner)
                    .values(heartbeat=int(self._clock()))
                    .returning(node_leases.c.node)
                ).first()
        except Exception:  # the database may be briefly away; the lease holds until it expires
            log.exception("could not renew ID node lease %d", self.node)
            return False
        if renewed is not None:  # still ours: nobody took it, even if we were late
            self._valid_until = started + self._validity
            return True
        lost = self.node
        self._valid_until = 0.0  # stop minting on a node that may be somebody else's
        log.error("lost ID node %d (taken over, or not renewed in time); taking a new one", lost)
        started = self._monotonic()
        try:
            self._release_if_ours()
            self.node = self._acquire()
        except Exception:
            log.exception("could not lease a new ID node; writes are refused until one is held")
            return False
        self._valid_until = started + self._validity
        log.error("ID node %d lost; now using node %d", lost, self.node)
        if self._on_change is not None:
            self._on_change(self.node)
        return False

    def start(self, on_change: Callable[[int], None] | None = None) -> None:
        """Renew from a daemon thread until ``release``; ``on_change`` hears of a new node."""
        self._on_change = on_change
        self._thread = named_thread(self._renew_forever, "convhub-lease")
        self._thread.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self._ttl / 10 if self.held() else min(1.0, self._ttl / 10)):
            self.renew()

    def _release_if_ours(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                node_leases.delete().where(
                    node_leases.c.node == self.node, node_leases.c.owner == self.owner
                )
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._valid_until = 0.0
        self._release_if_ours()
