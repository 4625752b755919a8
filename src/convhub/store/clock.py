"""The write clocks: how readers skip asking for versions.

A kept conversation is used only at the version the database holds (store/kept.py), and asking
for the versions of 100 conversations was 40% of BatchGet(100) on SQLite and, on PostgreSQL, the
part of it that grows with the table. Each process has one writer thread that makes every change
it is asked for, so that writer can forget each row it changes before it answers. Its readers
need not ask for versions as long as nothing else changed the database since what they kept was
read. The clocks are what tells: a row per process (``write_clock``, keyed by its ID node, which
no two live processes share), whose ``seq`` the process's writer raises, last thing before the
commit, in every transaction that changed a stored conversation (a batch of creates changes
nothing a reader kept).

- A reader reads every clock (a few rows, one statement) and trusts what is kept only while its
  own clock is where its writer settled, and every other one no further than what was forgotten
  of it: where it stood when the kept rows were last all forgotten, or what was heard since
  (``KeptRows.valid_at`` holds them, for the common case of equal clocks).
- Its writer publishes its own clock after each batch, having forgotten what the batch changed.
  A writer that finds its own clock anywhere but where it left it (another process on the same
  node's clock) forgets everything it kept.
- On PostgreSQL each tick also notifies every listening process of the conversations it changed
  (store/hearing.py). A process that listens forgets them as it hears them, and its readers trust
  another process's clock up to the seq heard of it (``heard``); a seq skipped (a writer that
  does not notify) makes it forget everything.
- When another process's clock moves past what was heard of it, readers ask for versions. Once
  the other clocks have stood still for ``quiet`` seconds, a reader forgets everything kept and
  takes them as the new baseline: without a listener, a process whose neighbours keep writing
  goes on asking versions, and forgets everything at most once each time they pause.

One row per process: on PostgreSQL every process's batches would queue on a shared one. On
PostgreSQL a change of conversations by anything else (a process of an older version during a
rolling upgrade, an administrator's SQL) raises row -1 through a trigger (migration 0010), which
readers see move like another process's clock. The writer's connections are marked
(``mark_writer``), so that the trigger leaves their changes to the writer's own tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from convhub.domain.models import Conversation
from convhub.store.driver import execute, fast
from convhub.store.kept import KeptRows
from convhub.store.session import Session
from convhub.store.tables import write_clock

NOW = fast(select(write_clock.c.id, write_clock.c.seq).order_by(write_clock.c.id))
_TICK = fast(
    update(write_clock)
    .where(write_clock.c.id == bindparam("row"))
    .values(seq=write_clock.c.seq + 1)
    .returning(write_clock.c.seq)
)
CHANNEL = "convhub_clock"
# PostgreSQL: the tick also tells every listening process what changed (store/hearing.py),
# delivered once the transaction commits, in the order of the commits.
_TICK_AND_NOTIFY = fast(
    text(
        "WITH tick AS (UPDATE write_clock SET seq = seq + 1 WHERE id = :row RETURNING seq)"
        f" SELECT seq, pg_notify('{CHANNEL}', CAST(:row AS text) || ' ' || CAST(seq AS text)"
        " || ' ' || :ids) FROM tick"
    )
)
EVERYTHING = "*"  # in place of the IDs: forget everything kept
# PostgreSQL refuses a payload of 8,000 bytes or more; an ID takes at most 20 with its comma.
_MOST_IDS = 350
# Marks a PostgreSQL session as a convhub writer's: its changes of conversations do not raise
# the clock of foreign writes (migration 0010), since its writer ticks for them.
_MARK = "SELECT set_config('convhub.clock', 'on', false)"
_START = {
    "sqlite": sqlite.insert(write_clock).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(write_clock).on_conflict_do_nothing(),
}


def notice(touched: Collection[int]) -> str:
    """The IDs a tick's notification names: ``touched``, or everything if they are too many."""
    if len(touched) > _MOST_IDS:
        return EVERYTHING
    return ",".join(map(str, touched))


