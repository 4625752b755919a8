"""PostgreSQL reads on the event loop (store/loop_reads.py): a read waiting for the server lets
the loop serve others, at most the configured number of connections read at once and are kept,
a cancelled read stops its statement and spoils nothing, and closing closes them all. (SQLite
reads inline, by design: there is no loop-side wait to test.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import sqlalchemy as sa

from convhub.domain.ports import UnitOfWork
from convhub.errors import ConvhubError, ErrorCode
from convhub.store.database import GroupCommitDatabase
from convhub.store.driver import fast
from convhub.store.engine import create_database_engine
from convhub.store.unit_of_work import SqlUnitOfWork
from tests.postgres import sessions, terminate_backends
from tests.support import required_postgres

CONNECTIONS = 2


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with required_postgres() as url:
        yield url


@pytest.fixture
def db(postgres_url: str) -> Iterator[GroupCommitDatabase]:
    made = GroupCommitDatabase(
        create_database_engine(postgres_url, pool_size=4), read_connections=CONNECTIONS
    )
    yield made
    made.close()


def _statement(sql: str) -> Any:
    def work(uow: UnitOfWork) -> Any:
        return cast(SqlUnitOfWork, uow).session.conn.execute(sa.text(sql)).scalar()

    return work


def test_waiting_reads_leave_the_loop_free_and_share_the_kept_connections(
    db: GroupCommitDatabase,
) -> None:
    async def main() -> tuple[float, int, list[int]]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        started = time.monotonic()
        pids = await asyncio.gather(
            *(db.read(_statement("SELECT pg_backend_pid() FROM pg_sleep(0.3)")) for _ in range(4))
        )
        elapsed = time.monotonic() - started
        ticker.cancel()
        return elapsed, ticks, pids

    elapsed, ticks, pids = asyncio.run(main())
    assert 0.6 <= elapsed < 1.5  # four reads of 0.3 s, two at a time
    assert ticks >= 25  # the loop kept running while they waited
    assert len(set(pids)) == CONNECTIONS  # each connection served two reads


def test_a_domain_error_keeps_the_connection_and_a_cancelled_read_stops_its_statement(
    db: GroupCommitDatabase, postgres_url: str
) -> None:
    def refuse(uow: UnitOfWork) -> int:
        _statement("SELECT 1")(uow)
        raise ConvhubError(ErrorCode.APP_NOT_FOUND, "no such app")

    async def main() -> None:
        first = await db.read(_statement("SELECT pg_backend_pid()"))
        with pytest.raises(ConvhubError):
            await db.read(refuse)
        assert await db.read(_statement("SELECT pg_backend_pid()")) == first
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(db.read(_statement("SELECT 1 FROM pg_sleep(30)")), 0.3)
        # The next reads work, on a connection that is not waiting for the cancelled statement.
        for _ in range(CONNECTIONS + 1):
            assert await db.read(_statement("SELECT 7")) == 7

    asyncio.run(main())
    deadline = time.monotonic() + 5
    while sessions(postgres_url, running="pg_sleep(30)"):
        assert time.monotonic() < deadline, "the cancelled statement still runs"
        time.sleep(0.05)


# Prebuilt statements, run as the repositories' are: on the connection's one kept cursor.
_SERIES = fast(sa.select(sa.func.generate_series(1, sa.bindparam("n", type_=sa.Integer))))
_DIVIDED = fast(sa.select(sa.literal_column("1") / sa.bindparam("by", type_=sa.Integer)))


def _fast(statement: Any, **params: Any) -> Any:
    def work(uow: UnitOfWork) -> list[Any]:
        return list(cast(SqlUnitOfWork, uow).session.read(statement, params))

    return work


def test_each_statement_on_a_kept_cursor_answers_its_own_rows_after_a_failed_one(
    db: GroupCommitDatabase,
) -> None:
    """A connection's statements share one cursor: none sees another's rows or failure."""

    async def main() -> None:
        for _ in range(CONNECTIONS):  # each connection in turn
            assert await db.read(_fast(_SERIES, n=3)) == [(1,), (2,), (3,)]
            with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
                await db.read(_fast(_DIVIDED, by=0))
            assert await db.read(_fast(_SERIES, n=0)) == []
            assert await db.read(_fast(_DIVIDED, by=1)) == [(1,)]

    asyncio.run(main())


def test_close_closes_every_reader_connection(postgres_url: str) -> None:
    db = GroupCommitDatabase(
        create_database_engine(postgres_url, pool_size=4), read_connections=CONNECTIONS
    )

    async def read_twice_at_once() -> None:
        await asyncio.gather(*(db.read(_statement("SELECT 1 FROM pg_sleep(0.1)")) for _ in "ab"))

    asyncio.run(read_twice_at_once())
    asyncio.run(read_twice_at_once())  # another loop reuses the kept connections
    assert sessions(postgres_url) >= CONNECTIONS
    db.close()
    assert sessions(postgres_url) == 0

    async def serve_and_aclose() -> None:
        db = GroupCommitDatabase(
            create_database_engine(postgres_url, pool_size=4), read_connections=CONNECTIONS
        )
        await db.read(_statement("SELECT 1"))
        await db.aclose()

    asyncio.run(serve_and_aclose())
    assert sessions(postgres_url) == 0


def test_reads_after_the_server_dropped_every_connection_succeed(
    db: GroupCommitDatabase, postgres_url: str
) -> None:
    async def read_at_once() -> list[int]:
        return await asyncio.gather(
            *(db.read(_statement("SELECT 1 FROM pg_sleep(0.05)")) for _ in range(CONNECTIONS))
        )

    asyncio.run(read_at_once())  # both connections are kept
    assert terminate_backends(postgres_url) >= CONNECTIONS
    assert asyncio.run(db.read(_statement("SELECT 7"))) == 7
    assert asyncio.run(read_at_once()) == [1] * CONNECTIONS
