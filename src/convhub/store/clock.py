"""The write clock: how SQLite's readers skip asking for versions.

A kept conversation is used only at the version the database holds (store/kept.py), and asking
for the versions of 100 conversations was 40% of BatchGet(100) on SQLite. There, one process
serves the file (``serve`` holds a lock on it) and one writer thread makes every change, so that
writer can forget each row it changes before it answers, and its readers need not ask, as long
as nothing else changed the file. The clock is what tells: one row whose ``seq`` the writer
raises in every transaction. A writer that finds ``seq`` anywhere but where it left it knows
another writer was here (another process on the same file), and forgets everything it kept. A
reader trusts what is kept only while the ``seq`` of its own snapshot is the one the writer
settled at (``KeptRows.valid_at``); otherwise it asks for versions as before.

Only on SQLite, where writes take turns at the one write lock anyway: on PostgreSQL every
process's batches would queue on this one row.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select, update

from convhub.domain.models import Conversation
from convhub.store.driver import execute, fast
from convhub.store.kept import KeptRows
from convhub.store.tables import write_clock

_TICK = fast(update(write_clock).values(seq=write_clock.c.seq + 1).returning(write_clock.c.seq))
NOW = fast(select(write_clock.c.seq).where(write_clock.c.id == 1))


class WriteClock:
    """The writer's side; called from the writer thread only."""

    __slots__ = ("_kept", "_last", "_stale")

    def __init__(self, kept: KeptRows[int, Conversation]) -> None:
        self._kept = kept
        self._last: int | None = None  # the seq of this writer's last commit
        self._stale = True  # what is kept may predate another writer's changes

    def tick(self, conn: Connection) -> int | None:
        """Raise the clock, first thing in a writer's transaction."""
        seq: int | None = execute(conn, _TICK, {}).scalar()
        if seq is None or self._last is None or seq - 1 != self._last:
            self._stale = True  # someone else wrote since this writer's last commit
        return seq

    def committed(self, seq: int | None) -> None:
        self._last = seq

    def settle(self, touched: Iterable[int]) -> None:
        """After a batch, committed or not and before it is answered: forget what it changed
        (or everything, if another writer was here), then let readers trust the rest."""
        if self._stale:
            self._kept.forget_all()
            self._stale = False
        else:
            self._kept.forget(touched)
        self._kept.valid_at = self._last