def heard(payload: str) -> tuple[int, int, list[int] | None]:
    """A notification's clock row, its seq and the IDs it changed (None: maybe any)."""
    row, seq, ids = payload.split(" ", 2)
    if ids == EVERYTHING:
        return int(row), int(seq), None
    return int(row), int(seq), [int(i) for i in ids.split(",")] if ids else []


def mark_writer(engine: Engine) -> None:
    """Mark every connection ``engine`` opens from now on as a convhub writer's (PostgreSQL;
    once a connection, at connect). On a connection opened before, the trigger raises the clock
    of foreign writes as well: readers then ask for versions, and nothing is missed."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def mark(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_MARK)
        dbapi_connection.commit()


Clocks = tuple[tuple[int, int], ...]  # (row, seq) of every clock, by row

QUIET = 0.5  # seconds the other clocks stand still before readers trust what they keep again


class WriteClock:
    """The writer's side (``start``, ``tick``, ``committed``, ``settle``: the writer thread
    only), the listener's (``listening``, ``heard``, ``deaf``: its thread) and the readers'
    (``trusted``: any thread)."""

    __slots__ = (
        "_drain", "_hearing", "_kept", "_last", "_lock", "_look_at", "_monotonic", "_moved",
        "_moved_at", "_notifies", "_quiet", "_row", "_stale", "_through",
    )  # fmt: skip

    def __init__(
        self,
        kept: KeptRows[int, Conversation],
        row: int,
        *,
        quiet: float = QUIET,
        monotonic: Callable[[], float] = time.monotonic,
        notifies: bool = False,
    ) -> None:
        self._kept = kept
        self._row = row
        self._quiet = quiet
        self._monotonic = monotonic
        self._notifies = notifies  # each tick tells the listening processes what it changed
        self._lock = threading.Lock()  # every change of what readers trust
        self._last: int | None = None  # the seq of this writer's last commit
        self._stale = True  # what is kept may predate another writer's changes
        # For each other clock, the seq up to which every change is forgotten (a clock missing:
        # 0); replaced, never changed, so that readers need no lock. None: no baseline.
        self._through: dict[int, int] | None = None
        self._hearing = False  # a listener hears every other writer's changes (``heard``)
        self._drain: Callable[[], None] | None = None  # takes in what the listener was sent
        self._moved: Clocks | None = None  # the other clocks as readers first saw them ahead
        self._moved_at = 0.0
        self._look_at = 0.0  # when a reader that cannot trust what is kept looks again
        kept.clock = self

    # --- the writer ------------------------------------------------------------------------------

    def start(self, conn: Connection) -> int | None:
        """The writer's first transaction (``committed`` its seq once committed): this process's
        clock exists, and the others as they stand are the baseline (nothing is kept yet)."""
        conn.execute(_START[conn.dialect.name].values(id=self._row, seq=0))
        seq = self.tick(conn, ())
        self._through = dict(self._without_own(execute(conn, NOW, {}).all()))
        return seq

    def tick(self, conn: Connection, touched: Collection[int]) -> int | None:
        """Raise this process's clock, last thing in a writer's transaction that changed the
        conversations ``touched``."""
        statement, params = self._tick(touched)
        return self._ticked(execute(conn, statement, params).scalar())

    def tick_in(
        self, session: Session, touched: Collection[int], then: Callable[[int | None], None]
    ) -> None:
        """``tick``, last thing in a batch's pipeline (PostgreSQL): sent without waiting, its
        seq handed to ``then`` with the batch's other answers, so it costs no round trip."""
        statement, params = self._tick(touched)
        session.check_around_held(
            statement, params, lambda seq: then(self._ticked(seq)), writes=True
        )

    def _tick(self, touched: Collection[int]) -> tuple[Any, dict[str, Any]]:
        if self._notifies:
            return _TICK_AND_NOTIFY, {"row": self._row, "ids": notice(touched)}
        return _TICK, {"row": self._row}

    def _ticked(self, seq: int | None) -> int | None:
        if seq is None or self._last is None or seq - 1 != self._last:
            self._stale = True  # someone else raised it since this writer's last commit
        return seq

    def committed(self, seq: int | None) -> None:
        self._last = seq

    def settle(self, touched: Iterable[int]) -> None:
        """After a batch, committed or not and before it is answered: forget what it changed
        (or everything, if another writer raised this clock), then let readers trust the rest."""
        with self._lock:
            if self._stale:
                self._kept.forget_all()
                self._stale = False
            else:
                self._kept.forget(touched)
            self._publish()

    # --- the listener ----------------------------------------------------------------------------

    def listening(self, clocks: Iterable[Any], drain: Callable[[], None]) -> None:
        """A listener hears every notification from now on, and ``clocks`` were read after it
        began to: forget everything (a change before it may not have been heard) and take them
        as the baseline. ``drain``: what a reader may call to take in what was sent meanwhile."""
        with self._lock:
            self._kept.forget_all()
            self._through = dict(self._without_own(clocks))
            self._drain = drain
            self._hearing = True
            self._publish()

    def heard(self, row: int, seq: int, ids: list[int] | None) -> None:
        """Another writer committed ``seq`` of clock ``row``, changing ``ids`` (None: any)."""
        if row == self._row:
            return  # this writer's own: it forgot them itself (and another on this clock is
            # seen by ``_ticked``)
        with self._lock:
            if ids is None:
                self._kept.forget_all()
            else:
                self._kept.forget(ids)
            through = self._through
            if through is None:
                return
            known = through.get(row, 0)
            if seq > known + 1:  # changes nobody told of (a convhub of an older version)
                self._kept.forget_all()
            if seq > known:
                self._through = {**through, row: seq}
                self._publish()

    @property
    def hearing(self) -> bool:
        return self._hearing

    def deaf(self) -> None:
        """The listener lost its connection: what was sent meanwhile is lost."""
        with self._lock:
            self._hearing = False
            self._drain = None

    # --- the readers -----------------------------------------------------------------------------

    def trusted(self, read: Callable[[], Sequence[Any]]) -> bool:
        """Whether what is kept is current, from the clocks as ``read`` gives them: this
        process's exactly where its writer settled, every other one no further than what was
        forgotten of it. Without a listener, a reader that cannot trust it reads the clocks only
        every ``quiet`` / 4 seconds, to see whether the other processes have paused."""
        valid_at = self._kept.valid_at
        if valid_at is None and self._monotonic() < self._look_at:
            return False
        clocks: Clocks = tuple(map(tuple, read()))
        if clocks == valid_at:
            return True
        if self._last is None or (self._row, self._last) not in clocks:
            return False  # this writer committed and has not settled yet
        ahead = self._ahead(clocks)
        drain = self._drain
        if ahead and drain is not None:
            drain()  # the notification may be here, not yet taken in
            ahead = self._ahead(clocks)
        if not ahead:
            return True
        self._note_moved(self._without_own(clocks))
        return False

    def _ahead(self, clocks: Clocks) -> bool:
        """Whether a clock but this process's is past what was forgotten of it."""
        through = self._through
        if through is None:
            return True
        row = self._row
        return any(seq > through.get(other, 0) for other, seq in clocks if other != row)

    def _note_moved(self, others: Clocks) -> None:
        now = self._monotonic()
        if not self._hearing:
            self._look_at = now + self._quiet / 4
            if self._through is not None:  # first seen: trust nothing (nor read the clocks)
                with self._lock:  # till a pause
                    if not self._hearing:  # nor has a listener begun meanwhile
                        self._through = None
                        self._publish()
        if others != self._moved:
            self._moved, self._moved_at = others, now
            return
        if now - self._moved_at < self._quiet:
            return
        # Stood still, and nobody told of it: what is read from now on is current at
        # ``others``. Readers that began before this forget keep nothing (``KeptRows.generation``).
        with self._lock:
            self._kept.forget_all()
            self._through = dict(others)
            self._moved = None
            self._publish()

    # ---------------------------------------------------------------------------------------------

    def _without_own(self, clocks: Iterable[Any]) -> Clocks:
        row = self._row
        return tuple((clock[0], clock[1]) for clock in clocks if clock[0] != row)

    def _publish(self) -> None:
        last, through = self._last, self._through
        if last is None or through is None:
            self._kept.valid_at = None
            return
        self._kept.valid_at = tuple(sorted((*through.items(), (self._row, last))))
