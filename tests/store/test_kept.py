"""Conversations the read side keeps: used only while the stored row is at the version they were
read at, on each engine, whatever changed the row and whichever process changed it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select, text, update

from convhub.domain.models import (
    Conversation,
    ConversationStatus,
    Participant,
    Role,
)
from convhub.domain.ports import UnitOfWork, UserOrder
from convhub.store.clock import QUIET, WriteClock, heard, notice
from convhub.store.database import GroupCommitDatabase
from convhub.store.engine import create_database_engine, is_sqlite
from convhub.store.hearing import APPLICATION_NAME
from convhub.store.kept import FORGOTTEN_KEYS, KeptRows
from convhub.store.tables import conversations, write_clock
from tests.outages import eventually
from tests.support import connection, group_of, migrated, required_postgres

APP = 515_151


def _conversation(conversation_id: int) -> Conversation:
    conversation = group_of(conversation_id, APP)
    conversation.name = "first"
    return conversation


def _database(url: str, kept: int, clock_row: int = 0) -> GroupCommitDatabase:
    engine = create_database_engine(url, pool_size=4)
    return GroupCommitDatabase(
        engine,
        read_connections=0 if is_sqlite(url) else 2,
        kept_conversations=kept,
        clock_row=clock_row,
    )


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[GroupCommitDatabase, GroupCommitDatabase]]:
    """Two processes' worth of storage on one database, each with its own write clock (as two
    processes hold two ID nodes): each keeps what it reads."""
    first, second = _database(database_url, 1000, 1), _database(database_url, 1000, 2)
    yield first, second
    first.close()
    second.close()


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def _read(db: GroupCommitDatabase, ids: list[int]) -> dict[int, Conversation]:
    found = _run(db.read(lambda uow: uow.conversations.get_many(ids)))
    return {c.id: c for c in found}


def _write(db: GroupCommitDatabase, work: Callable[[UnitOfWork], object]) -> None:
    _run(db.write(work))


def _add(db: GroupCommitDatabase, ids: list[int]) -> None:
    _write(db, lambda uow: [uow.conversations.add(_conversation(i), None) for i in ids])


def _changed(uow: UnitOfWork, conversation_id: int, **values: Any) -> None:
    conversation = uow.conversations.get(conversation_id)
    assert conversation is not None
    for name, value in values.items():
        setattr(conversation, name, value)
    uow.conversations.update(conversation, tuple(values))


def test_every_kind_of_update_is_seen_by_a_reader_that_kept_the_row(
    two: tuple[GroupCommitDatabase, GroupCommitDatabase],
) -> None:
    writer, _ = two
    ids = [9_100_000_001, 9_100_000_002, 9_100_000_003]
    _add(writer, ids)
    # Kept by both: the writer's own read side and the other process's.
    for db in two:
        assert {c.name for c in _read(db, ids).values()} == {"first"}

    _write(writer, lambda uow: _changed(uow, ids[0], name="renamed", member_count=7))
    _write(writer, lambda uow: uow.conversations.take_message_indexes(ids[1], 3, 12345))

    def dissolve(uow: UnitOfWork) -> None:
        conversation = uow.conversations.get(ids[2])
        assert conversation is not None
        uow.conversations.dissolve(conversation)

    _write(writer, dissolve)
    for db in two:
        seen = _read(db, ids)
        assert (seen[ids[0]].name, seen[ids[0]].member_count) == ("renamed", 7)
        assert (seen[ids[1]].last_message_index, seen[ids[1]].activity_key) == (3, 12345)
        assert seen[ids[2]].status is ConversationStatus.DISSOLVED


def test_an_unchanged_row_is_served_from_what_was_kept(
    two: tuple[GroupCommitDatabase, GroupCommitDatabase],
) -> None:
    writer, reader = two
    ids = [9_200_000_001, 9_200_000_002]
    _add(writer, ids)
    before = _read(reader, ids)
    _write(writer, lambda uow: _changed(uow, ids[0], name="other"))
    after = _read(reader, ids)
    assert after[ids[1]] is before[ids[1]]  # kept: the version did not move
    assert after[ids[0]] is not before[ids[0]] and after[ids[0]].name == "other"


def test_the_conversations_kept_of_one_app_share_one_app_id(database_url: str) -> None:
    """What the readers keep of an app's conversations holds one int object for the app, not one
    each: a read of many kept conversations compares each one's app, and ints of their own lie
    scattered over memory once many are kept. The values are the same."""
    db = _database(database_url, 1000)
    try:
        ids = [9_250_000_001, 9_250_000_002, 9_250_000_003]
        _add(db, ids)
        kept = _read(db, ids)
        assert [kept[i].app_id for i in ids] == [APP] * 3
        assert len({id(kept[i].app_id) for i in ids}) == 1
        assert _read(db, ids)[ids[0]] is kept[ids[0]]  # and served as kept
    finally:
        db.close()


def test_a_write_units_reads_are_never_kept(database_url: str) -> None:
    db = _database(database_url, 1000)
    try:
        conversation_id = 9_300_000_001
        _write(db, lambda uow: uow.conversations.add(_conversation(conversation_id), None))

        def read_then_fail(uow: UnitOfWork) -> None:
            _changed(uow, conversation_id, name="rolled back")
            assert uow.conversations.get_many([conversation_id])[0].name == "rolled back"
            raise RuntimeError("roll it back")

        with pytest.raises(RuntimeError):
            _write(db, read_then_fail)
        assert _read(db, [conversation_id])[conversation_id].name == "first"
    finally:
        db.close()


def test_kept_rows_hold_at_most_their_capacity_and_match_versions() -> None:
    kept: KeptRows[int, str] = KeptRows(2)
    since = kept.generation
    kept.put_many([(1, 0, "a"), (2, 0, "b")], since=since)
    kept.put_many([(1, 1, "a1")], since=since)  # a newer version replaces, in place
    assert (kept.get(1, 0), kept.get(1, 1)) == (None, "a1")
    kept.put_many([(3, 0, "c")], since=since)  # full: the oldest kept (1) goes
    assert (len(kept), kept.get(1, 1), kept.get(2, 0), kept.get(3, 0)) == (2, None, "b", "c")
    assert kept.resolve_current([3, 9, 2]) == (["c", 9, "b"], [9])
    assert kept.resolve_current([2, 3, 2]) == (["b", "c", "b"], [])  # all kept: in order
    with pytest.raises(ValueError):
        KeptRows(0)


def test_a_reader_that_began_before_a_forget_keeps_nothing_of_what_it_forgot() -> None:
    """A reader's snapshot may predate the writer's commit of a change: what it read of a row
    must not be kept once the writer has forgotten the row (it would be served as current).
    What else it read it keeps: nothing changed those."""
    kept: KeptRows[int, str] = KeptRows(10)
    kept.put_many([(1, 0, "a"), (2, 0, "b")], since=kept.generation)
    began = kept.generation  # the reader begins, reads 1 as it was, and 3
    kept.forget([1])  # the writer commits a change of 1 and forgets it
    kept.put_many([(1, 0, "a, as the reader saw it"), (3, 0, "c")], since=began)
    assert kept.resolve_current([1, 2, 3]) == ([1, "b", "c"], [1])
    kept.put_many([(1, 1, "a, read after")], since=kept.generation)
    assert kept.get(1, 1) == "a, read after"

    began = kept.generation
    kept.forget_all()  # another writer was here
    assert (len(kept), kept.resolve_current([1, 2])[1]) == (0, [1, 2])
    kept.put_many([(2, 0, "b, as the reader saw it")], since=began)
    assert len(kept) == 0  # whatever it read may have changed

    began = kept.generation
    kept.forget(range(100, 100 + FORGOTTEN_KEYS + 1))  # too many to remember one by one
    kept.put_many([(2, 0, "b")], since=began)
    assert len(kept) == 0  # so an overtaken reader keeps nothing
    kept.put_many([(2, 0, "b")], since=kept.generation)
    assert kept.get(2, 0) == "b"


def test_readers_look_at_the_clocks_seldom_and_keep_rows_while_others_write() -> None:
    """The clocks' rules without a database: trust only at the published clocks; another clock
    moving sends readers to the versions, reading the clocks again only every ``quiet`` / 4 s,
    and forgetting nothing kept until the other clocks have stood still for ``quiet``."""
    now = [0.0]
    kept: KeptRows[int, Conversation] = KeptRows(10)
    clock = WriteClock(kept, 1, quiet=1.0, monotonic=lambda: now[0])
    looks: list[float] = []

    def at(when: float, others_seq: int, own_seq: int = 1) -> bool:
        now[0] = when

        def read() -> list[tuple[int, int]]:
            looks.append(when)
            return [(-1, 0), (1, own_seq), (2, others_seq)]

        return clock.trusted(read)

    clock.committed(1)
    clock.settle(())  # no baseline of the other clocks yet: nothing is trusted
    assert not at(0.0, 5) and not at(0.1, 5)  # the second did not look
    assert looks == [0.0]
    assert not at(0.5, 5)  # looked, still; not yet still for 1 s
    generation = kept.generation
    assert not at(1.0, 5)  # still for 1 s: everything kept is forgotten, the clocks taken
    assert kept.generation == generation + 1
    assert at(1.01, 5) and at(1.02, 5)  # trusted, looking each time
    assert not at(1.03, 5, own_seq=2)  # its own writer committed and has not settled yet
    clock.committed(2)
    clock.settle([7])
    assert at(1.04, 5, own_seq=2)

    looks.clear()
    generation = kept.generation
    for step in range(40):  # another process writes on and on: 2 s
        assert not at(1.1 + step * 0.05, 6 + step, own_seq=2)
    assert kept.generation == generation  # nothing forgotten
    assert len(looks) <= 9  # at most every 0.25 s, not at every read
    assert not at(3.5, 99, own_seq=2) and not at(4.6, 99, own_seq=2)  # it paused: forgotten
    assert kept.generation == generation + 1 and at(4.7, 99, own_seq=2)


def test_a_listening_process_trusts_what_it_kept_once_it_has_heard_up_to_the_clocks() -> None:
    """The rules with a listener, without a database: another clock ahead of what was heard of
    it sends a reader to the versions (after one drain); each notification forgets only what it
    names; a seq skipped, or a notification of too many IDs, forgets everything; a process
    hears its own clock from its writer alone; a clock that stays ahead, unheard, for ``quiet``
    is taken as it is once everything is forgotten; a lost listener leaves the clocks alone."""
    now = [0.0]
    kept: KeptRows[int, str] = KeptRows(10)
    clock = WriteClock(kept, 1, quiet=1.0, monotonic=lambda: now[0])  # type: ignore[arg-type]
    arriving: list[tuple[int, int, list[int] | None]] = []
    drains: list[float] = []

    def drain() -> None:  # what a reader's drain finds arrived
        drains.append(now[0])
        while arriving:
            clock.heard(*arriving.pop(0))

    def at(others_seq: int, own_seq: int = 1) -> bool:
        return clock.trusted(lambda: [(-1, 0), (1, own_seq), (2, others_seq)])

    def keep(*keys: int) -> None:
        kept.put_many([(key, 1, f"row {key}") for key in keys], since=kept.generation)

    clock.committed(1)
    clock.settle(())
    clock.listening([(-1, 0), (1, 1), (2, 5)], drain)
    keep(7, 8)
    assert at(5) and drains == []
    assert not at(6) and drains == [0.0]  # ahead, and nothing arrived: versions
    clock.heard(2, 6, [7])
    assert (kept.get(7, 1), kept.get(8, 1)) == (None, "row 8")  # only what it named
    assert at(6) and at(5)  # a reader that read the clocks before the commit trusts as well
    arriving.append((2, 7, [8]))
    assert at(7)  # arrived, taken in by the reader's drain
    assert kept.get(8, 1) is None and not arriving

    keep(7, 8)
    clock.heard(2, 9, [7])  # seq 8 was never told of (an older convhub): everything goes
    assert len(kept) == 0 and at(9)
    keep(7, 8)
    clock.heard(2, 10, heard(f"2 10 {notice(range(351))}")[2])  # too many to name
    assert len(kept) == 0 and at(10)
    keep(7)
    clock.heard(1, 2, [7])  # its own clock: its writer forgets what it changes
    assert kept.get(7, 1) == "row 7"

    assert not at(12)  # ahead, unheard: an older convhub wrote
    assert not at(12) and kept.get(7, 1) == "row 7"  # nothing forgotten yet
    now[0] = 1.1
    assert not at(12)  # stood still for 1 s: everything forgotten, 12 taken as heard
    assert len(kept) == 0 and at(12)

    clock.deaf()
    keep(7)
    drains.clear()
    assert not at(13) and not at(13)
    assert drains == [] and not clock.hearing  # the clocks alone, as without a listener
    assert kept.valid_at is None  # nor are the clocks read again before quiet / 4 s
    now[0] = 1.4
    assert not at(13) and kept.get(7, 1) == "row 7"  # looked: still, but not for 1 s yet
    now[0] = 2.2
    assert not at(13) and len(kept) == 0  # still for 1.1 s: everything forgotten, 13 taken
    assert at(13)


def _statements_of_read(db: GroupCommitDatabase, ids: list[int]) -> list[str]:
    """The SQL a SQLite read of ``ids`` runs on the read connection."""
    reader = db._reader
    assert reader is not None
    raw = reader.session.conn.connection.dbapi_connection
    assert raw is not None
    seen: list[str] = []
    raw.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    try:
        _read(db, ids)
    finally:
        raw.set_trace_callback(None)  # type: ignore[attr-defined]
    return [sql for sql in seen if sql.startswith("SELECT")]


def test_sqlite_reads_what_its_own_writer_kept_current_without_asking_versions(
    tmp_path: Path,
) -> None:
    """SQLite only: on PostgreSQL several processes write, and readers always ask versions."""
    db = _database(migrated(f"sqlite:///{tmp_path / 'clock.db'}"), 1000)
    try:
        ids = [9_500_000_001, 9_500_000_002]
        _add(db, ids)
        assert {c.name for c in _read(db, ids).values()} == {"first"}  # now kept
        only_clock = _statements_of_read(db, ids)
        assert len(only_clock) == 1 and "write_clock" in only_clock[0], only_clock
        _write(db, lambda uow: _changed(uow, ids[0], name="renamed"))
        # The writer forgot the row it changed: read again, in full, and nothing else.
        again = _statements_of_read(db, ids)
        assert len(again) == 2 and "version" not in again[0], again
        assert _read(db, ids)[ids[0]].name == "renamed"
        assert len(_statements_of_read(db, ids)) == 1
    finally:
        db.close()


@pytest.mark.parametrize("rows", [(1, 2), (3, 3)], ids=["own clocks", "one clock"])
def test_a_write_by_another_process_is_seen_by_one_that_kept_the_row(
    database_url: str, rows: tuple[int, int]
) -> None:
    """With a clock each, and with one clock for both (a node that changed hands)."""
    first, second = (_database(database_url, 1000, row) for row in rows)
    try:
        _seen_across(first, second, [9_600_000_001 + 10 * rows[1], 9_600_000_002 + 10 * rows[1]])
    finally:
        first.close()
        second.close()


def _seen_across(first: GroupCommitDatabase, second: GroupCommitDatabase, ids: list[int]) -> None:
    _add(first, ids)
    assert {c.name for c in _read(first, ids).values()} == {"first"}  # kept by the first
    _write(second, lambda uow: _changed(uow, ids[0], name="by the second"))
    assert _read(first, ids)[ids[0]].name == "by the second"
    # Kept again by the first; the second changes it; then the first writes before it reads.
    # On one clock the first's writer finds it moved by another and forgets everything it kept;
    # on a clock each, the first's readers find the other's moved and ask versions.
    _write(second, lambda uow: _changed(uow, ids[0], name="by the second, again"))
    _write(first, lambda uow: _changed(uow, ids[1], name="by the first"))
    seen = _read(first, ids)
    assert (seen[ids[0]].name, seen[ids[1]].name) == ("by the second, again", "by the first")


@contextmanager
def _transaction(url: str) -> Iterator[Connection]:
    """One transaction on a connection of its own, as another process's."""
    with connection(url) as conn, conn.begin():
        yield conn


