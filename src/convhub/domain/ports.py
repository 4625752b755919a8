"""What the domain needs from the outside world, as Protocols; adapters live in ``store``.

Storage is one repository per aggregate, reached through a ``UnitOfWork``: everything a unit of
work does runs in one transaction, committed (and synced) before ``Database.write`` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import NamedTuple, Protocol, TypeVar

from convhub.domain.models import (
    AccessKey,
    Account,
    App,
    Conversation,
    ConversationSetting,
    EntityStatus,
    Feedback,
    Message,
    Participant,
    Token,
)

T = TypeVar("T")


class ReaderPage(NamedTuple):
    """A page of messages with what decides which of them its reader sees, read together."""

    messages: list[Message]
    hidden: set[int]  # those of them the reader deleted for themself
    history_floor: int  # the reader's, as a member; 0 if not one


class UserOrder(Enum):
    """How a user's conversations are listed (GetUserConversations' DataType 0, 1, 2)."""

    ACTIVITY = 0  # most recent activity first
    CREATED = 1  # oldest first
    OWN_LIVE_GROUPS = 2  # live groups the user created, newest first


class Conversations(Protocol):
    def add(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        """Insert unless (app, inbox, idempotency key) is taken; False when it was."""
        ...

    def get(self, conversation_id: int, *, lock: bool = False) -> Conversation | None:
        """``lock``: hold the row until the transaction ends (members change under it)."""
        ...

    def get_many(self, conversation_ids: Sequence[int]) -> list[Conversation]:
        """The conversations among the IDs, in no particular order."""
        ...

    def find_by_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None: ...

    def update(self, conversation: Conversation, fields: tuple[str, ...]) -> None:
        """Write back the named fields (only those: others may change beside this unit)."""
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

    def take_message_indexes(self, conversation_id: int, count: int, activity_key: int) -> int:
        """Reserve ``count`` message indexes and record activity; the last index reserved."""
        ...

    def of_user(
        self,
        app_id: int,
        user: str,
        *,
        inbox_type: int,
        order: UserOrder,
        cursor: int,
        limit: int,
    ) -> list[Conversation]:
        """A page of the live conversations ``user`` is a member of, past ``cursor`` (an
        ``activity_key`` for ACTIVITY, else an ID) in ``order``."""
        ...

    def count_live_groups(self, app_id: int) -> int: ...

    def marks(self, conversation_id: int) -> list[str]: ...

    def add_marks(self, conversation_id: int, marks: Sequence[str]) -> None: ...

    def delete_marks(self, conversation_id: int, marks: Sequence[str]) -> None: ...


class Participants(Protocol):
    def add_many(self, participants: Sequence[Participant]) -> None: ...

    def get(self, conversation_id: int, user: str) -> Participant | None: ...

    def get_many(self, conversation_id: int, users: Sequence[str]) -> list[Participant]: ...

    def update(self, member: Participant, fields: tuple[str, ...]) -> None: ...

    def update_many(self, members: Sequence[Participant], fields: tuple[str, ...]) -> None: ...

    def page(
        self,
        conversation_id: int,
        *,
        cursor: int,
        descending: bool,
        limit: int,
        staff_only: bool,
    ) -> list[Participant]: ...

    def groups_of(self, app_id: int, users: Sequence[str]) -> dict[str, int]: ...

    def check_groups(self, app_id: int, user: str, check: Callable[[int], None]) -> None:
        """Call ``check`` with the user's count of groups (as ``groups_of``), now or before the
        unit's transaction commits: an error it raises fails the unit either way."""
        ...

    def leave_group_limit(self, conversation_id: int) -> None:
        """A dissolved group no longer counts toward its members' limit of groups."""
        ...


class Settings(Protocol):
    def get(self, conversation_id: int, user: str) -> ConversationSetting | None: ...

    def read_indexes(self, conversation_id: int) -> list[tuple[str, int]]:
        """Current members' read indexes above 0."""
        ...

    def save(self, setting: ConversationSetting) -> None: ...


class Messages(Protocol):
    def add_many(self, messages: Sequence[Message]) -> None: ...

    def get(self, conversation_id: int, message_id: int) -> Message | None:
        """The message whatever its status (recalled, deleted)."""
        ...

    def get_many(self, conversation_id: int, message_ids: Sequence[int]) -> list[Message]: ...

    def by_client_id(self, conversation_id: int, client_msg_id: str) -> Message | None: ...

    def by_index(
        self, conversation_id: int, *, start: int, descending: bool, limit: int
    ) -> list[Message]:
        """Messages visible to all from index ``start`` on (down, if ``descending``)."""
        ...

    def hide(self, message_id: int, user: str) -> None:
        """Delete a message for one member only."""
        ...

    def hidden_for(self, user: str, message_ids: Sequence[int]) -> set[int]: ...

    def page(
        self,
        conversation_id: int,
        reader: str,
        *,
        above: int | None,
        below: int | None,
        ascending: bool,
        limit: int,
        chat_id: str | None,
        statuses: tuple[int, ...] = (),
    ) -> ReaderPage:
        """Messages with ``above < id < below`` in one of ``statuses`` (default: visible to
        all), by id in the order asked, with those of them ``reader`` hid and ``reader``'s
        history floor (one statement: this is every Coze message list's read)."""
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
    def settings(self) -> Settings: ...

    @property
    def access(self) -> Access: ...

    def lock(self, *names: str) -> None:
        """Take turns, until this unit's transaction ends, with every other one (in any
        process) that locks one of the same names: for limits counted across rows."""
        ...


class Database(Protocol):
    """Runs a unit of work in a transaction: committed (and synced) before ``write`` returns."""

    async def write(
        self,
        work: Callable[[UnitOfWork], T],
        *,
        locks: int | None = None,
        lock_names: Sequence[str] = (),
    ) -> T:
        """Hints, known before ``work`` runs, that let the store take a batch's locks together:
        ``locks``, the conversation whose row ``work`` reads locked
        (``conversations.get(…, lock=True)``); ``lock_names``, what it passes to
        ``UnitOfWork.lock``. ``work`` reads and locks them all the same."""
        ...

    async def read(self, work: Callable[[UnitOfWork], T]) -> T: ...


class IdSource(Protocol):
    def next_id(self) -> int: ...


class Limiter(Protocol):
    async def acquire(self, account_id: int, operation: str) -> None:
        """Count one request; raise ``ConvhubError(RATE_LIMITED)`` when over the limit."""
        ...
