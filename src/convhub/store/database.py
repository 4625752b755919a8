"""Where units of work run.

SQLite allows one writer at a time and every commit with ``synchronous=FULL`` costs an fsync, so
``GroupCommitDatabase`` hands writes to one thread that gathers whatever is queued into a single
transaction, and answers every caller only after the commit has been synced. The writes one turn
of the event loop makes are queued together at the turn's end, so that the writer wakes once for
them all; and once it has answered a batch, the writer lets the loop take the answers in (and the
writes they lead to) before it takes the next.

A unit of work that fails before it wrote anything (a "not found", a broken rule) is dropped
alone and the batch goes on. One that fails after writing makes the batch roll back and run again
with a savepoint around each unit, so that only the failing one is lost.

PostgreSQL uses the same writer: measured in-process on this 2-core machine, group commit made
~3,800 creates/s where one transaction per request on a 16-thread pool made ~1,100 (each request
paid four round trips, SQLAlchemy's per-statement cost and a commit).

Lifecycle: the queue is bounded, and a write that finds it full is refused at once (OVERLOADED)
rather than kept in memory. If the writer thread dies, every queued and later write fails at once
(UNAVAILABLE). ``aclose`` stops taking writes, lets the writer finish what is queued, and waits
for it off the event loop. A queued write is answered with what became of it even if its request
is cancelled meanwhile (by the end of the server's grace period on shutdown).

A database that cannot be reached (refused, dropped, timed out) is the service being unavailable
for a moment: every such failure is answered as UNAVAILABLE, never as an internal error, and
reported to ``events`` (the composition root counts them), as is every batch's size.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from convhub.domain.models import Conversation, Message
from convhub.domain.ports import UnitOfWork
from convhub.errors import ConvhubError, ErrorCode
from convhub.store import driver
from convhub.store.checkpoint import Checkpointer
from convhub.store.clock import WriteClock, mark_writer
from convhub.store.hearing import Listener
from convhub.store.kept import KeptRows
from convhub.store.loop_reads import LoopReads
from convhub.store.session import Session
from convhub.store.unit_of_work import SqlUnitOfWork
from convhub.threads import named_thread

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 10_000
_Work = Callable[[UnitOfWork], Any]
# a write, its answer, the loop that waits for it, the conversation and the names it locks
_Item = tuple[_Work, "asyncio.Future[Any]", asyncio.AbstractEventLoop, int | None, Sequence[str]]
_Outcome = tuple[bool, Any]
# what one event loop is told of a batch: each waiting future, whether it succeeded, and its value
_Answers = list[tuple["asyncio.Future[Any]", bool, Any]]
_STOP = None


def _settle(outcomes: _Answers) -> None:
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# Once it has answered a batch, the writer waits until the event loop has taken the answers in:
# this many turns of the loop (the answers' tasks send them; the clients' next requests are read,
# run and their writes handed over), or at most CATCH_UP_SECONDS. Taken at once, the writes
# queued meanwhile made a batch of their own while the answered requests' next writes made the
# next: with 64 connections the writer could fall into two groups of 32 (1.5-2 context switches
# a request, against 0.3-0.4 with one group of 64). Alternated (2026-12-01), SQLite's Create
# +5.9% and Modify +8.6%; 10 ms instead of 2 gained nothing more and cost reads beside writes 12%.
CATCH_UP_TURNS = 5
CATCH_UP_SECONDS = 0.002


class _CatchUp:
    """Whether every event loop the writer last answered has run ``CATCH_UP_TURNS`` turns since."""

    __slots__ = ("_behind", "_caught_up", "_lock")

    def __init__(self) -> None:
        self._caught_up = threading.Event()
        self._caught_up.set()
        self._lock = threading.Lock()
        self._behind = 0

    def answer(
        self,
        by_loop: dict[asyncio.AbstractEventLoop, _Answers],
    ) -> None:
        """Hand each loop its outcomes (the writer thread)."""
        live = [(loop, outcomes) for loop, outcomes in by_loop.items() if not loop.is_closed()]
        with self._lock:
            self._behind = len(live)
            if live:
                self._caught_up.clear()
        for loop, outcomes in live:
            try:
                loop.call_soon_threadsafe(self._settle, loop, outcomes)
            except RuntimeError:  # the loop closed meanwhile
                self._turned(loop, 0)

    def wait(self) -> None:
        self._caught_up.wait(CATCH_UP_SECONDS)

    def _settle(
        self,
        loop: asyncio.AbstractEventLoop,
        outcomes: _Answers,
    ) -> None:
        _settle(outcomes)
        self._turned(loop, CATCH_UP_TURNS)

    def _turned(self, loop: asyncio.AbstractEventLoop, left: int) -> None:
        if left > 1:
            loop.call_soon(self._turned, loop, left - 1)
            return
        with self._lock:
            self._behind -= 1
            if self._behind <= 0:
                self._caught_up.set()


# PostgreSQL: once the queue is empty, a batch waits this long once for more writes before it
# goes. Measured with two workers (2026-11-30, three alternated rounds), 0.3 ms made Create +26%,
# Modify +22% and the Coze rename +29%; likely because the writer otherwise takes the
# interpreter from an event loop still reading the requests whose writes would have joined.
PG_LINGER = 0.0003

# After a batch ran twice because a check sent without waiting failed (a replayed key, a create
# past a limit), this many batches answer their checks at once: a stream of replays would
# otherwise make every batch run twice.
CHECKS_AT_ONCE_BATCHES = 100
_CONFLICTS = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure
_ONE_BY_ONE_ATTEMPTS = 3


def _conflict(error: BaseException | None) -> bool:
    """Whether a deadlock with another process's transaction is behind ``error``."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in _CONFLICTS:
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def _lost(error: BaseException) -> bool:
    """Whether ``error`` is the connection going: there is nothing left to run again on."""
    return isinstance(error, DBAPIError) and error.connection_invalidated


