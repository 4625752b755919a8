"""Hearing what other processes' writers change (PostgreSQL).

Each writer's tick also sends a notification: its clock row, the seq and the IDs of the
conversations it changed (store/clock.py). PostgreSQL delivers it to every listening session once
the transaction commits, in the order of the commits. A thread of each process listens on a
connection of its own and forgets what it hears from the kept conversations, so that readers go
on trusting what they keep while other processes write: once what was heard of each clock reaches
the seq the clocks show. A reader that finds a clock ahead takes in what has arrived before it
gives up (``drain``), since the listening thread waits its turn for the interpreter.

A lost connection is opened again. Meanwhile readers go by the clocks alone, as without a
listener: they ask versions while another process writes.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine

from convhub.store.clock import CHANNEL, NOW, WriteClock, heard
from convhub.store.engine import postgres_connect_args
from convhub.threads import named_thread

log = logging.getLogger(__name__)

APPLICATION_NAME = "convhub-listener"  # what pg_stat_activity shows of its connection
RETRY = 1.0  # seconds between attempts to listen again


class Listener:
    """Started at once; ``close`` once."""

    __slots__ = (
        "_clock", "_clocks", "_closing", "_conn", "_connect_args", "_failing", "_lock", "_thread",
        "_told", "_wake",
    )  # fmt: skip

    def __init__(
        self, engine: Engine, clock: WriteClock, told: Callable[[bool], None] = lambda _: None
    ) -> None:
        _cargs, params = engine.dialect.create_connect_args(engine.url)
        params.pop("context", None)  # SQLAlchemy's adapters: this connection reads two integers
        params.update(postgres_connect_args(engine.url))
        params["application_name"] = APPLICATION_NAME
        self._connect_args = dict(params)
        self._clock = clock
        self._clocks = str(NOW.compile(dialect=engine.dialect))  # the readers' statement, as text
        self._told = told  # whether it hears, each time that changes (the metrics)
        self._lock = threading.Lock()  # the connection's input: the thread's or a reader's turn
        self._conn: psycopg.Connection[Any] | None = None
        self._closing = threading.Event()
        self._wake = os.pipe()  # written to by ``close``: the thread stops waiting at once
        self._failing = False
        self._thread = named_thread(self._run, "convhub-listener")
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        os.write(self._wake[1], b"x")
        self._thread.join()
        for descriptor in self._wake:
            os.close(descriptor)

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(**self._connect_args, autocommit=True) as conn:
                    self._listen(conn)
            except psycopg.Error:
                if not self._failing:  # once a run of failures: it may fail every second
                    log.warning("not hearing other processes' writes; retrying", exc_info=True)
                self._failing = True
            finally:
                with self._lock:
                    self._conn = None
                if self._clock.hearing:
                    self._clock.deaf()
                    self._told(False)
            self._closing.wait(RETRY)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        # Notifications that come with an answer are taken in as they come.
        conn.add_notify_handler(lambda notify: self._heard(notify.channel, notify.payload))
        conn.execute(f"LISTEN {CHANNEL}")
        # Read after the LISTEN: no change falls between.
        clocks = conn.execute(self._clocks).fetchall()
        with self._lock:
            self._conn = conn
        self._clock.listening(clocks, self.drain)
        self._told(True)
        if self._failing:
            log.warning("hearing other processes' writes again")
            self._failing = False
        descriptor = conn.fileno()
        waiting = select.poll()  # not select(): a busy server's descriptors pass 1,024
        waiting.register(descriptor, select.POLLIN)
        waiting.register(self._wake[0], select.POLLIN)
        while not self._closing.is_set():
            if any(ready == descriptor for ready, _event in waiting.poll()):
                with self._lock:
                    self._take_in(conn)

    def drain(self) -> None:
        """Take in what has arrived, unless the thread is at it (any thread; never waits)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            conn = self._conn
            if conn is not None:
                self._take_in(conn)
        except psycopg.Error:
            pass  # the connection is lost: the thread sees it too, and says so
        finally:
            self._lock.release()

    def _take_in(self, conn: psycopg.Connection[Any]) -> None:
        pgconn = conn.pgconn
        pgconn.consume_input()
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the listening connection was lost")
        while (notify := pgconn.notifies()) is not None:
            self._heard(notify.relname.decode(), notify.extra.decode())

    def _heard(self, channel: str, payload: str) -> None:
        if channel == CHANNEL:
            self._clock.heard(*heard(payload))