def _behind_the_clocks(
    url: str, conversation_id: int, name: str, *, as_convhub: bool = True
) -> None:
    """Change a row's name and raise its version. ``as_convhub``: in a transaction marked as a
    convhub writer's (PostgreSQL), but with no write clock raised, which no convhub writer does;
    otherwise as a process of an older version would."""
    with _transaction(url) as conn:
        if as_convhub and conn.dialect.name == "postgresql":
            conn.execute(select(func.set_config("convhub.clock", "on", True)))
        conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(name=name, version=conversations.c.version + 1)
        )


def _tick_another_clock(url: str, row: int) -> None:
    """What another process's writer does in each of its transactions."""
    with _transaction(url) as conn:
        conn.execute(
            update(write_clock).where(write_clock.c.id == row).values(seq=write_clock.c.seq + 1)
        )


def test_readers_ask_no_versions_until_another_process_writes_and_again_once_it_pauses(
    database_url: str,
) -> None:
    """On both engines. A change that raises no write clock stays unseen while the reader
    trusts what it kept: the proof that it asked for no versions. Once another process's clock
    moves, the reader asks versions again (and sees that change), until the other clocks have
    stood still for ``QUIET`` seconds."""
    with _transaction(database_url) as conn:  # another process's clock, there before this one
        other = conn.execute(select(func.max(write_clock.c.id))).scalar_one() + 1
        conn.execute(insert(write_clock).values(id=other, seq=5))
    db = _database(database_url, 1000, clock_row=other + 1)
    try:
        ids = [9_700_000_001, 9_700_000_002]
        _add(db, ids)
        assert {c.name for c in _read(db, ids).values()} == {"first"}  # now kept
        _behind_the_clocks(database_url, ids[0], "unseen")
        assert _read(db, ids)[ids[0]].name == "first"  # no versions asked
        assert _run(db.read(lambda uow: uow.conversations.get(ids[0]))).name == "first"

        _tick_another_clock(database_url, other)
        assert _read(db, ids)[ids[0]].name == "unseen"  # versions asked: the change is seen
        _behind_the_clocks(database_url, ids[0], "seen while the other clock was moving")
        assert _read(db, ids)[ids[0]].name == "seen while the other clock was moving"

        time.sleep(QUIET * 1.2)  # the other clock stood still: the next read forgets all kept
        assert _read(db, ids)[ids[0]].name == "seen while the other clock was moving"
        _read(db, ids)  # kept again, by a reader that began after the forget
        _behind_the_clocks(database_url, ids[1], "unseen again")
        assert _read(db, ids)[ids[1]].name == "first"  # trusted again
        # Its own writes it sees at once: its writer forgets what it changes before answering.
        _write(db, lambda uow: _changed(uow, ids[1], name="by its own writer"))
        assert _read(db, ids)[ids[1]].name == "by its own writer"
    finally:
        db.close()


