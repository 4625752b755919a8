"""PostgreSQL reads on the event loop.

A read is a network round trip or two. On a pool of reader threads each one cost a hand-off to a
thread and back, and the threads fought the event loop for the GIL; measured from outside, the
read rows made 22 to 92% more requests a second with the same statements run on psycopg's async
connection, on the event loop (README, "Benchmark"). The repositories stay synchronous: a unit
of work runs in a greenlet (SQLAlchemy's ``AsyncConnection.run_sync``), and each statement's
wait for the server lets the event loop serve other requests meanwhile.

Each connection is kept open between reads (in autocommit: a read is one round trip, with no
BEGIN, COMMIT or pool checkout), at most ``size`` of them, used by one read at a time. psycopg
asks for the running loop at each wait, so a connection kept idle serves whichever event loop
reads next (tests run several one after another); ``close``, for callers without one, closes
them on a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from convhub.domain.models import Conversation, Message
from convhub.domain.ports import UnitOfWork
from convhub.errors import ConvhubError
from convhub.store.engine import create_loop_engine
from convhub.store.kept import KeptRows
from convhub.store.unit_of_work import SqlUnitOfWork

T = TypeVar("T")


class _Reader:
    __slots__ = ("conn", "uow")

    def __init__(
        self,
        conn: AsyncConnection,
        kept: KeptRows[int, Conversation] | None,
        kept_messages: KeptRows[int, Message] | None,
    ) -> None:
        self.conn = conn
        self.uow = SqlUnitOfWork(
            conn.sync_connection,  # type: ignore[arg-type]
            kept=kept,
            kept_messages=kept_messages,
        )


def _run(_conn: Connection, work: Callable[[UnitOfWork], T], uow: SqlUnitOfWork) -> T:
    return work(uow)


class LoopReads:
    def __init__(
        self,
        engine: Engine,
        *,
        size: int,
        kept: KeptRows[int, Conversation] | None,
        kept_messages: KeptRows[int, Message] | None = None,
    ) -> None:
        self._engine = create_loop_engine(engine)
        self._size = size
        self._kept = kept
        self._kept_messages = kept_messages
        self._idle: list[_Reader] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def run(self, work: Callable[[UnitOfWork], T], *, retry: bool = True) -> T:
        """``work`` on a kept connection; a connection the server dropped is replaced once."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # an asyncio semaphore waits on one loop only
            self._loop = loop
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            reader = self._idle.pop() if self._idle else await self._connect()
            try:
                reader.uow.begin_read()
                result = await reader.conn.run_sync(_run, work, reader.uow)
            except ConvhubError:  # the domain's answer: the connection is as good as before
                await self._put_back(reader)
                raise
            except DBAPIError as error:
                await self._drop(reader)
                if not (error.connection_invalidated and retry):
                    raise
                # The server went away (a restart, a failover): the kept ones went with it.
                await self._close_idle()
            except BaseException:  # cancelled mid-statement, or a bug: the state is unknown
                await self._drop(reader)
                raise
            else:
                await self._put_back(reader)
                return result
        return await self.run(work, retry=False)  # one try on a new connection

    async def _connect(self) -> _Reader:
        conn = await self._engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            await conn.close()
            raise
        return _Reader(conn, self._kept, self._kept_messages)

    async def _put_back(self, reader: _Reader) -> None:
        if self._closed:  # a read that ended after aclose
            await self._close(reader)
        else:
            self._idle.append(reader)

    @staticmethod
    async def _drop(reader: _Reader) -> None:
        with contextlib.suppress(Exception):  # the connection is going either way
            await reader.conn.invalidate()

    @staticmethod
    async def _close(reader: _Reader) -> None:
        with contextlib.suppress(Exception):  # the server may have dropped it already
            await reader.conn.close()

    async def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for reader in idle:
            await self._close(reader)

    async def aclose(self) -> None:
        self._closed = True
        await self._close_idle()
        await self._engine.dispose()

    def close(self) -> None:
        """``aclose`` for callers without an event loop."""
        asyncio.run(self.aclose())
