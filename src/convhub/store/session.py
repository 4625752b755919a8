"""One transaction's statements, with the rule that makes held-back inserts safe.

Inserts that cannot conflict (a conversation without an idempotency key, members, messages) are
held back and written together, one executemany per statement, by ``flush``; so are updates of
one row by key (``hold_change``: a conversation's), after the inserts. Every other statement
flushes first, so nothing ever reads around a held-back row; the transaction's owner flushes
before it commits. Under group commit this turns a batch of creates, or of renames, into a
handful of statements instead of one or several per request.

The session also knows whether the current unit of work changed anything: a unit that failed
before it wrote (a "not found", a rule broken) can be dropped alone, without a savepoint.

On PostgreSQL, inside ``pipelined()``, statements whose outcome nobody reads (``change``, the
advisory locks, the held-back inserts) are queued without waiting for their answers
(``store/pq_pipeline.py``): the next statement that needs an answer sends them with it and
waits for all of them in the same round trip. The locks a
batch's units name beforehand are taken before the first of them, in one statement
(``lock_ahead``; the rows, by ``SqlConversations.lock_many``): a group of Modify units thus
waits one round trip in all. An error in such a statement is
raised by a later one, maybe another unit's: the session is then ``broken`` and the writer
reruns the batch with a savepoint around each unit and no pipeline, where every error is its
own unit's. A read whose answer only has to pass a check before the commit (a count under a
limit, a keyed insert that must have inserted) goes out the same way (``check_around_held``),
and is checked when the batch's statements have all been answered. A batch's checks of one kind
(its group creates' counts of their owners' groups, which only the writer changes on SQLite and
only under the owner's lock on PostgreSQL) wait together until it next changes something, and
one statement answers them all (``check_grouped``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Executable, text

from convhub.store import driver
from convhub.store.driver import InList, fast, is_fast

# unnest keeps the array's (sorted) order, and the locks are taken row by row in that order.
_ADVISORY_LOCKS = fast(
    text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
)


# a check waiting in ``check_grouped``: its statement, the statement's other parameters, the
# value it asks about and what checks the answer
_Grouped = tuple[InList, tuple[tuple[str, Any], ...], Any, Callable[[Any], None]]
# what ``held_tally`` counts a held row under (None: not counted)
_Key = Callable[[Mapping[str, Any]], Any]
# where a unit began: flushes, held rows per statement, pipelined and grouped checks
_Mark = tuple[int, tuple[int, ...], int, int]


def advisory_key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


class Session:
    __slots__ = (
        "_changes",
        "_checks",
        "_defer_checks",
        "_flushes",
        "_group_checks",
        "_grouped",
        "_held",
        "_held_in_unit",
        "_held_keys",
        "_locked_ahead",
        "_may_pipeline",
        "_pipeline",
        "_sent_grouped",
        "_tallies",
        "broken",
        "check_failed",
        "conn",
        "dialect",
        "touched",
        "wrote",
    )

    def __init__(
        self, conn: Connection, *, touched: set[int] | None = None, defer_checks: bool = True
    ) -> None:
        self.conn = conn
        self._defer_checks = defer_checks
        self.check_failed = False  # a check sent without waiting failed when it was answered
        # The conversations whose rows this transaction changed (the writer forgets what it
        # kept of them: store/clock.py).
        self.touched: set[int] = set() if touched is None else touched
        self.dialect: str = conn.dialect.name
        self._held: dict[Executable, list[Mapping[str, Any]]] = {}
        self._changes: set[Executable] = set()  # the statements ``hold_change`` holds rows for
        self._held_keys: set[Hashable] = set()  # the keys of the changes held
        # ``held_tally``'s counts, per statement and key: the held rows counted, and the tally
        self._tallies: dict[tuple[Executable, _Key], tuple[int, dict[Any, int]]] = {}
        self._flushes = 0
        self._held_in_unit = False
        self.wrote = False  # a statement that changes data ran since ``begin_unit``
        self.broken = False  # a statement failed: the transaction cannot go on (PostgreSQL)
        self._may_pipeline = False
        self._pipeline: Any = None  # store/pq_pipeline.py, while the connection is in it
        self._checks: list[tuple[Any, Callable[[Any], None]]] = []  # sent, not yet answered
        self._locked_ahead: frozenset[int] = frozenset()  # advisory keys held till the end
        self._group_checks = False  # in the writer's batch: see ``check_grouped``
        self._grouped: list[_Grouped] = []  # made, not yet answered
        # PostgreSQL: grouped checks' statements sent in the pipeline, with what they answer
        self._sent_grouped: list[tuple[Any, list[tuple[Any, Callable[[Any], None]]]]] = []

    def hold(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        self._held_in_unit = True
        held = self._held.get(statement)
        if held is None:
            self._held[statement] = list(rows)
        else:
            held.extend(rows)

    def hold_change(self, statement: Executable, params: Mapping[str, Any], key: Hashable) -> None:
        """``change``, held back like an insert (an UPDATE of one row by ``key``): a batch's
        changes of one form go out together, after its held inserts (a change may be of a row
        inserted in the same batch). ``statement`` must be one object for each set of names in
        ``params``. A second change of a held key flushes first, so that each row's changes
        go out in turn and one statement changes a row once; and what reads around held rows
        (``scalar_around_held``, ``check_around_held``, ``check_grouped``) flushes the held
        changes first, since it may read what they change. The unit can no longer be dropped
        alone: the caller applied the change to the rows it reads (``SqlConversations``)."""
        if key in self._held_keys:
            self.flush()
        self.wrote = True
        self._changes.add(statement)
        self._held_keys.add(key)
        self.hold(statement, (params,))

    def _flush_if_changes_held(self) -> None:
        """Before a statement that reads around held rows: write everything held if a change is
        among it, since the statement may read what the change changes (``hold_change``)."""
        if self._held_keys:
            self.flush()

    def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        self.flush()
        return self._execute(statement, params)

    def scalar_around_held(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, read without writing the held inserts first: for a
        caller that accounts for them itself (``held_tally``), because flushing here would undo
        the batching. Held changes are written first."""
        self._flush_if_changes_held()
        return self._execute(statement, params).scalar()

    def check_around_held(
        self,
        statement: Executable,
        params: Mapping[str, Any],
        check: Callable[[Any], None],
        *,
        writes: bool = False,
    ) -> None:
        """``scalar_around_held``, handed to ``check``, which raises the unit's error if the value
        breaks a rule: at once, or, pipelined, when the batch's statements have all been
        answered (``_settle``), so that the writer waits no round trip for it. A check that
        fails there breaks the session: the writer reruns the batch with a savepoint per unit
        and no pipeline, where each check runs at once and fails its own unit alone.
        ``writes``: the statement changes data (``drop_unit`` then cannot undo the unit)."""
        self._flush_if_changes_held()
        if writes:
            self.wrote = True
            self._settle_grouped()
        if not self.defers_checks:
            check(self.scalar_around_held(statement, params))
            return
        assert is_fast(statement)
        self._checks.append((self._send(statement, params), check))

    def _send(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """Send ``statement`` in the pipeline (entered if need be) without waiting for its rows:
        its cursor, for ``driver.receive`` in ``_settle``."""
        try:
            if self._pipeline is None:
                self._pipeline = driver.enter_pipeline(self.conn)
            return driver.send(self.conn, self._pipeline, statement, params)
        except Exception:
            self.broken = True
            raise

    @property
    def groups_checks(self) -> bool:
        """Whether ``check_grouped`` may keep its check for later (in the writer's batch, unless
        the writer answers checks at once)."""
        return self._group_checks

    def check_grouped(
        self, statement: InList, value: Any, check: Callable[[Any], None], **others: Any
    ) -> None:
        """``check_around_held`` for a ``statement`` that answers a list of values at once, in rows
        of (value, answer), none for a value it has nothing for: the check waits until the
        transaction next changes something, or ends, and then every waiting check with the same
        ``others`` is answered by one statement (on PostgreSQL sent in the pipeline, and checked
        with the batch's other checks). What is counted must be what only this transaction can
        change until it ends: on SQLite this writer alone changes the database, on PostgreSQL
        the caller holds the lock every change of it takes; and the transaction's own changes
        wait for the checks. So each is answered as it would have been at once; a failure
        breaks the session, as a pipelined check's does."""
        self._flush_if_changes_held()
        self._grouped.append((statement, tuple(others.items()), value, check))

    def _settle_grouped(self) -> None:
        grouped, self._grouped = self._grouped, []
        if not grouped:
            return
        asked: dict[tuple[InList, tuple[tuple[str, Any], ...]], list[tuple[Any, Any]]] = {}
        for statement, others, value, check in grouped:
            asked.setdefault((statement, others), []).append((value, check))
        for (statement, others), checks in asked.items():
            values = list(dict.fromkeys(value for value, _check in checks))
            bound = statement.bind(self.dialect, values, **dict(others))
            if self._may_pipeline:
                self._sent_grouped.append((self._send(*bound), checks))
            else:
                self._check_grouped(dict(self._execute(*bound)), checks)

    def _check_grouped(
        self, answers: Mapping[Any, Any], checks: Sequence[tuple[Any, Callable[[Any], None]]]
    ) -> None:
        for value, check in checks:
            try:
                check(answers.get(value))
            except Exception:
                self.broken = self.check_failed = True
                raise

    @property
    def defers_checks(self) -> bool:
        """Whether ``check_around_held`` sends its statement without waiting for the answer."""
        return self._may_pipeline and self._defer_checks

    def _settle(self) -> None:
        checks, self._checks = self._checks, []
        grouped, self._sent_grouped = self._sent_grouped, []
        for at, (cursor, check) in enumerate(checks):
            try:
                check(driver.receive(self.conn, cursor).scalar())
            except Exception:
                self.broken = self.check_failed = True
                self._forget(checks[at + 1 :])
                self._forget(grouped)
                raise
        for at, (cursor, waiting) in enumerate(grouped):
            try:
                answers = dict(driver.receive(self.conn, cursor))
            except Exception:
                self.broken = True
                self._forget(grouped[at + 1 :])
                raise
            try:
                self._check_grouped(answers, waiting)
            except Exception:
                self._forget(grouped[at + 1 :])
                raise

    def _forget(self, checks: Sequence[tuple[Any, object]]) -> None:
        for cursor, _check in checks:
            driver.forget(self.conn, cursor)

    def lock(self, *names: str) -> None:
        """Take turns with every other transaction that locks one of ``names`` until this one
        ends: PostgreSQL advisory locks (several processes write at once there), taken in one
        round trip and in one order everywhere; on SQLite the writer holds the database's only
        write lock already. Names locked ahead (``lock_ahead``) cost nothing."""
        if self.dialect != "postgresql" or not names:
            return
        keys = {advisory_key(name) for name in names} - self._locked_ahead
        if keys:
            self._lock_keys(keys)

    def lock_ahead(self, names: Iterable[str]) -> None:
        """``lock``, before any unit of the transaction runs (so that no savepoint a unit rolls
        back releases them): the units' own ``lock`` of these names is then free."""
        if self.dialect != "postgresql":
            return
        keys = frozenset(advisory_key(name) for name in names)
        self._lock_keys(keys)
        self._locked_ahead = keys

    def _lock_keys(self, keys: Iterable[int]) -> None:
        """Take these advisory locks in one statement, in their sorted order, sent without
        waiting (a lock is waited for by the statements after it): PostgreSQL takes them while
        the batch's units run."""
        self._execute(_ADVISORY_LOCKS, {"keys": driver.integer_array(sorted(keys))}, answer=False)
        if self._pipeline is not None:
            try:
                driver.send_queued(self.conn, self._pipeline)
            except Exception:
                self.broken = True
                raise

    def held_tally(self, statement: Executable, key: _Key) -> Mapping[Any, int]:
        """How many of the rows held back for ``statement``, not yet written, have each
        ``key(row)`` (a row whose key is None is not counted). The tally is kept from one call to
        the next and counts only the rows held since, so a batch of n units asking in turn costs
        n rows in all, not n²; ``key`` must be the same object at each call (a function of a
        module)."""
        rows = self._held.get(statement, ())
        counted, tally = self._tallies.get((statement, key), (0, {}))
        if counted < len(rows):
            for row in rows[counted:]:
                found = key(row)
                if found is not None:
                    tally[found] = tally.get(found, 0) + 1
            self._tallies[statement, key] = len(rows), tally
        return tally

    def write(
        self, statement: Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> Any:
        self.flush()
        self.wrote = True
        return self._execute(statement, params)

    def change(
        self, statement: Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> None:
        """A write whose outcome the caller does not read (an UPDATE by key)."""
        self.flush()
        self.wrote = True
        self._execute(statement, params, answer=False)

    def flush(self) -> None:
        if self._grouped:
            self._settle_grouped()
        if not self._held:
            return
        held, self._held = self._held, {}
        self._tallies = {}
        self._held_keys = set()
        self._flushes += 1
        if self._held_in_unit:  # the current unit's own rows go out now
            self.wrote = True
        changes = self._changes
        for statement, rows in held.items():
            if statement not in changes:
                self._execute(statement, rows, answer=False)
        for statement, rows in held.items():
            if statement in changes:
                self._execute(statement, rows, answer=False)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Send what needs no answer without waiting for it (PostgreSQL; see the module). On the
        way out, every statement sent has been answered, and the first error among them is
        raised."""
        self._group_checks = self._defer_checks
        if self.dialect != "postgresql":
            try:
                yield
                self._settle_grouped()
            finally:
                self._group_checks = False
                self._grouped = []
            return
        self._may_pipeline = True
        try:
            yield
            self._settle_grouped()
        except BaseException as failed:
            self._may_pipeline = self._group_checks = False
            self._grouped = []
            self._leave_pipeline(failed)
            raise
        self._may_pipeline = self._group_checks = False
        self._leave_pipeline()

    def _leave_pipeline(self, failed: BaseException | None = None) -> None:
        if failed is None:
            try:
                self._settle()
            except BaseException as error:
                self._leave_pipeline(error)
                raise
        else:
            self._forget(self._checks)
            self._forget(self._sent_grouped)
            self._checks = []
            self._sent_grouped = []
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                driver.leave_pipeline(self.conn, pipeline, failed)
            except Exception:
                self.broken = True
                raise

    def _execute(self, statement: Executable, params: Any, *, answer: bool = True) -> Any:
        try:
            if is_fast(statement):
                if self._may_pipeline and self._pipeline is None:
                    self._pipeline = driver.enter_pipeline(self.conn)
                return driver.execute(
                    self.conn, statement, params, pipeline=self._pipeline, answer=answer
                )
            if self._pipeline is not None:  # SQLAlchemy reads a result as soon as it executes
                self._leave_pipeline()
            return self.conn.execute(statement, params)
        except Exception:
            self.broken = True
            raise

    # --- units of work ---------------------------------------------------------------------------

    def begin_unit(self) -> _Mark:
        """Start a unit of work; the mark lets ``drop_unit`` forget what it held back."""
        self.wrote = False
        self._held_in_unit = False
        lengths = tuple(len(rows) for rows in self._held.values())
        return self._flushes, lengths, len(self._checks), len(self._grouped)

    def drop_unit(self, mark: _Mark) -> bool:
        """Forget a failed unit's held-back rows and waiting checks; False if it had written (or
        broken) anything that only a rollback can undo."""
        if self.wrote or self.broken:
            return False
        flushes, lengths, checks, grouped = mark
        self._forget(self._checks[checks:])
        del self._checks[checks:]
        del self._grouped[grouped:]
        self._tallies = {}  # they may count the unit's rows
        if flushes != self._flushes:  # what was held at the mark is written: the rest is ours
            self._held = {}
            return True
        for rows, keep in zip(list(self._held.values()), lengths, strict=False):
            del rows[keep:]
        for statement in list(self._held)[len(lengths) :]:
            del self._held[statement]
        return True

    def discard(self) -> None:
        self._held = {}
        self._held_keys = set()
        self._tallies = {}
        self._grouped = []
        self._forget(self._checks)
        self._forget(self._sent_grouped)
        self._checks = []
        self._sent_grouped = []
        self.broken = False
