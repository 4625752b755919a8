"""The domain's ``UnitOfWork`` over one SQLAlchemy connection, inside one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine

from convhub.domain.models import Conversation, Message
from convhub.store.kept import KeptRows
from convhub.store.repositories.access import SqlAccess
from convhub.store.repositories.conversations import SqlConversations
from convhub.store.repositories.messages import SqlMessages
from convhub.store.repositories.participants import SqlParticipants
from convhub.store.repositories.settings import SqlSettings
from convhub.store.session import Session

T = TypeVar("T")


class SqlUnitOfWork:
    __slots__ = ("access", "conversations", "messages", "participants", "session", "settings")

    def __init__(
        self,
        conn: Connection,
        *,
        kept: KeptRows[int, Conversation] | None = None,
        kept_messages: KeptRows[int, Message] | None = None,
        touched: set[int] | None = None,
        defer_checks: bool = True,
    ) -> None:
        """``kept``, ``kept_messages``: conversations and messages the process's read-only units
        share (never a write unit's).
        ``touched``: where a write unit notes the conversations it changes. ``defer_checks``:
        see ``Session.check_around_held``."""
        self.session = Session(conn, touched=touched, defer_checks=defer_checks)
        self.conversations = SqlConversations(self.session, kept)
        self.participants = SqlParticipants(self.session)
        self.messages = SqlMessages(self.session, kept_messages)
        self.settings = SqlSettings(self.session)
        self.access = SqlAccess(self.session)

    def lock(self, *names: str) -> None:
        self.session.lock(*names)

    def begin_read(self) -> None:
        """A read-only unit begins: before its transaction does (see store/kept.py)."""
        self.conversations.begin_read()


@contextmanager
def transaction(engine: Engine) -> Iterator[SqlUnitOfWork]:
    """A unit of work in its own transaction on a new connection: for the CLI and start-up."""
    with engine.begin() as conn:
        uow = SqlUnitOfWork(conn)
        yield uow
        uow.session.flush()


def run(engine: Engine, work: Callable[[SqlUnitOfWork], T]) -> T:
    with transaction(engine) as uow:
        return work(uow)