def _clocks(url: str) -> dict[int, int]:
    with _transaction(url) as conn:
        return {row: seq for row, seq in conn.execute(select(write_clock.c.id, write_clock.c.seq))}


def test_only_a_change_of_conversations_raises_the_writers_clock_and_no_other(
    database_url: str,
) -> None:
    """Readers keep stored conversations only: a batch that changes none (creates, a write
    that only locks) leaves every clock where it was, and other processes' readers keep
    trusting. On PostgreSQL the writer's connections are marked, so its changes never raise the
    clock of foreign writes (row -1) through migration 0010's trigger."""
    db = _database(database_url, 1000, clock_row=7)
    try:
        ids = [9_750_000_001, 9_750_000_002]
        before = _clocks(database_url)
        _add(db, ids)
        assert _clocks(database_url) == before  # created: nothing a reader kept changed
        _write(db, lambda uow: _changed(uow, ids[0], name="renamed"))
        after = _clocks(database_url)
        assert after == {**before, 7: before[7] + 1}, (before, after)
        _write(db, lambda uow: uow.conversations.get(ids[1], lock=True))  # locks, changes none
        assert _clocks(database_url) == after
        assert _read(db, ids)[ids[0]].name == "renamed"
    finally:
        db.close()


def test_a_change_by_anything_but_a_convhub_writer_is_seen_at_once_on_postgresql() -> None:
    """An older convhub during a rolling upgrade, or an administrator's SQL, raises no clock of
    a process: migration 0010's trigger raises the clock of foreign writes (row -1) for it."""
    with required_postgres() as url:
        db = _database(url, 1000, clock_row=5)
        try:
            ids = [9_800_000_001]
            _add(db, ids)
            _read(db, ids)  # now kept
            _behind_the_clocks(url, ids[0], "unseen")
            assert _read(db, ids)[ids[0]].name == "first"  # trusted: no versions asked
            _behind_the_clocks(url, ids[0], "by an older convhub", as_convhub=False)
            assert _read(db, ids)[ids[0]].name == "by an older convhub"
        finally:
            db.close()