def unavailable(error: BaseException) -> BaseException:
    """A lost, refused or timed-out database connection (or a pool with none free in time), or a
    deadlock that kept recurring, is the service being unavailable for a moment, not a bug."""
    if (
        isinstance(error, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError)
        or _conflict(error)
        or _lost(error)
    ):
        return ConvhubError(ErrorCode.UNAVAILABLE, "the database is unavailable; retry later")
    return error


class StoreEvents(Protocol):
    """What the store tells whoever watches it; called from the writer thread and the event loop."""

    def batch(self, size: int, waiting: int) -> None:
        """The writer committed (or failed) a batch of ``size`` writes; ``waiting`` are queued."""

    def database_error(self, operation: str) -> None:
        """A read or a write (``operation``) failed on the database itself."""

    def listening(self, hearing: bool) -> None:
        """The process began (or ceased) to hear the other processes' writes (store/hearing.py;
        its listening thread)."""


class _NoEvents:
    def batch(self, size: int, waiting: int) -> None:
        pass

    def database_error(self, operation: str) -> None:
        pass

    def listening(self, hearing: bool) -> None:
        pass


class GroupCommitDatabase:
    """Writes through one group-committing thread. Reads run inline on one read connection
    (SQLite: a local file, microseconds) or, with ``read_connections``, on that many connections
    of psycopg's async driver (PostgreSQL: a network round trip must not stall the event loop;
    see store/loop_reads.py)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 512,
        max_queue: int = DEFAULT_MAX_QUEUE,
        read_connections: int = 0,
        kept_conversations: int = 0,
        kept_messages: int = 0,
        clock_row: int = 0,
        events: StoreEvents | None = None,
        linger: float = 0.0,
    ) -> None:
        self._engine = engine
        self._linger = linger  # seconds a batch waits, once, for more writes (PG_LINGER)
        self._sqlite = engine.dialect.name == "sqlite"
        self._events: StoreEvents = events or _NoEvents()
        self._max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._accepting = True
        self._failure: ConvhubError | None = None
        self._in_flight: list[_Item] = []  # taken from the queue, not yet answered
        self._reader: SqlUnitOfWork | None = None
        self._loop_reads: LoopReads | None = None
        self._kept: KeptRows[int, Conversation] | None = (
            KeptRows(kept_conversations) if kept_conversations else None
        )
        # Kept by version alone (repositories/messages.py): nothing forgets them.
        self._kept_messages: KeptRows[int, Message] | None = (
            KeptRows(kept_messages) if kept_messages else None
        )
        # The writer keeps the kept rows current itself (store/clock.py).
        self._clock = (
            None
            if self._kept is None
            else WriteClock(self._kept, clock_row, notifies=not self._sqlite)
        )
        self._touched: set[int] = set()  # conversations the writer's batch changed
        self._seq: int | None = None  # the write clock's, in the writer's transaction
        self._ticks = False  # the writer's transaction raises the clock (sent, or done)
        self._checks_at_once = 0  # batches left that answer their checks at once
        self._handed: list[_Item] = []  # written in this turn of the event loop, not yet queued
        self._catch_up = _CatchUp()
        if read_connections:
            self._loop_reads = LoopReads(
                engine, size=read_connections, kept=self._kept, kept_messages=self._kept_messages
            )
        else:
            conn = engine.connect().execution_options(convhub_readonly=True)
            self._reader = SqlUnitOfWork(conn, kept=self._kept, kept_messages=self._kept_messages)
        if self._clock is not None:
            mark_writer(engine)
            self._start_clock()
        # Other processes write to PostgreSQL too: hear what they change (store/hearing.py).
        self._listener = (
            Listener(engine, self._clock, self._events.listening)
            if self._clock is not None and not self._sqlite
            else None
        )
        self._checkpointer = Checkpointer(engine) if self._sqlite else None
        self._thread = named_thread(self._run, "convhub-writer")
        self._thread.start()

    # --- what the service calls ----------------------------------------------------------------

    async def write(
        self,
        work: Callable[[UnitOfWork], T],
        *,
        locks: int | None = None,
        lock_names: Sequence[str] = (),
    ) -> T:
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = _Pending(loop=loop)
        if self.queued >= self._queue.maxsize:
            raise _overloaded()
        # The writes of one turn of the event loop go to the writer together, at the turn's end
        # (_hand_over). Queued one by one, the first wakes the writer, which takes the
        # interpreter from the loop at its next system call (a socket's send) and commits it
        # alone while the loop still holds the requests whose writes would have joined it.
        if not self._handed:
            loop.call_soon(self._hand_over)
        self._handed.append((work, future, loop, locks, lock_names))
        try:
            return await future
        except asyncio.CancelledError:
            # The request was cancelled after its write was queued (the server's grace period on
            # shutdown ran out). The future refused the cancel, so the task woke only once the
            # writer had answered: answer what became of the write, as the database says.
            return future.result()

    def _hand_over(self) -> None:
        handed, self._handed = self._handed, []
        for item in handed:
            try:
                self._queue.put_nowait(item)
            except queue.Full:  # room was kept for it; only a second event loop could take it
                item[1].set_exception(_overloaded())
        if self._failure is not None:  # the writer died meanwhile: nobody will answer
            self._fail_queued()

    async def read(self, work: Callable[[UnitOfWork], T]) -> T:
        reader = self._reader
        if reader is not None:
            conn = reader.session.conn
            try:
                reader.begin_read()
                with driver.read_only(conn) if self._sqlite else conn.begin():
                    return work(reader)
            except DBAPIError as error:
                raise self._database_error("read", error) from error
        assert self._loop_reads is not None
        try:
            return await self._loop_reads.run(work)
        except SQLAlchemyError as error:
            raise self._database_error("read", error) from error

    @property
    def alive(self) -> bool:
        return self._failure is None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        return self._queue.qsize() + len(self._handed)

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._accepting:
            raise ConvhubError(ErrorCode.UNAVAILABLE, "the server is shutting down")

    def _database_error(self, operation: str, error: BaseException) -> BaseException:
        if isinstance(error, SQLAlchemyError):
            self._events.database_error(operation)
        return unavailable(error)

    # --- lifecycle -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop taking writes, let the writer drain the queue, wait for it off the event loop."""
        self._accepting = False
        self._hand_over()  # before the writer's stop, which goes behind them
        await asyncio.to_thread(self._stop_writer)
        if self._loop_reads is not None:
            await self._loop_reads.aclose()
        self._close_readers()

    def close(self) -> None:
        """``aclose`` for callers without an event loop."""
        self._accepting = False
        self._hand_over()
        self._stop_writer()
        if self._loop_reads is not None:
            self._loop_reads.close()
        self._close_readers()

    def _stop_writer(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)  # behind everything already queued
            self._thread.join()
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._listener is not None:
            self._listener.close()

    def _close_readers(self) -> None:
        if self._reader is not None:
            self._reader.session.conn.close()
        self._engine.dispose()

    # --- the writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a bug in the writer itself: fail loudly, never hang
            log.exception("the database writer stopped")
            self._failure = ConvhubError(
                ErrorCode.UNAVAILABLE, f"the database writer stopped: {type(exc).__name__}"
            )
            in_flight, self._in_flight = self._in_flight, []
            self._answer(in_flight, [(False, self._failure)] * len(in_flight))
            self._fail_queued()

    def _serve(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                self._catch_up.wait()
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                stop = False
                lingered = not self._linger
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        if lingered:
                            break
                        lingered = True  # once a batch: wait for the writes on their way
                        try:
                            more = self._queue.get(timeout=self._linger)
                        except queue.Empty:
                            break
                    if more is _STOP:
                        stop = True
                        break
                    batch.append(more)
                self._in_flight = batch
                if conn is None or conn.closed:
                    try:
                        conn = self._engine.connect()
                    except SQLAlchemyError as error:
                        self._events.batch(len(batch), self._queue.qsize())
                        self._answer(batch, self._failed(batch, error))
                        self._in_flight = []
                        continue
                try:
                    outcomes = self._commit(conn, batch)
                finally:
                    if self._clock is not None:
                        self._clock.settle(self._touched)
                    self._touched.clear()
                # Counted before it is answered, so that whoever holds an answer (a test, a
                # scrape of /metrics after a reply) finds its batch counted.
                self._events.batch(len(batch), self._queue.qsize())
                self._answer(batch, outcomes)
                if self._checkpointer is not None:
                    self._checkpointer.wrote()
                self._in_flight = []
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _start_clock(self) -> None:
        """Tick once before the writer starts, so that readers trust what they keep from the
        start rather than from the first write on."""
        assert self._clock is not None
        try:
            with self._engine.connect() as conn:
                with conn.begin():
                    seq = self._clock.start(conn)
                self._clock.committed(seq)
        except SQLAlchemyError:
            log.warning("the write clock did not start; readers ask for versions meanwhile")
        self._clock.settle(())

    @contextmanager
    def _transaction(self, conn: Connection) -> Iterator[None]:
        """One of the writer's transactions. If a conversation changed, the write clock ticks
        last, before the commit, unless the caller sent the tick in its pipeline already
        (``_tick_in``)."""
        clock = self._clock
        self._seq = None
        self._ticks = False
        with conn.begin():
            yield
            if clock is not None and self._touched and not self._ticks:
                self._ticks = True
                self._seq = clock.tick(conn, self._touched)
        if clock is not None and self._ticks:
            clock.committed(self._seq)

    def _tick_in(self, session: Session) -> None:
        """The tick, last in the batch's pipeline, if a conversation changed."""
        if self._clock is not None and self._touched:
            self._ticks = True
            self._clock.tick_in(session, self._touched, self._ticked)

    def _ticked(self, seq: int | None) -> None:
        self._seq = seq

    def _unit_of_work(self, conn: Connection) -> SqlUnitOfWork:
        return SqlUnitOfWork(conn, touched=self._touched, defer_checks=self._checks_at_once == 0)

    def _fail_queued(self) -> None:
        failure = self._failure
        assert failure is not None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._answer([item], [(False, failure)])

    def _answer(self, batch: list[_Item], results: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, _Answers] = {}
        for (ok, value), (_work, future, loop, _locks, _names) in zip(results, batch, strict=True):
            # A unit that met a lost connection failed for the database's sake, not its own.
            by_loop.setdefault(loop, []).append((future, ok, value if ok else unavailable(value)))
        self._catch_up.answer(by_loop)

    def _commit(self, conn: Connection, batch: list[_Item]) -> list[_Outcome]:
        if self._checks_at_once:
            self._checks_at_once -= 1
        try:
            return self._run_batch(conn, batch, isolate=False)
        except _Retry as retry:
            if _conflict(retry.__cause__):
                return self._one_by_one(conn, batch)
            # A unit of work failed after writing: run the batch again, each under its own
            # savepoint, so the failure is rolled back alone. Savepoints cost a statement pair
            # per write, so they are only paid for in a batch that needs them.
            try:
                return self._run_batch(conn, batch, isolate=True)
            except Exception as exc:
                if _conflict(exc):
                    return self._one_by_one(conn, batch)
                return self._failed(batch, exc)
        except Exception as exc:
            if _conflict(exc):
                return self._one_by_one(conn, batch)
            return self._failed(batch, exc)

    def _one_by_one(self, conn: Connection, batch: list[_Item]) -> list[_Outcome]:
        """A batch that deadlocked with another process's: each unit in a transaction of its
        own, so that no two of its locks are held together (a unit locks one conversation)."""
        log.warning("a batch of %d writes met a deadlock; running them one by one", len(batch))
        results: list[_Outcome] = []
        for work, _future, _loop, _locks, _names in batch:
            for attempt in range(_ONE_BY_ONE_ATTEMPTS):
                try:
                    with self._transaction(conn):
                        uow = self._unit_of_work(conn)
                        value = work(uow)
                        uow.session.flush()
                    results.append((True, value))
                    break
                except Exception as exc:
                    if _conflict(exc) and attempt + 1 < _ONE_BY_ONE_ATTEMPTS:
                        continue
                    results.append((False, unavailable(exc) if _conflict(exc) else exc))
                    break
        return results

    def _run_batch(self, conn: Connection, batch: list[_Item], *, isolate: bool) -> list[_Outcome]:
        with self._transaction(conn):
            uow = self._unit_of_work(conn)
            if isolate:
                GroupCommitDatabase._lock_together(uow, batch, follow_updates=False)
                return GroupCommitDatabase._isolated(conn, uow, batch)
            try:
                with uow.session.pipelined():
                    GroupCommitDatabase._lock_together(uow, batch, follow_updates=True)
                    results = GroupCommitDatabase._together(uow, batch)
                    uow.session.flush()
                    self._tick_in(uow.session)
            except Exception as exc:  # held-back rows, or a pipelined statement, failed
                if _lost(exc):
                    raise  # nothing to run again on: the batch fails (UNAVAILABLE)
                if uow.session.check_failed:
                    self._checks_at_once = CHECKS_AT_ONCE_BATCHES
                if isinstance(exc, _Retry):
                    raise
                raise _Retry from exc
            return results

    @staticmethod
    def _lock_together(uow: SqlUnitOfWork, batch: list[_Item], *, follow_updates: bool) -> None:
        """Lock (and read) in one statement each what the batch's writes said they lock
        (``write(…, locks=, lock_names=)``), instead of a statement each as each unit reaches
        it. Outside any unit's savepoint: a rolled-back unit cannot release them."""
        ids = {locks for _work, _future, _loop, locks, _names in batch if locks is not None}
        if ids:
            uow.conversations.lock_many(sorted(ids), follow_updates=follow_updates)
        names = {name for _w, _f, _l, _c, lock_names in batch for name in lock_names}
        if names:
            uow.session.lock_ahead(names)

    @staticmethod
    def _together(uow: SqlUnitOfWork, batch: list[_Item]) -> list[_Outcome]:
        session = uow.session
        results: list[_Outcome] = []
        for work, _future, _loop, _locks, _names in batch:
            mark = session.begin_unit()
            try:
                results.append((True, work(uow)))
            except Exception as exc:
                if not session.drop_unit(mark):
                    raise _Retry from exc
                results.append((False, exc))
        return results

    @staticmethod
    def _isolated(conn: Connection, uow: SqlUnitOfWork, batch: list[_Item]) -> list[_Outcome]:
        session = uow.session
        results: list[_Outcome] = []
        for work, _future, _loop, _locks, _names in batch:
            try:
                with conn.begin_nested():
                    value = work(uow)
                    session.flush()
                results.append((True, value))
            except Exception as exc:
                if _conflict(exc):
                    raise  # a deadlock is not this unit's failure: _commit runs them alone
                if _lost(exc):
                    raise  # nor is a lost connection: the batch fails (UNAVAILABLE)
                session.discard()  # the failed unit's held-back rows go with its savepoint
                results.append((False, exc))
        return results

    def _failed(self, batch: list[_Item], exc: Exception) -> list[_Outcome]:
        # The commit itself failed: nobody's write is durable, everybody hears so.
        log.error("group commit of %d writes failed: %s", len(batch), exc)
        return [(False, self._database_error("write", exc))] * len(batch)


def _overloaded() -> ConvhubError:
    return ConvhubError(ErrorCode.OVERLOADED, "too many writes are waiting; retry later")


class _Pending(asyncio.Future[Any]):
    """A queued write's answer, which cancelling the request that waits for it does not cancel:
    the writer commits or refuses the write all the same (shutdown drains the queue), so the
    request hears what became of it. Cheaper than ``asyncio.shield``: no second future."""

    def cancel(self, msg: Any | None = None) -> bool:
        return False


class _Retry(Exception):
    """A unit of work failed after writing in an unisolated batch; the batch is rolled back and
    rerun with savepoints."""
