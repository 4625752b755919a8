"""Messages the read side keeps (repositories/messages.py): a page serves a kept message only
while the stored row is at the version it was read at, on each engine, whichever process or
statement changed the row; large messages are read each time; a write unit keeps nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from convhub.domain.models import Message, MessageStatus, Participant, Role
from convhub.domain.ports import ReaderPage, UnitOfWork
from convhub.store.database import GroupCommitDatabase
from convhub.store.engine import create_database_engine, is_sqlite
from convhub.store.repositories.messages import KEPT_TEXT
from convhub.store.tables import messages
from tests.support import connection

READABLE = (int(MessageStatus.NORMAL), int(MessageStatus.SENDER_ONLY))


def _database(url: str, kept_messages: int = 1000) -> GroupCommitDatabase:
    engine = create_database_engine(url, pool_size=4)
    return GroupCommitDatabase(
        engine, read_connections=0 if is_sqlite(url) else 2, kept_messages=kept_messages
    )


@pytest.fixture
def db(database_url: str) -> Iterator[GroupCommitDatabase]:
    """One process's worth of storage, keeping what its pages read."""
    made = _database(database_url)
    yield made
    made.close()


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[GroupCommitDatabase, GroupCommitDatabase]]:
    """Two processes' worth of storage on one database, each keeping what its pages read."""
    first, second = _database(database_url), _database(database_url)
    yield first, second
    first.close()
    second.close()


def _message(message_id: int, index: int, content: str = "hello") -> Message:
    """A message of the conversation numbered as the hundred its ID is in: one per test."""
    return Message(
        id=message_id,
        conversation_id=message_id // 100,
        index=index,
        sender="alice",
        msg_type=10001,
        content=content,
        ext={"k": "v"},
        status=MessageStatus.NORMAL,
        create_time=1_700_000_000_000,
        update_time=1_700_000_000_000,
    )


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def _write(db: GroupCommitDatabase, work: Callable[[UnitOfWork], object]) -> None:
    _run(db.write(work))


def _page(db: GroupCommitDatabase, of: int, **bounds: Any) -> list[Message]:
    """The newest messages first of the conversation of message ``of``, as the Coze list reads
    them."""
    args = {"above": None, "below": None, "ascending": False, "limit": 50, "chat_id": None}
    args.update(bounds)
    return _reader_page(db, of, "alice", **args).messages


