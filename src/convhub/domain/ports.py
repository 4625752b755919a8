"""What the domain needs from the outside world, as Protocols; adapters live in ``store``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from convhub.domain.models import (
    AccessKey,
    Account,
    App,
    Conversation,
    EntityStatus,
    Message,
    Participant,
    Role,
    Token,
)

T = TypeVar("T")


class Repository(Protocol):
    """Reads and writes inside one transaction; synchronous, a ``Database`` decides where."""

    def get_credentials(self, access_key: str) -> tuple[AccessKey, Account] | None: ...

    def get_app(self, app_id: int) -> App | None: ...

    def insert_conversation(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        """Insert unless (app, inbox, idempotency key) is taken; False when it was."""
        ...

    def find_by_idempotency_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None: ...

    def get_conversation(self, app_id: int, conversation_id: int) -> Conversation | None: ...

    def get_conversations(self, app_id: int, conversation_ids: Sequence[int]) -> list[Conversation]:
        """The conversations of ``app_id`` among the IDs, in no particular order."""
        ...

    def update_conversation(self, conversation: Conversation) -> None: ...

    def insert_participants(self, participants: Sequence[Participant]) -> None: ...

    def get_participant(self, conversation_id: int, user: str) -> Participant | None: ...

    def set_participant_role(self, conversation_id: int, user: str, role: Role) -> None: ...

    def get_token(self, token_hash: str) -> tuple[Token, EntityStatus, EntityStatus] | None:
        """The token with its account's and its app's status."""
        ...

    def list_conversations(
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

    def insert_messages(self, new: Sequence[Message]) -> None: ...

    def get_message(self, conversation_id: int, message_id: int) -> Message | None: ...

    def list_messages(
        self,
        conversation_id: int,
        *,
        above: int | None,
        below: int | None,
        ascending: bool,
        limit: int,
        chat_id: str | None,
    ) -> list[Message]: ...

    def update_message(self, message: Message) -> None: ...

    def delete_message(self, message_id: int, update_time: int) -> None: ...

    def set_feedback(
        self,
        message_id: int,
        user: str,
        *,
        feedback_type: str,
        reason_types: Sequence[str],
        comment: str,
        create_time: int,
    ) -> None: ...

    def delete_feedback(self, message_id: int, user: str) -> bool: ...


class Database(Protocol):
    """Runs a unit of work in a transaction: committed (and synced) before ``write`` returns."""

    async def write(self, work: Callable[[Repository], T]) -> T: ...

    async def read(self, work: Callable[[Repository], T]) -> T: ...


class IdSource(Protocol):
    def next_id(self) -> int: ...


class Limiter(Protocol):
    async def acquire(self, account_id: int, operation: str) -> None:
        """Count one request; raise ``ConvhubError(RATE_LIMITED)`` when over the limit."""
        ...