def _heard_up_to_the_clocks(db: GroupCommitDatabase, url: str) -> None:
    """Wait until ``db`` trusts what it keeps at the clocks as they stand."""
    assert db._kept is not None
    kept = db._kept
    eventually(lambda: (kept.valid_at, tuple(sorted(_clocks(url).items()))), lambda c: c[0] == c[1])


def _hearing(db: GroupCommitDatabase) -> bool:
    return db._clock is not None and db._clock.hearing


def test_a_process_that_hears_another_write_keeps_trusting_what_it_kept_on_postgresql() -> None:
    """Each writer's tick tells the other processes what it changed. A reader that has heard up
    to the clocks asks no versions while another process writes (a change behind the clocks
    stays unseen) and reads again only what was named. When its listening connection is ended,
    readers ask versions again until it listens anew."""
    with required_postgres() as url:
        first, second = _database(url, 1000, 1), _database(url, 1000, 2)
        try:
            ids = [9_850_000_001, 9_850_000_002, 9_850_000_003]
            _add(second, ids)
            eventually(lambda: _hearing(first), bool)  # it listens
            kept = _read(first, ids)
            _behind_the_clocks(url, ids[2], "unseen")
            _write(second, lambda uow: _changed(uow, ids[0], name="by the second"))
            _heard_up_to_the_clocks(first, url)
            seen = _read(first, ids)
            assert seen[ids[0]].name == "by the second"  # named, so forgotten and read again
            assert seen[ids[1]] is kept[ids[1]]
            assert seen[ids[2]].name == "first"  # trusted while the second wrote: no versions

            with _transaction(url) as conn:  # the server ends both listening connections
                ended = conn.execute(
                    select(func.pg_terminate_backend(text("pid")))
                    .select_from(text("pg_stat_activity"))
                    .where(text("application_name = :name AND datname = current_database()"))
                    .params(name=APPLICATION_NAME)
                ).all()
            assert len(ended) == 2
            eventually(lambda: _hearing(first), lambda hearing: not hearing)  # noticed
            _write(second, lambda uow: _changed(uow, ids[0], name="by the second, again"))
            seen = _read(first, ids)
            assert seen[ids[0]].name == "by the second, again"
            assert seen[ids[2]].name == "unseen"  # unheard: the versions were asked

            eventually(lambda: _hearing(first), bool)  # it listens again
            _read(first, ids)  # listening again forgot everything: kept anew
            _behind_the_clocks(url, ids[1], "unseen again")
            _write(second, lambda uow: _changed(uow, ids[0], name="heard again"))
            _heard_up_to_the_clocks(first, url)
            seen = _read(first, ids)
            assert (seen[ids[0]].name, seen[ids[1]].name) == ("heard again", "first")
        finally:
            first.close()
            second.close()


