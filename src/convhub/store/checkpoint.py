"""SQLite's WAL checkpoints, mostly off the writer's path.

SQLite checkpoints in the connection that commits, once the WAL holds 10,000 pages (SQLite's
default is 1,000; see store/engine.py): that commit copies every page the WAL holds into the
database file and syncs the file before it returns, and the batch it committed waits for it. With
the changed rows spread over a file of gigabytes, those pages lie scattered too, and the sync is
long. A thread of its own checkpoints shortly after commits (PASSIVE: it waits for no reader and
no writer, and blocks none), so that the writer's own checkpoint, which still restarts the WAL,
finds little left to copy.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from sqlalchemy import Engine

from convhub.threads import named_thread

log = logging.getLogger(__name__)

INTERVAL = 0.02  # seconds at least between two checkpoints: one every 20 ms while writes come


class Checkpointer:
    """``wrote`` after each commit (any thread); ``close`` once."""

    __slots__ = ("_closing", "_engine", "_interval", "_thread", "_wake")

    def __init__(self, engine: Engine, *, interval: float = INTERVAL) -> None:
        self._engine = engine
        self._interval = interval
        self._wake = threading.Event()
        self._closing = False
        self._thread = named_thread(self._run, "convhub-checkpointer")
        self._thread.start()

    def wrote(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            connection = self._engine.raw_connection()
        except Exception:
            log.warning("no checkpointer: the writer checkpoints alone", exc_info=True)
            return
        failing = False
        try:
            while True:
                self._wake.wait()
                if self._closing:
                    return
                self._wake.clear()
                try:
                    connection.driver_connection.execute(  # type: ignore[union-attr]
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchall()
                    failing = False
                except sqlite3.Error:
                    if not failing:  # once a run of failures: it may fail every few milliseconds
                        log.warning("checkpoints fail; the writer's own still run", exc_info=True)
                    failing = True
                time.sleep(self._interval)
        finally:
            connection.close()
