"""SQLite's reads run in a transaction its driver begins (``driver.read_only``), not SQLAlchemy:
one snapshot for every statement of a read, prebuilt or not, whatever another connection commits
meanwhile, and no transaction left open after it, whether it ran a statement through SQLAlchemy
or failed. SQLite only: PostgreSQL reads run on the event loop's own connections
(test_loop_reads.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, bindparam, select, update

from convhub.domain.models import Conversation, ConversationType
from convhub.domain.ports import UnitOfWork
from convhub.store.database import GroupCommitDatabase
from convhub.store.driver import fast
from convhub.store.engine import create_database_engine
from convhub.store.tables import conversations
from tests.support import migrated

CONVERSATION = 9_700_000_001
_c = conversations.c
_NAME_PREBUILT = fast(select(_c.name).where(_c.id == bindparam("id")))
_NAME_THROUGH_SQLALCHEMY = select(_c.name).where(_c.id == bindparam("id"))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[GroupCommitDatabase, Engine]]:
    """The server's storage on a SQLite file, and another connection's engine on the same file."""
    url = migrated(f"sqlite:///{tmp_path / 'reads.db'}")
    db = GroupCommitDatabase(create_database_engine(url, pool_size=2), kept_conversations=100)
    other = create_database_engine(url, pool_size=1)
    first = Conversation(
        id=CONVERSATION, app_id=1, inbox_type=0, type=ConversationType.GROUP, owner="u",
        creator="u", other=None, create_time=1, modify_time=1, name="first",
    )  # fmt: skip
    asyncio.run(db.write(lambda uow: uow.conversations.add(first, None)))
    yield db, other
    db.close()
    other.dispose()


def _rename(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(conversations)
            .where(_c.id == CONVERSATION)
            .values(name=name, version=_c.version + 1)
        )


def _read(db: GroupCommitDatabase, work: Any) -> Any:
    return asyncio.run(db.read(work))


def _no_transaction_open(conn: Connection) -> bool:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return not conn.in_transaction() and not raw.in_transaction  # type: ignore[attr-defined]


def test_a_read_sees_one_snapshot_while_another_connection_commits(
    stores: tuple[GroupCommitDatabase, Engine],
) -> None:
    db, other = stores

    def read_around_a_commit(uow: UnitOfWork) -> tuple[Any, ...]:
        params = {"id": CONVERSATION}
        before = uow.session.read(_NAME_PREBUILT, params).scalar()  # type: ignore[attr-defined]
        _rename(other, "meanwhile")
        return (
            before,
            uow.session.read(_NAME_PREBUILT, params).scalar(),  # type: ignore[attr-defined]
            uow.session.read(_NAME_THROUGH_SQLALCHEMY, params).scalar(),  # type: ignore[attr-defined]
            uow.session.conn,  # type: ignore[attr-defined]
        )

    *names, conn = _read(db, read_around_a_commit)
    assert names == ["first", "first", "first"]
    assert _no_transaction_open(conn)
    assert _read(db, lambda uow: uow.conversations.get(CONVERSATION)).name == "meanwhile"


def test_a_failed_read_leaves_no_transaction_open(
    stores: tuple[GroupCommitDatabase, Engine],
) -> None:
    db, other = stores
    seen: list[Connection] = []

    def fail(uow: UnitOfWork) -> None:
        seen.append(uow.session.conn)  # type: ignore[attr-defined]
        uow.session.read(_NAME_THROUGH_SQLALCHEMY, {"id": CONVERSATION})  # type: ignore[attr-defined]
        raise RuntimeError("the read fails")

    with pytest.raises(RuntimeError, match="the read fails"):
        _read(db, fail)
    assert _no_transaction_open(seen[0])
    # A transaction left open would keep its snapshot: the next read would miss this rename.
    _rename(other, "after the failure")
    assert _read(db, lambda uow: uow.conversations.get(CONVERSATION)).name == "after the failure"


def test_one_conversation_is_read_from_what_was_kept_while_the_clock_says_it_is_current(
    stores: tuple[GroupCommitDatabase, Engine],
) -> None:
    db, _ = stores
    raw_statements: list[str] = []

    def traced(work: Any) -> Any:
        def run(uow: UnitOfWork) -> Any:
            raw = uow.session.conn.connection.dbapi_connection  # type: ignore[attr-defined]
            raw.set_trace_callback(raw_statements.append)
            try:
                return work(uow)
            finally:
                raw.set_trace_callback(None)

        return _read(db, run)

    assert traced(lambda uow: uow.conversations.get(CONVERSATION)).name == "first"  # now kept
    raw_statements.clear()
    assert traced(lambda uow: uow.conversations.get(CONVERSATION)).name == "first"
    selects = [sql for sql in raw_statements if sql.startswith("SELECT")]
    assert len(selects) == 1 and "write_clock" in selects[0], selects
    # The writer forgets the row it changes: the next read has it as changed.
    asyncio.run(
        db.write(
            lambda uow: uow.conversations.update(
                _renamed(uow.conversations.get(CONVERSATION), "by the writer"), ("name",)
            )
        )
    )
    assert _read(db, lambda uow: uow.conversations.get(CONVERSATION)).name == "by the writer"
    assert _read(db, lambda uow: uow.conversations.get(CONVERSATION + 1)) is None


def _renamed(conversation: Conversation | None, name: str) -> Conversation:
    assert conversation is not None
    conversation.name = name
    return conversation