def _reader_page(db: GroupCommitDatabase, of: int, reader: str, **args: Any) -> ReaderPage:
    found: ReaderPage = _run(
        db.read(lambda uow: uow.messages.page(of // 100, reader, **args, statuses=READABLE))
    )
    return found


def _changed(uow: UnitOfWork, message_id: int, **values: Any) -> None:
    found = uow.messages.get(message_id // 100, message_id)
    assert found is not None
    uow.messages.update(dataclasses.replace(found, **values))


def test_every_kind_of_update_is_seen_by_a_reader_that_kept_the_message(
    two: tuple[GroupCommitDatabase, GroupCommitDatabase],
) -> None:
    writer, _ = two
    ids = [7_100_000_101, 7_100_000_102, 7_100_000_103, 7_100_000_104]
    _write(writer, lambda uow: uow.messages.add_many([_message(i, n) for n, i in enumerate(ids)]))
    before = [_page(db, ids[0]) for db in two]  # kept by the writer's read side and the other
    assert [m.id for m in before[1]] == ids[::-1]
    assert _page(two[1], ids[0])[0] is before[1][0]  # and served as kept

    _write(writer, lambda uow: _changed(uow, ids[0], content="edited", update_time=2))
    _write(writer, lambda uow: _changed(uow, ids[1], ext={"x": "y"}))
    _write(writer, lambda uow: _changed(uow, ids[2], status=MessageStatus.DELETED))
    for db, kept in zip(two, before, strict=True):
        seen = {m.id: m for m in _page(db, ids[0])}
        assert (seen[ids[0]].content, seen[ids[0]].update_time) == ("edited", 2)
        assert seen[ids[1]].ext == {"x": "y"}
        assert ids[2] not in seen
        assert seen[ids[3]] is kept[0]  # unchanged: still the one kept


def test_an_update_raises_the_stored_version(db: GroupCommitDatabase, database_url: str) -> None:
    message_id = 7_100_000_201
    _write(db, lambda uow: uow.messages.add_many([_message(message_id, 1)]))
    for expected in (1, 2):
        _write(db, lambda uow, n=expected: _changed(uow, message_id, content=f"v{n}"))
        with connection(database_url) as conn:
            version = conn.execute(
                select(messages.c.version).where(messages.c.id == message_id)
            ).scalar_one()
        assert version == expected


def test_a_change_made_outside_convhub_that_raises_the_version_is_seen(
    db: GroupCommitDatabase,
    database_url: str,
) -> None:
    message_id = 7_100_000_301
    _write(db, lambda uow: uow.messages.add_many([_message(message_id, 1)]))
    assert _page(db, message_id)[0].content == "hello"
    with connection(database_url) as conn, conn.begin():
        conn.execute(
            update(messages)
            .where(messages.c.id == message_id)
            .values(content="by hand", version=messages.c.version + 1)
        )
    assert _page(db, message_id)[0].content == "by hand"


def test_only_messages_of_at_most_kept_text_characters_are_kept(db: GroupCommitDatabase) -> None:
    small, large = 7_100_000_401, 7_100_000_402
    _write(
        db,
        lambda uow: uow.messages.add_many(
            [_message(small, 1, "s" * 100), _message(large, 2, "l" * KEPT_TEXT)]
        ),
    )
    first, second = _page(db, small), _page(db, small)
    assert [m.id for m in first] == [m.id for m in second] == [large, small]
    assert second[1] is first[1]
    assert second[0] is not first[0] and second[0].content == "l" * KEPT_TEXT


def test_pages_keep_their_order_bounds_and_newest_values_with_some_messages_kept(
    db: GroupCommitDatabase, database_url: str
) -> None:
    """Some of a page kept, some read in full: the page is what a full read gives."""
    plain = _database(database_url, kept_messages=0)
    try:
        ids = [7_100_000_500 + i for i in range(8)]
        _write(db, lambda uow: uow.messages.add_many([_message(i, n) for n, i in enumerate(ids)]))
        _page(db, ids[0], above=ids[2], below=ids[6])  # keeps the middle ones only
        _write(db, lambda uow: _changed(uow, ids[4], content="newer"))
        for bounds in ({}, {"ascending": True}, {"above": ids[1], "limit": 3}):
            assert _page(db, ids[0], **bounds) == _page(plain, ids[0], **bounds)
        assert [m.content for m in _page(db, ids[0]) if m.id == ids[4]] == ["newer"]
    finally:
        plain.close()


def test_a_write_units_pages_are_never_kept(db: GroupCommitDatabase) -> None:
    message_id = 7_100_000_601
    _write(db, lambda uow: uow.messages.add_many([_message(message_id, 1)]))

    def read_then_fail(uow: UnitOfWork) -> None:
        _changed(uow, message_id, content="rolled back")
        page = uow.messages.page(
            message_id // 100, "alice",
            above=None, below=None, ascending=False, limit=5, chat_id=None,
        ).messages  # fmt: skip
        assert page[0].content == "rolled back"
        raise RuntimeError("roll it back")

    with pytest.raises(RuntimeError):
        _write(db, read_then_fail)
    assert _page(db, message_id)[0].content == "hello"


def test_pages_by_index_serve_kept_messages_only_while_unchanged(db: GroupCommitDatabase) -> None:
    """GetConversationMessages' pages (by index, visible to all) keep what they read as well."""
    ids = [7_100_000_700 + i for i in range(4)]
    _write(db, lambda uow: uow.messages.add_many([_message(i, n) for n, i in enumerate(ids)]))

    def by_index() -> list[Message]:
        return list(
            _run(
                db.read(
                    lambda uow: uow.messages.by_index(
                        ids[0] // 100, start=1, descending=False, limit=10
                    )
                )
            )
        )

    before = by_index()
    assert [m.id for m in before] == ids[1:]
    _write(db, lambda uow: _changed(uow, ids[1], content="edited"))
    _write(db, lambda uow: _changed(uow, ids[2], status=MessageStatus.SENDER_ONLY))
    after = by_index()
    assert [(m.id, m.content) for m in after] == [(ids[1], "edited"), (ids[3], "hello")]
    assert after[1] is before[2]


def test_an_update_that_leaves_the_version_alone_raises_it_all_the_same(
    db: GroupCommitDatabase,
    database_url: str,
) -> None:
    """A process of an older version, or an administrator's SQL, updates without raising the
    version: the database raises it (migration 0011's trigger), and readers see the change."""
    message_id = 7_100_000_801
    _write(db, lambda uow: uow.messages.add_many([_message(message_id, 1)]))
    assert _page(db, message_id)[0].content == "hello"
    with connection(database_url) as conn, conn.begin():
        conn.execute(update(messages).where(messages.c.id == message_id).values(content="by hand"))
        conn.execute(
            update(messages)
            .where(messages.c.id == message_id)
            .values(status=int(MessageStatus.SENDER_ONLY))
        )
    assert [(m.content, m.status) for m in _page(db, message_id)] == [
        ("by hand", MessageStatus.SENDER_ONLY)
    ]
    with connection(database_url) as conn:
        version = conn.execute(
            select(messages.c.version).where(messages.c.id == message_id)
        ).scalar_one()
    assert version == 2


@pytest.mark.parametrize("kept_messages", [1000, 0])
def test_a_page_says_which_of_its_messages_its_reader_hid_and_the_readers_history_floor(
    database_url: str, kept_messages: int
) -> None:
    """In the page's own statement, whether its messages are kept or not."""
    db = _database(database_url, kept_messages)
    try:
        base = 7_100_000_900 if kept_messages else 7_100_001_000
        ids = [base + i for i in range(4)]
        conversation_id = base // 100
        bob = Participant(conversation_id, "bob", Role.MEMBER, "alice", 0, history_floor=2)

        def set_up(uow: UnitOfWork) -> None:
            uow.messages.add_many([_message(i, n + 1) for n, i in enumerate(ids)])
            uow.participants.add_many([bob])
            uow.messages.hide(ids[1], "bob")
            uow.messages.hide(ids[3], "bob")
            uow.messages.hide(ids[0], "carol")

        _write(db, set_up)
        args = {"above": None, "below": None, "ascending": False, "limit": 50, "chat_id": None}
        for _ in range(2):  # the second time from what the first kept, if kept
            bobs = _reader_page(db, ids[0], "bob", **args)
            assert [m.id for m in bobs.messages] == ids[::-1]
            assert (bobs.hidden, bobs.history_floor) == ({ids[1], ids[3]}, 2)
            carols = _reader_page(db, ids[0], "carol", **args)
            assert (carols.hidden, carols.history_floor) == ({ids[0]}, 0)  # not a member
        nothing = _reader_page(db, ids[0], "bob", **{**args, "above": ids[3]})
        assert nothing == ReaderPage([], set(), 0)
    finally:
        db.close()