def test_a_users_conversations_keep_their_order_and_their_newest_values(
    two: tuple[GroupCommitDatabase, GroupCommitDatabase],
) -> None:
    writer, reader = two
    ids = [9_400_000_001, 9_400_000_002, 9_400_000_003]

    def make(uow: UnitOfWork) -> None:
        for rank, conversation_id in enumerate(ids, start=1):
            conversation = _conversation(conversation_id)
            conversation.activity_key = rank
            uow.conversations.add(conversation, None)
        uow.participants.add_many(
            [Participant(conversation_id=i, user="lister", role=Role.MEMBER, operator="u",
                         create_time=1, app_id=APP) for i in ids]
        )  # fmt: skip

    def listed() -> list[tuple[int, str]]:
        page = _run(
            reader.read(
                lambda uow: uow.conversations.of_user(
                    APP,
                    "lister",
                    inbox_type=0,
                    order=UserOrder.ACTIVITY,
                    cursor=1 << 62,
                    limit=10,
                )
            )
        )
        return [(c.id, c.name) for c in page]

    _write(writer, make)
    assert listed() == [(ids[2], "first"), (ids[1], "first"), (ids[0], "first")]
    _write(writer, lambda uow: _changed(uow, ids[0], name="busy"))
    _write(writer, lambda uow: uow.conversations.take_message_indexes(ids[0], 1, 99))
    assert listed() == [(ids[0], "busy"), (ids[2], "first"), (ids[1], "first")]
