"""What the domain needs from the outside world, as Protocols; adapters live in ``store``.

Storage is one repository per aggregate, reached through a ``UnitOfWork``: everything a unit of
work does runs in one transaction, committed (and synced) before ``Database.write`` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from convhub.domain.models import (
    AccessKey,
    Account,
    App,
    Conversation,
    EntityStatus,
    Feedback,
    Message,
    Participant,
    Role,
    Token,
)

T = TypeVar("T")


class Conversations(Protocol):
    def add(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        """Insert unless (app, inbox, idempotency key) is taken; False when it was."""
        ...

    def get(self, conversation_id: int) -> Conversation | None: ...

    def get_many(self, conversation_ids: Sequence[int]) -> list[Conversation]:
        """The conversations among the IDs, in no particular order."""
        ...

    def find_by_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None: ...

    def update(self, conversation: Conversation) -> None:
        """Write back what may change: names, ext, owner, status, counts, times, section."""
        ...

    def dissolve(self, conversation: Conversation) -> None:
        """Mark it dissolved and free its idempotency key for a new conversation."""
        ...

    def list_created(
        self,
        app_id: int,
        creator: str,
        *,
        bot_id: str,
        connector_id: str,
        offset: int,
        limit: int,
        descending: bool,
    ) -> list[Conversation]: ...

    def take_message_indexes(self, conversation_id: int, count: int) -> int:
        """Reserve ``count`` message indexes; the last one reserved."""
        ...


class Participants(Protocol):
    def add_many(self, participants: Sequence[Participant]) -> None: ...

    def get(self, conversation_id: int, user: str) -> Participant | None: ...

    def set_role(self, conversation_id: int, user: str, role: Role) -> None: ...


class Messages(Protocol):
    def add_many(self, messages: Sequence[Message]) -> None: ...

    def get(self, conversation_id: int, message_id: int) -> Message | None: ...

    def page(
        self,
        conversation_id: int,
        *,
        above: int | None,
        below: int | None,
        ascending: bool,
        limit: int,
        chat_id: str | None,
    ) -> list[Message]:
        """Visible messages with ``above < id < below``, by id in the order asked."""
        ...

    def update(self, message: Message) -> None: ...

    def set_feedback(self, feedback: Feedback) -> None:
        """One feedback per user and message: a new one replaces the old."""
        ...

    def delete_feedback(self, message_id: int, user: str) -> bool: ...


class Access(Protocol):
    """Accounts, their apps, access keys and tokens."""

    def credentials(self, access_key: str) -> tuple[AccessKey, Account] | None: ...

    def app(self, app_id: int) -> App | None: ...

    def token(self, token_hash: str) -> tuple[Token, EntityStatus, EntityStatus] | None:
        """The token with its account's and its app's status."""
        ...

    def account_named(self, name: str) -> Account | None: ...

    def add_account(self, account: Account) -> bool:
        """False when the name is taken."""
        ...

    def add_app(self, app: App) -> bool:
        """False when the AppId is taken."""
        ...

    def highest_app_id(self) -> int | None: ...

    def add_key(self, key: AccessKey) -> None: ...

    def add_token(self, token: Token, token_hash: str) -> None: ...

    def accounts(self) -> list[Account]: ...

    def apps(self, account_id: int | None) -> list[tuple[App, str]]:
        """Apps with their account's name."""
        ...

    def keys(self, account_id: int | None) -> list[tuple[AccessKey, str]]: ...

    def tokens(self, account_id: int | None) -> list[tuple[Token, str]]: ...

    def first_app(self, account_id: int) -> App | None: ...

    def set_account_status(self, name: str, status: EntityStatus) -> bool: ...

    def set_app_status(self, app_id: int, status: EntityStatus) -> bool: ...

    def set_key_status(self, access_key: str, status: EntityStatus) -> bool: ...

    def revoke_token(self, token_id: int) -> bool: ...


class UnitOfWork(Protocol):
    @property
    def conversations(self) -> Conversations: ...

    @property
    def participants(self) -> Participants: ...

    @property
    def messages(self) -> Messages: ...

    @property
    def access(self) -> Access: ...


class Database(Protocol):
    """Runs a unit of work in a transaction: committed (and synced) before ``write`` returns."""

    async def write(self, work: Callable[[UnitOfWork], T]) -> T: ...

    async def read(self, work: Callable[[UnitOfWork], T]) -> T: ...


class IdSource(Protocol):
    def next_id(self) -> int: ...


class Limiter(Protocol):
    async def acquire(self, account_id: int, operation: str) -> None:
        """Count one request; raise ``ConvhubError(RATE_LIMITED)`` when over the limit."""
        ...
