"""Node numbers for the ID generator, leased from the database so that no two live processes
share one.

A process takes the lowest node (0 to 1023) that has no lease or whose lease has not been renewed
for ``ttl`` seconds, renews it every ``ttl / 10`` seconds from a background thread, and releases it
on a clean shutdown. Taking a lease is serialised by the database (SQLite's write lock, a table
lock on PostgreSQL), so two starting processes never pick the same node. A process that stalls for
longer than ``ttl`` loses its lease; it notices at its next renewal, logs it and takes a new node.
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
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._on_change: Callable[[int], None] | None = None
        self.owner = f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.node = self._acquire()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        """Renew the lease; False (and a new node taken) if another process had taken it."""
        with self._engine.begin() as conn:
            renewed = conn.execute(
                node_leases.update()
                .where(node_leases.c.node == self.node, node_leases.c.owner == self.owner)
                .values(heartbeat=int(self._clock()))
                .returning(node_leases.c.node)
            ).first()
        if renewed is not None:
            return True
        lost = self.node
        self.node = self._acquire()
        log.error("ID node %d was taken over after a stall; now using node %d", lost, self.node)
        if self._on_change is not None:
            self._on_change(self.node)
        return False

    def start(self, on_change: Callable[[int], None] | None = None) -> None:
        """Renew from a daemon thread until ``release``; ``on_change`` hears of a new node."""
        self._on_change = on_change
        self._thread = threading.Thread(
            target=self._renew_forever, name="convhub-lease", daemon=True
        )
        self._thread.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self._ttl / 10):
            try:
                self.renew()
            except Exception:  # the database may be briefly away; the next round retries
                log.exception("could not renew ID node lease %d", self.node)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._engine.begin() as conn:
            conn.execute(
                node_leases.delete().where(
                    node_leases.c.node == self.node, node_leases.c.owner == self.owner
                )
            )
